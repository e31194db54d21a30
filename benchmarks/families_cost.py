"""CPU cost of each compression family on one architecture, with the project's own code paths.

Builds ``--arch`` at ``--size`` px (random weights: cost does not depend on what was learned)
and measures, with :mod:`prunebias.training.cost` (the functions predict uses), the dense
model, 90 % unstructured magnitude masks, 2:4 N:M masks, channel pruning removing 50 % of
the FLOPs (L1, torch-pruning), and int8 static quantization (FX graph mode, calibrated on 64
random images): parameters kept, FLOPs, bytes of the saved weights, latency per image at
batch 1 and 64 (median of repeats), each also as a ratio to dense. One JSON line per family.

    .venv/bin/python benchmarks/families_cost.py                          # resnet18 at 224 px, 1 thread
    .venv/bin/python benchmarks/families_cost.py --arch small_cnn --size 32
"""

from __future__ import annotations

import argparse
import copy
import json
import platform

import torch

from prunebias.training import channels, cost
from prunebias.training.models import build_model
from prunebias.training.pruning import MaskSet
from prunebias.training.quantize import quantize_int8


def families(model: torch.nn.Module, size: int) -> dict[str, tuple[torch.nn.Module, torch.nn.Module]]:
    """family -> (float model for params/FLOPs, deployed module for size and latency)."""
    unstructured = copy.deepcopy(model)
    MaskSet.from_model(unstructured, 0.9).apply()
    nm = copy.deepcopy(model)
    MaskSet.from_nm(nm, 2, 4).apply()
    pruned = copy.deepcopy(model)
    # BatchNorm scales as a trained model has them, so the ranking is not all ties
    for m in pruned.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.weight.data.uniform_(0.1, 1.0, generator=torch.Generator().manual_seed(0))
    channels.prune_channels(pruned, size, 0.5, "l1")
    calibration = [torch.randn(32, 3, size, size, generator=torch.Generator().manual_seed(i)) for i in range(2)]
    int8, _ = quantize_int8(model, calibration)
    return {
        "dense": (model, model),
        "unstructured 90%": (unstructured, unstructured),
        "N:M 2:4": (nm, nm),
        "channels -50% FLOPs": (pruned, pruned),
        "int8": (model, int8),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="resnet18")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = build_model(args.arch, 40, args.size).eval()
    rows = {}
    for name, (float_model, deployed) in families(model, args.size).items():
        rows[name] = cost.static_cost(float_model, args.size, deployed) | cost.measured_latency(deployed, args.size)
    dense = rows["dense"]
    machine = {"cpu": platform.processor() or platform.machine(), "threads": args.threads, "torch": torch.__version__}
    for name, row in rows.items():
        ratios = {f"{k}_vs_dense": round(v / dense[k], 3) for k, v in row.items()}
        print(json.dumps({"arch": args.arch, "size": args.size, "family": name, **row, **ratios, **machine}))


if __name__ == "__main__":
    main()
