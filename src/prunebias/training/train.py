"""Training loop shared by dense training and every pruning method.

A run is described by a *spec* (plain dict, from the config) and an *epoch plan* from
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
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from prunebias.errors import NonFiniteLossError
from prunebias.io import RefusedFileError, load_torch, save_torch
from prunebias.tasks import square_side, task_attributes
from prunebias.training import augment
from prunebias.training.devices import send
from prunebias.training.pruning import MaskSet, measured_sparsity
from prunebias.training.schedules import eligible_for_selection

CHECKPOINT_FORMAT = 1


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
        side = square_side(crops.shape[1], crops.shape[2])
        return augment.yellow_square(crops, send(self.square[idx], self.device), side)

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
        torch.use_deterministic_algorithms(True)
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True


def model_to(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` on ``device``; channels-last on a GPU, matching the batches of :func:`train_step`
    and :func:`predict_logits` (a layout mismatch would cost a conversion per layer)."""
    model = model.to(device)
    return model.to(memory_format=torch.channels_last) if device.type == "cuda" else model


def _restore_masks(model: nn.Module, saved: dict | None) -> MaskSet | None:
    if saved is None:
        return None
    masks = MaskSet.from_model(model, 0.0)
    masks.load_state_dict(saved)
    return masks


def epoch_generator(seed: int, epoch: int, stream: int = 0) -> torch.Generator:
    """A CPU generator for one epoch's shuffling and augmentation (``stream`` separates uses)."""
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch * 101 + stream)


def learning_rate(step: int, total_steps: int, base_lr: float, schedule: dict) -> float:
    """Learning rate at optimiser step ``step``: linear warm-up, then cosine to 0 or constant."""
    warmup = int(schedule.get("warmup_steps", 0))
    if step < warmup:
        return base_lr * (step + 1) / warmup
    if schedule.get("name", "cosine") == "constant":
        return base_lr
    progress = (step - warmup) / max(1, total_steps - warmup)
    return base_lr * 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


