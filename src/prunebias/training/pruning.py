"""Unstructured magnitude pruning: masks over a model's prunable weights.

A *mask* follows ``torch.nn.utils.prune``: a bool tensor beside a weight, same shape,
``True`` = kept, ``False`` = pruned (held at exactly 0.0). Unlike ``torch.nn.utils.prune``
no forward hooks or re-parametrisation are used: the weight itself is zeroed in place, so a
pruned model is a plain module whose ``state_dict`` loads into an unpruned one.

Pruned tensors (see :func:`prunable_parameters`) are every Conv1d/Conv2d weight and every
Linear weight, never biases or BatchNorm. Sparsity is always measured over those tensors.

Training loop contract (what :func:`prunebias.training.schedules.method_plan` describes, one :class:`EpochPlan` per epoch)::

    masks = None
    for epoch, step in enumerate(plan):
        if step.prune_to is not None:           # at the START of the epoch
            masks = MaskSet.from_model(model, step.prune_to, scope, generator)
            masks.apply()
            masks.apply_to_optimizer(optimizer)
        for batch in loader:
            ...; loss.backward(); optimizer.step()
            if step.sparse:                     # after EVERY optimiser step
                masks.apply()
                masks.apply_to_optimizer(optimizer)

Masks are recomputed from the current weights at every pruning step. With magnitude scopes,
weights pruned earlier are still exactly zero, so they stay pruned when the sparsity grows
(GMP); after an AC/DC dense phase the new mask is chosen among the regrown weights.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from prunebias.training.nm import nm_masks
from prunebias.training.schedules import check_sparsity

SCOPES = ("global", "layerwise", "random")

# Module types whose ``weight`` is pruned; depthwise, stem and downsample convs are Conv2d.
_PRUNABLE_MODULES = (nn.Conv1d, nn.Conv2d, nn.Linear)


# --------------------------------------------------------------------------- masks


def prunable_parameters(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """Return ``(name, weight)`` for every Conv1d/Conv2d and Linear weight, in module order.

    Names are those of ``model.named_parameters()`` (e.g. ``"layer1.0.conv1.weight"``).
    Biases, BatchNorm and any other parameter are never included; a weight shared by two
    modules is listed once, under its first name.
    """
    seen: set[int] = set()
    out = []
    for prefix, module in model.named_modules():
        weight = getattr(module, "weight", None)
        if isinstance(module, _PRUNABLE_MODULES) and isinstance(weight, nn.Parameter):
            if id(weight) not in seen:
                seen.add(id(weight))
                out.append((f"{prefix}.weight" if prefix else "weight", weight))
    return out


def _n_pruned(n: int, sparsity: float) -> int:
    """How many of ``n`` entries are pruned at ``sparsity``: ``round(sparsity * n)``.

    Python's ``round`` (ties to even) decides the rare exact halves.
    """
    return round(sparsity * n)


def _keep_largest(scores: Tensor, k: int) -> Tensor:
    """Bool keep-mask of the 1-D ``scores`` that drops their ``k`` smallest entries.

    Ties at the threshold are broken by position (earlier index dropped first), exactly as a
    stable ascending sort would, but in O(n) with ``kthvalue`` instead of an O(n log n) sort.
    """
    if k == 0:
        return torch.ones_like(scores, dtype=torch.bool)
    threshold = torch.kthvalue(scores, k).values
    keep = scores > threshold
    ties = torch.nonzero(scores == threshold).squeeze(1)
    n_below = scores.numel() - int(torch.count_nonzero(keep)) - ties.numel()
    keep[ties[k - n_below :]] = True
    return keep


def compute_masks(
    weights: Sequence[Tensor],
    sparsity: float,
    scope: str = "global",
    generator: torch.Generator | None = None,
) -> list[Tensor]:
    """Masks (bool, ``True`` = kept) that prune ``weights`` to ``sparsity``.

    Scopes:

    - ``"global"``: one magnitude threshold across all tensors; the ``round(s·n)`` entries
      of smallest ``|w|`` over the ``n`` entries of all tensors are pruned.
    - ``"layerwise"``: each tensor ``t`` loses its own ``round(s·n_t)`` smallest-``|w|``
      entries. The total pruned count is the sum of the per-tensor counts, which can differ
      from ``round(s·n)`` by rounding (at most half an entry per tensor).
    - ``"random"``: a control; ``round(s·n)`` entries chosen uniformly at random over all
      tensors by ``torch.randperm`` with ``generator`` (the global RNG when ``None``). A
      fresh draw each call: in a gradual schedule earlier-pruned (zero) weights may be
      revived.

    Ties in magnitude are broken deterministically: over the tensors' flattened
    concatenation (in the given order), the earlier entry is pruned first. ``generator`` is
    used only by ``"random"``. Masks are on each weight's device; all weights must share one.

    Raises ValueError for a sparsity outside [0, 1), an unknown scope or NaN weights.
    """
    sparsity = check_sparsity(sparsity)
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {SCOPES}, got {scope!r}")
    if not weights:
        return []
    shapes = [w.shape for w in weights]
    sizes = [w.numel() for w in weights]
    if scope == "layerwise":
        return [_keep_largest(_magnitudes([w]), _n_pruned(w.numel(), sparsity)).view(w.shape) for w in weights]
    n = sum(sizes)
    k = _n_pruned(n, sparsity)
    device = weights[0].device
    if scope == "global":
        keep = _keep_largest(_magnitudes(weights), k)
    else:
        perm_device = generator.device if generator is not None else torch.device("cpu")
        chosen = torch.randperm(n, generator=generator, device=perm_device)[:k].to(device)
        keep = torch.ones(n, dtype=torch.bool, device=device)
        keep[chosen] = False
    # Views into one flat mask: no copy per tensor.
    return [m.view(shape) for m, shape in zip(torch.split(keep, sizes), shapes)]


def _magnitudes(weights: Sequence[Tensor]) -> Tensor:
    """``|w|`` of the flattened concatenation, in at least float32 (half precision and
    integers are upcast; the order and the ties are unchanged)."""
    flat = torch.cat([w.detach().reshape(-1) for w in weights])
    flat = flat.to(torch.promote_types(flat.dtype, torch.float32)).abs_()  # cat copied
    # max propagates NaN: a reduction, cheaper than a full isnan mask.
    if flat.numel() and torch.isnan(flat.max()):
        raise ValueError("weights contain NaN: magnitudes cannot be ranked")
    return flat


class MaskSet:
    """The masks of one model: ``(name, parameter, mask)`` triples, in module order.

    Build with :meth:`from_model`; keep masks beside the model with :meth:`state_dict` /
    :meth:`load_state_dict` (restore with ``MaskSet.from_model(model, 0.0)`` then
    ``load_state_dict``).
    """

    def __init__(self, named_params: Sequence[tuple[str, nn.Parameter]], masks: Sequence[Tensor]):
        if len(named_params) != len(masks):
            raise ValueError(f"masks: got {len(masks)} masks for {len(named_params)} parameters")
        for (name, p), m in zip(named_params, masks):
            if m.shape != p.shape:
                raise ValueError(f"masks: shape {tuple(m.shape)} for {name} {tuple(p.shape)}")
        self.names = [name for name, _ in named_params]
        self.params = [p for _, p in named_params]
        self.masks = [m.to(device=p.device, dtype=torch.bool) for p, m in zip(self.params, masks)]

    @classmethod
    def from_model(
        cls,
        model: nn.Module,
        sparsity: float,
        scope: str = "global",
        generator: torch.Generator | None = None,
    ) -> MaskSet:
        """Masks over :func:`prunable_parameters` of ``model`` (see :func:`compute_masks`).

        Only computes masks; call :meth:`apply` to zero the pruned weights.
        """
        named = prunable_parameters(model)
        return cls(named, compute_masks([p for _, p in named], sparsity, scope, generator))

    @classmethod
    def from_nm(cls, model: nn.Module, n: int, m: int, group_share: float = 1.0) -> MaskSet:
        """N:M masks over :func:`prunable_parameters` of ``model`` (see :func:`prunebias.training.nm.nm_masks`)."""
        named = prunable_parameters(model)
        return cls(named, nm_masks([p for _, p in named], n, m, group_share))

    def __len__(self) -> int:
        return len(self.masks)

    @torch.no_grad()
    def apply(self) -> None:
        """Set pruned weights to exactly 0.0, in place (NaN/inf in pruned entries too)."""
        for p, m in zip(self.params, self.masks):
            p.masked_fill_(~m, 0.0)

    @torch.no_grad()
    def apply_to_optimizer(self, optimizer: torch.optim.Optimizer) -> None:
        """Zero the pruned entries of the optimiser's per-parameter state buffers.

        Every state tensor shaped like its parameter is masked: SGD ``momentum_buffer``,
        Adam/AdamW ``exp_avg``, ``exp_avg_sq`` (and ``max_exp_avg_sq``), RMSprop, Adagrad.
        Scalars such as ``step`` are left alone. Without this, gradients keep flowing into
        the buffers of pruned weights; :meth:`apply` still zeroes the weights after each
        step, but the stale buffers would push them off zero as soon as masks are lifted
        (an AC/DC dense phase).
        """
        for p, m in zip(self.params, self.masks):
            for value in optimizer.state.get(p, {}).values():
                if isinstance(value, Tensor) and value.shape == p.shape:
                    value.masked_fill_(~m, 0)

    def sparsity(self) -> float:
        """Fraction of pruned (``False``) entries over all masks (0.0 when empty)."""
        total = sum(m.numel() for m in self.masks)
        pruned = sum(m.numel() - int(torch.count_nonzero(m)) for m in self.masks)
        return pruned / total if total else 0.0

    def state_dict(self) -> dict[str, Tensor]:
        """``{parameter name: mask}``: CPU bool copies, so a checkpoint loads anywhere."""
        return {name: m.to("cpu", copy=True) for name, m in zip(self.names, self.masks)}

    def load_state_dict(self, state: Mapping[str, Tensor]) -> None:
        """Replace the masks by those of ``state`` (names and shapes must match exactly;
        0/1 tensors are accepted). Does not touch the weights: call :meth:`apply` after."""
        missing = [n for n in self.names if n not in state]
        unexpected = [n for n in state if n not in self.names]
        if missing or unexpected:
            raise ValueError(f"mask state: missing {missing}, unexpected {unexpected}")
        for i, (name, p) in enumerate(zip(self.names, self.params)):
            mask = state[name]
            if mask.shape != p.shape:
                raise ValueError(f"mask state: {name} has shape {tuple(mask.shape)}, parameter {tuple(p.shape)}")
            self.masks[i] = mask.to(device=p.device, dtype=torch.bool)


def measured_sparsity(model: nn.Module) -> dict:
    """Fraction of exact zeros in the prunable weights of ``model``.

    Returns ``{"global": zeros / numel over all prunable weights, "per_tensor": {name:
    zeros / numel}}``. Raises ValueError when the model has no prunable parameter.
    """
    named = prunable_parameters(model)
    if not named:
        raise ValueError("model has no prunable (Conv1d/Conv2d/Linear) weight")
    zeros = {name: p.numel() - int(torch.count_nonzero(p.detach())) for name, p in named}
    sizes = {name: p.numel() for name, p in named}
    return {
        "global": sum(zeros.values()) / sum(sizes.values()),
        "per_tensor": {name: zeros[name] / sizes[name] for name, _ in named},
    }
