"""Training / inference throughput of ResNet18 (or --arch) on CelebA-sized images: this project's data path vs the usual one.

(a) project: the prepared uint8 array held as a tensor on the device (``TensorData``),
    batched random crop + flip and normalisation on the device (``train.training_batch``),
    then ``train.train_step``, the step of ``fit`` (bf16 autocast + channels_last on CUDA,
    fused SGD from ``make_optimizer``; ``--compile`` as ``runtime.compile``).
(b) baseline, measured in the same run: CelebA-format JPEGs (official 178 x 218, written by
    ``write_mini_celeba``) decoded per sample with PIL and torchvision transforms (Resize to
    the stored size, RandomCrop, RandomHorizontalFlip, ToTensor, Normalize) through
    ``DataLoader(num_workers=--workers, shuffle)``, then the same ``train_step``.

Both store/resize to ``size * 8 / 7`` (256 for 224, as SPEC's "resize 256, crop 224") and
train on ``size`` crops. Also reported: the data-path share of the step for (a) at the
smallest size, ``prunebias.data.celeba.prepare`` time per 1,000 images (at the stored size,
from the 178 x 218 JPEGs, upscaling for 256 as the paper preset does), and inference
throughput (eval mode, centre crop, ``predict_logits``). Warm-up steps are excluded.

    .venv/bin/python benchmarks/bench_train.py                                   # CPU defaults, < 5 min
    .venv/bin/python benchmarks/bench_train.py --device cuda --steps 200 --batch-size 256
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from prunebias.data import celeba
from prunebias.data.celeba_format import write_mini_celeba
from prunebias.settings import Optimizer
from prunebias.training.models import build_model
from prunebias.training.train import (
    TensorData,
    compiled,
    configure_backend,
    make_optimizer,
    model_to,
    predict_logits,
    train_step,
    training_batch,
)

CELEBA_TRAIN = 162_770
N_ATTR = 40
OFFICIAL_SIZE = (178, 218)  # (width, height) of img_align_celeba
# The study's recipe (SPEC.md), with the momentum reset of its trainer.
SGD = Optimizer("sgd", lr=0.256, momentum=0.875, weight_decay=3.0517578e-5, nesterov=False, reset_momentum=True)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument(
        "--arch", default="resnet18", help="model (prunebias.training.models name); the targets are for resnet18"
    )
    p.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 224], help="training crop sizes (px)")
    p.add_argument("--steps", type=int, help="timed steps per measurement (default 5 on CPU, 50 on CUDA)")
    p.add_argument("--warmup", type=int, help="untimed steps first (default 2 on CPU, 10 on CUDA)")
    p.add_argument("--batch-size", type=int, help="training batch (default 32 on CPU, 256 on CUDA)")
    p.add_argument("--eval-batch-size", type=int, help="inference batch (default 2 x batch size on CPU, 4 x on CUDA)")
    p.add_argument("--images", type=int, help="JPEGs generated for the baseline (default 256 on CPU, 4096 on CUDA)")
    p.add_argument("--workers", type=int, default=4, help="baseline DataLoader num_workers")
    p.add_argument("--prepare-workers", type=int, default=os.cpu_count() or 1, help="celeba.prepare processes")
    p.add_argument(
        "--compile", action="store_true", help="torch.compile the training step of both paths (runtime.compile)"
    )
    p.add_argument("--out", type=Path, help="write the results as JSON here")
    args = p.parse_args()
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: no CUDA device is available")
    gpu = args.device == "cuda"
    args.steps = args.steps or (50 if gpu else 5)
    args.warmup = args.warmup if args.warmup is not None else (10 if gpu else 2)
    args.batch_size = args.batch_size or (256 if gpu else 32)
    args.eval_batch_size = args.eval_batch_size or (4 if gpu else 2) * args.batch_size
    args.images = args.images or (4096 if gpu else 256)
    return args


def stored_size(size: int) -> int:
    """Side of the prepared square that ``size`` crops are taken from (256 for 224)."""
    return round(size * 8 / 7)


class Timer:
    """Wall time of a block, synchronising the GPU on both sides."""

    def __init__(self, device: torch.device):
        self.device, self.seconds = device, 0.0

    def __enter__(self):
        self._sync()
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self._sync()
        self.seconds += time.perf_counter() - self._start

    def _sync(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)


def make_model(arch: str, size: int, device: torch.device) -> nn.Module:
    torch.manual_seed(0)
    return model_to(build_model(arch, N_ATTR, size), device).train()  # as prunebias.jobs.train


def project_batch(data: TensorData, size: int, batch: int, gen: torch.Generator):
    """One batch of fit()'s data path: index the resident array, crop/flip, normalise."""
    return training_batch(data, torch.randint(0, len(data), (batch,), generator=gen), size, 0, True, gen)


