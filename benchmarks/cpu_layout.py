"""The default run's training epoch on the CPU in PyTorch's default layout against channels-last.

The default run's time is mostly small_cnn's CPU convolutions (README, "Timings"). Channels-last
tensors let oneDNN skip its layout reorders, but change the rounding of every step, so a switch
would change every trained number the README reports. This measures what it would buy: one
thread (as in a workflow job), small_cnn with the dense recipe of ``config.yaml`` (its batch,
crop, augmentation and optimiser, its data set's training-split size and resolution; the
training step of ``prunebias.training.train``), the same initial weights and batches for both
layouts, timed epochs after a warm-up one; then how far the two layouts' weights are apart.

    .venv/bin/python benchmarks/cpu_layout.py [--epochs 2]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import yaml
from snakemake.utils import validate
from torch import nn

from prunebias.config import train_spec
from prunebias.data.synthetic import ATTRIBUTES
from prunebias.settings import TrainSpec
from prunebias.training import augment
from prunebias.training.models import build_model
from prunebias.training.train import deterministic_kernels, make_optimizer, train_step

REPO = Path(__file__).resolve().parents[1]
LAYOUTS = {"contiguous (default)": torch.contiguous_format, "channels-last": torch.channels_last}


def default_recipe() -> tuple[TrainSpec, dict]:
    """The dense training spec of ``config.yaml`` (schema defaults filled in, crop resolved as a job
    resolves it) and the settings of the grid's first data set."""
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    validate(config, str(REPO / "workflow/schemas/config.schema.yaml"))
    data = config["datasets"][config["grid"]["datasets"][0]]
    spec = train_spec(config, "dense")
    return TrainSpec.from_json({**spec, "crop_size": spec["crop_size"] or data["resolution"]}), data


def epochs(layout: torch.memory_format, spec: TrainSpec, images: torch.Tensor, labels: torch.Tensor, n_epochs: int):
    """(seconds per timed epoch, final weights) of small_cnn trained from seed 0 in ``layout``."""
    torch.manual_seed(0)
    model = build_model("small_cnn", labels.shape[1], spec.crop_size).to(memory_format=layout)
    optimizer = make_optimizer(model.parameters(), spec.optimizer, images.device)
    loss_fn = nn.BCEWithLogitsLoss()
    model.train()
    timed = []
    for epoch in range(1 + n_epochs):  # the first epoch warms up
        gen = torch.Generator().manual_seed(epoch)
        start = time.perf_counter()
        for idx in torch.randperm(len(images), generator=gen).split(spec.batch_size):
            crops = augment.random_crop_flip(images[idx], spec.crop_size, spec.augment.padding, spec.augment.flip, gen)
            x = augment.to_float(crops)
            train_step(model, optimizer, loss_fn, x.contiguous(memory_format=layout), labels[idx])
        if epoch:
            timed.append(time.perf_counter() - start)
    return sum(timed) / len(timed), torch.cat([p.detach().flatten() for p in model.parameters()])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs per layout")
    args = parser.parse_args()
    torch.set_num_threads(1)
    deterministic_kernels()
    spec, data = default_recipe()
    n, size = data["sizes"]["train"], data["resolution"]
    gen = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, (n, size, size, 3), dtype=torch.uint8, generator=gen)
    labels = torch.rand(n, len(ATTRIBUTES), generator=gen).round()
    results = {name: epochs(layout, spec, images, labels, args.epochs) for name, layout in LAYOUTS.items()}
    for name, (seconds, _) in results.items():
        print(f"{name:22s} {seconds:.2f} s per epoch")
    (base, w0), (other, w1) = results.values()
    print(f"channels-last / default: {other / base:.2f}; weights after {1 + args.epochs} epochs: ", end="")
    print(f"max |difference| {float((w1 - w0).abs().max()):.3g} (bit-identical: {torch.equal(w0, w1)})")


if __name__ == "__main__":
    main()
