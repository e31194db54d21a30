"""The default run's training epoch on the CPU in PyTorch's default layout against channels-last.

The default run's time is mostly small_cnn's CPU convolutions (README, "Timings"). Channels-last
tensors let oneDNN skip its layout reorders, but change the rounding of every step, so a switch
would change every trained number the README reports. This measures what it would buy: one
thread (as in a workflow job), the default recipe's batch (64 of 32 px, AdamW, the training
step of ``prunebias.training.train``), the same initial weights and batches for both layouts,
timed epochs after a warm-up one; then how far the two layouts' weights are apart after them.

    .venv/bin/python benchmarks/cpu_layout.py [--images 3000] [--epochs 2]
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from prunebias.settings import Optimizer
from prunebias.training import augment
from prunebias.training.models import build_model
from prunebias.training.train import deterministic_kernels, make_optimizer, train_step

#: The default recipe's optimiser (config.yaml, train.optimizer).
ADAMW = Optimizer(name="adamw", lr=0.003, momentum=0.0, weight_decay=0.01, nesterov=False, reset_momentum=False)
LAYOUTS = {"contiguous (default)": torch.contiguous_format, "channels-last": torch.channels_last}


def epochs(layout: torch.memory_format, images: torch.Tensor, labels: torch.Tensor, n_epochs: int):
    """(seconds per timed epoch, final weights) of small_cnn trained from seed 0 in ``layout``."""
    torch.manual_seed(0)
    model = build_model("small_cnn", labels.shape[1], images.shape[1]).to(memory_format=layout)
    optimizer = make_optimizer(model.parameters(), ADAMW, images.device)
    loss_fn = nn.BCEWithLogitsLoss()
    model.train()
    timed = []
    for epoch in range(1 + n_epochs):  # the first epoch warms up
        gen = torch.Generator().manual_seed(epoch)
        start = time.perf_counter()
        for idx in torch.randperm(len(images), generator=gen).split(64):
            x = augment.to_float(augment.random_crop_flip(images[idx], 32, 2, True, gen))
            train_step(model, optimizer, loss_fn, x.contiguous(memory_format=layout), labels[idx])
        if epoch:
            timed.append(time.perf_counter() - start)
    return sum(timed) / len(timed), torch.cat([p.detach().flatten() for p in model.parameters()])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--images", type=int, default=3000, help="training images per epoch (default: the default run's)"
    )
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs per layout")
    args = parser.parse_args()
    torch.set_num_threads(1)
    deterministic_kernels()
    gen = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, (args.images, 32, 32, 3), dtype=torch.uint8, generator=gen)
    labels = torch.rand(args.images, 40, generator=gen).round()
    results = {name: epochs(layout, images, labels, args.epochs) for name, layout in LAYOUTS.items()}
    for name, (seconds, _) in results.items():
        print(f"{name:22s} {seconds:.2f} s per epoch")
    (base, w0), (other, w1) = results.values()
    print(f"channels-last / default: {other / base:.2f}; weights after {1 + args.epochs} epochs: ", end="")
    print(f"max |difference| {float((w1 - w0).abs().max()):.3g} (bit-identical: {torch.equal(w0, w1)})")


if __name__ == "__main__":
    main()
