"""What a training job leaves on disk: the model checkpoint and the per-epoch resume state.

A checkpoint is a plain dict of tensors and plain data (format :data:`CHECKPOINT_FORMAT`),
read back with the safe loader (:func:`prunebias.io.load_torch`: no objects that could run
code). The resume state beside a running job (``.resume.pt``) is the same kind of file,
tagged with a fingerprint of what the run depends on, so a restarted job resumes only its
own run.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import torch

from prunebias.io import RefusedFileError, load_torch, save_torch
from prunebias.tasks import task_attributes

CHECKPOINT_FORMAT = 1


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


def checkpoint_model(ckpt: dict, path: str | os.PathLike) -> torch.nn.Module:
    """The module a checkpoint (:func:`load_checkpoint`) describes, its weights loaded, in eval mode.

    Channel-pruned models are rebuilt at their stored, smaller shapes; int8 models are
    re-quantized from their float weights and stored calibration (bit-identical to the model
    the quantize job measured); N:M models are checked to hold their pattern.
    """
    from prunebias.training import channels, nm, quantize
    from prunebias.training.models import build_model

    n_outputs, size = len(ckpt["attributes"]), ckpt["image_size"]
    structure = ckpt.get("structure")
    model = (
        channels.rebuild(ckpt["arch"], n_outputs, size, structure)
        if structure
        else build_model(ckpt["arch"], n_outputs, size)
    )
    model.load_state_dict(ckpt["state_dict"])
    pattern = (ckpt.get("compression") or {}).get("n_m")
    if pattern:
        broken = nm.broken_tensors(ckpt["state_dict"], ckpt["compression"]["tensors"], *pattern)
        if broken:
            raise ValueError(
                f"{path}: weights break their {pattern[0]}:{pattern[1]} pattern (groups per tensor: {broken}); delete it and rerun"
            )
    model.eval()
    if ckpt.get("calibration") is not None:
        model = quantize.restore_int8(model, ckpt["calibration"], size)
    return model


def save_resume(path: Path, resume: dict, fingerprint) -> None:
    """Write a resume state (model, optimiser, training state, lr scale, retries left) under ``fingerprint``."""
    save_torch({**resume, "fingerprint": fingerprint}, path)


def load_resume(path: Path | None, fingerprint, device: torch.device, log: Callable[[str], None]) -> dict | None:
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
