"""How predictions depend on each other and on identity: R² of least-squares fits.

- :func:`interdependence`: R² of each prediction on all the other predictions, the
  study's "interdependence" of the outputs.
- :func:`identity_dependence`: R² of each prediction on the true identity labels, the
  mechanism the study names ("increased correlations, which we directly link to increased
  bias"), measured directly.

Both take optional sample weights, one row per weighting, so a bootstrap's replicates
(integer counts) are computed together, each equal to the R² of the resampled data.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from prunebias.validation import as_bool, same_rows

# `interdependence` skips a regressor whose residual variance (relative to its
# variance) is below this: exact collinearity among binary predictions leaves
# ~1e-15, a genuine near collinearity (columns differing on 1 sample in 10^6) ~1e-6.
_COLLINEAR_TOL = 1e-10


def interdependence(pred, *, weights=None) -> np.ndarray:
    """In-sample R² of an OLS fit (with intercept) of each prediction on the others.

    Attribute j's predictions ŷ_j are regressed on all other attributes' ŷ; the
    value equals ``LinearRegression().fit(others, y_j).score(others, y_j)``
    but is computed for all j at once from the correlation matrix R of the
    predictions: eliminating (Gaussian elimination / sweep) every other
    attribute from R leaves the residual variance 1 - R²_j on the diagonal.
    A regressor already explained by the eliminated ones (residual variance
    < 1e-10) is skipped, so collinear predictions are handled.

    Parameters
    ----------
    pred : array-like of bool, shape (n_samples, n_attributes)
    weights : array-like, shape (n_samples,) or (n_weightings, n_samples), optional
        Sample weights (e.g. bootstrap counts: integer weights give exactly the R² of
        the data with each sample repeated that often); one R² row per row of weights,
        all eliminated together.

    Returns
    -------
    r2 : ndarray of shape (n_attributes,), or (n_weightings, n_attributes) with 2-D weights
        In [0, 1]. NaN where ŷ_j is constant (no variance to explain, e.g. no
        predicted positives; sklearn's ``score`` would say 1.0) and for every
        attribute when there is only one (nothing to regress on). Constant
        *other* predictions explain nothing: if all others are constant, R² = 0.
    """
    x = as_bool(pred, "pred")
    w, single = _sample_weights(weights, x.shape[0])
    r2 = np.full((len(w), x.shape[1]), np.nan)
    counts, total = w @ x, w.sum(axis=1, keepdims=True)
    live = (counts > 0) & (counts < total)
    cols = np.flatnonzero(live.any(axis=0))
    if x.shape[1] >= 2 and cols.size:
        x, counts, live = x[:, cols], counts[:, cols], live[:, cols]
        cross = _weighted_cooccurrence(x, w)
        # Rows of weightings at a time: the elimination holds m³ floats per weighting.
        chunk = max(1, 2**23 // cols.size**3)
        for start in range(0, len(w), chunk):
            rows = slice(start, start + chunk)
            r2[rows, cols] = _eliminated_r2(cross[rows], counts[rows], total[rows], live[rows])
    return r2[0] if single else r2


def _sample_weights(weights, n_samples: int) -> tuple[np.ndarray, bool]:
    """``weights`` as float64 (n_weightings, n_samples), and whether one 1-D weighting was given (or none)."""
    w = np.ones(n_samples) if weights is None else np.asarray(weights, dtype=np.float64)
    single = w.ndim == 1
    w = np.atleast_2d(w)
    if w.ndim != 2 or w.shape[1] != n_samples or (w < 0).any():
        raise ValueError(f"weights must be non-negative with {n_samples} columns, got shape {w.shape}")
    if n_samples == 0:
        raise ValueError("pred has no rows")
    return w, single


def _weighted_cooccurrence(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Σ_n w_n x_ni x_nj of bool ``x`` (n, m) for each weighting ``w`` (W, n): (W, m, m) float64.

    One matrix product; in float32 where that is exact (integer weights, e.g. bootstrap
    counts, summing below 2**24), twice as fast, the same numbers.
    """
    m = x.shape[1]
    exact = np.array_equal(w, np.round(w)) and w.sum(axis=1).max() < 2**24
    dtype = np.float32 if exact else np.float64
    pairs = (x[:, :, None] & x[:, None, :]).reshape(len(x), -1).astype(dtype)
    return (w.astype(dtype) @ pairs).astype(np.float64).reshape(-1, m, m)


def _eliminated_r2(cross: np.ndarray, s: np.ndarray, total: np.ndarray, live: np.ndarray) -> np.ndarray:
    """R² of each column of bool x (n, m) on the others, per weighting; NaN where not ``live``.

    ``cross`` (W, m, m) are the weighted co-occurrences (:func:`_weighted_cooccurrence`), ``s``
    (W, m) the weighted column counts ``w @ x`` and ``total`` (W, 1) the weights' sums.

    A column constant under a weighting has zero covariances: its correlations are set to 0,
    so it is never a pivot and eliminating the others leaves it at 0 (the same arithmetic
    on the live columns as if it had been dropped).
    """
    m = cross.shape[1]
    cov = cross - s[:, :, None] * s[:, None, :] / total[:, :, None]  # Σw × covariance
    sd = np.where(live, np.sqrt(s * (total - s) / total), 1.0)
    corr = np.where(live[:, :, None] & live[:, None, :], cov / (sd[:, :, None] * sd[:, None, :]), 0.0)
    # One copy of R per target j, from which every other attribute is eliminated in turn
    # (k = 0, 1, ...; eliminating k leaves the residual covariances after regressing on k
    # too). Copies j > k are identical until step j, so they are one shared state that
    # copy j forks from at step j. A copy only updates what a later step reads: the block
    # of the attributes after k, and its own row j (each copy stays exactly symmetric, so
    # row j stands for column j). Weightings are the last, contiguous axis.
    resid = np.empty((m, m, m, len(cross)))  # resid[j]: copy j (only rows/columns >= j are set)
    resid[0] = np.moveaxis(corr, 0, -1)
    diag = np.arange(m)
    for k in range(m):
        forked, done = resid[:k], diag[:k]
        use, pivot = _pivots(forked[:, k, k])
        _eliminate(forked, k, use, pivot)
        row = forked[done, done]  # (k, m, W): row j of copy j
        head = row[:, k]
        later = row[:, k + 1 :] - head[:, None] * forked[:, k, k + 1 :] / pivot[:, None]
        own = row[done, done] - head * head / pivot
        forked[done, done, k + 1 :] = np.where(use[:, None], later, row[:, k + 1 :])
        forked[done, done, done] = np.where(use, own, forked[done, done, done])
        if k + 1 < m:  # the shared state with k eliminated: copy k + 1 at its fork
            resid[k + 1, k + 1 :, k + 1 :] = resid[k, k + 1 :, k + 1 :]
            use, pivot = _pivots(resid[k, k, k][None])
            _eliminate(resid[k : k + 1], k, use, pivot, out=resid[k + 1 : k + 2])
    r2 = np.clip(1.0 - resid[diag, diag, diag], 0.0, 1.0).T  # (W, m)
    return np.where(live, r2, np.nan)


def _pivots(pivot: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Which copies eliminate (pivot above the collinearity tolerance), and their pivots (1 where not)."""
    use = pivot > _COLLINEAR_TOL
    return use, np.where(use, pivot, 1.0)


def _eliminate(copies: np.ndarray, k: int, use: np.ndarray, pivot: np.ndarray, out: np.ndarray | None = None) -> None:
    """Eliminate attribute k from the block after k of ``copies`` (c, m, m, W), where ``use``; into ``out`` if given."""
    target = (copies if out is None else out)[:, k + 1 :, k + 1 :]
    step = copies[:, k + 1 :, k, None] * copies[:, None, k, k + 1 :] / pivot[:, None, None]
    np.subtract(copies[:, k + 1 :, k + 1 :], step, out=target, where=use[:, None, None])


def identity_dependence(
    pred, groups, *, attributes: Sequence[str], identities: Sequence[str], weights=None
) -> np.ndarray:
    """How much each prediction leans on identity: R² of an OLS fit (with intercept) of ŷ_j on the true identity labels.

    The study links bias to "increased correlations" between outputs; this measures the
    correlation with identity directly. Regressors are all identity attributes except j
    itself (an identity attribute is regressed on the other identities).

    Parameters
    ----------
    pred : array-like of bool, shape (n_samples, n_attributes)
    groups : array-like of bool, shape (n_samples, n_identities)
        True identity labels.
    attributes, identities : sequence of str
        Names of the columns of ``pred`` and ``groups``.
    weights : array-like, shape (n_samples,) or (n_weightings, n_samples), optional
        Sample weights (e.g. bootstrap counts); one R² per row of weights.

    Returns
    -------
    r2 : ndarray of shape (n_attributes,), or (n_weightings, n_attributes) with 2-D weights
        In [0, 1]; NaN where ŷ_j is constant (under the weights) or no regressor is left.
    """
    y = as_bool(pred, "pred").astype(np.float64)
    g = as_bool(groups, "groups").astype(np.float64)
    same_rows({"pred": y, "groups": g})
    if len(attributes) != y.shape[1] or len(identities) != g.shape[1]:
        raise ValueError("attributes and identities must name the columns of pred and groups")
    w, single = _sample_weights(weights, y.shape[0])
    x = np.concatenate([np.ones((y.shape[0], 1)), g], axis=1)  # intercept first
    k = x.shape[1]
    sxx = (w @ (x[:, :, None] * x[:, None, :]).reshape(len(x), -1)).reshape(-1, k, k)
    sxy = (w @ (x[:, :, None] * y[:, None, :]).reshape(len(x), -1)).reshape(-1, k, y.shape[1])
    sy, total = w @ y, w.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        sstot = sy - sy**2 / total  # ŷ binary: Σ w ŷ² = Σ w ŷ
    r2 = np.full((w.shape[0], y.shape[1]), np.nan)
    position = {name: i + 1 for i, name in enumerate(identities)}
    # Attributes share their regressors (all identities, or all but the attribute itself):
    # one pseudo-inverse per regressor set, not per attribute.
    by_regressors: dict[tuple[int, ...], list[int]] = {}
    for j, name in enumerate(attributes):
        used = (0, *(c for c in range(1, k) if c != position.get(name)))
        if len(used) >= 2:
            by_regressors.setdefault(used, []).append(j)
    for used, columns in by_regressors.items():
        rows = list(used)
        inverse = np.linalg.pinv(sxx[:, rows][:, :, rows])  # pinv: an empty group leaves a singular system
        for j in columns:
            b = sxy[:, rows, j]
            beta = np.einsum("bij,bj->bi", inverse, b)
            ssres = sy[:, j] - np.einsum("bi,bi->b", beta, b)
            with np.errstate(divide="ignore", invalid="ignore"):
                value = np.clip(1.0 - ssres / sstot[:, j], 0.0, 1.0)
            r2[:, j] = np.where(sstot[:, j] > 1e-9 * total[:, 0], value, np.nan)
    return r2[0] if single else r2
