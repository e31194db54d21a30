"""Int8 static post-training quantization for CPU inference, with PyTorch's own quantization stack.

FX graph mode (``prepare_fx``/``convert_fx``) rather than eager mode, because it traces the
torchvision ResNets' residual ``out += identity`` into quantized adds and fuses conv-bn-relu
itself, with no changes to the model code. The converted module runs real int8 kernels
(``quantized::conv2d``, ``quantized::add_relu``, ...), not a float simulation.

Calibration (the activation observers' statistics) is returned as plain tensors, so an int8
model can be stored as its float checkpoint plus that small dict, both readable with
``torch.load(weights_only=True)``, and rebuilt without calibration data (:func:`restore_int8`).
"""

from __future__ import annotations

import copy
import io
import itertools
from collections.abc import Iterable

import torch
from torch import nn
from torch.ao.quantization import get_default_qconfig_mapping
from torch.ao.quantization.observer import ObserverBase
from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

BACKEND = "x86"


def _prepare(model: nn.Module, image_size: int, backend: str) -> torch.fx.GraphModule:
    """Trace a copy of ``model`` (left untouched) and insert observers; the same inputs give the same graph."""
    torch.backends.quantized.engine = backend
    example = (torch.zeros(1, 3, image_size, image_size),)
    return prepare_fx(copy.deepcopy(model).eval().cpu(), get_default_qconfig_mapping(backend), example)


def _observer_state(prepared: nn.Module) -> dict[str, torch.Tensor]:
    """The observers' state_dict entries (histograms, min/max): all that calibration adds to the float weights."""
    observers = tuple(name + "." for name, m in prepared.named_modules() if isinstance(m, ObserverBase))
    return {k: v.detach().clone() for k, v in prepared.state_dict().items() if k.startswith(observers)}


def quantize_int8(
    model: nn.Module, calibration_batches: Iterable[torch.Tensor], backend: str = BACKEND
) -> tuple[nn.Module, dict[str, torch.Tensor]]:
    """Calibrate on ``calibration_batches`` (float (B, 3, H, W) inputs) and convert ``model`` to int8.

    Returns the int8 module (a GraphModule on CPU) and the calibration (observer state as plain
    tensors) that :func:`restore_int8` rebuilds it from. ``model`` is not modified. Sets the
    process-global ``torch.backends.quantized.engine`` to ``backend``, which packs the weights
    at conversion and runs the kernels at inference.
    """
    batches = iter(calibration_batches)
    first = next(batches, None)
    if first is None:
        raise ValueError("quantize_int8 needs at least one calibration batch")
    prepared = _prepare(model, first.shape[-1], backend)
    with torch.no_grad():
        for x in itertools.chain([first], batches):
            prepared(x.cpu())
    calibration = _observer_state(prepared)
    return convert_fx(prepared), calibration


def restore_int8(
    model: nn.Module, calibration: dict[str, torch.Tensor], image_size: int, backend: str = BACKEND
) -> nn.Module:
    """Rebuild :func:`quantize_int8`'s int8 module from the same float ``model`` and its ``calibration``.

    Bit-identical outputs, no calibration data needed. ``image_size`` is the calibration
    inputs' size. ``model`` is not modified; sets the process-global
    ``torch.backends.quantized.engine`` to ``backend``.
    """
    prepared = _prepare(model, image_size, backend)
    expected = _observer_state(prepared).keys()
    if calibration.keys() != expected:
        raise ValueError(
            f"calibration does not fit this model: missing {sorted(expected - calibration.keys())}, "
            f"unexpected {sorted(calibration.keys() - expected)}"
        )
    prepared.load_state_dict(calibration, strict=False)
    return convert_fx(prepared)


def serialized_size(module: nn.Module) -> int:
    """Bytes of ``torch.save(module.state_dict())``: the model's size on disk, int8 or float alike."""
    buffer = io.BytesIO()
    torch.save(module.state_dict(), buffer)
    return buffer.getbuffer().nbytes