def make_optimizer(params, cfg: dict, device: torch.device) -> torch.optim.Optimizer:
    """SGD, Adam or AdamW from an ``optimizer`` config block (fused kernels on CUDA)."""
    name = cfg["name"]
    extra = {"fused": True} if device.type == "cuda" else {}
    if name == "sgd":
        return torch.optim.SGD(
            params,
            lr=cfg["lr"],
            momentum=cfg.get("momentum", 0.0),
            weight_decay=cfg.get("weight_decay", 0.0),
            nesterov=cfg.get("nesterov", False),
            **extra,
        )
    if name in ("adam", "adamw"):
        cls = torch.optim.Adam if name == "adam" else torch.optim.AdamW
        return cls(params, lr=cfg["lr"], weight_decay=cfg.get("weight_decay", 0.0), **extra)
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
    return torch.compile(model) if enabled else model


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
    spec: dict,
    plan: list,
    seed: int,
    resume_path: str | os.PathLike | None = None,
    log: Callable[[str], None] = lambda s: print(s, file=sys.stderr, flush=True),
    fingerprint: dict | None = None,
    compile_step: bool = False,
) -> dict:
    """Train ``model`` following ``spec`` and the epoch ``plan``; return the selected state and history.

    ``spec`` keys: epochs, batch_size, eval_batch_size, crop_size, optimizer, lr_schedule,
    augment {padding, flip}, target_sparsity, scope, max_nonfinite_retries, retry_lr_factor.
    Only epochs marked eligible by the plan (at the final sparsity, masks on) compete in
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
    epochs = spec["epochs"]
    if len(plan) != epochs:
        raise ValueError(f"plan has {len(plan)} epochs but spec.epochs is {epochs}")
    eligible = eligible_for_selection(plan, spec["target_sparsity"])
    steps = _StepSchedule.of(spec, len(train))
    optimizer = make_optimizer(model.parameters(), spec["optimizer"], device)
    step_model = compiled(model, compile_step)
    lr_scale = 1.0
    retries_left = spec.get("max_nonfinite_retries", 0)

    state = {"epoch": 0, "masks": None, "best": None, "history": []}
    resume_path = Path(resume_path) if resume_path else None
    saved = _load_resume(resume_path, fingerprint, device, log)
    if saved is not None:
        state = _restore(saved, model, optimizer)
        lr_scale, retries_left = saved["lr_scale"], saved["retries_left"]
        log(f"resumed from {resume_path} at epoch {state['epoch']}")
    elif resume_path and retries_left > 0:
        _save_resume(resume_path, model, optimizer, state, lr_scale, retries_left, fingerprint)

    masks = _restore_masks(model, state["masks"])
    while state["epoch"] < epochs:
        epoch = state["epoch"]
        started = time.perf_counter()
        masks = _epoch_masks(model, plan[epoch], masks, spec.get("scope", "global"), seed, epoch)
        if masks is not None:
            masks.apply()
            masks.apply_to_optimizer(optimizer)
        loss_sum, first_bad, lr = _train_epoch(
            model, step_model, optimizer, train, spec, steps, lr_scale, masks, seed, epoch
        )
        if first_bad >= 0:
            message = f"non-finite training loss at epoch {epoch}, batch {first_bad} (lr {lr:.3g})"
            if retries_left > 0 and resume_path and resume_path.exists():
                retries_left -= 1
                lr_scale *= spec.get("retry_lr_factor", 0.1)
                state = _restore(load_torch(resume_path, device), model, optimizer)
                masks = _restore_masks(model, state["masks"])
                log(f"{message}; retrying from epoch {state['epoch']} with lr x{lr_scale:g}")
                continue
            raise NonFiniteLossError(
                message + "; lower the learning rate or allow retries (train.max_nonfinite_retries)"
            )

        if spec["optimizer"].get("reset_momentum", False):
            reset_momentum(optimizer)
        row = _evaluate(model, valid, valid_labels, spec)
        row = {
            "epoch": epoch,
            "train_loss": loss_sum / steps.per_epoch,
            **row,
            "lr": lr,
            "sparsity": measured_sparsity(model)["global"],
            "sparse": bool(plan[epoch].sparse),
            "eligible": bool(eligible[epoch]),
            "seconds": time.perf_counter() - started,
        }
        state["history"].append(row)
        log(
            f"epoch {epoch + 1}/{epochs} loss {row['train_loss']:.4f} val_loss {row['val_loss']:.4f} "
            f"val_acc {row['val_accuracy']:.4f} sparsity {row['sparsity']:.4f} lr {lr:.3g} ({row['seconds']:.1f}s)"
        )
        if eligible[epoch]:
            _keep_if_best(state, model, masks, epoch, row["val_accuracy"])
        state["masks"] = masks.state_dict() if masks is not None else None
        state["epoch"] = epoch + 1
        if resume_path:
            _save_resume(resume_path, model, optimizer, state, lr_scale, retries_left, fingerprint)

    if state["best"] is None:
        raise ValueError("no epoch was eligible for model selection: the plan never reaches the target sparsity")
    return {
        "state_dict": state["best"]["state_dict"],
        "masks": state["best"]["masks"],
        "selected_epoch": state["best"]["epoch"],
        "history": pd.DataFrame(state["history"]),
    }


@dataclass(frozen=True)
class _StepSchedule:
    """Optimiser steps per epoch and in all, and the learning-rate schedule in steps."""

    per_epoch: int
    total: int
    lr_schedule: dict

    @classmethod
    def of(cls, spec: dict, n_train: int) -> _StepSchedule:
        per_epoch = math.ceil(n_train / spec["batch_size"])
        lr_schedule = dict(spec["lr_schedule"])
        lr_schedule["warmup_steps"] = round(lr_schedule.get("warmup_epochs", 0) * per_epoch)
        return cls(per_epoch, spec["epochs"] * per_epoch, lr_schedule)


def _restore(saved: dict, model: nn.Module, optimizer: torch.optim.Optimizer) -> dict:
    """Load a resume state's model and optimiser in place; return its training state."""
    model.load_state_dict(saved["model"])
    optimizer.load_state_dict(saved["optimizer"])
    return saved["state"]


def _epoch_masks(model: nn.Module, step_plan, masks: MaskSet | None, scope: str, seed: int, epoch: int):
    """The masks in force this epoch: recomputed where the plan prunes, none in a dense epoch."""
    if step_plan.prune_to is not None:
        masks = MaskSet.from_model(model, step_plan.prune_to, scope, generator=epoch_generator(seed, epoch, 2))
    return masks if step_plan.sparse else None


