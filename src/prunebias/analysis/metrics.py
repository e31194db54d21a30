"""Per-model metrics: accuracy, bias amplification, uncertainty, fairness gaps.

Implements the study's per-model metrics (README, "What is measured"). Every function works on all
attributes at once: arrays are ``(n_samples, n_attributes)`` and results are one
value per attribute (``(n_attributes,)``), per identity and attribute
(``(n_identities, n_attributes)``), or per identity, identity value and attribute
(``(n_identities, 2, n_attributes)``, axis 1 indexed by the identity's true value
0 / 1). Nothing loops over samples.

Conventions shared by all functions:

- *logits* are raw model outputs z (float, no NaN; probabilities are
  p = sigmoid(z)); *labels* / *pred* are boolean (0/1 integers are accepted).
- *groups* hold the **true** labels of the identity (protected) attributes.
- A value whose denominator is zero is NaN, never 0: a NaN means "undefined for
  this model", which the aggregation step keeps apart from a measured 0.

:func:`model_metrics` computes all of them for one model from the index and the
prediction frames and returns the tidy table of :func:`model_metrics`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy.special import expit

from prunebias.analysis import dependence
from prunebias.validation import as_bool, as_count, as_logits, require_columns, safe_divide, same_rows, same_shape
from prunebias.vocabulary import COST_METRICS

__all__ = [
    "METRICS",
    "accuracy",
    "auc",
    "bias_amplification",
    "calibrated_thresholds",
    "ece",
    "fairness_gaps",
    "group_rates",
    "model_metrics",
    "positive_rate",
    "predict",
    "rare_value_ratio",
    "uncertainty",
]

#: Metric names emitted by :func:`model_metrics`, by kind of row.
METRICS = {
    # identity "all", group "all"
    "attribute": (
        "accuracy",
        "auc",
        "positive_rate",
        "uncertainty",
        "interdependence",
        "identity_dependence",
        "ece",
        "rare_value_ratio",
    ),
    # identity g, group "all"
    "identity": (
        "bias_amplification",
        "demographic_parity_diff",
        "equal_opportunity_diff",
        "equalized_odds_diff",
    ),
    # identity g, group "0" / "1"
    "group": ("group_positive_rate", "group_fpr", "group_fnr", "group_accuracy"),
}
THRESHOLDS = ("default", "calibrated")


def _cross_counts(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a.T @ b`` for boolean matrices: exact integer co-occurrence counts.

    einsum runs single-threaded SIMD loops; a multithreaded BLAS product is no
    faster on these tall, skinny operands and stalls badly when the cores are
    shared (e.g. two Snakemake jobs on two cores). float32 is the fastest and
    stays exact while every partial sum (<= n_samples) is below 2**24.
    """
    dtype = np.float32 if a.shape[0] < 2**24 else np.float64
    return np.einsum("ni,nj->ij", a.astype(dtype), b.astype(dtype)).astype(np.int64)


