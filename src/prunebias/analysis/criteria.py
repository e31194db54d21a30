"""Dense-model criteria for the bias that pruning adds, and countermeasures.

Implements the study's sample-level analysis, criteria and countermeasures, for one
(dataset, task, arch): compression-identified exemplars (CIEs), a sample criterion and an
attribute criterion that use the dense model alone, and two countermeasures. Everything is
computed from test predictions and the tidy per-model metrics; :func:`criteria_tables` is
the one entry point of the workflow rule.

Array conventions
-----------------
- ``dense_logits`` (S_dense, N, A) and ``sparse_logits`` (S_sparse, N, A): test logits of
  the dense models and of the sparse models of ONE (method, sparsity), stacked over seeds.
- ``labels`` (N, A) bool: test labels; ``groups`` (N, G) bool: the *true* test labels of
  the identity attributes; ``attributes`` / ``identities``: their names.
- A model's prediction is ``z > 0`` (the default threshold, p > 0.5).

Definitions and undefined cases
-------------------------------
- **Majority vote** over seeds: positive when more than half of the models predict
  positive. A tie (even number of seeds, half each way) goes to the mean probability over
  the seeds: positive when it is > 0.5 (exactly 0.5 is negative, like ``z > 0``).
- **CIE** at (sample, attribute): sparse majority vote != dense majority vote.
- **Flip**: the sparse model of seed s predicts differently from the dense model of the same
  seed (its parent for post-training methods). Seeds are matched by value when seed lists
  are given (unmatched seeds are left out), by position otherwise.
- **Sparse error** (second target of the sample criterion): sparse majority vote != label.
- A ratio whose denominator is zero is NaN, never 0.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats
from scipy.special import expit

from prunebias.analysis import metrics as pm
from prunebias.validation import require_columns

__all__ = [
    "SCORES",
    "STATISTICS",
    "TABLE_COLUMNS",
    "TARGETS",
    "align_seeds",
    "attribute_criterion",
    "calibrated_threshold_recovery",
    "cie_group_table",
    "compression_identified_exemplars",
    "criteria_tables",
    "delta_bias_amplification",
    "dense_attribute_statistics",
    "evaluate_scores",
    "headline",
    "majority_vote",
    "precision_recall_curves",
    "prediction_flips",
    "recovered_fraction",
    "routing_curve",
    "spearman_ci",
    "susceptibility_scores",
    "susceptible_samples",
]

#: Dense-only susceptibility scores per (sample, attribute); larger = more susceptible.
SCORES = ("uncertainty", "prob_std", "disagreement", "flag")
#: What the sample criterion tries to find.
TARGETS = ("cie", "sparse_error")
#: Dense per-attribute statistics of the attribute criterion and their a-priori risk
#: direction: +1 when a larger value is expected to come with a larger ΔBA. The direction
#: is fixed in advance (not fitted) so that the predicted ranking uses no sparse model.
STATISTICS = {
    "uncertainty": 1,
    "interdependence": 1,
    "auc": -1,  # harder attributes (lower AUC) are expected to lose more
    "train_prevalence": -1,  # CelebA positives are mostly the rare value
    "train_rarity": 1,  # min(prevalence, 1 - prevalence)
    "group_gap": 1,  # |P(a | g=1) - P(a | g=0)| on the training split
}

_KEYS = ["method", "sparsity"]
#: Columns of every table returned by :func:`criteria_tables` (``susceptible_samples``
#: has, in addition, one bool column per identity after ``prob_std``).
TABLE_COLUMNS = {
    "cie_groups": _KEYS
    + [
        "kind",
        "attribute",
        "identity",
        "group",
        "n_pairs",
        "n_events",
        "rate",
        "event_share",
        "sample_share",
        "over_representation",
    ],
    "sample_criterion": _KEYS
    + [
        "target",
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
    ],
    "headline": _KEYS
    + [
        "target",
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
    ],
    "pr_curve": _KEYS + ["target", "score", "threshold", "share_flagged", "recall", "precision"],
    "attribute_criterion": _KEYS
    + [
        "identity",
        "statistic",
        "direction",
        "n_attributes",
        "spearman",
        "spearman_low",
        "spearman_high",
        "p_value",
        "rank",
        "top_k",
        "top_k_overlap",
        "top_k_chance",
    ],
    "attribute_ranking": _KEYS
    + [
        "identity",
        "statistic",
        "attribute",
        "value",
        "delta_ba",
        "predicted_rank",
        "realised_rank",
        "predicted_top_k",
        "realised_top_k",
    ],
    "countermeasures": _KEYS
    + ["countermeasure", "fraction", "identity", "metric", "dense", "sparse", "countered", "recovered"],
    "routing_curve": _KEYS
    + ["routing", "fraction", "identity", "metric", "value", "std", "n_seeds", "dense", "sparse", "recovered"],
    "susceptible_samples": ["attribute", "rank", "id", "label", "uncertainty", "prob_std"]
    + _KEYS
    + ["probability", "prediction", "cie"],
}

# Independent random streams derived from the one ``seed`` argument.
_STREAM_AUC, _STREAM_SPEARMAN, _STREAM_ROUTING = 0, 1, 2


# --------------------------------------------------------------------------- checks
def _logits_3d(x, name: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim != 3:
        raise ValueError(f"{name} must be 3-D (n_models, n_samples, n_attributes), got shape {arr.shape}")
    if 0 in arr.shape:
        raise ValueError(f"{name} is empty (shape {arr.shape})")
    if np.issubdtype(arr.dtype, np.integer):
        arr = arr.astype(np.float64)
    elif not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}")
    if np.isnan(arr).any():
        raise ValueError(f"{name} contains NaN")
    return arr


def _bool_2d(x, name: str, rows: int | None = None, cols: int | None = None) -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D, got shape {arr.shape}")
    if arr.dtype != bool:
        if not (np.issubdtype(arr.dtype, np.number) and np.isin(arr, (0, 1)).all()):
            raise ValueError(f"{name} must be boolean (or 0/1), got dtype {arr.dtype}")
        arr = arr.astype(bool)
    if rows is not None and arr.shape[0] != rows:
        raise ValueError(f"{name} must have {rows} rows, got {arr.shape[0]}")
    if cols is not None and arr.shape[1] != cols:
        raise ValueError(f"{name} must have {cols} columns, got {arr.shape[1]}")
    return arr


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


def _names(names, name: str, size: int | None = None) -> list[str]:
    if isinstance(names, str):
        raise ValueError(f"{name} must be a list of names, got the string {names!r}")
    names = [str(n) for n in names]
    if len(set(names)) != len(names):
        raise ValueError(f"{name} has duplicates: {names}")
    if size is not None and len(names) != size:
        raise ValueError(f"{name} must name {size} columns, got {len(names)}")
    return names


def _fractions(values, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64).ravel()
    if arr.size == 0 or not np.all((arr >= 0) & (arr <= 1)):
        raise ValueError(f"{name} must be a non-empty list of fractions in [0, 1], got {values!r}")
    return arr


def _count(value, name: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_same(a: np.ndarray, b: np.ndarray, name_a: str, name_b: str) -> None:
    if a.shape[1:] != b.shape[1:]:
        raise ValueError(
            f"{name_a} and {name_b} must have the same (n_samples, n_attributes), got {a.shape[1:]} and {b.shape[1:]}"
        )


def _target_arrays(targets: Mapping, key_names: list[str], n: int, n_attr: int) -> dict[tuple, np.ndarray]:
    """``targets`` as {key tuple: bool (n, n_attr)}, each key one value per ``key_names``."""
    if not targets:
        raise ValueError("targets is empty")
    arrays = {}
    for key, arr in targets.items():
        key = key if isinstance(key, tuple) else (key,)
        if len(key) != len(key_names):
            raise ValueError(f"target key {key!r} must have one value per key_names {key_names}")
        arrays[key] = _bool_2d(arr, f"targets[{key!r}]", rows=n, cols=n_attr)
    return arrays


def _subsets(groups: np.ndarray, identities: list[str]) -> tuple[np.ndarray, list[str], list[str]]:
    """Membership (N, 1 + 2G) of: all samples, then g=0 and g=1 for each identity g."""
    cols = [np.ones(groups.shape[0], dtype=bool)]
    ident, grp = ["all"], ["all"]
    for j, name in enumerate(identities):
        cols += [~groups[:, j], groups[:, j]]
        ident += [name, name]
        grp += ["0", "1"]
    return np.stack(cols, axis=1), ident, grp


# --------------------------------------------------------------------------- CIEs
def majority_vote(logits) -> np.ndarray:
    """Majority vote of several models' predictions ``z > 0``.

    Parameters
    ----------
    logits : array-like of shape (n_models, n_samples, n_attributes)

    Returns
    -------
    vote : ndarray of bool, shape (n_samples, n_attributes)
        True where more than half of the models predict positive; ties (even number of
        models, half each way) are positive when the mean probability is > 0.5.
    """
    z = _logits_3d(logits, "logits")
    n_pos = (z > 0).sum(axis=0)
    vote = 2 * n_pos > z.shape[0]
    tie = 2 * n_pos == z.shape[0]
    if tie.any():
        vote[tie] = expit(z[:, tie].astype(np.float64)).mean(axis=0) > 0.5
    return vote


def align_seeds(dense_seeds: Sequence[int], sparse_seeds: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Pair each sparse model with the dense model of the same seed.

    Parameters
    ----------
    dense_seeds, sparse_seeds : sequence of int
        Seeds of the stacked dense and sparse models, in stacking order.

    Returns
    -------
    dense_index, sparse_index : ndarray of int
        Positions of the matched models, in the order of ``sparse_seeds``; seeds present
        in only one list are left out.
    """
    dense_seeds, sparse_seeds = list(dense_seeds), list(sparse_seeds)
    for name, seeds in (("dense_seeds", dense_seeds), ("sparse_seeds", sparse_seeds)):
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"{name} has duplicates: {seeds}")
    where = {s: i for i, s in enumerate(dense_seeds)}
    sparse_index = [j for j, s in enumerate(sparse_seeds) if s in where]
    if not sparse_index:
        raise ValueError(f"no seed in common between dense_seeds {dense_seeds} and sparse_seeds {sparse_seeds}")
    dense_index = [where[sparse_seeds[j]] for j in sparse_index]
    return np.array(dense_index, dtype=np.intp), np.array(sparse_index, dtype=np.intp)


