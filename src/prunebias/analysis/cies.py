"""Compression-identified exemplars (CIEs) and prediction flips of one (method, sparsity).

Definitions
-----------
- A model's prediction is ``z > 0`` (the default threshold, p > 0.5).
- **Majority vote** over seeds: positive when more than half of the models predict
  positive. A tie (even number of seeds, half each way) goes to the mean probability over
  the seeds: positive when it is > 0.5 (exactly 0.5 is negative, like ``z > 0``).
- **CIE** at (sample, attribute): sparse majority vote != dense majority vote.
- **Flip**: the sparse model of seed s predicts differently from the dense model of the same
  seed (its parent for post-training methods). Seeds are matched by value when seed lists
  are given (unmatched seeds are left out), by position otherwise.

``dense_logits`` (S_dense, N, A) and ``sparse_logits`` (S_sparse, N, A) are test logits
stacked over seeds; ``groups`` (N, G) bool holds the *true* test labels of the identity
attributes. A ratio whose denominator is zero is NaN, never 0.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.special import expit

from prunebias.validation import as_bool, as_logits, as_names, safe_divide, same_shape

__all__ = [
    "CIE_GROUP_COLUMNS",
    "align_seeds",
    "cie_group_table",
    "compression_identified_exemplars",
    "identity_subsets",
    "majority_vote",
    "prediction_flips",
    "seed_pairs",
]

#: Columns of :func:`cie_group_table`.
CIE_GROUP_COLUMNS = [
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
]


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
    z = as_logits(logits, "logits", ndim=3, dtype=None, nonempty=True)
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


def seed_pairs(n_dense: int, n_sparse: int, dense_seeds, sparse_seeds) -> tuple[np.ndarray, np.ndarray]:
    """Positions (dense index, sparse index) of the matched models of two stacks.

    By seed (:func:`align_seeds`) when both seed lists are given, otherwise by position
    (then the counts must be equal).
    """
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
    d = as_logits(dense_logits, "dense_logits", ndim=3, dtype=None, nonempty=True)
    s = as_logits(sparse_logits, "sparse_logits", ndim=3, dtype=None, nonempty=True)
    same_shape({"dense_logits": d, "sparse_logits": s}, from_axis=1)
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
    d = as_logits(dense_logits, "dense_logits", ndim=3, dtype=None, nonempty=True)
    s = as_logits(sparse_logits, "sparse_logits", ndim=3, dtype=None, nonempty=True)
    same_shape({"dense_logits": d, "sparse_logits": s}, from_axis=1)
    di, si = seed_pairs(d.shape[0], s.shape[0], dense_seeds, sparse_seeds)
    return (s[si] > 0) != (d[di] > 0)


def identity_subsets(groups: np.ndarray, identities: list[str]) -> tuple[np.ndarray, list[str], list[str]]:
    """Membership (N, 1 + 2G) of: all samples, then g=0 and g=1 for each identity g.

    Returns the membership and, per column, its identity ("all" or g) and group ("all",
    "0" or "1"): the scopes of the tables that break results down by identity group.
    """
    cols = [np.ones(groups.shape[0], dtype=bool)]
    ident, grp = ["all"], ["all"]
    for j, name in enumerate(identities):
        cols += [~groups[:, j], groups[:, j]]
        ident += [name, name]
        grp += ["0", "1"]
    return np.stack(cols, axis=1), ident, grp


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
    c = as_bool(cie, "cie")
    n, n_attr = c.shape
    g = as_bool(groups, "groups", rows=n)
    attributes = as_names(attributes, "attributes", size=n_attr)
    identities = as_names(identities, "identities", size=g.shape[1])
    kinds = {"cie": c.astype(np.float64)}
    if flips is not None:
        f = np.asarray(flips)
        if f.ndim != 3 or f.shape[1:] != c.shape or f.dtype != bool:
            raise ValueError(f"flips must be bool of shape (n_pairs, {n}, {n_attr}), got {f.dtype} {f.shape}")
        kinds["flip"] = f.mean(axis=0)
    member, ident, grp = identity_subsets(g, identities)
    mf = member.astype(np.float64)
    n_group = mf.sum(axis=0)  # (K,)
    frames = []
    for kind, events in kinds.items():
        per_attr = np.einsum("nk,na->ka", mf, events)  # (K, A); einsum: BLAS stalls on shared cores
        counts = np.concatenate([per_attr, per_attr.sum(axis=1, keepdims=True)], axis=1)
        pairs = n_group[:, None] * np.append(np.ones(n_attr), n_attr)[None, :]
        share_events = safe_divide(counts, counts[:1])
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
                    "rate": safe_divide(counts, pairs).ravel(),
                    "event_share": share_events.ravel(),
                    "sample_share": np.broadcast_to(share_samples, counts.shape).ravel(),
                    "over_representation": safe_divide(share_events, share_samples).ravel(),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)