def bench_project(data: TensorData, size: int, args, device) -> dict:
    model = make_model(args.arch, size, device)
    step_model = compiled(model, args.compile)
    optimizer = make_optimizer(model.parameters(), SGD, device)
    loss_fn = nn.BCEWithLogitsLoss()
    gen = torch.Generator().manual_seed(0)
    for _ in range(args.warmup):
        train_step(step_model, optimizer, loss_fn, *project_batch(data, size, args.batch_size, gen))
    with Timer(device) as full:
        for _ in range(args.steps):
            train_step(step_model, optimizer, loss_fn, *project_batch(data, size, args.batch_size, gen))
    with Timer(device) as fetch:  # the data path alone, same batches' worth of work
        for _ in range(args.steps):
            project_batch(data, size, args.batch_size, gen)
    ips = args.steps * args.batch_size / full.seconds
    return {"images_per_s": ips, "data_share": fetch.seconds / full.seconds, "model": model}


class JpegDataset(torch.utils.data.Dataset):
    """Per-sample PIL decode + torchvision transforms: the usual CelebA loader."""

    def __init__(self, paths: list[str], labels: np.ndarray, transform):
        self.paths, self.labels, self.transform = paths, torch.from_numpy(labels.astype(np.float32)), transform

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        from PIL import Image

        with Image.open(self.paths[i]) as img:
            return self.transform(img.convert("RGB")), self.labels[i]


def bench_baseline(paths, labels, size: int, args, device) -> float:
    from torchvision import transforms as T

    transform = T.Compose(
        [
            T.Resize(stored_size(size)),
            T.RandomCrop(size),
            T.RandomHorizontalFlip(),
            T.ToTensor(),
            T.Normalize([0.5] * 3, [0.5] * 3),
        ]
    )
    # Exactly the timed batches: the loader must not decode extra batches (prefetch) in the
    # timed window, nor hand over batches decoded before it, which would hide its cost.
    sampler = torch.utils.data.RandomSampler(  # shuffled; with replacement so any --images suffices
        range(len(paths)),
        replacement=True,
        num_samples=args.steps * args.batch_size,
        generator=torch.Generator().manual_seed(0),
    )
    loader = torch.utils.data.DataLoader(
        JpegDataset(paths, labels, transform),
        batch_size=args.batch_size,
        sampler=sampler,
        num_workers=args.workers,
        pin_memory=device.type == "cuda",
        drop_last=True,
    )
    model = make_model(args.arch, size, device)
    step_model = compiled(model, args.compile)
    optimizer = make_optimizer(model.parameters(), SGD, device)
    loss_fn = nn.BCEWithLogitsLoss()
    gen = torch.Generator().manual_seed(0)
    for _ in range(args.warmup):  # warm the model up on random batches, outside the loader
        x = torch.rand(args.batch_size, 3, size, size, generator=gen).to(device)
        train_step(step_model, optimizer, loss_fn, x, torch.zeros(args.batch_size, N_ATTR, device=device))
    # Timed from the workers' start (fork: a small, once-per-epoch cost) to the last step:
    # every wait for a batch counts, it is this data path's cost.
    with Timer(device) as timer:
        for x, y in loader:
            train_step(step_model, optimizer, loss_fn, x.to(device, non_blocking=True), y.to(device, non_blocking=True))
    return args.steps * args.batch_size / timer.seconds


def bench_inference(model: nn.Module, data: TensorData, size: int, args, device) -> float:
    n = args.eval_batch_size * (2 if device.type == "cpu" else 10)  # timed images
    sub = TensorData(data.images[:n], data.labels[:n], device)
    predict_logits(
        model,
        TensorData(sub.images[: args.eval_batch_size], sub.labels[: args.eval_batch_size], device),
        size,
        args.eval_batch_size,
    )  # warm-up
    with Timer(device) as t:
        predict_logits(model, sub, size, args.eval_batch_size)
    return len(sub) / t.seconds


