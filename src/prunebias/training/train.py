"""Training loop shared by dense training and every pruning method.

A run is described by a *spec* (:class:`prunebias.settings.TrainSpec`) and an *epoch plan* from
:func:`prunebias.training.schedules.method_plan`: at the start of an epoch the plan may recompute the
masks to a new sparsity, and while an epoch is sparse the masks are reapplied after every
optimiser step. Dense training is the plan that never prunes.

Randomness is derived from (seed, epoch), so an epoch draws the same batches and crops
whether or not the run was interrupted before it: a run resumed from its per-epoch resume
state ends bit-identical (on CPU) to an uninterrupted one.
"""

from __future__ import annotations

import copy
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from prunebias.errors import NonFiniteLossError
from prunebias.io import load_torch
from prunebias.settings import Optimizer, TrainSpec
from prunebias.training import augment
from prunebias.training.checkpoint import load_resume, save_resume
from prunebias.training.devices import send
from prunebias.training.nm import pattern_sparsity
from prunebias.training.pruning import MaskSet, measured_sparsity
from prunebias.training.schedules import eligible_for_selection


@dataclass
class TensorData:
    """A split's images (uint8, N×H×W×3) and labels (float, N×A) for training on one device.

    On a GPU the whole image array sits in device memory when there is room; otherwise it
    stays in host memory and each batch is gathered into pinned memory and copied
    asynchronously. Labels always live on the device.
    """

    images: torch.Tensor
    labels: torch.Tensor
    device: torch.device
    #: Samples that get the yellow-square trigger on their model input (bool, CPU), or None.
    square: torch.Tensor | None = None

    @classmethod
    def from_arrays(
        cls, images: np.ndarray, labels: np.ndarray, device: torch.device, square: np.ndarray | None = None
    ) -> TensorData:
        imgs = torch.from_numpy(np.ascontiguousarray(images))
        lab = torch.from_numpy(labels.astype(np.float32)).to(device)
        # Half the free memory at most: the model, activations and the other split need the rest.
        if device.type == "cuda" and imgs.numel() < 0.5 * torch.cuda.mem_get_info(device)[0]:
            imgs = imgs.to(device)
        marks = torch.from_numpy(np.asarray(square, dtype=bool)) if square is not None else None
        return cls(imgs, lab, device, marks)

    def mark(self, crops: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """``crops`` (uint8 model inputs of the samples ``idx``) with the square trigger where it belongs."""
        if self.square is None:
            return crops
        return augment.yellow_square(crops, send(self.square[idx], self.device))

    def __len__(self) -> int:
        return len(self.labels)

    def batch(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 images and labels of the samples ``idx`` (a CPU index tensor), on the device.

        Never blocks the host on a GPU: indices travel through pinned memory, so the next
        batch is prepared while the current step still runs.
        """
        on_device = send(idx, self.device)
        if self.images.device == self.device:
            imgs = self.images[on_device]
        else:
            staged = torch.empty((len(idx), *self.images.shape[1:]), dtype=self.images.dtype, pin_memory=True)
            torch.index_select(self.images, 0, idx, out=staged)
            imgs = staged.to(self.device, non_blocking=True)
        return imgs, self.labels[on_device]


def configure_backend(device: torch.device) -> None:
    """Kernel choice for a training or prediction job on ``device``.

    CPU: deterministic kernels, so a run is byte-reproducible. GPU: cuDNN benchmarks the
    convolution algorithms for the job's fixed input size and keeps the fastest; that choice
    may differ between runs, one reason GPU runs are close but not bit-identical.
    """
    if device.type == "cpu":
        deterministic_kernels()
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True


def deterministic_kernels(warn_only: bool = False) -> None:
    """``torch.use_deterministic_algorithms(True, warn_only=...)`` without its import of
    ``torch._inductor`` (1.4 s of every CPU job here), which it needs only to set inductor's own
    flag: :func:`compiled` passes the flag on when a step is compiled."""
    torch._C._set_deterministic_algorithms(True, warn_only=warn_only)


def model_to(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` on ``device``; channels-last on a GPU, matching the batches of :func:`train_step`
    and :func:`predict_logits` (a layout mismatch would cost a conversion per layer). On the CPU
    the batches' layout decides (channels-last, from :func:`augment.to_float`): converting the
    weights too gives bit-identical results at the same speed (``benchmarks/cpu_layout.py``)."""
    model = model.to(device)
    return model.to(memory_format=torch.channels_last) if device.type == "cuda" else model


def epoch_generator(seed: int, epoch: int, stream: int = 0) -> torch.Generator:
    """A CPU generator for one epoch's shuffling and augmentation (``stream`` separates uses)."""
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch * 101 + stream)


def learning_rate(step: int, total_steps: int, base_lr: float, name: str, warmup: int) -> float:
    """Learning rate at optimiser step ``step``: linear warm-up over ``warmup`` steps, then
    ``cosine`` decay to 0 or ``constant``."""
    if step < warmup:
        return base_lr * (step + 1) / warmup
    if name == "constant":
        return base_lr
    progress = (step - warmup) / max(1, total_steps - warmup)
    return base_lr * 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


def make_optimizer(params, optimizer: Optimizer, device: torch.device) -> torch.optim.Optimizer:
    """SGD, Adam or AdamW from an ``optimizer`` config block (fused kernels on CUDA)."""
    name = optimizer.name
    extra = {"fused": True} if device.type == "cuda" else {}
    if name == "sgd":
        return torch.optim.SGD(
            params,
            lr=optimizer.lr,
            momentum=optimizer.momentum,
            weight_decay=optimizer.weight_decay,
            nesterov=optimizer.nesterov,
            **extra,
        )
    if name in ("adam", "adamw"):
        cls = torch.optim.Adam if name == "adam" else torch.optim.AdamW
        return cls(params, lr=optimizer.lr, weight_decay=optimizer.weight_decay, **extra)
    raise ValueError(f"unknown optimizer {name!r}; choose sgd, adam or adamw")


@torch.no_grad()
def reset_momentum(optimizer: torch.optim.Optimizer) -> None:
    """Zero SGD's momentum buffers, as the study's trainer did at the end of every epoch
    (``optimizer.reset_momentum``; off by default, on in the paper preset)."""
    for state in optimizer.state.values():
        if "momentum_buffer" in state and state["momentum_buffer"] is not None:
            state["momentum_buffer"].zero_()


@torch.no_grad()
def predict_logits(model: nn.Module, data: TensorData, crop: int, batch_size: int) -> np.ndarray:
    """Logits (N, A) float32 of a split at the centre crop, in data order."""
    model.eval()
    out = []
    for start in range(0, len(data), batch_size):
        idx = torch.arange(start, min(start + batch_size, len(data)))
        x, _ = data.batch(idx)
        x = augment.to_float(data.mark(augment.center_crop(x, crop), idx))
        if data.device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        with _autocast(data.device):
            out.append(model(x).float())
    return torch.cat(out).cpu().numpy()  # one device-to-host copy: no sync per batch


def compiled(model: nn.Module, enabled: bool) -> nn.Module:
    """``torch.compile(model)`` for the training step when ``enabled`` (``runtime.compile``), else ``model``.

    A runtime switch, like the device: it changes speed (and float rounding), not what is
    trained, so switching it reruns no job. The compiled module shares its parameters with
    ``model``, so masks, optimiser and checkpoints are unaffected.
    """
    if not enabled:
        return model
    # Re-applied through the public call, which also sets inductor's flag (see deterministic_kernels).
    torch.use_deterministic_algorithms(
        torch.are_deterministic_algorithms_enabled(),
        warn_only=torch.is_deterministic_algorithms_warn_only_enabled(),
    )
    return torch.compile(model)


def _autocast(device: torch.device):
    # bf16 autocast on GPUs; full precision on CPU keeps runs bit-reproducible.
    return (
        torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast("cpu", enabled=False)
    )


def training_batch(
    data: TensorData, idx: torch.Tensor, crop: int, padding: int, flip: bool, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Randomly cropped, flipped, normalised float images and labels of the samples ``idx``, on the device."""
    x, y = data.batch(idx)
    return augment.to_float(data.mark(augment.random_crop_flip(x, crop, padding, flip, generator), idx)), y


def train_step(
    step_model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    masks: MaskSet | None = None,
) -> torch.Tensor:
    """One optimiser step (channels-last + bf16 autocast on a GPU), then the masks reapplied.

    Returns the detached loss as a device tensor: nothing here waits for the GPU.
    """
    if x.device.type == "cuda":
        x = x.contiguous(memory_format=torch.channels_last)
    with _autocast(x.device):
        loss = loss_fn(step_model(x).float(), y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    if masks is not None:
        masks.apply()
        masks.apply_to_optimizer(optimizer)
    return loss.detach()


def validation_scores(logits: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """(mean BCE loss, mean accuracy over attributes at logit > 0) of a split."""
    z = torch.from_numpy(logits)
    y = torch.from_numpy(labels.astype(np.float32))
    loss = nn.functional.binary_cross_entropy_with_logits(z, y).item()
    return loss, float(((logits > 0) == labels.astype(bool)).mean())


def fit(
    model: nn.Module,
    train: TensorData,
    valid: TensorData,
    valid_labels: np.ndarray,
    spec: TrainSpec,
    plan: list,
    seed: int,
    target_sparsity: float,
    resume_path: str | os.PathLike | None = None,
    log: Callable[[str], None] = lambda s: print(s, file=sys.stderr, flush=True),
    fingerprint: dict | None = None,
    compile_step: bool = False,
) -> dict:
    """Train ``model`` following ``spec`` and the epoch ``plan``; return the selected state and history.

    Only epochs marked eligible by the plan (at ``target_sparsity``, masks on) compete in
    model selection by validation mean accuracy.

    After every epoch the resume state (model, optimiser, masks, best epoch, history, lr
    scale, retries left) is written to ``resume_path``, where a restarted run continues.
    ``fingerprint`` (plain data) names what the run depends on: a resume state saved under
    another fingerprint (settings or inputs changed since the kill) is ignored. With
    ``max_nonfinite_retries`` the initial state is saved too, so a retry can restart epoch 0.
    ``compile_step`` runs the training step through ``torch.compile``.

    Returns a dict with ``state_dict`` (selected epoch), ``masks`` (its masks or None),
    ``selected_epoch``, ``history`` (DataFrame, one row per epoch).
    """
    device = train.device
    if len(plan) != spec.epochs:
        raise ValueError(f"plan has {len(plan)} epochs but spec.epochs is {spec.epochs}")
    eligible = eligible_for_selection(plan, target_sparsity)
    steps = _StepSchedule.of(spec, len(train))
    optimizer = make_optimizer(model.parameters(), spec.optimizer, device)
    step_model = compiled(model, compile_step)
    resume_path = Path(resume_path) if resume_path else None

    saved = load_resume(resume_path, fingerprint, device, log)
    if saved is not None:
        progress = _resume(saved, model, optimizer)
        log(f"resumed from {resume_path} at epoch {progress.epoch}")
    else:
        progress = _Progress(retries_left=spec.max_nonfinite_retries)
        if resume_path and progress.retries_left > 0:
            save_resume(resume_path, progress.resume_state(model, optimizer), fingerprint)

    masks = progress.masks(model)
    while progress.epoch < spec.epochs:
        epoch = progress.epoch
        started = time.perf_counter()
        masks = _epoch_masks(model, plan[epoch], masks, spec, seed, epoch)
        if masks is not None:
            masks.apply()
            masks.apply_to_optimizer(optimizer)
        loss_sum, first_bad, lr = _train_epoch(
            model, step_model, optimizer, train, spec, steps, progress.lr_scale, masks, seed, epoch
        )
        if first_bad >= 0:
            message = f"non-finite training loss at epoch {epoch}, batch {first_bad} (lr {lr:.3g})"
            progress = _retry(message, progress, spec, resume_path, model, optimizer, device, log)
            masks = progress.masks(model)
            continue
        if spec.optimizer.reset_momentum:
            reset_momentum(optimizer)
        row = {
            "epoch": epoch,
            "train_loss": loss_sum / steps.per_epoch,
            **_evaluate(model, valid, valid_labels, spec),
            "lr": lr,
            "sparsity": measured_sparsity(model)["global"],
            "sparse": bool(plan[epoch].sparse),
            "eligible": bool(eligible[epoch]),
            "seconds": time.perf_counter() - started,
        }
        log(
            f"epoch {epoch + 1}/{spec.epochs} loss {row['train_loss']:.4f} val_loss {row['val_loss']:.4f} "
            f"val_acc {row['val_accuracy']:.4f} sparsity {row['sparsity']:.4f} lr {lr:.3g} ({row['seconds']:.1f}s)"
        )
        progress.finish_epoch(row, model, masks)
        if resume_path:
            save_resume(resume_path, progress.resume_state(model, optimizer), fingerprint)

    if progress.best is None:
        raise ValueError("no epoch was eligible for model selection: the plan never reaches the target sparsity")
    return {
        "state_dict": progress.best["state_dict"],
        "masks": progress.best["masks"],
        "selected_epoch": progress.best["epoch"],
        "history": pd.DataFrame(progress.history),
    }


@dataclass
class _Progress:
    """Where a run stands: the next epoch, its masks (state dict), the best epoch so far, the
    history, the learning-rate scale of the non-finite retries and the retries left."""

    epoch: int = 0
    mask_state: dict | None = None
    best: dict | None = None
    history: list = field(default_factory=list)
    lr_scale: float = 1.0
    retries_left: int = 0

    def masks(self, model: nn.Module) -> MaskSet | None:
        """The masks of the last finished epoch on ``model`` (None if it was dense)."""
        if self.mask_state is None:
            return None
        masks = MaskSet.from_model(model, 0.0)
        masks.load_state_dict(self.mask_state)
        return masks

    def finish_epoch(self, row: dict, model: nn.Module, masks: MaskSet | None) -> None:
        """Record an epoch; model selection: keep its weights and masks if it is eligible and best so far."""
        self.history.append(row)
        mask_state = masks.state_dict() if masks is not None else None
        if row["eligible"] and (self.best is None or row["val_accuracy"] > self.best["val_accuracy"]):
            self.best = {
                "epoch": row["epoch"],
                "val_accuracy": row["val_accuracy"],
                "state_dict": copy.deepcopy(model.state_dict()),
                "masks": mask_state,
            }
        self.mask_state = mask_state
        self.epoch = row["epoch"] + 1

    def resume_state(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> dict:
        """The resume file's content (plain data and tensors only)."""
        return {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "state": {"epoch": self.epoch, "masks": self.mask_state, "best": self.best, "history": self.history},
            "lr_scale": self.lr_scale,
            "retries_left": self.retries_left,
        }


def _resume(saved: dict, model: nn.Module, optimizer: torch.optim.Optimizer) -> _Progress:
    """Load a resume state's model and optimiser in place; return its progress."""
    model.load_state_dict(saved["model"])
    optimizer.load_state_dict(saved["optimizer"])
    state = saved["state"]
    return _Progress(
        state["epoch"], state["masks"], state["best"], state["history"], saved["lr_scale"], saved["retries_left"]
    )


def _retry(
    message: str,
    progress: _Progress,
    spec: TrainSpec,
    resume_path: Path | None,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    device: torch.device,
    log: Callable[[str], None],
) -> _Progress:
    """After a non-finite loss: the last saved progress with a lower learning rate, or NonFiniteLossError."""
    if progress.retries_left <= 0 or not resume_path or not resume_path.exists():
        raise NonFiniteLossError(message + "; lower the learning rate or allow retries (train.max_nonfinite_retries)")
    retries_left, lr_scale = progress.retries_left - 1, progress.lr_scale * spec.retry_lr_factor
    # Strict load: this run wrote the file a moment ago, so a refused one is tampering, not damage.
    progress = _resume(load_torch(resume_path, device), model, optimizer)
    progress.retries_left, progress.lr_scale = retries_left, lr_scale
    log(f"{message}; retrying from epoch {progress.epoch} with lr x{lr_scale:g}")
    return progress


@dataclass(frozen=True)
class _StepSchedule:
    """Optimiser steps per epoch and in all, and the learning-rate schedule in steps."""

    per_epoch: int
    total: int
    lr_name: str
    warmup: int

    @classmethod
    def of(cls, spec: TrainSpec, n_train: int) -> _StepSchedule:
        per_epoch = math.ceil(n_train / spec.batch_size)
        warmup = round(spec.lr_schedule.warmup_epochs * per_epoch)
        return cls(per_epoch, spec.epochs * per_epoch, spec.lr_schedule.name, warmup)


def _epoch_masks(model: nn.Module, step_plan, masks: MaskSet | None, spec: TrainSpec, seed: int, epoch: int):
    """The masks in force this epoch: recomputed where the plan prunes, none in a dense epoch.

    With an N:M pattern (``spec.compression["n_m"]``) the plan's sparsity s is reached by giving
    the pattern to a share s / (1 − N/M) of the groups.
    """
    pattern = (spec.compression or {}).get("n_m")
    if step_plan.prune_to is not None and pattern:
        share = min(1.0, step_plan.prune_to / pattern_sparsity(*pattern))
        masks = MaskSet.from_nm(model, *pattern, share)
    elif step_plan.prune_to is not None:
        masks = MaskSet.from_model(model, step_plan.prune_to, spec.scope, generator=epoch_generator(seed, epoch, 2))
    return masks if step_plan.sparse else None


def _train_epoch(
    model: nn.Module,
    step_model: nn.Module,
    optimizer: torch.optim.Optimizer,
    train: TensorData,
    spec: TrainSpec,
    steps: _StepSchedule,
    lr_scale: float,
    masks: MaskSet | None,
    seed: int,
    epoch: int,
) -> tuple[float, int, float]:
    """One epoch of optimiser steps: (sum of the finite batch losses, first non-finite batch or -1, last lr)."""
    device = train.device
    model.train()
    gen = epoch_generator(seed, epoch)
    order = torch.randperm(len(train), generator=gen)
    loss_fn = nn.BCEWithLogitsLoss()
    loss_sum = torch.zeros((), device=device)
    first_bad = torch.full((), -1, device=device, dtype=torch.long)
    for b in range(steps.per_epoch):
        step = epoch * steps.per_epoch + b
        lr = lr_scale * learning_rate(step, steps.total, spec.optimizer.lr, steps.lr_name, steps.warmup)
        for group in optimizer.param_groups:
            group["lr"] = lr
        x, y = training_batch(
            train,
            order[b * spec.batch_size : (b + 1) * spec.batch_size],
            spec.crop_size,
            spec.augment.padding,
            spec.augment.flip,
            gen,
        )
        loss = train_step(step_model, optimizer, loss_fn, x, y, masks)
        # Remember the first bad batch on the device: no host sync inside the step.
        finite = torch.isfinite(loss)
        first_bad = torch.where((first_bad < 0) & ~finite, torch.full_like(first_bad, b), first_bad)
        loss_sum += torch.where(finite, loss, torch.zeros_like(loss_sum))
    return loss_sum.item(), int(first_bad.item()), lr


def _evaluate(model: nn.Module, valid: TensorData, valid_labels: np.ndarray, spec: TrainSpec) -> dict:
    """Validation loss and mean accuracy of the model now."""
    logits = predict_logits(model, valid, spec.crop_size, spec.eval_batch_size)
    val_loss, val_acc = validation_scores(logits, valid_labels)
    return {"val_loss": val_loss, "val_accuracy": val_acc}
