"""The settings of a training run and of the analysis stages, as frozen dataclasses.

The workflow passes each job its settings as JSON (rule ``params``: what Snakemake compares
to decide what reruns, built by :func:`prunebias.config.train_spec` and ``common.smk``
from the schema-validated config, defaults filled in). The command line turns that JSON
into one of these types once; everything below it reads attributes, never dict keys.

Conversion is strict: a missing or unknown key is a ValueError naming it, so a job never
runs on settings it half understood. The defaults live in the config schema only.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


def _fields(cls, data: Any, where: str) -> dict:
    """``data`` as keyword arguments of ``cls``; ValueError naming ``where`` and the key on a mismatch."""
    if not isinstance(data, Mapping):
        raise ValueError(f"{where} must be a JSON object, got {type(data).__name__}")
    names = {f.name for f in dataclasses.fields(cls)}
    required = {f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING}
    unknown = sorted(set(data) - names)
    missing = sorted(required - set(data))
    if unknown or missing:
        raise ValueError(f"{where}: unknown keys {unknown}, missing keys {missing} (expected {sorted(names)})")
    return dict(data)


@dataclass(frozen=True)
class Optimizer:
    """An ``optimizer`` block: SGD, Adam or AdamW with its hyper-parameters."""

    name: str
    lr: float
    momentum: float
    weight_decay: float
    nesterov: bool
    #: Zero SGD's momentum buffers at every epoch end, as the study's trainer did.
    reset_momentum: bool


@dataclass(frozen=True)
class LRSchedule:
    """Linear warm-up over ``warmup_epochs``, then ``cosine`` decay to 0 or ``constant``."""

    name: str
    warmup_epochs: float


@dataclass(frozen=True)
class Augment:
    """Training augmentation: random crop from a ``padding``-padded image, horizontal ``flip``."""

    padding: int
    flip: bool


@dataclass(frozen=True)
class TrainSpec:
    """Everything one training run's result depends on, besides its identity (model, method, seed, data).

    ``schedule`` is the pruning method's schedule block, read by
    :func:`prunebias.training.schedules.method_plan` (its keys depend on the method);
    ``task`` the task's description (:func:`prunebias.tasks.task_spec`), None for the joint task.
    ``crop_size`` None means the stored image size. ``compression`` holds the settings of the
    methods that are more than a schedule (``n_m`` of nm, ``importance`` of channels), None for the others.
    """

    epochs: int
    batch_size: int
    eval_batch_size: int
    crop_size: int | None
    augment: Augment
    optimizer: Optimizer
    lr_schedule: LRSchedule
    schedule: dict
    scope: str
    max_nonfinite_retries: int
    retry_lr_factor: float
    task: dict | None = None
    compression: dict | None = None

    @classmethod
    def from_json(cls, data: Any) -> TrainSpec:
        """The spec from its JSON form (:func:`prunebias.tasks.task_train_spec`)."""
        fields = _fields(cls, data, "training settings")
        fields["augment"] = Augment(**_fields(Augment, fields["augment"], "training settings: augment"))
        fields["optimizer"] = Optimizer(**_fields(Optimizer, fields["optimizer"], "training settings: optimizer"))
        fields["lr_schedule"] = LRSchedule(
            **_fields(LRSchedule, fields["lr_schedule"], "training settings: lr_schedule")
        )
        return cls(**fields)

    def to_json(self) -> dict:
        """Plain data (nested dicts) for checkpoints and resume fingerprints."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class AnalysisSettings:
    """The metric and criteria settings (config ``analysis`` block) and the identity attributes."""

    # Lists, not tuples: pandas reads a tuple as one column key.
    identities: list[str]
    ba_min_positives: int
    ba_min_relative_gap: float
    uncertainty_band: tuple[float, float]
    ece_bins: int
    flag_fractions: list[float]
    routing_fractions: list[float]
    bootstrap: int
    gallery_size: int
    seed: int
    shortcut_weights: list[float]

    @classmethod
    def from_json(cls, data: Any) -> AnalysisSettings:
        """The settings from their JSON form (``{"identities": ..., **config["analysis"]}``)."""
        fields = _fields(cls, data, "analysis settings")
        for key in ("identities", "flag_fractions", "routing_fractions", "shortcut_weights"):
            fields[key] = list(fields[key])
        fields["uncertainty_band"] = tuple(fields["uncertainty_band"])
        return cls(**fields)