def bench_prepare(root: Path, resolution: int, workers: int, work: Path) -> float:
    """Seconds per 1,000 images of celeba.prepare (decode, resize, crop, write the array)."""
    import contextlib
    import io

    with contextlib.redirect_stderr(io.StringIO()):  # its progress lines
        start = time.perf_counter()
        # allow_upscale: 256 px from CelebA's 178 px side, as presets/celeba_paper.yaml does.
        index = celeba.prepare(root, work / f"images{resolution}.npy", resolution, workers=workers, allow_upscale=True)
        seconds = time.perf_counter() - start
    (work / f"images{resolution}.npy").unlink()
    return 1000 * seconds / len(index)


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> None:
    args = parse_args()
    device = torch.device(args.device)
    configure_backend(device)  # as a training job: cuDNN autotuning on GPU
    header = {
        "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "load_avg": os.getloadavg(),
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
    }
    for k, v in header.items():
        print(f"{k:>14}: {v}", flush=True)

    results = {"header": header, "sizes": {}}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        root = write_mini_celeba(tmp / "celeba", n=args.images, size=OFFICIAL_SIZE, seed=0)
        print(f"wrote {args.images} CelebA-format JPEGs {OFFICIAL_SIZE} in {time.perf_counter() - t0:.1f}s", flush=True)
        attrs = celeba.read_attributes(root / celeba.ATTR_FILE)
        paths = [str(root / celeba.IMAGE_DIR / i) for i in attrs["id"]]
        labels = attrs.drop(columns="id").to_numpy()

        # Prepare at the stored size (size * 8 / 7, 256 for 224) from the official-size JPEGs.
        prep = {}
        for size in args.sizes:
            prep[size] = bench_prepare(root, stored_size(size), args.prepare_workers, tmp)
            print(f"prepare {stored_size(size)} px: {prep[size]:.2f} s / 1,000 images", flush=True)

        rng = np.random.default_rng(0)
        for size in args.sizes:
            side = stored_size(size)
            n = max(args.images, args.eval_batch_size * 10 if device.type == "cuda" else args.eval_batch_size * 2)
            images = rng.integers(0, 256, (n, side, side, 3), dtype=np.uint8)  # content does not change timings
            data = TensorData.from_arrays(images, rng.random((n, N_ATTR)) < 0.5, device)
            proj = bench_project(data, size, args, device)
            infer = bench_inference(proj.pop("model"), data, size, args, device)
            del data
            base = bench_baseline(paths, labels, size, args, device)
            row = {
                "project_images_per_s": proj["images_per_s"],
                "baseline_images_per_s": base,
                "ratio": proj["images_per_s"] / base,
                "project_epoch_s": CELEBA_TRAIN / proj["images_per_s"],
                "baseline_epoch_s": CELEBA_TRAIN / base,
                "project_data_share": proj["data_share"],
                "inference_images_per_s": infer,
                "prepare_s_per_1000": prep[size],
                "stored_px": side,
            }
            results["sizes"][size] = row
            print(f"size {size}: " + ", ".join(f"{k} {v:.3g}" for k, v in row.items()), flush=True)

    print(f"\n{args.arch}, 40 outputs, batch", args.batch_size, "on", header["gpu"] or header["cpu"])
    cols = [
        "px",
        "proj img/s",
        "base img/s",
        "ratio",
        "proj epoch",
        "base epoch",
        "data share",
        "infer img/s",
        "prep s/1k",
    ]
    print(" | ".join(f"{c:>11}" for c in cols))
    for size, r in results["sizes"].items():
        vals = [
            size,
            r["project_images_per_s"],
            r["baseline_images_per_s"],
            r["ratio"],
            f"{r['project_epoch_s'] / 60:.1f} min",
            f"{r['baseline_epoch_s'] / 60:.1f} min",
            f"{100 * r['project_data_share']:.1f}%",
            r["inference_images_per_s"],
            r["prepare_s_per_1000"],
        ]
        print(" | ".join(f"{v:>11.4g}" if isinstance(v, float) else f"{v!s:>11}" for v in vals))
    smallest = min(results["sizes"])
    print(
        f"data path share of the step at {smallest} px (project): {100 * results['sizes'][smallest]['project_data_share']:.1f}%"
    )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
