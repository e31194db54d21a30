"""Structured channel pruning: remove whole conv channels to cut a share of the MACs.

Unlike :mod:`prunebias.training.pruning` (masks that zero weights in place), channel pruning
shrinks the layers themselves. All surgery is done by torch-pruning's dependency graph, which
keeps coupled layers consistent: the convs joined by a ResNet residual add lose the same
channels, a depthwise conv loses the channels of the conv before it (its ``groups`` follow),
and BatchNorm and the head's input follow their conv. The head's outputs (``fc``) are never
pruned, so a pruned model still gives one logit per attribute.

A pruned model no longer matches ``build_model``'s shapes, so checkpoints store its
:func:`structure` (plain ints and strings) beside the ``state_dict``; :func:`rebuild` turns
it back into a module of the pruned shapes.
"""

from __future__ import annotations

import copy
import math

import torch
import torch_pruning as tp
from torch import nn

from prunebias.training.models import build_model

IMPORTANCES = ("l1", "l2", "bn_scale")

# A search stops once the removed MAC share is in [target, target + _TOLERANCE]; otherwise the
# closest trial among those at most _SHORTFALL below the target is taken.
_TOLERANCE = 0.005
_SHORTFALL = 0.01
_MAX_TRIALS = 12

# The module types whose sizes pruning changes, and the constructor arguments that hold them.
_SIZES = {
    nn.Conv2d: ("in_channels", "out_channels", "groups"),
    nn.BatchNorm2d: ("num_features",),
    nn.Linear: ("in_features", "out_features"),
}


def _example_input(model: nn.Module, image_size: int) -> torch.Tensor:
    return torch.zeros(1, 3, image_size, image_size, device=next(model.parameters()).device)


def macs_and_params(model: nn.Module, image_size: int) -> tuple[int, int]:
    """Return ``(MACs, parameters)`` of one ``image_size`` image, counted by torch-pruning.

    ``count_ops_and_params`` runs an eval-mode deep copy, so the model's weights, BatchNorm
    statistics and train/eval mode are left as they were.
    """
    with torch.no_grad():
        macs, params = tp.utils.count_ops_and_params(model, _example_input(model, image_size))
    return int(macs), int(params)


def _importance(name: str) -> tp.importance.Importance:
    if name == "l1":
        return tp.importance.MagnitudeImportance(p=1)
    if name == "l2":
        return tp.importance.MagnitudeImportance(p=2)
    if name == "bn_scale":
        return tp.importance.BNScaleImportance()
    raise ValueError(f"unknown importance {name!r}; choose one of {IMPORTANCES}")


def _prune_at(model: nn.Module, image_size: int, ratio: float, importance: str) -> None:
    """Remove the share ``ratio`` of all prunable channels of ``model`` by one global ranking."""
    training = model.training  # tracing the dependency graph switches the model to eval mode
    pruner = tp.pruner.BasePruner(
        model,
        _example_input(model, image_size),
        importance=_importance(importance),
        global_pruning=True,
        pruning_ratio=ratio,
        ignored_layers=[model.fc],
    )
    pruner.step()
    model.train(training)


def _search_ratio(model: nn.Module, image_size: int, target: float, importance: str, macs: int) -> float:
    """Find the channel ``pruning_ratio`` whose MAC share removed is closest to ``target``.

    Each trial prunes a deep copy. MACs of a conv scale with its input times output channels,
    so removing a share ``r`` of all channels removes about ``1 - (1 - r)**2`` of the MACs; the
    search interpolates on the scale ``1 - sqrt(1 - share)``, where that is linear, inside a
    bracket that shrinks every trial (regula falsi), and is deterministic.
    """
    linear = lambda share: 1 - math.sqrt(1 - share)  # noqa: E731
    (lo, lo_share), (hi, hi_share) = (0.0, 0.0), (1.0, 1.0)
    trials = []
    for _ in range(_MAX_TRIALS):
        width = hi - lo
        step = (linear(target) - linear(lo_share)) / max(linear(hi_share) - linear(lo_share), 1e-12)
        ratio = lo + width * min(max(step, 0.05), 0.95)  # stay inside the bracket
        trial = copy.deepcopy(model)
        _prune_at(trial, image_size, ratio, importance)
        share = 1 - macs_and_params(trial, image_size)[0] / macs
        trials.append((abs(share - target), ratio, share))
        if target <= share <= target + _TOLERANCE:
            break
        if share < target:
            lo, lo_share = ratio, share
        else:
            hi, hi_share = ratio, share
    close = [(gap, ratio) for gap, ratio, share in trials if share >= target - _SHORTFALL]
    if not close:
        best = max(share for _, _, share in trials)
        raise RuntimeError(
            f"{importance} channel pruning removed at most {best:.3f} of the MACs, short of {target}; "
            "(bn_scale prunes nothing while all BatchNorm scales are equal, as in an untrained model)"
        )
    return min(close)[1]


