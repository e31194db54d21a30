"""Batched image transforms on tensors, run on the training device (no per-sample PIL work).

Inputs are uint8 batches in the stored layout (B, H, W, 3); outputs are float (B, 3, h, w)
normalised with mean 0.5 and std 0.5, as in the reference recipe.
"""

from __future__ import annotations

import math

import torch

from prunebias.training.devices import send

MEAN = 0.5
STD = 0.5


def to_float(batch: torch.Tensor) -> torch.Tensor:
    """uint8 (B, H, W, 3) -> normalised float (B, 3, H, W), channels-last in memory.

    Only a permute, so the stored H×W×3 order is kept: on the CPU oneDNN then runs every
    convolution channels-last, 1.2-1.3x faster per epoch than on contiguous batches
    (``benchmarks/cpu_layout.py``), and every trained number of the project is a channels-last one.
    """
    x = batch.permute(0, 3, 1, 2).float().div_(255.0)
    return x.sub_(MEAN).div_(STD)


def center_crop(batch: torch.Tensor, size: int) -> torch.Tensor:
    """Centre ``size`` x ``size`` crop of a uint8 (B, H, W, 3) batch."""
    h, w = batch.shape[1:3]
    if size > min(h, w):
        raise ValueError(f"crop size {size} is larger than the images ({h}x{w})")
    top, left = (h - size) // 2, (w - size) // 2
    return batch[:, top : top + size, left : left + size]


def random_crop_flip(
    batch: torch.Tensor, size: int, padding: int, flip: bool, generator: torch.Generator
) -> torch.Tensor:
    """Per-sample random crop (after zero-padding by ``padding``) and horizontal flip, vectorised.

    Offsets and flips are drawn from ``generator`` (a CPU generator, so results do not depend
    on the device), sent to the batch's device without a host sync, and applied with one gather.
    """
    b, h, w, _ = batch.shape
    if padding:
        batch = torch.nn.functional.pad(batch, (0, 0, padding, padding, padding, padding))
        h, w = h + 2 * padding, w + 2 * padding
    if size > min(h, w):
        raise ValueError(f"crop size {size} is larger than the padded images ({h}x{w})")
    top = torch.randint(0, h - size + 1, (b,), generator=generator)
    left = torch.randint(0, w - size + 1, (b,), generator=generator)
    flips = torch.rand(b, generator=generator) < 0.5 if flip else torch.zeros(b, dtype=torch.bool)
    ar = torch.arange(size)
    cols = left[:, None] + torch.where(flips[:, None], size - 1 - ar, ar)
    rows = top[:, None] + ar
    dev = batch.device
    rows, cols = send(torch.stack([rows, cols]), dev)  # one copy: both are (B, size)
    return batch[torch.arange(b, device=dev)[:, None, None], rows[:, :, None], cols[:, None, :]]


#: Pure yellow, RGB (1, 1, 0) before normalisation: the study's square trigger.
YELLOW = (255, 255, 0)
#: The square covers this share of the model input, as in the study (32 × 32 of 224 × 224).
SQUARE_AREA = 0.02


def square_side(height: int, width: int) -> int:
    """Side in pixels of the yellow square: ``round(sqrt(0.02 · H · W))``, at least 1 and at most min(H, W).

    (No exact .5 ties can occur: (k + 0.5)² / 0.02 is never an integer.)
    """
    return int(min(max(1, round(math.sqrt(SQUARE_AREA * height * width))), height, width))


def yellow_square(batch: torch.Tensor, hit: torch.Tensor) -> torch.Tensor:
    """``batch`` (uint8, B×H×W×3) with a yellow square (:func:`square_side`) in the top-left corner of the rows in ``hit``.

    Applied to the model input, after crop and flip, as in the study: the square is exactly
    where and as large as specified at any crop size. Returns a new tensor.
    """
    side = square_side(batch.shape[1], batch.shape[2])
    out = batch.clone()
    colour = torch.tensor(YELLOW, dtype=batch.dtype, device=batch.device)
    corner = out[:, :side, :side]
    out[:, :side, :side] = torch.where(hit[:, None, None, None], colour, corner)
    return out