def _train_epoch(
    model: nn.Module,
    step_model: nn.Module,
    optimizer: torch.optim.Optimizer,
    train: TensorData,
    spec: dict,
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
        lr = lr_scale * learning_rate(step, steps.total, spec["optimizer"]["lr"], steps.lr_schedule)
        for group in optimizer.param_groups:
            group["lr"] = lr
        x, y = training_batch(
            train,
            order[b * spec["batch_size"] : (b + 1) * spec["batch_size"]],
            spec["crop_size"],
            spec["augment"]["padding"],
            spec["augment"]["flip"],
            gen,
        )
        loss = train_step(step_model, optimizer, loss_fn, x, y, masks)
        # Remember the first bad batch on the device: no host sync inside the step.
        finite = torch.isfinite(loss)
        first_bad = torch.where((first_bad < 0) & ~finite, torch.full_like(first_bad, b), first_bad)
        loss_sum += torch.where(finite, loss, torch.zeros_like(loss_sum))
    return loss_sum.item(), int(first_bad.item()), lr


def _evaluate(model: nn.Module, valid: TensorData, valid_labels: np.ndarray, spec: dict) -> dict:
    """Validation loss and mean accuracy of the model now."""
    logits = predict_logits(model, valid, spec["crop_size"], spec["eval_batch_size"])
    val_loss, val_acc = validation_scores(logits, valid_labels)
    return {"val_loss": val_loss, "val_accuracy": val_acc}


def _keep_if_best(state: dict, model: nn.Module, masks: MaskSet | None, epoch: int, val_acc: float) -> None:
    """Model selection: keep this epoch's weights and masks if its validation accuracy is the best so far."""
    if state["best"] is None or val_acc > state["best"]["val_accuracy"]:
        state["best"] = {
            "epoch": epoch,
            "val_accuracy": val_acc,
            "state_dict": copy.deepcopy(model.state_dict()),
            "masks": masks.state_dict() if masks is not None else None,
        }


def _save_resume(path: Path, model, optimizer, state: dict, lr_scale: float, retries_left: int, fingerprint) -> None:
    save_torch(
        {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "state": state,
            "lr_scale": lr_scale,
            "retries_left": retries_left,
            "fingerprint": fingerprint,
        },
        path,
    )


def _load_resume(path: Path | None, fingerprint, device: torch.device, log: Callable[[str], None]) -> dict | None:
    """The resume state at ``path`` if there is one made by this run (same fingerprint), else None."""
    if path is None or not path.exists():
        return None
    try:
        saved = load_torch(path, device)
    except RefusedFileError:
        log(
            f"ignoring resume state {path}: it contains objects other than tensors and plain data and was refused; "
            "starting from epoch 0"
        )
        return None
    except Exception as exc:  # a damaged resume state only costs the epochs it held
        log(f"ignoring unreadable resume state {path} ({exc}); starting from epoch 0")
        return None
    if not isinstance(saved, dict) or "fingerprint" not in saved or saved["fingerprint"] != fingerprint:
        log(
            f"ignoring resume state {path}: made by another configuration, data set or parent model; starting from epoch 0"
        )
        return None
    return saved


def load_checkpoint(path: str | os.PathLike, arch: str | None = None, attributes: list[str] | None = None) -> dict:
    """Load a model checkpoint, checking its format and (optionally) its arch and attribute set.

    ``attributes`` are the data set's: the model must predict those its task selects (all of
    them for the joint task, one for a single-label or backdoor task; :mod:`prunebias.tasks`).
    """
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found; rerun the job that makes it")
    try:
        ckpt = load_torch(path, "cpu")
    except RefusedFileError:
        raise ValueError(
            f"{path}: refused checkpoint: it contains objects other than tensors and plain data (loading it could "
            "run code); delete it and rerun the job that makes it"
        ) from None
    except Exception as exc:  # truncated, not a torch file, ...: say which file, not where torch failed
        raise ValueError(f"{path}: unreadable checkpoint ({exc}); delete it and rerun the job that makes it") from None
    if not isinstance(ckpt, dict) or ckpt.get("format_version") != CHECKPOINT_FORMAT:
        raise ValueError(
            f"{path}: not a prunebias checkpoint of format {CHECKPOINT_FORMAT} "
            f"(found {ckpt.get('format_version') if isinstance(ckpt, dict) else type(ckpt).__name__}); "
            "delete it and rerun the job that makes it"
        )
    if arch is not None and ckpt["arch"] != arch:
        raise ValueError(f"{path}: checkpoint is a {ckpt['arch']!r} model, expected {arch!r}")
    if attributes is None:
        return ckpt
    try:
        expected = task_attributes(ckpt.get("task_spec"), attributes)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    if list(ckpt["attributes"]) != expected:
        raise ValueError(
            f"{path}: checkpoint predicts {len(ckpt['attributes'])} attributes "
            f"{ckpt['attributes'][:3]}..., its task on this data set needs {len(expected)} {expected[:3]}...; "
            "it was trained on another data set or task"
        )
    return ckpt