def prune_channels(model: nn.Module, image_size: int, flops_share: float, importance: str = "l1") -> dict:
    """Prune ``model``'s channels in place so that about ``flops_share`` of its MACs are removed.

    One global ranking of channel importance across all layers decides what goes (torch-pruning's
    ``global_pruning``); the channel ratio is searched on deep copies (:func:`_search_ratio`) and
    then applied to ``model``. Returns plain data: the measured MACs and parameters before and
    after, the MAC share removed (at most 0.01 below ``flops_share``) and the channel ratio used.
    Raises ValueError for bad arguments, RuntimeError if no ratio removes enough MACs.
    """
    if not 0 < flops_share < 1:
        raise ValueError(f"flops_share must be in (0, 1), got {flops_share}")
    _importance(importance)  # fail on an unknown name before any work
    macs_before, params_before = macs_and_params(model, image_size)
    ratio = _search_ratio(model, image_size, flops_share, importance, macs_before)
    _prune_at(model, image_size, ratio, importance)
    macs_after, params_after = macs_and_params(model, image_size)
    return {
        "importance": importance,
        "target_flops_share": float(flops_share),
        "flops_share_removed": 1 - macs_after / macs_before,
        "macs_before": macs_before,
        "macs_after": macs_after,
        "params_before": params_before,
        "params_after": params_after,
        "pruning_ratio": ratio,
    }


def structure(model: nn.Module) -> dict[str, dict[str, int]]:
    """Return the sizes of every Conv2d, BatchNorm2d and Linear, by module name, as plain ints.

    Only these modules carry parameters in the models of :mod:`prunebias.training.models`, so
    their sizes are all that pruning changes. Plain data (not torch-pruning's ``tp.state_dict``,
    which copies whole module ``__dict__``s with tensors and hooks) loads with
    ``torch.load(weights_only=True)``.
    """
    return {
        name: {attr: int(getattr(module, attr)) for attr in _SIZES[type(module)]}
        for name, module in model.named_modules()
        if type(module) in _SIZES
    }


def _resized(module: nn.Module, sizes: dict[str, int]) -> nn.Module:
    """A fresh module like ``module`` (kernel, stride, bias, ...) but of the given sizes."""
    if isinstance(module, nn.Conv2d):
        return nn.Conv2d(
            sizes["in_channels"],
            sizes["out_channels"],
            module.kernel_size,
            module.stride,
            module.padding,
            module.dilation,
            sizes["groups"],
            module.bias is not None,
            module.padding_mode,
        )
    if isinstance(module, nn.BatchNorm2d):
        return nn.BatchNorm2d(
            sizes["num_features"], module.eps, module.momentum, module.affine, module.track_running_stats
        )
    return nn.Linear(sizes["in_features"], sizes["out_features"], module.bias is not None)


def rebuild(arch: str, num_outputs: int, image_size: int, structure: dict[str, dict[str, int]]) -> nn.Module:
    """Build an untrained ``arch`` with the pruned sizes of ``structure`` (see :func:`structure`).

    The modules whose sizes differ are replaced by fresh ones, so the pruned model's
    ``state_dict`` loads with ``strict=True``.
    """
    model = build_model(arch, num_outputs, image_size)
    modules = dict(model.named_modules())
    for name, sizes in structure.items():
        module = modules.get(name)
        if type(module) not in _SIZES or set(sizes) != set(_SIZES[type(module)]):
            raise ValueError(f"structure entry {name!r}: {sizes} does not fit {arch} module {module!r}")
        if any(getattr(module, attr) != size for attr, size in sizes.items()):
            model.set_submodule(name, _resized(module, sizes))
    return model
