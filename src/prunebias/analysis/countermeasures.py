"""Countermeasures: how much of the bias that pruning adds they take back.

- :func:`calibrated_threshold_recovery`: the calibrated per-attribute thresholds, from the
  tidy per-model metrics.
- :func:`routing_curve`: routing the most susceptible samples (the largest dense
  uncertainty) to the dense model, against routing random ones.
- :func:`recovered_fraction`: the share of the dense-to-sparse change a countermeasure undoes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from prunebias.analysis.aggregate import metric_rows, seed_mean
from prunebias.analysis.cies import seed_pairs
from prunebias.analysis.metrics import accuracy, bias_amplification_batch
from prunebias.analysis.rank_statistics import STREAM_ROUTING, descending_rank
from prunebias.validation import as_bool, as_count, as_fractions, as_logits, as_names, safe_divide, same_shape

__all__ = [
    "COUNTERMEASURE_COLUMNS",
    "ROUTING_CURVE_COLUMNS",
    "calibrated_threshold_recovery",
    "recovered_fraction",
    "routing_curve",
]

#: Columns of :func:`calibrated_threshold_recovery` (and of the routing rows the criteria
#: stage adds to the same table).
COUNTERMEASURE_COLUMNS = [
    "method",
    "sparsity",
    "countermeasure",
    "fraction",
    "identity",
    "metric",
    "dense",
    "sparse",
    "countered",
    "recovered",
]
#: Columns of :func:`routing_curve`.
ROUTING_CURVE_COLUMNS = [
    "routing",
    "fraction",
    "identity",
    "metric",
    "value",
    "std",
    "n_seeds",
    "dense",
    "sparse",
    "recovered",
]


def recovered_fraction(sparse, countered, dense, *, min_gap: float = 1e-3) -> np.ndarray:
    """Share of the dense-to-sparse change that a countermeasure undoes.

    ``(sparse − countered) / (sparse − dense)``: 0 = no effect, 1 = back to the dense
    value, > 1 = overshoot, < 0 = worse than the sparse model.

    Parameters
    ----------
    sparse, countered, dense : array-like (broadcast)
    min_gap : float, default 1e-3
        NaN where |sparse − dense| < min_gap: pruning changed nothing to recover, and the
        ratio would only amplify noise.

    Returns
    -------
    ndarray of float64
    """
    if not (np.isfinite(min_gap) and min_gap >= 0):
        raise ValueError(f"min_gap must be a finite number >= 0, got {min_gap!r}")
    sparse, countered, dense = (np.asarray(v, dtype=np.float64) for v in (sparse, countered, dense))
    gap = sparse - dense
    return np.where(np.abs(gap) >= min_gap, safe_divide(sparse - countered, gap), np.nan)


def _pool_ba(ba: np.ndarray, mask: np.ndarray, identities: list[str]) -> dict[str, np.ndarray]:
    """Mean BA over attributes per identity and over all (identity, attribute) pairs.

    ``ba`` (..., G, A); pairs outside ``mask`` (G, A) or NaN are skipped.
    """
    use = mask & np.isfinite(ba)
    filled = np.where(use, ba, 0.0)
    out = {"all": safe_divide(filled.sum(axis=(-2, -1)), use.sum(axis=(-2, -1)))}
    per = safe_divide(filled.sum(axis=-1), use.sum(axis=-1))
    for j, name in enumerate(identities):
        out[name] = per[..., j]
    return out


def calibrated_threshold_recovery(metrics: pd.DataFrame, *, min_gap: float = 1e-3) -> pd.DataFrame:
    """Bias and accuracy recovered by the calibrated thresholds, from the metrics table.

    Parameters
    ----------
    metrics : DataFrame
        Tidy per-model metrics with dense and sparse models and both threshold kinds.
    min_gap : float, default 1e-3
        See :func:`recovered_fraction`.

    Returns
    -------
    DataFrame
        Columns ``method, sparsity, countermeasure`` ("calibrated_threshold"),
        ``fraction`` (NaN), ``identity`` ("all" or g), ``metric`` ("bias_amplification";
        "accuracy" with identity "all" only), ``dense`` (dense models, default threshold),
        ``sparse`` (default threshold), ``countered`` (sparse models, calibrated
        thresholds), ``recovered``. Values are seed means; BA is averaged over the
        (identity, attribute) pairs where all three seed-mean BAs are defined (NaN if
        none), accuracy over attributes.
    """
    keys = ["method", "sparsity"]
    frames = []
    for metric in ("bias_amplification", "accuracy"):
        rows = pd.concat([metric_rows(metrics, metric, t) for t in ("default", "calibrated")])
        means = seed_mean(rows, keys + ["threshold", "identity", "attribute"])
        is_dense = means["method"] == "dense"
        dense = means[is_dense & (means["threshold"] == "default")]
        if dense.empty:
            raise ValueError(f"metrics has no dense {metric} rows at the default threshold")
        pair = ["identity", "attribute"]
        table = (
            means[~is_dense & (means["threshold"] == "default")][keys + pair + ["value"]]
            .rename(columns={"value": "sparse"})
            .merge(
                means[~is_dense & (means["threshold"] == "calibrated")][keys + pair + ["value"]].rename(
                    columns={"value": "countered"}
                ),
                on=keys + pair,
            )
            .merge(dense[pair + ["value"]].rename(columns={"value": "dense"}), on=pair)
        )
        values = ["dense", "sparse", "countered"]
        table.loc[~np.isfinite(table[values]).all(axis=1), values] = np.nan  # pairs used by all three
        pooled = table.groupby(keys, sort=True)[values].mean().reset_index().assign(identity="all")
        if metric == "bias_amplification":
            per_identity = table.groupby(keys + ["identity"], sort=True)[values].mean().reset_index()
            pooled = pd.concat([pooled, per_identity], ignore_index=True)
        frames.append(pooled.assign(metric=metric))
    out = pd.concat(frames, ignore_index=True).assign(countermeasure="calibrated_threshold", fraction=np.nan)
    out["recovered"] = recovered_fraction(out["sparse"], out["countered"], out["dense"], min_gap=min_gap)
    return out[COUNTERMEASURE_COLUMNS]


def routing_curve(
    dense_logits,
    sparse_logits,
    labels,
    groups,
    conditionals: tuple[np.ndarray, np.ndarray],
    *,
    attributes: Sequence[str],
    identities: Sequence[str],
    fractions: Sequence[float] = (0, 0.05, 0.1, 0.2, 0.3, 0.5),
    dense_seeds: Sequence[int] | None = None,
    sparse_seeds: Sequence[int] | None = None,
    n_random: int = 3,
    seed: int = 0,
    min_positives: int = 10,
    min_relative_gap: float = 0.1,
    min_gap: float = 1e-3,
) -> pd.DataFrame:
    """BA and accuracy when the most susceptible samples are answered by the dense model.

    For each matched seed pair (sparse model and the dense model of the same seed, see
    :func:`prunebias.analysis.cies.seed_pairs`) and each fraction k, per attribute the round(k · N) samples
    with the largest dense uncertainty 0.5 − |p − 0.5| *of that dense model* (ties by
    sample order) get the dense model's prediction and the rest the sparse model's:
    deployment needs only the parent, no other dense seed. The control ("random") routes
    round(k · N) random samples per attribute instead (``n_random`` draws, nested over k and
    shared by every seed pair and every call with the same ``seed``, so curves are
    paired). BA is :func:`prunebias.analysis.metrics.bias_amplification`, accuracy
    :func:`prunebias.analysis.metrics.accuracy`.

    Parameters
    ----------
    dense_logits : array-like of shape (n_dense, n_samples, n_attributes)
    sparse_logits : array-like of shape (n_sparse, n_samples, n_attributes)
    labels : array-like of bool, shape (n_samples, n_attributes)
    groups : array-like of bool, shape (n_samples, n_identities)
    conditionals : (P1, P0)
        :func:`prunebias.analysis.metrics.train_conditionals` of the training split.
    attributes, identities : sequence of str
    fractions : sequence of float, default (0, 0.05, 0.1, 0.2, 0.3, 0.5)
    dense_seeds, sparse_seeds : sequence of int, optional
        Match models by seed (otherwise by position).
    n_random : int, default 3
        Random-routing draws, averaged (0: no "random" rows).
    seed : int, default 0
    min_positives, min_relative_gap
        Undefined-BA rules of :func:`prunebias.analysis.metrics.bias_amplification`.
    min_gap : float, default 1e-3
        See :func:`recovered_fraction`.

    Returns
    -------
    DataFrame
        Columns ``routing`` ("susceptible" | "random"), ``fraction``, ``identity`` ("all"
        or g; accuracy: "all" only), ``metric`` ("bias_amplification" | "accuracy"),
        ``value`` (mean over seed pairs, random draws averaged first), ``std`` (over seed
        pairs; NaN for one), ``n_seeds``, ``dense`` and ``sparse`` (means over the seed
        pairs) and ``recovered`` (:func:`recovered_fraction`). BA is averaged over the
        (identity, attribute) pairs where the pair's dense and sparse BA are both defined
        (NaN if none), accuracy over attributes.
    """
    d = as_logits(dense_logits, "dense_logits", ndim=3, dtype=None, nonempty=True)
    s = as_logits(sparse_logits, "sparse_logits", ndim=3, dtype=None, nonempty=True)
    same_shape({"dense_logits": d, "sparse_logits": s}, from_axis=1)
    n, n_attr = d.shape[1:]
    y = as_bool(labels, "labels", rows=n, cols=n_attr)
    g = as_bool(groups, "groups", rows=n)
    attributes = as_names(attributes, "attributes", size=n_attr)
    identities = as_names(identities, "identities", size=g.shape[1])
    fractions = as_fractions(fractions, "fractions")
    n_random = as_count(n_random, "n_random")
    di, si = seed_pairs(d.shape[0], s.shape[0], dense_seeds, sparse_seeds)
    n_route = np.round(fractions * n).astype(np.int64)
    rng = np.random.default_rng([seed, STREAM_ROUTING])
    # A random permutation of the samples per attribute and draw is a uniformly random rank.
    random_rank = rng.permuted(np.broadcast_to(np.arange(n)[:, None], (n_random, n, n_attr)), axis=1)
    # Each seed pair evaluates one stack of predictions: dense, sparse, then every
    # (routing, draw, fraction) variant.
    routings = [("susceptible", 0)] + [("random", r) for r in range(n_random)]
    curves = {key: [] for key in ("dense", "sparse", "susceptible", "random")}
    for p in range(di.size):  # a loop over a handful of seed pairs
        dense_pred, sparse_pred = d[di[p]] > 0, s[si[p]] > 0
        own_rank = descending_rank(-np.abs(d[di[p]]))  # |z| ranks like 0.5 - |p - 0.5|
        variants = [dense_pred, sparse_pred]
        which = []  # variant of each (routing, fraction); routing nothing is the sparse model
        for routing, r in routings:
            rank = own_rank if routing == "susceptible" else random_rank[r]
            for m in n_route:
                which.append(len(variants) if m else 1)
                if m:
                    variants.append(np.where(rank < m, dense_pred, sparse_pred))
        preds = np.stack(variants)
        bas = bias_amplification_batch(
            preds,
            y,
            g,
            conditionals,
            attributes=attributes,
            identities=identities,
            min_positives=min_positives,
            min_relative_gap=min_relative_gap,
        )
        accs = (
            accuracy(np.ascontiguousarray(preds.transpose(1, 0, 2)).reshape(n, -1), np.tile(y, (1, len(variants))))
            .reshape(len(variants), n_attr)
            .mean(axis=1)
        )
        mask = np.isfinite(bas[0]) & np.isfinite(bas[1])
        values = {("bias_amplification", k): v for k, v in _pool_ba(bas, mask, identities).items()}
        values[("accuracy", "all")] = accs  # every value: (n_variants,)
        curves["dense"].append({k: v[0] for k, v in values.items()})
        curves["sparse"].append({k: v[1] for k, v in values.items()})
        shaped = {k: v[which].reshape(len(routings), n_route.size) for k, v in values.items()}
        curves["susceptible"].append({k: v[0] for k, v in shaped.items()})
        if n_random:
            curves["random"].append({k: v[1:].mean(axis=0) for k, v in shaped.items()})

    frames = []
    for routing in ("susceptible", "random")[: 1 + bool(n_random)]:
        for key in curves["dense"][0]:
            stack = np.array([c[key] for c in curves[routing]])
            frames.append(
                pd.DataFrame(
                    {
                        "routing": routing,
                        "fraction": fractions,
                        "identity": key[1],
                        "metric": key[0],
                        "value": stack.mean(axis=0),
                        "std": stack.std(axis=0, ddof=1) if stack.shape[0] > 1 else np.nan,
                        "n_seeds": stack.shape[0],
                        "dense": np.mean([c[key] for c in curves["dense"]]),
                        "sparse": np.mean([c[key] for c in curves["sparse"]]),
                    }
                )
            )
    out = pd.concat(frames, ignore_index=True)
    out["recovered"] = recovered_fraction(out["sparse"], out["value"], out["dense"], min_gap=min_gap)
    return out
