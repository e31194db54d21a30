"""N:M semi-structured sparsity: in every group of M consecutive weights along a tensor's input
dimension, at most N are kept (2:4 is what sparse tensor cores run).

Groups follow the layout the kernels use: for a Linear weight ``(out, in)`` the M consecutive
``in`` entries of a row; for a convolution ``(out, in, kh, kw)`` the M consecutive input
channels at one output channel and kernel position (NVIDIA's ASP convention). A tensor whose
input dimension is not a multiple of M (the RGB stem, depthwise convolutions) has no complete
groups and stays dense; :func:`nm_eligible` says which ones.

Masks are bool, ``True`` = kept, as in :mod:`prunebias.training.pruning`. A gradual schedule
grows the pattern group by group: at ``group_share`` f, the f·G groups (of all G groups of
all eligible tensors) whose N:M pruning removes the least magnitude get the pattern, the
others stay dense. Weights pruned earlier are exact zeros, so their groups cost nothing and
stay pruned: the masks only grow, and at f = 1 every group is N:M.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor


def check_pattern(n: int, m: int) -> tuple[int, int]:
    """``(n, m)`` as ints, or ValueError unless ``1 <= n < m``."""
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (n, m)) or not 1 <= n < m:
        raise ValueError(f"n_m must be two integers [N, M] with 1 <= N < M, got {[n, m]!r}")
    return n, m


def pattern_sparsity(n: int, m: int) -> float:
    """The share of an eligible tensor's weights an N:M pattern removes: 1 − N/M."""
    n, m = check_pattern(n, m)
    return 1.0 - n / m


def nm_eligible(shape: Sequence[int], m: int) -> bool:
    """Whether a weight of ``shape`` has complete groups of ``m`` along its input dimension."""
    return len(shape) >= 2 and shape[1] % m == 0


def _groups(weight: Tensor, m: int) -> Tensor:
    """``weight`` as ``(groups, m)``: input dimension last, then split into runs of ``m``."""
    return weight.movedim(1, -1).reshape(-1, m)


def _ungroup(groups: Tensor, shape: Sequence[int]) -> Tensor:
    moved = (shape[0], *shape[2:], shape[1])
    return groups.reshape(moved).movedim(-1, 1)


def nm_masks(weights: Sequence[Tensor], n: int, m: int, group_share: float = 1.0) -> list[Tensor]:
    """Masks giving the N:M pattern to a ``group_share`` of the groups of ``weights``.

    In a patterned group the N largest ``|w|`` are kept (ties: the earlier entry). The groups
    patterned are those whose M − N smallest entries sum to the least ``|w|``, over all
    eligible tensors together (ties: the earlier group in the given order). Ineligible
    tensors (:func:`nm_eligible`) get all-``True`` masks.
    """
    n, m = check_pattern(n, m)
    if not 0.0 <= group_share <= 1.0:
        raise ValueError(f"group_share must lie in [0, 1], got {group_share!r}")
    eligible = [w for w in weights if nm_eligible(w.shape, m)]
    if not eligible:
        return [torch.ones_like(w, dtype=torch.bool) for w in weights]
    # at least float32, never below the weights' own precision (close magnitudes must not tie)
    groups = torch.cat([_groups(w.detach().abs().to(torch.promote_types(w.dtype, torch.float32)), m) for w in eligible])
    if torch.isnan(groups).any():
        raise ValueError("weights contain NaN: magnitudes cannot be ranked")
    order = torch.sort(groups, dim=1, descending=True, stable=True).indices
    in_pattern = torch.zeros_like(groups, dtype=torch.bool).scatter_(1, order[:, :n], True)
    cost = groups.masked_fill(in_pattern, 0.0).sum(dim=1)
    chosen = torch.sort(cost, stable=True).indices[: round(group_share * len(groups))]
    keep = torch.ones_like(in_pattern)
    keep[chosen] = in_pattern[chosen]
    out, start = [], 0
    for w in weights:
        if not nm_eligible(w.shape, m):
            out.append(torch.ones_like(w, dtype=torch.bool))
            continue
        count = w.numel() // m
        out.append(_ungroup(keep[start : start + count], w.shape).to(w.device))
        start += count
    return out


def pattern_violations(weight: Tensor, n: int, m: int) -> int:
    """How many groups of ``weight`` hold more than ``n`` non-zeros (0 for an N:M tensor)."""
    n, m = check_pattern(n, m)
    if not nm_eligible(weight.shape, m):
        return 0
    return int(((_groups(weight.detach(), m) != 0).sum(dim=1) > n).sum())


def broken_tensors(weights: Mapping[str, Tensor], names: Sequence[str], n: int, m: int) -> dict[str, int]:
    """``{name: groups over N non-zeros}`` for the named ``weights`` that break the N:M pattern ({} if none)."""
    counts = {name: pattern_violations(weights[name], n, m) for name in names}
    return {name: count for name, count in counts.items() if count}