def _pairs(n_dense: int, n_sparse: int, dense_seeds, sparse_seeds) -> tuple[np.ndarray, np.ndarray]:
    if dense_seeds is None and sparse_seeds is None:
        if n_dense != n_sparse:
            raise ValueError(
                f"{n_dense} dense and {n_sparse} sparse models: pass dense_seeds and sparse_seeds to match them"
            )
        return np.arange(n_dense), np.arange(n_sparse)
    if dense_seeds is None or sparse_seeds is None:
        raise ValueError("pass both dense_seeds and sparse_seeds, or neither")
    for name, seeds, n in (("dense_seeds", dense_seeds, n_dense), ("sparse_seeds", sparse_seeds, n_sparse)):
        if len(seeds) != n:
            raise ValueError(f"{name} must list {n} seeds (one per model), got {len(seeds)}")
    return align_seeds(dense_seeds, sparse_seeds)


def compression_identified_exemplars(dense_logits, sparse_logits) -> np.ndarray:
    """CIEs: (sample, attribute) pairs where the sparse and dense majority votes differ.

    Parameters
    ----------
    dense_logits : array-like of shape (n_dense, n_samples, n_attributes)
    sparse_logits : array-like of shape (n_sparse, n_samples, n_attributes)
        One (method, sparsity); the seed counts may differ.

    Returns
    -------
    cie : ndarray of bool, shape (n_samples, n_attributes)
    """
    d = _logits_3d(dense_logits, "dense_logits")
    s = _logits_3d(sparse_logits, "sparse_logits")
    _check_same(d, s, "dense_logits", "sparse_logits")
    return majority_vote(s) != majority_vote(d)


def prediction_flips(dense_logits, sparse_logits, dense_seeds=None, sparse_seeds=None) -> np.ndarray:
    """Per-model flips: each sparse model vs the dense model of the same seed.

    Parameters
    ----------
    dense_logits : array-like of shape (n_dense, n_samples, n_attributes)
    sparse_logits : array-like of shape (n_sparse, n_samples, n_attributes)
    dense_seeds, sparse_seeds : sequence of int, optional
        Seeds of the stacked models; when given, models are matched by seed (see
        :func:`align_seeds`), otherwise by position (then the counts must be equal).

    Returns
    -------
    flips : ndarray of bool, shape (n_pairs, n_samples, n_attributes)
        ``(sparse z > 0) != (dense z > 0)`` for each matched pair, in sparse order.
    """
    d = _logits_3d(dense_logits, "dense_logits")
    s = _logits_3d(sparse_logits, "sparse_logits")
    _check_same(d, s, "dense_logits", "sparse_logits")
    di, si = _pairs(d.shape[0], s.shape[0], dense_seeds, sparse_seeds)
    return (s[si] > 0) != (d[di] > 0)


