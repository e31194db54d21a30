"""The sample criterion: dense-only susceptibility scores, and how well they find targets.

Scores per (sample, attribute) come from the dense models alone (:func:`susceptibility_scores`);
:func:`evaluate_scores` measures how well they find targets (CIEs, sparse errors) per
attribute and pooled per identity group, :func:`headline` sums that up,
:func:`precision_recall_curves` draws the trade-off, and :func:`susceptible_samples` lists
the most susceptible test samples (the gallery).

``dense_logits`` (S_dense, N, A) are test logits stacked over seeds; ``groups`` (N, G) bool
holds the *true* test labels of the identity attributes. A ratio whose denominator is zero
is NaN, never 0.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy.special import expit

from prunebias.analysis.cies import identity_subsets, majority_vote
from prunebias.analysis.metrics import check_band
from prunebias.analysis.rank_statistics import bootstrap_counts, scope_aucs, scope_layout, top_fraction_weights
from prunebias.validation import (
    as_bool,
    as_count,
    as_fractions,
    as_logits,
    as_names,
    require_columns,
    safe_divide,
    same_shape,
)

__all__ = [
    "EVALUATION_COLUMNS",
    "HEADLINE_COLUMNS",
    "PR_CURVE_COLUMNS",
    "SCORES",
    "SUSCEPTIBLE_SAMPLE_COLUMNS",
    "evaluate_scores",
    "headline",
    "precision_recall_curves",
    "susceptibility_scores",
    "susceptible_samples",
]

#: Dense-only susceptibility scores per (sample, attribute); larger = more susceptible.
SCORES = ("uncertainty", "prob_std", "disagreement", "flag")
#: Columns of :func:`evaluate_scores` after the target key columns.
EVALUATION_COLUMNS = [
    "score",
    "attribute",
    "identity",
    "group",
    "selection",
    "fraction",
    "n_pairs",
    "n_targets",
    "share_flagged",
    "precision",
    "recall",
    "lift",
    "auc",
    "auc_low",
    "auc_high",
]
#: Columns of :func:`headline` after the target key columns.
HEADLINE_COLUMNS = [
    "score",
    "selection",
    "fraction",
    "n_pairs",
    "n_targets",
    "share_flagged",
    "captured",
    "chance",
    "lift",
    "auc",
    "auc_low",
    "auc_high",
]
#: Columns of :func:`precision_recall_curves` after the target key columns.
PR_CURVE_COLUMNS = ["score", "threshold", "share_flagged", "recall", "precision"]
#: Columns of :func:`susceptible_samples`; one bool column per identity follows ``prob_std``.
SUSCEPTIBLE_SAMPLE_COLUMNS = [
    "attribute",
    "rank",
    "id",
    "label",
    "uncertainty",
    "prob_std",
    "method",
    "sparsity",
    "probability",
    "prediction",
    "cie",
]


def susceptibility_scores(dense_logits, band: tuple[float, float] = (0.1, 0.9)) -> dict[str, np.ndarray]:
    """Dense-only susceptibility scores per (sample, attribute); larger = more susceptible.

    Parameters
    ----------
    dense_logits : array-like of shape (n_dense, n_samples, n_attributes)
    band : (low, high), default (0.1, 0.9)
        Open probability interval of the "uncertain" flag.

    Returns
    -------
    dict of str -> ndarray of shape (n_samples, n_attributes), keys :data:`SCORES`
        ``uncertainty``: mean over dense seeds of 0.5 - |p - 0.5| (in [0, 0.5]);
        ``prob_std``: standard deviation of p over dense seeds (ddof 0; 0 for one seed);
        ``disagreement``: fraction of dense seeds whose prediction differs from the dense
        majority vote; ``flag``: 1.0 where ``low < mean p < high``, else 0.0.
    """
    z = as_logits(dense_logits, "dense_logits", ndim=3, dtype=None, nonempty=True)
    low, high = check_band(band, "uncertainty_band")
    p = expit(z.astype(np.float64))
    mean_p = p.mean(axis=0)
    return {
        "uncertainty": (0.5 - np.abs(p - 0.5)).mean(axis=0),
        "prob_std": p.std(axis=0),
        "disagreement": ((z > 0) != majority_vote(z)).mean(axis=0),
        "flag": ((mean_p > low) & (mean_p < high)).astype(np.float64),
    }


def _score_arrays(scores) -> dict[str, np.ndarray]:
    """``{name: score}`` as float64 arrays of one shared (n_samples, n_attributes) shape, NaN-free."""
    names = list(scores)
    if not names:
        raise ValueError("scores is empty")
    first = np.asarray(scores[names[0]])
    if first.ndim != 2:
        raise ValueError(f"scores[{names[0]!r}] must be 2-D (n_samples, n_attributes), got shape {first.shape}")
    out = {}
    for name in names:
        arr = np.asarray(scores[name], dtype=np.float64)
        if arr.shape != first.shape or np.isnan(arr).any():
            raise ValueError(f"scores[{name!r}] must be a NaN-free array of shape {first.shape}, got {arr.shape}")
        out[name] = arr
    if "flag" in out and not np.isin(out["flag"], (0.0, 1.0)).all():
        raise ValueError("scores['flag'] must hold only 0 and 1")
    return out


def _target_arrays(targets: Mapping, key_names: list[str], n: int, n_attr: int) -> dict[tuple, np.ndarray]:
    """``targets`` as {key tuple: bool (n, n_attr)}, each key one value per ``key_names``."""
    if not targets:
        raise ValueError("targets is empty")
    arrays = {}
    for key, arr in targets.items():
        key = key if isinstance(key, tuple) else (key,)
        if len(key) != len(key_names):
            raise ValueError(f"target key {key!r} must have one value per key_names {key_names}")
        arrays[key] = as_bool(arr, f"targets[{key!r}]", rows=n, cols=n_attr)
    return arrays


def _group_sums(values: np.ndarray, member: np.ndarray) -> np.ndarray:
    """Sum of per-sample ``values`` (N,) within each subset of ``member`` (N, K), float64."""
    return np.einsum("n,nk->k", values.astype(np.float64), member.astype(np.float64))


def evaluate_scores(
    scores: Mapping[str, np.ndarray],
    targets: Mapping[Hashable, np.ndarray],
    groups,
    attributes: Sequence[str],
    identities: Sequence[str],
    *,
    key_names: Sequence[str] = ("target",),
    fractions: Sequence[float] = (0.05, 0.1, 0.2),
    bootstrap: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """How well dense susceptibility scores find targets (CIEs, sparse errors).

    Scopes: each attribute (over all samples; identity = group = "all"), and all
    (sample, attribute) pairs pooled (attribute "all") over all samples and within each
    identity group. Selections: a score named "flag" (0/1) is evaluated at its flag; any
    other score at flagging the top x of its scope for x in ``fractions``. Pooled
    identity-group rows use the selection made over all pooled pairs, so their
    ``share_flagged`` shows whether the criterion flags one group more than another.

    Parameters
    ----------
    scores : mapping of str -> array of shape (n_samples, n_attributes)
        From :func:`susceptibility_scores` (any subset of its keys, or other scores;
        larger = more susceptible).
    targets : mapping of key -> array of bool, shape (n_samples, n_attributes)
        A key is a tuple with one value per ``key_names`` (or a scalar for one name).
    groups : array-like of bool, shape (n_samples, n_identities)
    attributes, identities : sequence of str
    key_names : sequence of str, default ("target",)
        Column names of the target keys in the result.
    fractions : sequence of float, default (0.05, 0.1, 0.2)
        Top fractions of pairs to flag, in [0, 1]. Ties at the cut-off are selected
        fractionally (random tie-breaking in expectation).
    bootstrap : int, default 1000
        Resamples for the AUC confidence interval (0: no interval).
    seed : int, default 0

    Returns
    -------
    DataFrame
        Key columns, then ``score, attribute, identity, group, selection`` ("flag" or
        "top"), ``fraction`` (top fraction; NaN for "flag"), ``n_pairs, n_targets,
        share_flagged, precision`` (targets among flagged), ``recall`` (flagged among
        targets), ``lift`` = precision / (n_targets / n_pairs), ``auc`` and its 95%
        interval ``auc_low, auc_high`` (threshold-free: repeated on every selection row).
        NaN: precision when nothing is flagged, recall/lift/AUC when the scope has no
        target (AUC also when every pair is a target), the interval when ``bootstrap`` = 0.

    Notes
    -----
    The interval is a percentile bootstrap over test samples: ``bootstrap`` multinomial
    resamples of the N samples (seeded, shared by every row so intervals are paired; a
    sample's pairs stay together in pooled scopes). Recomputing the AUC on each resample
    costs O(bootstrap · N · A) per row, too slow for thousands of rows; each resample's AUC
    is instead its first-order (Hoeffding/DeLong) expansion AUC + Σ_n (c_n − 1) φ_n, with
    φ_n sample n's placement-value influence. This matches the recomputed bootstrap to
    O(1 / n_targets) and turns all resamples of a target into one matrix product.
    """
    score_arrays = _score_arrays(scores)
    names = list(score_arrays)
    n, n_attr = score_arrays[names[0]].shape
    key_names = as_names(key_names, "key_names")
    target_arrays = _target_arrays(targets, key_names, n, n_attr)
    g = as_bool(groups, "groups", rows=n)
    attributes = as_names(attributes, "attributes", size=n_attr)
    identities = as_names(identities, "identities", size=g.shape[1])
    fractions = as_fractions(fractions, "fractions")
    bootstrap = as_count(bootstrap, "bootstrap")

    member, ident, grp = identity_subsets(g, identities)
    mf = member.astype(np.float32)
    seg_attr = np.array(attributes + ["all"] * len(ident), dtype=object)
    seg_ident = np.array(["all"] * n_attr + ident, dtype=object)
    seg_group = np.array(["all"] * n_attr + grp, dtype=object)
    seg_pairs = np.concatenate([np.full(n_attr, n), member.sum(axis=0) * n_attr]).astype(np.float64)
    counts = bootstrap_counts(n, bootstrap, seed) - 1.0 if bootstrap else None

    frames = []
    for name, score in score_arrays.items():
        layout = scope_layout(score, member)
        if name == "flag":
            selections = [("flag", np.nan, score.astype(np.float32), score.astype(np.float32))]
        else:
            selections = [
                (
                    "top",
                    x,
                    top_fraction_weights(score, x),
                    top_fraction_weights(score.reshape(-1, 1), x).reshape(n, n_attr),
                )
                for x in fractions
            ]
        flagged = [
            np.concatenate([w_attr.sum(axis=0), _group_sums(w_pool.sum(axis=1), mf)])
            for *_, w_attr, w_pool in selections
        ]
        aucs, phis = zip(*(scope_aucs(layout, y, n, influence=counts is not None) for y in target_arrays.values()))
        lows = highs = np.full((len(aucs), seg_pairs.size), np.nan)
        if counts is not None:  # all targets' resamples in one product
            phi = np.concatenate(phis)
            draws = np.clip(np.concatenate(aucs) + counts @ phi.T, 0.0, 1.0)
            lows, highs = np.percentile(draws, [2.5, 97.5], axis=0).reshape(2, len(aucs), -1)
        for (key, y), auc, low, high in zip(target_arrays.items(), aucs, lows, highs):
            low = np.where(np.isnan(auc), np.nan, low)
            high = np.where(np.isnan(auc), np.nan, high)
            yf = y.astype(np.float32)
            n_targets = np.concatenate([yf.sum(axis=0), _group_sums(yf.sum(axis=1), mf)]).astype(np.float64)
            for (selection, x, w_attr, w_pool), n_flagged in zip(selections, flagged):
                hits = np.concatenate(
                    [np.einsum("na,na->a", w_attr, yf), _group_sums(np.einsum("na,na->n", w_pool, yf), mf)]
                )
                precision = safe_divide(hits, n_flagged)
                frame = {
                    **dict(zip(key_names, key)),
                    "score": name,
                    "attribute": seg_attr,
                    "identity": seg_ident,
                    "group": seg_group,
                    "selection": selection,
                    "fraction": x,
                    "n_pairs": seg_pairs,
                    "n_targets": n_targets,
                    "share_flagged": safe_divide(n_flagged, seg_pairs),
                    "precision": precision,
                    "recall": safe_divide(hits, n_targets),
                    "lift": safe_divide(precision, safe_divide(n_targets, seg_pairs)),
                    "auc": auc,
                    "auc_low": low,
                    "auc_high": high,
                }
                frames.append(pd.DataFrame(frame))
    return pd.concat(frames, ignore_index=True)


def headline(sample_criterion: pd.DataFrame) -> pd.DataFrame:
    """Share of targets captured by flagging a share of all pairs, vs that share by chance.

    Parameters
    ----------
    sample_criterion : DataFrame
        From :func:`evaluate_scores` (with any key columns).

    Returns
    -------
    DataFrame
        The pooled rows (attribute = identity = "all"), keys first, with ``captured`` =
        recall (share of all targets that are flagged), ``chance`` = share_flagged (what
        flagging the same share at random captures in expectation) and ``lift`` = captured /
        chance; the other columns as in the input, without attribute, identity, group and
        precision.
    """
    need = ["attribute", "identity", "share_flagged", "recall"]
    require_columns(sample_criterion, need, "sample_criterion")
    rows = sample_criterion[(sample_criterion["attribute"] == "all") & (sample_criterion["identity"] == "all")]
    out = rows.drop(columns=["attribute", "identity", "group", "precision", "lift"])
    out = out.rename(columns={"recall": "captured"})
    out["chance"] = out["share_flagged"]
    out["lift"] = safe_divide(out["captured"], out["chance"])
    keys = [c for c in out.columns if c not in HEADLINE_COLUMNS]
    front = [c for c in HEADLINE_COLUMNS if c in out.columns]
    return out[keys + front].reset_index(drop=True)


def precision_recall_curves(
    scores: Mapping[str, np.ndarray],
    targets: Mapping[Hashable, np.ndarray],
    *,
    key_names: Sequence[str] = ("target",),
    max_points: int = 200,
) -> pd.DataFrame:
    """Precision–recall curve of each score for each target, over all (sample, attribute) pairs.

    A point flags every pair whose score is >= ``threshold`` (one point per distinct score
    value, so tied pairs are flagged together). To keep the table small each curve keeps
    at most ``max_points`` points: about half evenly spaced in recall, half evenly spaced
    in the share flagged, always with the first (highest threshold) and the last point.
    The last point flags every pair: its precision is the target rate, what flagging at
    random achieves (the chance level).

    Parameters
    ----------
    scores : mapping of str -> array of shape (n_samples, n_attributes)
        From :func:`susceptibility_scores` (larger = more susceptible).
    targets : mapping of key -> array of bool, shape (n_samples, n_attributes)
        A key is a tuple with one value per ``key_names`` (or a scalar for one name).
    key_names : sequence of str, default ("target",)
        Column names of the target keys in the result.
    max_points : int, default 200
        Points kept per curve (at least 2).

    Returns
    -------
    DataFrame
        Key columns, then ``score, threshold, share_flagged`` (flagged pairs / all pairs),
        ``recall`` (flagged targets / targets; NaN when there is no target) and
        ``precision`` (flagged targets / flagged pairs), recall increasing within a curve.
    """
    score_arrays = _score_arrays(scores)
    shape = next(iter(score_arrays.values())).shape
    key_names = as_names(key_names, "key_names")
    max_points = as_count(max_points, "max_points", minimum=2)
    target_arrays = {k: v.ravel() for k, v in _target_arrays(targets, key_names, *shape).items()}
    half = max(1, (max_points - 2) // 2)  # evenly spaced points per axis, besides the two ends
    frames = []
    for name, arr in score_arrays.items():
        flat = arr.ravel()
        order = np.argsort(-flat, kind="stable")
        ranked = flat[order]
        flagged = np.flatnonzero(np.append(ranked[1:] != ranked[:-1], True)) + 1  # pairs flagged per threshold
        share = flagged / flat.size
        for key, y in target_arrays.items():  # a loop over a handful of (method, sparsity, target)
            hits = np.cumsum(y[order], dtype=np.int64)[flagged - 1]
            recall = safe_divide(hits, hits[-1])
            keep = [[0, flagged.size - 1], np.searchsorted(share, np.linspace(0, 1, half))]
            if hits[-1]:
                keep.append(np.searchsorted(recall, np.linspace(0, 1, half)))
            keep = np.unique(np.minimum(np.concatenate(keep), flagged.size - 1))
            frame = dict(zip(key_names, key))
            frame.update(
                score=name,
                threshold=ranked[flagged[keep] - 1],
                share_flagged=share[keep],
                recall=recall[keep],
                precision=hits[keep] / flagged[keep],
            )
            frames.append(pd.DataFrame(frame))
    return pd.concat(frames, ignore_index=True)


def susceptible_samples(
    ids: Sequence[str],
    labels,
    groups,
    dense_logits,
    sparse_logits: Mapping[tuple[str, float], np.ndarray],
    attributes: Sequence[str],
    identities: Sequence[str],
    *,
    n: int = 12,
) -> pd.DataFrame:
    """The test samples with the highest dense susceptibility, per attribute.

    Parameters
    ----------
    ids : sequence of str, length n_samples
    labels : array-like of bool, shape (n_samples, n_attributes)
    groups : array-like of bool, shape (n_samples, n_identities)
    dense_logits : array-like of shape (n_dense, n_samples, n_attributes)
    sparse_logits : mapping of (method, sparsity) -> array of shape (n_sparse, n_samples, n_attributes)
    attributes, identities : sequence of str
    n : int, default 12
        Samples per attribute.

    Returns
    -------
    DataFrame
        For each attribute its n samples with the largest dense ``uncertainty`` (ties by
        larger ``prob_std``, then sample order), once for the dense models (method
        "dense", sparsity 0.0) and once per (method, sparsity). Columns ``attribute,
        rank`` (1 = most susceptible), ``id, label, uncertainty, prob_std``, one bool
        column per identity (its true value), ``method, sparsity``, ``probability`` (mean
        over the seeds), ``prediction`` (majority vote), ``cie`` (prediction != dense
        majority vote; False on dense rows).
    """
    d = as_logits(dense_logits, "dense_logits", ndim=3, dtype=None, nonempty=True)
    n_samples, n_attr = d.shape[1:]
    ids = np.asarray(list(ids), dtype=object)
    if ids.shape != (n_samples,):
        raise ValueError(f"ids must have {n_samples} entries, got {ids.shape[0]}")
    y = as_bool(labels, "labels", rows=n_samples, cols=n_attr)
    g = as_bool(groups, "groups", rows=n_samples)
    attributes = as_names(attributes, "attributes", size=n_attr)
    identities = as_names(identities, "identities", size=g.shape[1])
    clash = sorted(set(identities) & set(SUSCEPTIBLE_SAMPLE_COLUMNS))
    if clash:
        raise ValueError(f"identities {clash} collide with column names of the susceptible-sample table")
    n = min(as_count(n, "n", minimum=1), n_samples)
    scores = susceptibility_scores(d)
    order = np.lexsort((-scores["prob_std"], -scores["uncertainty"]), axis=0)[:n]  # (n, A)
    cols = np.broadcast_to(np.arange(n_attr), order.shape)
    base = {
        "attribute": np.broadcast_to(np.array(attributes, dtype=object), order.shape).T.ravel(),
        "rank": np.broadcast_to(np.arange(1, n + 1)[:, None], order.shape).T.ravel(),
        "id": ids[order].T.ravel(),
        "label": y[order, cols].T.ravel(),
        "uncertainty": scores["uncertainty"][order, cols].T.ravel(),
        "prob_std": scores["prob_std"][order, cols].T.ravel(),
    }
    for j, name in enumerate(identities):
        base[name] = g[order, j].T.ravel()
    dense_vote = majority_vote(d)[order, cols].T.ravel()
    models = {("dense", 0.0): d} | dict(sparse_logits)
    frames = []
    for (method, sparsity), logits in models.items():
        argument = f"sparse_logits[{(method, sparsity)!r}]"
        z = as_logits(logits, argument, ndim=3, dtype=None, nonempty=True)
        same_shape({"dense_logits": d, argument: z}, from_axis=1)
        vote = majority_vote(z[:, order, cols])
        frames.append(
            pd.DataFrame(
                base
                | {
                    "method": method,
                    "sparsity": float(sparsity),
                    "probability": expit(z[:, order, cols].astype(np.float64)).mean(axis=0).T.ravel(),
                    "prediction": vote.T.ravel(),
                    "cie": (vote.T.ravel() != dense_vote) if method != "dense" else False,
                }
            )
        )
    return pd.concat(frames, ignore_index=True)
