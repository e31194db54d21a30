"""What a model costs to keep and to run: parameters kept, FLOPs, bytes on disk, CPU latency.

The equal-cost comparison of compression families rests on these, so each is measured on the
model as it is deployed here:

- ``params``: non-zero parameters (masked weights do not count; removed channels are gone).
- ``flops``: the analytic count of the network as its kernels run it, 2 per multiply-accumulate
  (``torch_pruning.utils.count_ops_and_params``). Dense kernels multiply masked zeros too, so
  unstructured and N:M models count as dense; channel pruning counts less.
- ``size_bytes``: bytes of the saved weights (``torch.save`` of the state dict): masked
  models are stored dense, an int8 model as int8.
- ``latency_ms_b1`` / ``latency_ms_b64``: wall time per image on the CPU, the median over
  repeated timed batches of 1 and 64 images (fewer for a large model, within a time budget),
  after warm-up runs, on the job's threads.
"""

from __future__ import annotations

import statistics
import time

import torch
from torch import nn

from prunebias.training.channels import macs_and_params
from prunebias.training.quantize import serialized_size

#: Timed batches per batch size (after :data:`WARMUP` untimed ones): enough for a stable median.
REPEATS = {1: 30, 64: 5}
WARMUP = 2
#: Seconds of timed batches per batch size after which a large model stops early (after at least
#: :data:`MIN_REPEATS`): a ResNet50 at 224 px takes seconds per batch of 64 on one core.
BUDGET_S = 3.0
MIN_REPEATS = 3


def static_cost(model: nn.Module, image_size: int, deployed: nn.Module | None = None) -> dict:
    """``params``, ``flops`` and ``size_bytes`` of a float ``model``; ``deployed`` (e.g. its int8
    version) is the module whose saved size counts, ``model`` itself when None."""
    macs, _ = macs_and_params(model, image_size)
    kept = sum(int(torch.count_nonzero(p.detach())) for p in model.parameters())
    return {"params": kept, "flops": 2 * int(macs), "size_bytes": serialized_size(deployed or model)}


@torch.no_grad()
def latency_ms(
    module: nn.Module, image_size: int, batch: int, repeats: int, warmup: int = WARMUP, budget_s: float | None = None
) -> float:
    """Median wall time per image (ms) of ``module`` on CPU inputs of ``batch`` images, over ``repeats``
    timed runs, or fewer (at least :data:`MIN_REPEATS`) once they took ``budget_s`` seconds."""
    module.eval()
    x = torch.randn(batch, 3, image_size, image_size, generator=torch.Generator().manual_seed(0))
    for _ in range(warmup):
        module(x)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        module(x)
        times.append(time.perf_counter() - start)
        if budget_s is not None and len(times) >= MIN_REPEATS and sum(times) > budget_s:
            break
    return 1000.0 * statistics.median(times) / batch


def measured_latency(module: nn.Module, image_size: int) -> dict:
    """``latency_ms_b1`` and ``latency_ms_b64`` of ``module`` (:data:`REPEATS`, :data:`BUDGET_S`)."""
    return {f"latency_ms_b{b}": latency_ms(module, image_size, b, n, budget_s=BUDGET_S) for b, n in REPEATS.items()}