def cie_group_table(cie, flips, groups, attributes, identities) -> pd.DataFrame:
    """CIE and flip rates per identity group, and their over-representation.

    Parameters
    ----------
    cie : array-like of bool, shape (n_samples, n_attributes)
        From :func:`compression_identified_exemplars`.
    flips : array-like of bool, shape (n_pairs, n_samples, n_attributes), or None
        From :func:`prediction_flips`; None leaves out the "flip" rows.
    groups : array-like of bool, shape (n_samples, n_identities)
    attributes, identities : sequence of str

    Returns
    -------
    DataFrame
        One row per (kind, attribute, identity, group): kind "cie" (majority votes) or
        "flip" (per model, averaged over the matched seeds); attribute is a name or "all"
        (all pairs pooled); (identity, group) is ("all", "all") or (g, "0" / "1") with the
        identity's true value. Columns: ``kind, attribute, identity, group, n_pairs``
        ((sample, attribute) pairs in the cell), ``n_events`` (CIEs; mean flips per model),
        ``rate`` = n_events / n_pairs, ``event_share`` (the cell's share of the attribute's
        events), ``sample_share`` (the group's share of the test set) and
        ``over_representation`` = event_share / sample_share (1 = as many as its size
        predicts; NaN when the attribute has no event).
    """
    c = _bool_2d(cie, "cie")
    n, n_attr = c.shape
    g = _bool_2d(groups, "groups", rows=n)
    attributes = _names(attributes, "attributes", n_attr)
    identities = _names(identities, "identities", g.shape[1])
    kinds = {"cie": c.astype(np.float64)}
    if flips is not None:
        f = np.asarray(flips)
        if f.ndim != 3 or f.shape[1:] != c.shape or f.dtype != bool:
            raise ValueError(f"flips must be bool of shape (n_pairs, {n}, {n_attr}), got {f.dtype} {f.shape}")
        kinds["flip"] = f.mean(axis=0)
    member, ident, grp = _subsets(g, identities)
    mf = member.astype(np.float64)
    n_group = mf.sum(axis=0)  # (K,)
    frames = []
    for kind, events in kinds.items():
        per_attr = np.einsum("nk,na->ka", mf, events)  # (K, A); einsum: BLAS stalls on shared cores
        counts = np.concatenate([per_attr, per_attr.sum(axis=1, keepdims=True)], axis=1)
        pairs = n_group[:, None] * np.append(np.ones(n_attr), n_attr)[None, :]
        share_events = pm.safe_divide(counts, counts[:1])
        share_samples = (n_group / n)[:, None]
        k, a = counts.shape
        frames.append(
            pd.DataFrame(
                {
                    "kind": kind,
                    "attribute": np.tile(np.array(attributes + ["all"], dtype=object), k),
                    "identity": np.repeat(np.array(ident, dtype=object), a),
                    "group": np.repeat(np.array(grp, dtype=object), a),
                    "n_pairs": pairs.ravel(),
                    "n_events": counts.ravel(),
                    "rate": pm.safe_divide(counts, pairs).ravel(),
                    "event_share": share_events.ravel(),
                    "sample_share": np.broadcast_to(share_samples, counts.shape).ravel(),
                    "over_representation": pm.safe_divide(share_events, share_samples).ravel(),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


# ------------------------------------------------------------------ sample criterion
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
    z = _logits_3d(dense_logits, "dense_logits")
    low, high = pm.check_band(band, "uncertainty_band")
    p = expit(z.astype(np.float64))
    mean_p = p.mean(axis=0)
    return {
        "uncertainty": (0.5 - np.abs(p - 0.5)).mean(axis=0),
        "prob_std": p.std(axis=0),
        "disagreement": ((z > 0) != majority_vote(z)).mean(axis=0),
        "flag": ((mean_p > low) & (mean_p < high)).astype(np.float64),
    }


@dataclass(frozen=True)
class _Layout:
    """(Sample, attribute) pairs of every evaluation scope, sorted by score, with ranks.

    Scopes (segments), contiguous in this order: each attribute over all samples, then the
    pairs pooled over attributes of each column of ``member`` (all samples, then group 0
    and group 1 of each identity). Positions [tie_lo, tie_hi) hold the pairs tied with a
    pair in its segment.
    """

    pair: np.ndarray  # (L,) flat pair index sample * A + attribute
    cell: np.ndarray  # (L,) segment * N + sample: where a pair's influence is summed
    member: np.ndarray  # (N, K) bool: samples of the pooled segments
    seg_len: np.ndarray  # (n_seg,) pairs per segment
    rank2: np.ndarray  # (L,) twice the 0-based average rank in the segment (an integer)
    tie_lo: np.ndarray | None  # (L,) None when no two scores tie
    tie_hi: np.ndarray | None


def _layout(score: np.ndarray, member: np.ndarray) -> _Layout:
    n, n_attr = score.shape
    flat = score.ravel()
    order = np.argsort(flat, kind="stable")
    # Stable re-sorts and boolean filters keep the score order inside every scope.
    by_attribute = order[np.argsort((order % n_attr).astype(np.int16), kind="stable")]
    in_scope = member[order // n_attr]
    pair = np.concatenate([by_attribute] + [order[in_scope[:, k]] for k in range(member.shape[1])])
    seg_len = np.concatenate([np.full(n_attr, n), member.sum(axis=0) * n_attr]).astype(np.int64)
    seg_start = np.repeat(np.cumsum(seg_len) - seg_len, seg_len)
    values = flat[pair]
    new = np.ones(pair.size, dtype=bool)
    new[1:] = values[1:] != values[:-1]
    new[np.cumsum(seg_len)[:-1][seg_len[1:] > 0]] = True  # blocks never straddle segments
    cell = np.repeat(np.arange(seg_len.size), seg_len) * n + pair // n_attr
    if new.all():
        rank2 = (2 * (np.arange(pair.size) - seg_start)).astype(np.int32)
        return _Layout(pair, cell, member, seg_len, rank2, None, None)
    block_start = np.flatnonzero(new)
    block_of = np.cumsum(new) - 1
    tie_lo = block_start[block_of]
    tie_hi = np.append(block_start[1:], pair.size)[block_of]
    rank2 = 2 * (tie_lo - seg_start) + (tie_hi - tie_lo) - 1
    tie_lo, tie_hi, rank2 = (v.astype(np.int32) for v in (tie_lo, tie_hi, rank2))
    return _Layout(pair, cell, member, seg_len, rank2, tie_lo, tie_hi)


def _segment_sums(values: np.ndarray, seg_len: np.ndarray) -> np.ndarray:
    """Sums of ``values`` over consecutive runs of lengths ``seg_len`` (empty runs: 0), float64."""
    starts = np.cumsum(seg_len) - seg_len
    full = seg_len > 0
    out = np.zeros(seg_len.size)
    out[full] = np.add.reduceat(values, starts[full], dtype=np.int64)
    return out


def _auc(layout: _Layout, target: np.ndarray, n_samples: int, influence: bool):
    """ROC-AUC of every segment and, optionally, each sample's first-order influence on it.

    Mann-Whitney: AUC = (Σ_pos rank − n1(n1 − 1)/2) / (n1 n0) with average 0-based ranks.
    Returns (auc (n_seg,), float32 phi (n_seg, N) or None); AUC_b ≈ AUC + Σ_n (c_bn − 1) phi_n for
    resample counts c_b, phi summing the placement-value (Hoeffding / DeLong) influence of
    a sample's pairs: (V − AUC) / n1 for a positive, V its share of negatives ranked below
    it, and (V − AUC) / n0 for a negative, V its share of positives ranked above it (ties
    count one half). Counts are exact integers, doubled where ties count one half.
    """
    ys = target.ravel()[layout.pair]
    n1 = _segment_sums(ys, layout.seg_len)
    n0 = layout.seg_len - n1
    rank_sum2 = _segment_sums(np.where(ys, layout.rank2, 0), layout.seg_len)
    auc = pm.safe_divide((rank_sum2 - n1 * (n1 - 1)) / 2, n1 * n0)
    if not influence:
        return auc, None
    cum = np.zeros(ys.size + 1, dtype=np.int32)
    np.cumsum(ys, out=cum[1:])
    seg_base = np.repeat(cum[np.cumsum(layout.seg_len) - layout.seg_len], layout.seg_len)
    if layout.tie_lo is None:
        below2 = 2 * (cum[:-1] - seg_base)  # twice the positives ranked below (self excluded)
    else:
        lo, hi = cum[layout.tie_lo], cum[layout.tie_hi]
        below2 = 2 * (lo - seg_base) + (hi - lo) - ys  # tied positives count one half
    # 2·(negatives below) = rank2 − below2 for a positive, 2·(positives above) = 2 n1 − below2
    # for a negative: one factor 1 / (2 n0 n1) and a shift AUC / n1 (positive) or AUC / n0
    # (negative) per segment, so the shifts need only each cell's pair and positive counts.
    twice = np.where(ys, layout.rank2, np.repeat((2 * n1).astype(np.int32), layout.seg_len))
    twice -= below2
    n_seg = layout.seg_len.size
    sums = np.bincount(layout.cell, weights=twice, minlength=n_seg * n_samples).reshape(n_seg, n_samples)
    y = target.astype(np.float64)
    member = layout.member.astype(np.float64)
    n_pos = np.concatenate([y.T, (y.sum(axis=1)[:, None] * member).T])
    n_pairs = np.concatenate([np.ones_like(y.T), (y.shape[1] * member).T])
    defined = np.isfinite(auc)  # segments without an AUC get zero influence
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.where(defined, 0.5 / (n0 * n1), 0.0)[:, None]
        shift1, shift0 = (np.where(defined, auc / k, 0.0)[:, None] for k in (n1, n0))
    phi = scale * sums - shift0 * n_pairs - (shift1 - shift0) * n_pos
    return auc, phi.astype(np.float32)


def _bootstrap_counts(n: int, bootstrap: int, seed: int) -> np.ndarray:
    """(bootstrap, n) float32 multinomial resample counts of n samples."""
    rng = np.random.default_rng([seed, _STREAM_AUC])
    out = np.empty((bootstrap, n), dtype=np.float32)
    chunk = max(1, 2_000_000 // n)
    for start in range(0, bootstrap, chunk):  # chunks of resamples bound the memory
        m = min(chunk, bootstrap - start)
        idx = rng.integers(0, n, size=(m, n)) + (np.arange(m) * n)[:, None]
        out[start : start + m] = np.bincount(idx.ravel(), minlength=m * n).reshape(m, n)
    return out


def _group_sums(values: np.ndarray, member: np.ndarray) -> np.ndarray:
    """Sum of per-sample ``values`` (N,) within each subset of ``member`` (N, K), float64."""
    return np.einsum("n,nk->k", values.astype(np.float64), member.astype(np.float64))


def _top_weights(score: np.ndarray, fraction: float) -> np.ndarray:
    """Selection weight of each entry when flagging the top ``fraction`` along axis 0.

    Entries tied with the cut-off get the weight that random tie-breaking selects them
    with in expectation, so tied scores (e.g. disagreement among 3 seeds) are not ordered
    by position.
    """
    n = score.shape[0]
    k = int(round(fraction * n))
    if k == 0:
        return np.zeros(score.shape, dtype=np.float32)
    threshold = np.sort(score, axis=0)[n - k]
    above = score > threshold
    tied = score == threshold
    fill = (k - above.sum(axis=0)) / tied.sum(axis=0)
    return (above + tied * fill).astype(np.float32)


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
    key_names = _names(key_names, "key_names")
    target_arrays = _target_arrays(targets, key_names, n, n_attr)
    g = _bool_2d(groups, "groups", rows=n)
    attributes = _names(attributes, "attributes", n_attr)
    identities = _names(identities, "identities", g.shape[1])
    fractions = _fractions(fractions, "fractions")
    bootstrap = _count(bootstrap, "bootstrap")

    member, ident, grp = _subsets(g, identities)
    mf = member.astype(np.float32)
    seg_attr = np.array(attributes + ["all"] * len(ident), dtype=object)
    seg_ident = np.array(["all"] * n_attr + ident, dtype=object)
    seg_group = np.array(["all"] * n_attr + grp, dtype=object)
    seg_pairs = np.concatenate([np.full(n_attr, n), member.sum(axis=0) * n_attr]).astype(np.float64)
    counts = _bootstrap_counts(n, bootstrap, seed) - 1.0 if bootstrap else None

    frames = []
    for name, score in score_arrays.items():
        layout = _layout(score, member)
        if name == "flag":
            selections = [("flag", np.nan, score.astype(np.float32), score.astype(np.float32))]
        else:
            selections = [
                ("top", x, _top_weights(score, x), _top_weights(score.reshape(-1, 1), x).reshape(n, n_attr))
                for x in fractions
            ]
        flagged = [
            np.concatenate([w_attr.sum(axis=0), _group_sums(w_pool.sum(axis=1), mf)])
            for *_, w_attr, w_pool in selections
        ]
        aucs, phis = zip(*(_auc(layout, y, n, influence=counts is not None) for y in target_arrays.values()))
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
                precision = pm.safe_divide(hits, n_flagged)
                frame = {k: v for k, v in zip(key_names, key)}
                frame.update(
                    score=name,
                    attribute=seg_attr,
                    identity=seg_ident,
                    group=seg_group,
                    selection=selection,
                    fraction=x,
                    n_pairs=seg_pairs,
                    n_targets=n_targets,
                    share_flagged=pm.safe_divide(n_flagged, seg_pairs),
                    precision=precision,
                    recall=pm.safe_divide(hits, n_targets),
                    lift=pm.safe_divide(precision, pm.safe_divide(n_targets, seg_pairs)),
                    auc=auc,
                    auc_low=low,
                    auc_high=high,
                )
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
    out["lift"] = pm.safe_divide(out["captured"], out["chance"])
    keys = [c for c in out.columns if c not in TABLE_COLUMNS["headline"]]
    front = [c for c in TABLE_COLUMNS["headline"] if c in out.columns]
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
    key_names = _names(key_names, "key_names")
    max_points = _count(max_points, "max_points", minimum=2)
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
            recall = pm.safe_divide(hits, hits[-1])
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


# --------------------------------------------------------------- attribute criterion
def _metric_rows(metrics: pd.DataFrame, metric: str, threshold: str) -> pd.DataFrame:
    need = ["method", "sparsity", "seed", "attribute", "identity", "group", "threshold", "metric", "value"]
    require_columns(metrics, need, "metrics")
    keep = (metrics["metric"] == metric) & (metrics["threshold"] == threshold) & (metrics["group"] == "all")
    return metrics[keep]


def _seed_mean(rows: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Mean value over seeds (NaN seeds skipped) per key."""
    return rows.groupby(by, sort=True, dropna=False)["value"].mean().reset_index()


def dense_attribute_statistics(
    metrics: pd.DataFrame,
    train_labels,
    train_groups,
    attributes: Sequence[str],
    identities: Sequence[str],
    *,
    threshold: str = "default",
) -> pd.DataFrame:
    """Dense-model statistics per attribute, the predictors of the attribute criterion.

    Parameters
    ----------
    metrics : DataFrame
        Tidy per-model metrics (:func:`prunebias.analysis.metrics.model_metrics`) including the dense models.
    train_labels : array-like of bool, shape (n_train, n_attributes)
    train_groups : array-like of bool, shape (n_train, n_identities)
    attributes, identities : sequence of str
    threshold : str, default "default"
        Threshold kind of the metrics rows (interdependence depends on it).

    Returns
    -------
    DataFrame
        Columns ``identity, attribute, statistic, value``, statistics of :data:`STATISTICS`.
        uncertainty, interdependence and auc are means over dense seeds (identity "all"
        rows of ``metrics``); train_prevalence and train_rarity come from the training
        labels. These do not depend on the identity and are repeated for identity "all"
        and each identity. group_gap is |P(a | g=1) − P(a | g=0)| on the training split for
        identity g (NaN for a = g or an empty group); for identity "all" it is the mean
        over the identities whose dense BA(g, a) is defined (NaN if none).
    """
    attributes = _names(attributes, "attributes")
    identities = _names(identities, "identities")
    y = _bool_2d(train_labels, "train_labels", cols=len(attributes))
    g = _bool_2d(train_groups, "train_groups", rows=y.shape[0], cols=len(identities))
    if y.shape[0] == 0:
        raise ValueError("train_labels has no rows")
    _metric_rows(metrics, "auc", threshold)  # checks the columns
    dense = metrics[metrics["method"] == "dense"]
    if dense.empty:
        raise ValueError("metrics has no dense rows (method == 'dense')")
    values = {}
    for stat in ("uncertainty", "interdependence", "auc"):
        rows = _metric_rows(dense, stat, threshold)
        rows = rows[rows["identity"] == "all"]
        means = _seed_mean(rows, ["attribute"]).set_index("attribute")["value"]
        values[stat] = means.reindex(attributes).to_numpy(dtype=np.float64)
    prevalence = y.mean(axis=0)
    values["train_prevalence"] = prevalence
    values["train_rarity"] = np.minimum(prevalence, 1 - prevalence)

    p1, p0 = pm.train_conditionals(y, g)  # the conditionals that BA itself uses
    gap = np.abs(p1 - p0)
    gap[np.equal.outer(np.array(identities, dtype=object), np.array(attributes, dtype=object))] = np.nan
    ba = _metric_rows(dense, "bias_amplification", threshold)
    ba = _seed_mean(ba, ["identity", "attribute"]).pivot(index="identity", columns="attribute", values="value")
    defined = np.isfinite(ba.reindex(index=identities, columns=attributes).to_numpy(dtype=np.float64))
    pooled_gap = pm.safe_divide(
        np.where(defined, gap, 0.0).sum(axis=0), defined.sum(axis=0)
    )  # BA defined ⇒ gap defined

    frames = []
    for ident_index, ident in enumerate(["all"] + identities):
        for stat in STATISTICS:
            if stat == "group_gap":
                v = pooled_gap if ident == "all" else gap[ident_index - 1]
            else:
                v = values[stat]
            frames.append(pd.DataFrame({"identity": ident, "attribute": attributes, "statistic": stat, "value": v}))
    return pd.concat(frames, ignore_index=True)


def delta_bias_amplification(metrics: pd.DataFrame, *, threshold: str = "default") -> pd.DataFrame:
    """ΔBA = BA_sparse − BA_dense per (method, sparsity, identity, attribute).

    Parameters
    ----------
    metrics : DataFrame
        Tidy per-model metrics with dense and sparse models.
    threshold : str, default "default"

    Returns
    -------
    DataFrame
        Columns ``method, sparsity, identity, attribute, ba_dense, ba_sparse, delta_ba``.
        BA values are means over seeds (undefined seeds skipped), so the dense and sparse
        seed counts may differ; ΔBA is NaN where either is undefined. Identity "all" rows
        average ΔBA, ba_dense and ba_sparse over the identities with a defined ΔBA.
    """
    rows = _metric_rows(metrics, "bias_amplification", threshold)
    ba = _seed_mean(rows, ["method", "sparsity", "identity", "attribute"])
    dense = ba[ba["method"] == "dense"][["identity", "attribute", "value"]].rename(columns={"value": "ba_dense"})
    if dense.empty:
        raise ValueError("metrics has no dense bias_amplification rows")
    sparse = ba[ba["method"] != "dense"].rename(columns={"value": "ba_sparse"})
    out = sparse.merge(dense, on=["identity", "attribute"], how="left")
    out["delta_ba"] = out["ba_sparse"] - out["ba_dense"]
    out = out[["method", "sparsity", "identity", "attribute", "ba_dense", "ba_sparse", "delta_ba"]]
    setting = ["method", "sparsity", "attribute"]
    defined = out[np.isfinite(out["delta_ba"])].groupby(setting)[["ba_dense", "ba_sparse", "delta_ba"]].mean()
    # Left join: an attribute without any defined ΔBA keeps a NaN "all" row.
    pooled = out[setting].drop_duplicates().merge(defined.reset_index(), on=setting, how="left")
    return pd.concat([out, pooled.assign(identity="all")[out.columns]], ignore_index=True)


def _resampled_ranks(values: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Average (tie-aware) ranks of ``values[idx]`` within each row of ``idx`` (B, n).

    Counting instead of sorting: a draw's rank is the number of draws of the row with a
    smaller value plus half of those with an equal one (itself included), plus one half.
    """
    level = stats.rankdata(values, method="dense").astype(np.intp) - 1
    n_levels = level.max() + 1
    drawn = level[idx]
    rows = idx.shape[0]
    cells = (drawn + n_levels * np.arange(rows)[:, None]).ravel()
    counts = np.bincount(cells, minlength=rows * n_levels).reshape(rows, n_levels)
    below = np.cumsum(counts, axis=1) - counts
    return np.take_along_axis(below + (counts + 1) / 2, drawn, axis=1)


def spearman_ci(x, y, *, bootstrap: int = 1000, seed: int = 0, level: float = 0.95) -> dict[str, float]:
    """Spearman correlation with a percentile bootstrap interval over the entries.

    Parameters
    ----------
    x, y : array-like of shape (n,)
        Entries with a NaN in either are dropped.
    bootstrap : int, default 1000
        Resamples of the entries (0: no interval).
    seed : int, default 0
    level : float, default 0.95

    Returns
    -------
    dict
        ``n`` (entries used), ``spearman``, ``low``, ``high``, ``p_value`` (two-sided,
        scipy). All NaN with fewer than 3 entries or a constant input; resamples whose
        values are constant are skipped by the interval.
    """
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same length, got {x.size} and {y.size}")
    bootstrap = _count(bootstrap, "bootstrap")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    out = {"n": int(x.size), "spearman": np.nan, "low": np.nan, "high": np.nan, "p_value": np.nan}
    if x.size < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return out
    res = stats.spearmanr(x, y)
    out["spearman"], out["p_value"] = float(res.statistic), float(res.pvalue)
    if bootstrap:
        rng = np.random.default_rng([seed, _STREAM_SPEARMAN])
        idx = rng.integers(0, x.size, size=(bootstrap, x.size))
        rx = _resampled_ranks(x, idx)
        ry = _resampled_ranks(y, idx)
        rx -= rx.mean(axis=1, keepdims=True)
        ry -= ry.mean(axis=1, keepdims=True)
        rho = pm.safe_divide((rx * ry).sum(axis=1), np.sqrt((rx**2).sum(axis=1) * (ry**2).sum(axis=1)))
        if np.isfinite(rho).any():
            tail = 100 * (1 - level) / 2
            out["low"], out["high"] = np.nanpercentile(rho, [tail, 100 - tail])
    return out


def _ordinal_rank(values: np.ndarray) -> np.ndarray:
    """1 = largest; ties by position; NaN entries get NaN."""
    rank = np.full(values.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(values))
    order = ok[np.argsort(-values[ok], kind="stable")]
    rank[order] = np.arange(1, order.size + 1)
    return rank


def attribute_criterion(
    statistics: pd.DataFrame,
    delta: pd.DataFrame,
    *,
    bootstrap: int = 1000,
    seed: int = 0,
    top_k: int | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Do dense per-attribute statistics predict which attributes' BA grows with pruning?

    Parameters
    ----------
    statistics : DataFrame
        From :func:`dense_attribute_statistics` (identity, attribute, statistic, value).
    delta : DataFrame
        From :func:`delta_bias_amplification` (method, sparsity, identity, attribute,
        delta_ba).
    bootstrap : int, default 1000
        Resamples of the attributes for the Spearman interval.
    seed : int, default 0
    top_k : int, optional
        Size of the at-risk set; default a quarter of the usable attributes (at least 1).

    Returns
    -------
    criterion : DataFrame
        One row per (method, sparsity, identity, statistic): ``direction`` (see
        :data:`STATISTICS`), ``n_attributes`` (with both values defined), ``spearman``
        between the statistic and ΔBA with its 95% bootstrap interval ``spearman_low,
        spearman_high`` and ``p_value``, ``rank`` of |spearman| among the statistics
        (1 = best predictor), ``top_k``, ``top_k_overlap`` (share of the k attributes with
        the largest realised ΔBA that are among the k predicted most at risk) and
        ``top_k_chance`` = k / n_attributes (expected overlap of a random prediction).
    ranking : DataFrame
        One row per (method, sparsity, identity, statistic, attribute): ``value``,
        ``delta_ba``, ``predicted_rank`` (1 = most at risk by the statistic in its
        direction), ``realised_rank`` (1 = largest ΔBA), ``predicted_top_k`` and
        ``realised_top_k``. Ranks are among usable attributes (NaN otherwise), ties
        broken by attribute order.
    """
    for name, frame, need in (
        ("statistics", statistics, ["identity", "attribute", "statistic", "value"]),
        ("delta", delta, ["method", "sparsity", "identity", "attribute", "delta_ba"]),
    ):
        require_columns(frame, need, name)
    unknown = sorted(set(statistics["statistic"]) - set(STATISTICS))
    if unknown:
        raise ValueError(f"statistics has unknown statistics {unknown}; known: {list(STATISTICS)}")
    bootstrap = _count(bootstrap, "bootstrap")
    if top_k is not None:
        top_k = _count(top_k, "top_k", minimum=1)
    joined = delta[["method", "sparsity", "identity", "attribute", "delta_ba"]].merge(
        statistics, on=["identity", "attribute"], how="inner"
    )
    keys = ["method", "sparsity", "identity", "statistic"]
    summary, ranking = [], []
    for key, rows in joined.groupby(keys, sort=True):  # one group per statistic and setting
        direction = STATISTICS[key[3]]
        x = rows["value"].to_numpy(dtype=np.float64)
        d = rows["delta_ba"].to_numpy(dtype=np.float64)
        res = spearman_ci(x, d, bootstrap=bootstrap, seed=seed)
        usable = np.isfinite(x) & np.isfinite(d)
        predicted = _ordinal_rank(np.where(usable, direction * x, np.nan))
        realised = _ordinal_rank(np.where(usable, d, np.nan))
        k = min(top_k or max(1, usable.sum() // 4), usable.sum())
        overlap = ((predicted <= k) & (realised <= k)).sum() / k if k else np.nan
        summary.append(
            dict(zip(keys, key))
            | {
                "direction": direction,
                "n_attributes": res["n"],
                "spearman": res["spearman"],
                "spearman_low": res["low"],
                "spearman_high": res["high"],
                "p_value": res["p_value"],
                "top_k": k,
                "top_k_overlap": overlap,
                "top_k_chance": k / usable.sum() if k else np.nan,
            }
        )
        ranking.append(
            rows[["method", "sparsity", "identity", "statistic", "attribute", "value", "delta_ba"]].assign(
                predicted_rank=predicted,
                realised_rank=realised,
                predicted_top_k=predicted <= k,
                realised_top_k=realised <= k,
            )
        )
    if not summary:
        return (
            pd.DataFrame(columns=TABLE_COLUMNS["attribute_criterion"]),
            pd.DataFrame(columns=TABLE_COLUMNS["attribute_ranking"]),
        )
    criterion = pd.DataFrame(summary)
    criterion["rank"] = (
        criterion["spearman"].abs().groupby([criterion[c] for c in keys[:3]]).rank(ascending=False, method="min")
    )
    cols = TABLE_COLUMNS["attribute_criterion"]
    return criterion[cols].reset_index(drop=True), pd.concat(ranking, ignore_index=True)


# ------------------------------------------------------------------ countermeasures
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
    return np.where(np.abs(gap) >= min_gap, pm.safe_divide(sparse - countered, gap), np.nan)


def _pool_ba(ba: np.ndarray, mask: np.ndarray, identities: list[str]) -> dict[str, np.ndarray]:
    """Mean BA over attributes per identity and over all (identity, attribute) pairs.

    ``ba`` (..., G, A); pairs outside ``mask`` (G, A) or NaN are skipped.
    """
    use = mask & np.isfinite(ba)
    filled = np.where(use, ba, 0.0)
    out = {"all": pm.safe_divide(filled.sum(axis=(-2, -1)), use.sum(axis=(-2, -1)))}
    per = pm.safe_divide(filled.sum(axis=-1), use.sum(axis=-1))
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
        rows = pd.concat([_metric_rows(metrics, metric, t) for t in ("default", "calibrated")])
        means = _seed_mean(rows, keys + ["threshold", "identity", "attribute"])
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
    return out[TABLE_COLUMNS["countermeasures"]]


def _rank_desc(score: np.ndarray) -> np.ndarray:
    """0-based rank of each sample (axis -2) by descending score (ties in a fixed order)."""
    rows = np.ascontiguousarray(np.swapaxes(-score, -1, -2))  # sort contiguous sample rows
    order = np.argsort(rows, axis=-1)
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.broadcast_to(np.arange(rows.shape[-1]), order.shape), axis=-1)
    return np.swapaxes(rank, -1, -2)


def routing_curve(
    dense_logits,
    sparse_logits,
    labels,
    groups,
    train_labels,
    train_groups,
    attributes: Sequence[str],
    identities: Sequence[str],
    *,
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
    :func:`prediction_flips`) and each fraction k, per attribute the round(k · N) samples
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
    train_labels : array-like of bool, shape (n_train, n_attributes)
    train_groups : array-like of bool, shape (n_train, n_identities)
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
    d = _logits_3d(dense_logits, "dense_logits")
    s = _logits_3d(sparse_logits, "sparse_logits")
    _check_same(d, s, "dense_logits", "sparse_logits")
    n, n_attr = d.shape[1:]
    y = _bool_2d(labels, "labels", rows=n, cols=n_attr)
    g = _bool_2d(groups, "groups", rows=n)
    attributes = _names(attributes, "attributes", n_attr)
    identities = _names(identities, "identities", g.shape[1])
    fractions = _fractions(fractions, "fractions")
    n_random = _count(n_random, "n_random")
    di, si = _pairs(d.shape[0], s.shape[0], dense_seeds, sparse_seeds)
    # Once for every seed pair and variant (~60 ms on CelebA's training split).
    conditionals = pm.train_conditionals(train_labels, train_groups)
    n_route = np.round(fractions * n).astype(np.int64)
    rng = np.random.default_rng([seed, _STREAM_ROUTING])
    # A random permutation of the samples per attribute and draw is a uniformly random rank.
    random_rank = rng.permuted(np.broadcast_to(np.arange(n)[:, None], (n_random, n, n_attr)), axis=1)
    # Each seed pair evaluates one stack of predictions: dense, sparse, then every
    # (routing, draw, fraction) variant.
    routings = [("susceptible", 0)] + [("random", r) for r in range(n_random)]
    curves = {key: [] for key in ("dense", "sparse", "susceptible", "random")}
    for p in range(di.size):  # a loop over a handful of seed pairs
        dense_pred, sparse_pred = d[di[p]] > 0, s[si[p]] > 0
        own_rank = _rank_desc(-np.abs(d[di[p]]))  # |z| ranks like 0.5 - |p - 0.5|
        variants = [dense_pred, sparse_pred]
        which = []  # variant of each (routing, fraction); routing nothing is the sparse model
        for routing, r in routings:
            rank = own_rank if routing == "susceptible" else random_rank[r]
            for m in n_route:
                which.append(len(variants) if m else 1)
                if m:
                    variants.append(np.where(rank < m, dense_pred, sparse_pred))
        preds = np.stack(variants)
        bas = pm.bias_amplification_batch(
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
            pm.accuracy(np.ascontiguousarray(preds.transpose(1, 0, 2)).reshape(n, -1), np.tile(y, (1, len(variants))))
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


# -------------------------------------------------------------------- gallery
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
    d = _logits_3d(dense_logits, "dense_logits")
    n_samples, n_attr = d.shape[1:]
    ids = np.asarray(list(ids), dtype=object)
    if ids.shape != (n_samples,):
        raise ValueError(f"ids must have {n_samples} entries, got {ids.shape[0]}")
    y = _bool_2d(labels, "labels", rows=n_samples, cols=n_attr)
    g = _bool_2d(groups, "groups", rows=n_samples)
    attributes = _names(attributes, "attributes", n_attr)
    identities = _names(identities, "identities", g.shape[1])
    clash = sorted(set(identities) & set(TABLE_COLUMNS["susceptible_samples"]))
    if clash:
        raise ValueError(f"identities {clash} collide with column names of the susceptible-sample table")
    n = min(_count(n, "n", minimum=1), n_samples)
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
        z = _logits_3d(logits, f"sparse_logits[{(method, sparsity)!r}]")
        _check_same(d, z, "dense_logits", f"sparse_logits[{(method, sparsity)!r}]")
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


# ------------------------------------------------------------------- entry point
def _collect_runs(runs) -> tuple[list[str], np.ndarray, dict[tuple[str, float], tuple[list[int], np.ndarray]]]:
    """(attributes, test ids, {(method, sparsity): (seeds, logits (S, N, A))}), rows aligned by id."""
    if not isinstance(runs, Sequence) or len(runs) == 0:
        raise ValueError("runs must be a non-empty list of (metadata, predictions) pairs")
    models: dict[tuple[str, float], dict[int, np.ndarray]] = {}
    attributes = id_index = None
    for i, item in enumerate(runs):
        if not (isinstance(item, tuple) and len(item) == 2):
            raise ValueError(f"runs[{i}] must be a (metadata dict, predictions DataFrame) pair")
        meta, frame = item
        needed = ("method", "target_sparsity", "seed")
        missing = [k for k in needed if not isinstance(meta, Mapping) or k not in meta]
        if missing:
            raise ValueError(f"runs[{i}] metadata lacks keys {missing}")
        if not isinstance(frame, pd.DataFrame) or "id" not in frame.columns:
            raise ValueError(f"runs[{i}] predictions must be a DataFrame with an 'id' column")
        columns = [c for c in frame.columns if c != "id"]
        ids = pd.Index(frame["id"].astype(str))
        if attributes is None:
            if not columns or not ids.is_unique or len(ids) == 0:
                raise ValueError(f"runs[{i}] predictions need logit columns and unique, non-empty ids")
            attributes, id_index = columns, ids
        elif set(columns) != set(attributes) or len(columns) != len(attributes):
            raise ValueError(f"runs[{i}] has attribute columns {columns}, runs[0] has {attributes}")
        rows = id_index.get_indexer(ids)
        if len(ids) != len(id_index) or (rows < 0).any() or not ids.is_unique:
            raise ValueError(f"runs[{i}] predictions have other test ids than runs[0]")
        z = np.empty((len(id_index), len(attributes)), dtype=np.float32)
        try:
            z[rows] = frame[attributes].to_numpy(dtype=np.float32)
        except (TypeError, ValueError):
            raise ValueError(f"runs[{i}] logit columns must be numeric") from None
        method = str(meta["method"])
        key = (method, 0.0 if method == "dense" else float(meta["target_sparsity"]))
        seed = int(meta["seed"])
        if seed in models.setdefault(key, {}):
            raise ValueError(f"runs has two models for method {key[0]}, sparsity {key[1]:g}, seed {seed}")
        models[key][seed] = z
    if ("dense", 0.0) not in models:
        raise ValueError("runs has no dense model (method 'dense')")
    stacked = {}
    for key, by_seed in models.items():
        seeds = sorted(by_seed)
        stacked[key] = (seeds, _logits_3d(np.stack([by_seed[s] for s in seeds]), f"logits of {key}"))
    return attributes, id_index.to_numpy(dtype=object), stacked


def _labels(index: pd.DataFrame, ids: np.ndarray, attributes: list[str], identities: list[str]):
    """Test labels and groups of ``ids``, and training labels and groups, from the index."""
    require_columns(index, ["id", "split"] + attributes + identities, "index")
    not_bool = [c for c in attributes + identities if index[c].dtype != bool]
    if not_bool:
        raise ValueError(f"index label columns must be bool, not: {not_bool}")
    index_ids = pd.Index(index["id"].astype(str))
    if not index_ids.is_unique:
        raise ValueError("index has duplicate ids")
    rows = index_ids.get_indexer(ids)
    if (rows < 0).any():
        missing = ids[rows < 0]
        raise ValueError(f"{missing.size} prediction ids are missing from index, e.g. {missing[0]!r}")
    train = (index["split"] == "train").to_numpy()
    if not train.any():
        raise ValueError('index has no rows with split == "train" (needed for training prevalences)')
    y_all = index[attributes].to_numpy(dtype=bool)
    g_all = index[identities].to_numpy(dtype=bool)
    return y_all[rows], g_all[rows], y_all[train], g_all[train]


def _empty(name: str) -> pd.DataFrame:
    return pd.DataFrame(columns=TABLE_COLUMNS[name])


def criteria_tables(
    index: pd.DataFrame,
    runs: list[tuple[dict, pd.DataFrame]],
    metrics: pd.DataFrame,
    identities: list[str],
    *,
    uncertainty_band: tuple[float, float] = (0.1, 0.9),
    flag_fractions: Sequence[float] = (0.05, 0.1, 0.2),
    routing_fractions: Sequence[float] = (0, 0.05, 0.1, 0.2, 0.3, 0.5),
    bootstrap: int = 1000,
    gallery_size: int = 12,
    seed: int = 0,
    min_positives: int = 10,
    min_relative_gap: float = 0.1,
) -> dict[str, pd.DataFrame]:
    """All criteria and countermeasure tables of one (dataset, task, arch).

    Parameters
    ----------
    index : DataFrame
        ``index.parquet``: ``id``, ``split`` and one bool column per attribute (the
        predicted attributes and the identities).
    runs : list of (metadata dict, DataFrame)
        Test predictions of every dense and sparse model: metadata as :func:`prunebias.io.read_predictions` returns it
        ("Predictions"; keys method, target_sparsity, seed are used) and a frame of ``id``
        plus one logit column per attribute. All frames hold the same ids and attributes.
    metrics : DataFrame
        Concatenated tidy per-model metrics of the same models.
    identities : list of str
        Identity attributes (index columns; they need not be predicted).
    uncertainty_band : (low, high), default (0.1, 0.9)
        Band of the "flag" score.
    flag_fractions : sequence of float, default (0.05, 0.1, 0.2)
        Top fractions of pairs flagged by the continuous scores.
    routing_fractions : sequence of float, default (0, 0.05, 0.1, 0.2, 0.3, 0.5)
        Fractions of samples routed to the dense model.
    bootstrap : int, default 1000
        Resamples of the AUC and Spearman intervals.
    gallery_size : int, default 12
        Susceptible samples listed per attribute.
    seed : int, default 0
        Seeds the bootstraps and the random routing.
    min_positives, min_relative_gap
        Undefined-BA rules (:func:`prunebias.analysis.metrics.bias_amplification`).

    Returns
    -------
    dict of str -> DataFrame, keys and columns of :data:`TABLE_COLUMNS`:
        ``cie_groups``: :func:`cie_group_table` per (method, sparsity).
        ``sample_criterion``: :func:`evaluate_scores` of :func:`susceptibility_scores`
        against targets "cie" and "sparse_error".
        ``headline``: :func:`headline`.
        ``pr_curve``: :func:`precision_recall_curves` of the same scores and targets.
        ``attribute_criterion`` and ``attribute_ranking``: :func:`attribute_criterion` of
        :func:`dense_attribute_statistics` vs :func:`delta_bias_amplification`.
        ``countermeasures``: :func:`calibrated_threshold_recovery`, then routing to the
        dense model (countermeasure "routing") and its random control ("random_routing")
        for every routed fraction > 0, ``countered`` being the routed value.
        ``routing_curve``: :func:`routing_curve` per (method, sparsity).
        ``susceptible_samples``: :func:`susceptible_samples`.
        Sparse settings whose seeds share none with the dense seeds get no flip, routing
        rows.
    """
    identities = _names(identities, "identities")
    band = pm.check_band(uncertainty_band, "uncertainty_band")
    flag_fractions = _fractions(flag_fractions, "flag_fractions")
    routing_fractions = _fractions(routing_fractions, "routing_fractions")
    bootstrap = _count(bootstrap, "bootstrap")
    gallery_size = _count(gallery_size, "gallery_size", minimum=1)
    if not isinstance(metrics, pd.DataFrame):
        raise ValueError(f"metrics must be a DataFrame, got {type(metrics).__name__}")
    attributes, ids, models = _collect_runs(runs)
    y, g, y_train, g_train = _labels(index, ids, attributes, identities)
    dense_seeds, dense = models.pop(("dense", 0.0))
    dense_vote = majority_vote(dense)

    cie_frames, routing_frames, targets = [], [], {}
    for (method, sparsity), (seeds, sparse) in sorted(models.items()):
        setting = {"method": method, "sparsity": sparsity}
        vote = majority_vote(sparse)
        cie = vote != dense_vote
        for target, value in zip(TARGETS, (cie, vote != y)):
            targets[(method, sparsity, target)] = value
        matched = bool(set(seeds) & set(dense_seeds))
        flips = prediction_flips(dense, sparse, dense_seeds, seeds) if matched else None
        cie_frames.append(cie_group_table(cie, flips, g, attributes, identities).assign(**setting))
        if matched:
            curve = routing_curve(
                dense,
                sparse,
                y,
                g,
                y_train,
                g_train,
                attributes,
                identities,
                fractions=routing_fractions,
                dense_seeds=dense_seeds,
                sparse_seeds=seeds,
                seed=seed,
                min_positives=min_positives,
                min_relative_gap=min_relative_gap,
            )
            routing_frames.append(curve.assign(**setting))

    tables = {"cie_groups": pd.concat(cie_frames, ignore_index=True) if cie_frames else _empty("cie_groups")}
    if targets:
        scores = susceptibility_scores(dense, band)
        tables["sample_criterion"] = evaluate_scores(
            scores,
            targets,
            g,
            attributes,
            identities,
            key_names=("method", "sparsity", "target"),
            fractions=flag_fractions,
            bootstrap=bootstrap,
            seed=seed,
        )
        tables["headline"] = headline(tables["sample_criterion"])
        tables["pr_curve"] = precision_recall_curves(scores, targets, key_names=("method", "sparsity", "target"))
    else:
        tables["sample_criterion"], tables["headline"] = _empty("sample_criterion"), _empty("headline")
        tables["pr_curve"] = _empty("pr_curve")

    statistics = dense_attribute_statistics(metrics, y_train, g_train, attributes, identities)
    delta = delta_bias_amplification(metrics)
    delta = delta[delta["attribute"].isin(attributes)]
    tables["attribute_criterion"], tables["attribute_ranking"] = attribute_criterion(
        statistics, delta, bootstrap=bootstrap, seed=seed
    )

    routing = pd.concat(routing_frames, ignore_index=True) if routing_frames else _empty("routing_curve")
    routed = routing[routing["fraction"] > 0].rename(columns={"value": "countered"})
    names = {"susceptible": "routing", "random": "random_routing"}
    routed = routed.assign(countermeasure=routed["routing"].map(names))
    tables["countermeasures"] = pd.concat(
        [calibrated_threshold_recovery(metrics), routed[TABLE_COLUMNS["countermeasures"]]], ignore_index=True
    )
    tables["routing_curve"] = routing
    tables["susceptible_samples"] = susceptible_samples(
        ids, y, g, dense, {k: v[1] for k, v in models.items()}, attributes, identities, n=gallery_size
    )
    ordered = {}
    for name, frame in tables.items():
        columns = TABLE_COLUMNS[name]
        if name == "susceptible_samples":
            at = columns.index("prob_std") + 1
            columns = columns[:at] + identities + columns[at:]
        ordered[name] = frame[columns].reset_index(drop=True)
    return ordered