def _weighted_cross_counts(weights: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Co-occurrence counts of bool ``a`` (n, I) and ``b`` (n, J) under each row of integer
    ``weights`` (W, n) (e.g. bootstrap counts), shape (W, I, J); exact, as :func:`_cross_counts`.

    One matrix product per column of ``a`` (the identities: few) over all weightings at once;
    float32 stays exact while every weighting's total is below 2**24.
    """
    dtype = np.float32 if weights.sum(axis=1).max() < 2**24 else np.float64
    w, rhs = weights.astype(dtype), b.astype(dtype)
    return np.stack([(w * a[:, i]) @ rhs for i in range(a.shape[1])], axis=1).astype(np.int64)


# ----------------------------------------------------------------------- thresholds
def calibrated_thresholds(valid_logits, valid_labels) -> np.ndarray:
    """Per-attribute thresholds that reproduce the validation prevalence.

    For attribute j let k_j be the number of validation positives. The threshold
    t_j is the largest validation logit that is *not* among the k_j largest, i.e.
    the (k_j + 1)-th largest, so that the strict rule ``z > t_j`` marks exactly the
    k_j largest validation logits positive when they are distinct.

    Parameters
    ----------
    valid_logits : array-like of shape (n_samples, n_attributes)
        Validation logits.
    valid_labels : array-like of bool, shape (n_samples, n_attributes)
        Validation labels.

    Returns
    -------
    thresholds : ndarray of shape (n_attributes,)
        ``+inf`` where k_j = 0 (nothing is ever predicted positive, on any split),
        ``-inf`` where k_j = n_samples (everything is).

    Notes
    -----
    Ties: ``z > t`` is strict, so logits equal to t_j are negative. When the k-th
    and (k+1)-th largest validation logits tie, fewer than k validation samples
    are positive (all members of the tie fall on the negative side).

    The study words it "t = k-th largest"; read 1-based with the strict rule that
    predicts only k - 1 validation positives (k = 1: none), the off-by-one of the
    study's released code, so the rank is counted to give exactly k.
    """
    z = as_logits(valid_logits, "valid_logits")
    y = as_bool(valid_labels, "valid_labels")
    same_shape({"valid_logits": z, "valid_labels": y})
    k = y.sum(axis=0)
    # Sorting (A, n) rows is faster than strided columns; pad with -inf at
    # position n so that k == n indexes "below every logit".
    desc = np.sort(z.T, axis=1)[:, ::-1]
    desc = np.concatenate([desc, np.full((z.shape[1], 1), -np.inf)], axis=1)
    t = desc[np.arange(z.shape[1]), k]
    t[k == 0] = np.inf
    return t


def predict(logits, thresholds) -> np.ndarray:
    """Binary predictions ``z > t`` (strict), thresholds broadcast over samples.

    Parameters
    ----------
    logits : array-like of shape (n_samples, n_attributes)
    thresholds : array-like of shape (n_attributes,) or scalar
        Per-attribute thresholds on the logit scale (0 is the default p > 0.5);
        ``±inf`` allowed.

    Returns
    -------
    pred : ndarray of bool, shape (n_samples, n_attributes)
    """
    z = as_logits(logits, "logits")
    t = np.asarray(thresholds, dtype=np.float64)
    if t.ndim == 0:
        t = np.full(z.shape[1], float(t))
    if t.shape != (z.shape[1],):
        raise ValueError(f"thresholds must have shape ({z.shape[1]},), got {t.shape}")
    if np.isnan(t).any():
        raise ValueError("thresholds contains NaN")
    return z > t


# --------------------------------------------------------------- per-attribute metrics
def _logits_and_labels(logits, labels) -> tuple[np.ndarray, np.ndarray]:
    """Checked float64 logits and bool labels of one shape."""
    z = as_logits(logits, "logits")
    y = as_bool(labels, "labels")
    same_shape({"logits": z, "labels": y})
    return z, y


def accuracy(pred, labels) -> np.ndarray:
    """Fraction of correct predictions per attribute.

    Parameters
    ----------
    pred, labels : array-like of bool, shape (n_samples, n_attributes)

    Returns
    -------
    accuracy : ndarray of shape (n_attributes,)
    """
    yhat = as_bool(pred, "pred")
    y = as_bool(labels, "labels")
    same_shape({"pred": yhat, "labels": y})
    return (yhat == y).mean(axis=0)


def positive_rate(pred) -> np.ndarray:
    """Predicted-positive rate q per attribute.

    Parameters
    ----------
    pred : array-like of bool, shape (n_samples, n_attributes)

    Returns
    -------
    rate : ndarray of shape (n_attributes,)
    """
    yhat = as_bool(pred, "pred")
    if yhat.shape[0] == 0:
        raise ValueError("pred has no rows")
    return yhat.mean(axis=0)


def auc(logits, labels) -> np.ndarray:
    """ROC-AUC per attribute (threshold free).

    Same value as :func:`sklearn.metrics.roc_auc_score` on each column (tied
    scores count one half), computed for all attributes at once from the ranks
    (Mann-Whitney U) because the per-column sklearn loop costs ~4 ms an attribute.
    Ranked on logits, not probabilities, so that float saturation of the sigmoid
    creates no ties.

    Parameters
    ----------
    logits : array-like of shape (n_samples, n_attributes)
    labels : array-like of bool, shape (n_samples, n_attributes)

    Returns
    -------
    auc : ndarray of shape (n_attributes,)
        NaN for an attribute whose labels have a single class.
    """
    z, y = _logits_and_labels(logits, labels)
    n = z.shape[0]
    zt = np.ascontiguousarray(z.T)
    order = np.argsort(zt, axis=1)
    zs = np.take_along_axis(zt, order, axis=1)
    ys = np.take_along_axis(np.ascontiguousarray(y.T), order, axis=1)
    # Blocks of tied logits share their average 1-based rank.
    starts = np.ones(zs.shape, dtype=bool)
    starts[:, 1:] = zs[:, 1:] != zs[:, :-1]
    block = np.flatnonzero(starts.ravel())
    length = np.diff(np.append(block, zs.size))
    rank = block % n + (length + 1) / 2
    pos_in_block = np.add.reduceat(ys.ravel(), block, dtype=np.int64)
    rank_sum = np.bincount(block // n, weights=rank * pos_in_block, minlength=z.shape[1])
    n_pos = y.sum(axis=0).astype(np.float64)
    u = rank_sum - n_pos * (n_pos + 1) / 2
    return safe_divide(u, n_pos * (n - n_pos))


def uncertainty(logits, band: tuple[float, float] = (0.1, 0.9)) -> np.ndarray:
    """Fraction of samples whose probability lies strictly inside ``band``.

    Parameters
    ----------
    logits : array-like of shape (n_samples, n_attributes)
    band : (low, high), default (0.1, 0.9)
        Open interval of "uncertain" probabilities, 0 <= low < high <= 1.

    Returns
    -------
    uncertainty : ndarray of shape (n_attributes,)
    """
    z = as_logits(logits, "logits")
    low, high = check_band(band)
    if z.shape[0] == 0:
        raise ValueError("logits has no rows")
    p = expit(z)
    return ((p > low) & (p < high)).mean(axis=0)


def check_band(band, name: str = "band") -> tuple[float, float]:
    """``band`` as a pair of floats with 0 <= low < high <= 1; ValueError naming ``name`` otherwise."""
    try:
        low, high = (float(b) for b in band)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a pair (low, high), got {band!r}") from None
    if not 0.0 <= low < high <= 1.0:
        raise ValueError(f"{name} must satisfy 0 <= low < high <= 1, got {band!r}")
    return low, high


def ece(logits, labels, n_bins: int = 10) -> np.ndarray:
    """Expected calibration error per attribute.

    ``sum_b n_b / N * |mean p - mean y|`` over ``n_bins`` equal-width bins of
    p = sigmoid(z): [0, 1/B), [1/B, 2/B), ..., [(B-1)/B, 1] (p = 1 goes to the
    last bin). Empty bins contribute nothing.

    Parameters
    ----------
    logits : array-like of shape (n_samples, n_attributes)
    labels : array-like of bool, shape (n_samples, n_attributes)
    n_bins : int, default 10

    Returns
    -------
    ece : ndarray of shape (n_attributes,)
    """
    z, y = _logits_and_labels(logits, labels)
    n_bins = as_count(n_bins, "n_bins", minimum=1)
    n, n_attr = z.shape
    p = expit(z)
    bins = np.minimum((p * n_bins).astype(np.intp), n_bins - 1)
    # One bincount over (attribute, bin) cells: n_b * |mean p - mean y| = |sum (p - y)|.
    cell = (bins + n_bins * np.arange(n_attr)).ravel()
    gap = np.bincount(cell, weights=(p - y).ravel(), minlength=n_attr * n_bins)
    return np.abs(gap.reshape(n_attr, n_bins)).sum(axis=1) / n


def rare_value_ratio(pred, labels, train_labels) -> np.ndarray:
    """Rare-value under-prediction ratio per attribute.

    With q the predicted-positive rate and π the test prevalence: ``q / π`` when
    the training prevalence is <= 0.5 (positive is the rare value), else
    ``(1 - q) / (1 - π)``. Below 1 means the rare value is under-predicted.

    Parameters
    ----------
    pred, labels : array-like of bool, shape (n_samples, n_attributes)
        Test predictions and labels.
    train_labels : array-like of bool, shape (n_train, n_attributes)

    Returns
    -------
    ratio : ndarray of shape (n_attributes,)
        NaN where the rare value never occurs in the test labels (π = 0, resp. 1).
    """
    yhat = as_bool(pred, "pred")
    y = as_bool(labels, "labels")
    y_train = as_bool(train_labels, "train_labels")
    same_shape({"pred": yhat, "labels": y})
    if y_train.shape[1] != y.shape[1] or y_train.shape[0] == 0:
        raise ValueError(f"train_labels must have shape (n_train > 0, {y.shape[1]}), got {y_train.shape}")
    return _rare_value_ratio(yhat.mean(axis=0), y.mean(axis=0), y_train.mean(axis=0))


def _rare_value_ratio(q, prevalence, train_prevalence) -> np.ndarray:
    positive_common = train_prevalence > 0.5
    return np.where(
        positive_common,
        safe_divide(1.0 - q, 1.0 - prevalence),
        safe_divide(q, prevalence),
    )


# -------------------------------------------------------------- identity-level metrics
def bias_amplification(
    pred,
    labels,
    groups,
    train_labels,
    train_groups,
    *,
    attributes: Sequence[str],
    identities: Sequence[str],
    min_positives: int = 10,
    min_relative_gap: float = 0.1,
) -> np.ndarray:
    """Bias amplification BA(g, a) of every identity g on every attribute a.

    From the training split, P1 = P(a=1 | g=1) and P0 = P(a=1 | g=0). The favoured
    group is G = {g=1} if P1 > P0, else {g=0}, and on the test split::

        BA = #{i in G: ŷ=1} / #{ŷ=1}  -  #{i in G: y=1} / #{y=1}

    Positive BA means the model's positives over-represent the group that the
    training data already associates with a.

    Parameters
    ----------
    pred, labels : array-like of bool, shape (n_samples, n_attributes)
        Test predictions and labels of the attributes.
    groups : array-like of bool, shape (n_samples, n_identities)
        True test labels of the identity attributes.
    train_labels : array-like of bool, shape (n_train, n_attributes)
    train_groups : array-like of bool, shape (n_train, n_identities)
    attributes : sequence of str, length n_attributes
    identities : sequence of str, length n_identities
        Names; BA(g, a) is NaN where identity g *is* attribute a.
    min_positives : int, default 10
        BA is NaN when either group has fewer test positives of a than this.
    min_relative_gap : float, default 0.1
        BA is NaN when ``|P1 - P0| / min(P1, P0) < min_relative_gap`` (the
        training data barely correlates a with g). If min(P1, P0) = 0 < max the
        relative gap is infinite (defined); if P1 = P0 = 0 it is undefined (NaN).

    Returns
    -------
    ba : ndarray of shape (n_identities, n_attributes)
        Values in [-1, 1]. Also NaN where undefined: P0 or P1 has no training
        sample, or the model predicts no positive of a (``#{ŷ=1} = 0``: the share
        of G among predicted positives does not exist; such a collapse shows up as
        ``positive_rate = 0`` and ``rare_value_ratio = 0`` instead).
    """
    yhat = as_bool(pred, "pred")
    y = as_bool(labels, "labels")
    g = as_bool(groups, "groups")
    y_train = as_bool(train_labels, "train_labels")
    g_train = as_bool(train_groups, "train_groups")
    same_shape({"pred": yhat, "labels": y})
    same_rows({"labels": y, "groups": g})
    same_rows({"train_labels": y_train, "train_groups": g_train})
    if y_train.shape[1] != y.shape[1]:
        raise ValueError(f"train_labels must have {y.shape[1]} columns, got {y_train.shape[1]}")
    if g_train.shape[1] != g.shape[1]:
        raise ValueError(f"train_groups must have {g.shape[1]} columns, got {g_train.shape[1]}")
    conditionals = train_conditionals(y_train, g_train)
    return bias_amplification_batch(
        yhat[None],
        y,
        g,
        conditionals,
        attributes=attributes,
        identities=identities,
        min_positives=min_positives,
        min_relative_gap=min_relative_gap,
    )[0]


def train_conditionals(train_labels, train_groups) -> tuple[np.ndarray, np.ndarray]:
    """The training-split conditionals that bias amplification compares with.

    Parameters
    ----------
    train_labels : array-like of bool, shape (n_train, n_attributes)
    train_groups : array-like of bool, shape (n_train, n_identities)

    Returns
    -------
    p1, p0 : ndarray of shape (n_identities, n_attributes)
        P(a=1 | g=1) and P(a=1 | g=0); NaN where the group has no training sample.
    """
    y_train = as_bool(train_labels, "train_labels")
    g_train = as_bool(train_groups, "train_groups")
    same_rows({"train_labels": y_train, "train_groups": g_train})
    pos_g1 = _cross_counts(g_train, y_train)
    n_g1 = g_train.sum(axis=0)[:, None]
    pos_g0 = y_train.sum(axis=0)[None, :] - pos_g1
    return safe_divide(pos_g1, n_g1), safe_divide(pos_g0, g_train.shape[0] - n_g1)


def bias_amplification_batch(
    preds,
    labels,
    groups,
    conditionals: tuple[np.ndarray, np.ndarray],
    *,
    attributes: Sequence[str],
    identities: Sequence[str],
    min_positives: int = 10,
    min_relative_gap: float = 0.1,
    weights=None,
) -> np.ndarray:
    """:func:`bias_amplification` of M prediction matrices of the same test split at once.

    For curves over many variants (e.g. routing fractions): the training conditionals are
    computed once by the caller (:func:`train_conditionals`) and all M matrices are counted
    in one pass.

    Parameters
    ----------
    preds : array-like of bool, shape (M, n_samples, n_attributes)
    labels, groups : as in :func:`bias_amplification`
    conditionals : (p1, p0) from :func:`train_conditionals`, each (n_identities, n_attributes)
    attributes, identities, min_positives, min_relative_gap : as in :func:`bias_amplification`
    weights : array-like of int, shape (W, n_samples), optional
        Integer counts of each sample in each of W resamplings (bootstrap): the BA of the
        split with each sample repeated that often, for all W at once.

    Returns
    -------
    ba : ndarray of shape (M, n_identities, n_attributes), or (W, M, n_identities, n_attributes) with weights
    """
    preds = np.asarray(preds)
    if preds.ndim != 3 or preds.dtype != bool:
        raise ValueError(f"preds must be a boolean array (M, n_samples, n_attributes), got {preds.dtype} {preds.shape}")
    y = as_bool(labels, "labels")
    g = as_bool(groups, "groups")
    same_shape({"preds[0]": preds[0], "labels": y})
    same_rows({"labels": y, "groups": g})
    p1, p0 = (np.asarray(c, dtype=np.float64) for c in conditionals)
    if p1.shape != (g.shape[1], y.shape[1]) or p0.shape != p1.shape:
        raise ValueError(
            f"conditionals must be two arrays of shape {(g.shape[1], y.shape[1])}, got {p1.shape}, {p0.shape}"
        )
    _check_ba_rules(min_positives, min_relative_gap)
    same = _same_names(attributes, identities, y.shape[1], g.shape[1])
    m, n, n_attr = preds.shape
    stacked = np.ascontiguousarray(preds.transpose(1, 0, 2)).reshape(n, m * n_attr)
    if weights is not None:
        weights = np.asarray(weights)
        if weights.ndim != 2 or weights.shape[1] != n or weights.dtype.kind not in "iu" or (weights < 0).any():
            raise ValueError(
                f"weights must be non-negative integers of shape (W, {n}), got {weights.dtype} {weights.shape}"
            )
    counts = _group_counts(stacked, np.tile(y, (1, m)), g, weights)
    ba = _bias_amplification(
        counts, np.tile(p1, (1, m)), np.tile(p0, (1, m)), np.tile(same, (1, m)), min_positives, min_relative_gap
    )
    # (..., G, M·A) -> (..., M, G, A)
    return np.moveaxis(ba.reshape(*ba.shape[:-1], m, n_attr), -2, -3)


def _check_ba_rules(min_positives, min_relative_gap) -> None:
    if isinstance(min_positives, bool) or not isinstance(min_positives, (int, np.integer)):
        raise ValueError(f"min_positives must be a non-negative integer, got {min_positives!r}")
    if min_positives < 0:
        raise ValueError(f"min_positives must be a non-negative integer, got {min_positives!r}")
    if not (isinstance(min_relative_gap, (int, float, np.number)) and 0 <= min_relative_gap < np.inf):
        raise ValueError(f"min_relative_gap must be a finite number >= 0, got {min_relative_gap!r}")


def _same_names(attributes, identities, n_attr: int, n_ident: int) -> np.ndarray:
    attributes = [str(a) for a in attributes]
    identities = [str(i) for i in identities]
    if len(attributes) != n_attr:
        raise ValueError(f"attributes must name {n_attr} columns, got {len(attributes)}")
    if len(identities) != n_ident:
        raise ValueError(f"identities must name {n_ident} columns, got {len(identities)}")
    return np.equal.outer(np.array(identities, dtype=object), np.array(attributes, dtype=object))


def _group_counts(yhat: np.ndarray, y: np.ndarray, g: np.ndarray, weights=None) -> dict[str, np.ndarray]:
    """Confusion counts per identity, identity value and attribute, shape (G, 2, A); with
    ``weights`` (W, n) integer counts of each sample (bootstrap resamplings), one set per
    weighting: (W, G, 2, A).

    Keys: n (group size), pos (y=1), pred (ŷ=1), tp (y=1 and ŷ=1).
    """
    n_attr = y.shape[1]
    # One cross count gives the g=1 counts; g=0 counts are totals minus those.
    stacked = np.concatenate([y, yhat, y & yhat], axis=1)
    if weights is None:
        in_g1, totals, n1, size = _cross_counts(g, stacked), stacked.sum(axis=0), g.sum(axis=0), g.shape[0]
    else:
        w = np.asarray(weights)
        # A column of ones gives the totals in the same product.
        both = _weighted_cross_counts(w, np.concatenate([np.ones((len(g), 1), bool), g], axis=1), stacked)
        in_g1, totals = both[:, 1:], both[:, 0]
        n1, size = w @ g, w.sum(axis=1)[:, None, None]
    out = {}
    for i, key in enumerate(("pos", "pred", "tp")):
        part = slice(i * n_attr, (i + 1) * n_attr)
        c1 = in_g1[..., part]
        out[key] = np.stack([totals[..., None, part] - c1, c1], axis=-2)
    n1 = n1[..., None]
    out["n"] = np.broadcast_to(np.stack([size - n1, n1], axis=-2), out["pos"].shape)
    return out


def _bias_amplification(counts, p1, p0, same, min_positives, min_relative_gap) -> np.ndarray:
    # counts: (..., G, 2, A), the identity value on axis -2; p1, p0, same: (G, A).
    enough = (counts["pos"] >= min_positives).all(axis=-2)
    low = np.minimum(p1, p0)
    gap = np.abs(p1 - p0)
    with np.errstate(divide="ignore", invalid="ignore"):
        relative_gap = gap / low  # inf when low == 0 < gap; NaN when both 0 or P undefined
    defined = enough & (relative_gap >= min_relative_gap) & ~same
    favoured = p1 > p0
    pred_fav = np.where(favoured, counts["pred"][..., 1, :], counts["pred"][..., 0, :])
    pos_fav = np.where(favoured, counts["pos"][..., 1, :], counts["pos"][..., 0, :])
    ba = safe_divide(pred_fav, counts["pred"].sum(axis=-2)) - safe_divide(pos_fav, counts["pos"].sum(axis=-2))
    return np.where(defined, ba, np.nan)


def _group_rates(counts) -> dict[str, np.ndarray]:
    n, pos, pred, tp = counts["n"], counts["pos"], counts["pred"], counts["tp"]
    neg = n - pos
    fp = pred - tp
    return {
        "group_positive_rate": safe_divide(pred, n),
        "group_fpr": safe_divide(fp, neg),
        "group_fnr": safe_divide(pos - tp, pos),
        "group_accuracy": safe_divide(tp + neg - fp, n),
    }


def _gaps(rates) -> dict[str, np.ndarray]:
    def diff(r):
        return np.abs(r[:, 1] - r[:, 0])

    tpr_gap = diff(1.0 - rates["group_fnr"])
    return {
        "demographic_parity_diff": diff(rates["group_positive_rate"]),
        "equal_opportunity_diff": tpr_gap,
        # np.maximum (not fmax): undefined if either rate gap is undefined.
        "equalized_odds_diff": np.maximum(tpr_gap, diff(rates["group_fpr"])),
    }


def group_rates(pred, labels, groups) -> dict[str, np.ndarray]:
    """Rates per identity group g = v (v = 0, 1: the identity's true value).

    - ``group_positive_rate``: P(ŷ=1 | g=v); NaN for an empty group;
    - ``group_fpr``: false-positive rate P(ŷ=1 | y=0, g=v); NaN where the group has no negatives;
    - ``group_fnr``: false-negative rate P(ŷ=0 | y=1, g=v); NaN where it has no positives;
    - ``group_accuracy``: P(ŷ=y | g=v); NaN for an empty group.

    Parameters
    ----------
    pred, labels : array-like of bool, shape (n_samples, n_attributes)
    groups : array-like of bool, shape (n_samples, n_identities)
        True labels of the identity attributes.

    Returns
    -------
    rates : dict of ndarray of shape (n_identities, 2, n_attributes)
        Axis 1 is the identity's true value v = 0, 1.
    """
    yhat = as_bool(pred, "pred")
    y = as_bool(labels, "labels")
    g = as_bool(groups, "groups")
    same_shape({"pred": yhat, "labels": y})
    same_rows({"pred": yhat, "groups": g})
    return _group_rates(_group_counts(yhat, y, g))


def fairness_gaps(pred, labels, groups) -> dict[str, np.ndarray]:
    """Group-fairness differences between the two groups of each identity.

    - ``demographic_parity_diff``: |P(ŷ=1 | g=1) - P(ŷ=1 | g=0)|, equal to fairlearn's
      ``demographic_parity_difference`` (method "between_groups"); NaN where a group is empty;
    - ``equal_opportunity_diff``: |TPR(g=1) - TPR(g=0)|, equal to fairlearn's
      ``equal_opportunity_difference`` wherever both rates are defined (NaN where a group
      has no positives; fairlearn reports that group's TPR as 0 instead);
    - ``equalized_odds_diff``: max(|TPR gap|, |FPR gap|), equal to fairlearn's
      ``equalized_odds_difference`` (agg "worst_case") wherever all four rates are defined.

    The parameters are those of :func:`group_rates`.

    Returns
    -------
    gaps : dict of ndarray of shape (n_identities, n_attributes)
    """
    return _gaps(group_rates(pred, labels, groups))


# ------------------------------------------------------------------------ per model
def model_metrics(
    index: pd.DataFrame,
    valid: pd.DataFrame,
    test: pd.DataFrame,
    identities: Sequence[str],
    *,
    min_positives: int = 10,
    min_relative_gap: float = 0.1,
    uncertainty_band: tuple[float, float] = (0.1, 0.9),
    ece_bins: int = 10,
) -> pd.DataFrame:
    """All per-model metrics of the study as a tidy table.

    Labels are joined from ``index`` by id: validation labels set the calibrated
    thresholds, test labels are scored, training labels (``split == "train"``)
    give the training prevalence (rare-value ratio) and the BA conditionals.

    Parameters
    ----------
    index : DataFrame
        ``index.parquet``: columns ``id``, ``split`` and one bool column per
        attribute (at least the predicted attributes and the identities).
    valid, test : DataFrame
        Prediction frames of the validation and test split: ``id`` then one
        logit column per attribute (the same attributes in both; the test frame's
        column order is kept). Every id must be in ``index`` with the matching
        split.
    identities : sequence of str
        Identity attributes (index columns; they need not be predicted).
    min_positives, min_relative_gap
        Undefined-BA rules, see :func:`bias_amplification`.
    uncertainty_band : (low, high), default (0.1, 0.9)
        See :func:`uncertainty`.
    ece_bins : int, default 10
        See :func:`ece`.

    Returns
    -------
    DataFrame
        Columns ``attribute, identity, group, threshold, metric`` (str) and
        ``value`` (float64, NaN where undefined). For each threshold kind
        ("default": z > 0, "calibrated": :func:`calibrated_thresholds`):
        ``METRICS["attribute"]`` with identity = group = "all" (threshold-free
        auc, uncertainty and ece repeat the same value); ``METRICS["identity"]``
        per identity with group "all"; ``METRICS["group"]`` per identity with
        group "0" / "1" (the identity's true value). Every (identity, attribute)
        pair is present, so BA rows where identity == attribute are NaN.
    """
    attributes, z_valid, z_test = _logit_frames(valid, test)
    identities = _check_identities(identities)
    _check_index(index, attributes, identities)
    _check_ba_rules(min_positives, min_relative_gap)
    ids = pd.Index(index["id"])
    if not ids.is_unique:
        raise ValueError("index has duplicate ids: " + _preview(ids[ids.duplicated()]))
    rows_valid = _locate(ids, index["split"], valid["id"], "valid")
    rows_test = _locate(ids, index["split"], test["id"], "test")
    is_train = index["split"].eq("train").to_numpy()
    if not is_train.any():
        raise ValueError('index has no rows with split == "train" (needed for training prevalences)')

    y_all = index[attributes].to_numpy(dtype=bool)
    g_all = index[identities].to_numpy(dtype=bool)
    y_test, g_test = y_all[rows_test], g_all[rows_test]
    y_train = y_all[is_train]
    p1, p0 = train_conditionals(y_train, g_all[is_train])
    same = _same_names(attributes, identities, len(attributes), len(identities))

    threshold_free = {
        "auc": auc(z_test, y_test),
        "uncertainty": uncertainty(z_test, uncertainty_band),
        "ece": ece(z_test, y_test, ece_bins),
    }
    thresholds = {
        "default": np.zeros(len(attributes)),
        "calibrated": calibrated_thresholds(z_valid, y_all[rows_valid]),
    }
    blocks = []
    for kind in THRESHOLDS:
        yhat = z_test > thresholds[kind]
        q = yhat.mean(axis=0)
        counts = _group_counts(yhat, y_test, g_test)
        rates = _group_rates(counts)
        values = {
            **threshold_free,
            "accuracy": (yhat == y_test).mean(axis=0),
            "positive_rate": q,
            "interdependence": dependence.interdependence(yhat),
            "identity_dependence": dependence.identity_dependence(
                yhat, g_test, attributes=attributes, identities=identities
            ),
            "rare_value_ratio": _rare_value_ratio(q, y_test.mean(axis=0), y_train.mean(axis=0)),
            "bias_amplification": _bias_amplification(counts, p1, p0, same, min_positives, min_relative_gap),
            **rates,
            **_gaps(rates),
        }
        for level in ("attribute", "identity", "group"):
            for metric in METRICS[level]:
                blocks.append(_tidy_block(values[metric], metric, kind, attributes, identities))
    out = pd.DataFrame({col: np.concatenate([b[col] for b in blocks]) for col in blocks[0]})
    return out.astype({c: "str" for c in ("attribute", "identity", "group", "threshold", "metric")})


def _logit_frames(valid: pd.DataFrame, test: pd.DataFrame) -> tuple[list[str], np.ndarray, np.ndarray]:
    for name, frame in (("valid", valid), ("test", test)):
        if not isinstance(frame, pd.DataFrame) or "id" not in frame.columns:
            raise ValueError(f"{name} must be a DataFrame with an 'id' column")
        if len(frame) == 0:
            raise ValueError(f"{name} has no rows")
        if not frame["id"].is_unique:
            raise ValueError(f"{name} has duplicate ids: " + _preview(frame["id"][frame["id"].duplicated()]))
    attributes = [c for c in test.columns if c != "id"]
    if not attributes:
        raise ValueError("test has no attribute (logit) columns besides 'id'")
    valid_attrs = [c for c in valid.columns if c != "id"]
    if set(valid_attrs) != set(attributes) or len(valid_attrs) != len(attributes):
        only_valid = sorted(set(valid_attrs) - set(attributes))
        only_test = sorted(set(attributes) - set(valid_attrs))
        raise ValueError(
            f"valid and test must have the same attribute columns; only in valid: {only_valid}, "
            f"only in test: {only_test}"
        )
    arrays = []
    for name, frame in (("valid", valid), ("test", test)):
        try:
            z = frame[attributes].to_numpy(dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"{name} logit columns must be numeric") from None
        nan_cols = [a for a, bad in zip(attributes, np.isnan(z).any(axis=0)) if bad]
        if nan_cols:
            raise ValueError(f"{name} has NaN logits in columns {nan_cols}")
        arrays.append(z)
    return attributes, arrays[0], arrays[1]


def _check_identities(identities) -> list[str]:
    if isinstance(identities, str):
        raise ValueError(f"identities must be a list of column names, got the string {identities!r}")
    identities = list(identities)
    if len(set(identities)) != len(identities):
        raise ValueError(f"identities has duplicates: {identities}")
    return identities


def _check_index(index: pd.DataFrame, attributes: list[str], identities: list[str]) -> None:
    require_columns(index, ("id", "split"), "index")
    for what, names in (("attribute", attributes), ("identity", identities)):
        missing = [c for c in names if c not in index.columns]
        if missing:
            raise ValueError(f"index has no {what} columns {missing}")
        not_bool = [c for c in names if index[c].dtype != bool]
        if not_bool:
            raise ValueError(f"index {what} columns must be bool, not: {not_bool}")


def _locate(ids: pd.Index, split: pd.Series, wanted: pd.Series, name: str) -> np.ndarray:
    """Row positions in the index of the ids of frame `name` (its split must match)."""
    rows = ids.get_indexer(wanted)
    if (rows < 0).any():
        raise ValueError(f"{name} has ids missing from index: " + _preview(wanted[rows < 0]))
    wrong = ~split.eq(name).to_numpy()[rows]
    if wrong.any():
        raise ValueError(f'{name} has ids whose index split is not "{name}": ' + _preview(wanted[wrong]))
    return rows


def cost_rows(cost: Mapping[str, float]) -> pd.DataFrame:
    """The model's cost measurements (:data:`prunebias.vocabulary.COST_METRICS`, from its
    predictions' metadata) as tidy rows: attribute, identity and group "all", threshold "default"."""
    missing = [m for m in COST_METRICS if m not in cost]
    if missing:
        raise ValueError(f"cost measurements lack {missing}")
    n = len(COST_METRICS)
    return pd.DataFrame(
        {
            "attribute": ["all"] * n,
            "identity": ["all"] * n,
            "group": ["all"] * n,
            "threshold": ["default"] * n,
            "metric": list(COST_METRICS),
            "value": [float(cost[m]) for m in COST_METRICS],
        }
    )


def _preview(values, limit: int = 5) -> str:
    values = list(values)
    head = ", ".join(map(repr, values[:limit]))
    return f"{head} (+{len(values) - limit} more)" if len(values) > limit else head


def _tidy_block(values, metric: str, threshold: str, attributes, identities) -> dict[str, np.ndarray]:
    """Long-format columns for one metric: values of shape (A,), (G, A) or (G, 2, A)."""
    values = np.asarray(values, dtype=np.float64)
    shape = values.shape
    attribute = np.broadcast_to(np.array(attributes, dtype=object), shape)
    if values.ndim == 1:
        identity = group = np.full(shape, "all", dtype=object)
    else:
        ident = np.array(identities, dtype=object).reshape((-1,) + (1,) * (values.ndim - 1))
        identity = np.broadcast_to(ident, shape)
        group = (
            np.full(shape, "all", dtype=object)
            if values.ndim == 2
            else np.broadcast_to(np.array(["0", "1"], dtype=object)[:, None], shape)
        )
    return {
        "attribute": attribute.ravel(),
        "identity": identity.ravel(),
        "group": group.ravel(),
        "threshold": np.full(values.size, threshold, dtype=object),
        "metric": np.full(values.size, metric, dtype=object),
        "value": values.ravel(),
    }
