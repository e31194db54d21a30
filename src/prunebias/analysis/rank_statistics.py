"""Rank statistics with bootstrap intervals, and rank helpers, for the criteria.

- Scope AUCs: the ROC-AUC (Mann-Whitney) of a score matrix (n_samples, n_attributes)
  against a target within many scopes at once (each attribute; all pairs pooled over a
  subset of samples), with each sample's first-order influence, so that a bootstrap over
  samples is one matrix product (:func:`scope_layout`, :func:`scope_aucs`,
  :func:`bootstrap_counts`).
- :func:`spearman_ci`: Spearman correlation with a percentile bootstrap interval.
- Rank helpers: :func:`ordinal_rank`, :func:`descending_rank`, :func:`top_fraction_weights`.

Ratios with a zero denominator are NaN, never 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from prunebias.validation import as_count, safe_divide

__all__ = [
    "STREAM_AUC",
    "STREAM_ROUTING",
    "STREAM_SPEARMAN",
    "ScopeLayout",
    "bootstrap_counts",
    "descending_rank",
    "ordinal_rank",
    "scope_aucs",
    "scope_layout",
    "spearman_ci",
    "top_fraction_weights",
]

#: Independent random streams derived from the one ``seed`` argument of the criteria
#: (``np.random.default_rng([seed, stream])``): the AUC bootstrap, the Spearman bootstrap and
#: the random routing of :func:`prunebias.analysis.countermeasures.routing_curve`.
STREAM_AUC, STREAM_SPEARMAN, STREAM_ROUTING = 0, 1, 2


@dataclass(frozen=True)
class ScopeLayout:
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


def scope_layout(score: np.ndarray, member: np.ndarray) -> ScopeLayout:
    """The :class:`ScopeLayout` of ``score`` (N, A) with the pooled scopes of ``member`` (N, K) bool."""
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
        return ScopeLayout(pair, cell, member, seg_len, rank2, None, None)
    block_start = np.flatnonzero(new)
    block_of = np.cumsum(new) - 1
    tie_lo = block_start[block_of]
    tie_hi = np.append(block_start[1:], pair.size)[block_of]
    rank2 = 2 * (tie_lo - seg_start) + (tie_hi - tie_lo) - 1
    tie_lo, tie_hi, rank2 = (v.astype(np.int32) for v in (tie_lo, tie_hi, rank2))
    return ScopeLayout(pair, cell, member, seg_len, rank2, tie_lo, tie_hi)


def _segment_sums(values: np.ndarray, seg_len: np.ndarray) -> np.ndarray:
    """Sums of ``values`` over consecutive runs of lengths ``seg_len`` (empty runs: 0), float64."""
    starts = np.cumsum(seg_len) - seg_len
    full = seg_len > 0
    out = np.zeros(seg_len.size)
    out[full] = np.add.reduceat(values, starts[full], dtype=np.int64)
    return out


def scope_aucs(layout: ScopeLayout, target: np.ndarray, n_samples: int, influence: bool):
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
    auc = safe_divide((rank_sum2 - n1 * (n1 - 1)) / 2, n1 * n0)
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


def bootstrap_counts(n: int, bootstrap: int, seed: int) -> np.ndarray:
    """(bootstrap, n) float32 multinomial resample counts of n samples."""
    rng = np.random.default_rng([seed, STREAM_AUC])
    out = np.empty((bootstrap, n), dtype=np.float32)
    chunk = max(1, 2_000_000 // n)
    for start in range(0, bootstrap, chunk):  # chunks of resamples bound the memory
        m = min(chunk, bootstrap - start)
        idx = rng.integers(0, n, size=(m, n)) + (np.arange(m) * n)[:, None]
        out[start : start + m] = np.bincount(idx.ravel(), minlength=m * n).reshape(m, n)
    return out


def top_fraction_weights(score: np.ndarray, fraction: float) -> np.ndarray:
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
    bootstrap = as_count(bootstrap, "bootstrap")
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
        rng = np.random.default_rng([seed, STREAM_SPEARMAN])
        idx = rng.integers(0, x.size, size=(bootstrap, x.size))
        rx = _resampled_ranks(x, idx)
        ry = _resampled_ranks(y, idx)
        rx -= rx.mean(axis=1, keepdims=True)
        ry -= ry.mean(axis=1, keepdims=True)
        rho = safe_divide((rx * ry).sum(axis=1), np.sqrt((rx**2).sum(axis=1) * (ry**2).sum(axis=1)))
        if np.isfinite(rho).any():
            tail = 100 * (1 - level) / 2
            out["low"], out["high"] = np.nanpercentile(rho, [tail, 100 - tail])
    return out


def ordinal_rank(values: np.ndarray) -> np.ndarray:
    """1 = largest; ties by position; NaN entries get NaN."""
    rank = np.full(values.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(values))
    order = ok[np.argsort(-values[ok], kind="stable")]
    rank[order] = np.arange(1, order.size + 1)
    return rank


def descending_rank(score: np.ndarray) -> np.ndarray:
    """0-based rank of each sample (axis -2) by descending score (ties in a fixed order)."""
    rows = np.ascontiguousarray(np.swapaxes(-score, -1, -2))  # sort contiguous sample rows
    order = np.argsort(rows, axis=-1)
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.broadcast_to(np.arange(rows.shape[-1]), order.shape), axis=-1)
    return np.swapaxes(rank, -1, -2)
