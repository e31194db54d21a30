"""The default run's training epoch on the CPU in the workflow's memory layout and in the others.

The default run's time is mostly small_cnn's CPU convolutions (README, "Timings"). The workflow
stores images as N×H×W×3, and ``augment.to_float`` only permutes them, so every batch reaches the
model channels-last; oneDNN then runs every convolution (and BatchNorm) channels-last although the
weights are in PyTorch's default layout. This measures that layout against the model converted to
channels-last as well (what the GPU path does) and against batches forced contiguous (N×3×H×W in
memory): one thread (as in a workflow job), small_cnn with the dense recipe of ``config.yaml``
(its batch, crop, augmentation and optimiser, its data set's training-split size and resolution;
the batches and training step of ``prunebias.training.train``), the same initial weights and
batches for every layout, timed epochs after a warm-up one; then whether each layout's weights
equal the workflow's.

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
from prunebias.training.models import build_model
from prunebias.training.train import TensorData, deterministic_kernels, make_optimizer, train_step, training_batch

REPO = Path(__file__).resolve().parents[1]
#: (model weights, batches): None keeps what the workflow has (weights as built, batches as ``to_float`` makes them).
LAYOUTS = {
    "the workflow's": (None, None),
    "model channels-last too": (torch.channels_last, None),
    "batches contiguous": (None, torch.contiguous_format),
}


def default_recipe() -> tuple[TrainSpec, dict]:
    """The dense training spec of ``config.yaml`` (schema defaults filled in, crop resolved as a job
    resolves it) and the settings of the grid's first data set."""
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    validate(config, str(REPO / "workflow/schemas/config.schema.yaml"))
    data = config["datasets"][config["grid"]["datasets"][0]]
    spec = train_spec(config, "dense")
    return TrainSpec.from_json({**spec, "crop_size": spec["crop_size"] or data["resolution"]}), data


def epochs(
    layout: tuple[torch.memory_format | None, torch.memory_format | None],
    spec: TrainSpec,
    data: TensorData,
    n_epochs: int,
):
    """(seconds per timed epoch, final weights) of small_cnn trained from seed 0 in ``layout``
    (the weights' and the batches' memory format, None: as in the workflow)."""
    model_format, batch_format = layout
    torch.manual_seed(0)
    model = build_model("small_cnn", data.labels.shape[1], spec.crop_size)
    if model_format is not None:
        model = model.to(memory_format=model_format)
    optimizer = make_optimizer(model.parameters(), spec.optimizer, data.device)
    loss_fn = nn.BCEWithLogitsLoss()
    model.train()
    timed = []
    for epoch in range(1 + n_epochs):  # the first epoch warms up
        gen = torch.Generator().manual_seed(epoch)
        start = time.perf_counter()
        for idx in torch.randperm(len(data), generator=gen).split(spec.batch_size):
            x, y = training_batch(data, idx, spec.crop_size, spec.augment.padding, spec.augment.flip, gen)
            if batch_format is not None:
                x = x.contiguous(memory_format=batch_format)
            train_step(model, optimizer, loss_fn, x, y)
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
    train = TensorData.from_arrays(images.numpy(), labels.numpy(), torch.device("cpu"))
    results = {name: epochs(layout, spec, train, args.epochs) for name, layout in LAYOUTS.items()}
    (base, weights), *_ = results.values()
    for name, (seconds, w) in results.items():
        apart = (
            "bit-identical" if torch.equal(w, weights) else f"max |difference| {float((w - weights).abs().max()):.3g}"
        )
        print(
            f"{name:24s} {seconds:.2f} s per epoch ({seconds / base:.2f}x); weights after {1 + args.epochs} epochs: {apart}"
        )


if __name__ == "__main__":
    main()
