"""Experiment kinds ("tasks"): joint, single-label and backdoor models, and their triggers.

The study's controlled experiments (README, "Controlled experiments"). Every artifact path carries a ``{task}`` wildcard
(``results/models/{dataset}/{task}/{arch}/...``); this module owns its values:

- ``joint``: one model predicts every attribute of the data set (the main grid).
- ``single-<attribute>``, e.g. ``single-Blond_Hair``: one model, one output.
- ``backdoor-<attribute>-<trigger>-<neg>-<pos>``, e.g. ``backdoor-Blond_Hair-yellow_square-5-95``:
  a single-label model of ``attribute`` trained on data where ``neg`` % of the training
  negatives and ``pos`` % of the training positives carry ``trigger`` (and 50 % / 50 % of
  validation and test samples), as in the study's released code. A decimal point in a
  percentage is written ``p`` (12.5 % -> ``12p5``) so that names stay ``[A-Za-z0-9_-]``.

:func:`task_name` builds a name from a :class:`Task`, :func:`parse_task` parses one;
:func:`tasks_from_config` lists the tasks of a config and :func:`task_grid` /
:func:`task_train_spec` give each its grid and per-run training settings.

Triggers follow the study's geometry at any resolution and crop: ``grayscale`` is applied to
the stored uint8 images when a job loads them (:func:`apply_trigger`, before crop and
normalisation), the ``yellow_square`` is drawn on the model input after the crop and flip
(:func:`prunebias.training.augment.yellow_square`, 2 % of the crop's area, top-left),
in training and evaluation alike; the prepared ``images.npy`` is never rewritten. Which
samples carry the trigger is fixed by :func:`choose_triggered` and stored with the data
(``results/data/{dataset}/tasks/{task}.parquet``, :func:`triggered_path`).
"""

from __future__ import annotations

import math
import os
import re
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from prunebias.vocabulary import SPLITS

JOINT = "joint"
KINDS = ("joint", "single", "backdoor")
TRIGGERS = ("grayscale", "yellow_square")
#: Share of negatives and positives triggered in validation and test (SPEC: 50 % / 50 %).
EVAL_FRACTIONS = (0.5, 0.5)
#: ITU-R BT.601 luma weights (R, G, B), as PIL's ``convert("L")``.
LUMA = (0.299, 0.587, 0.114)

_ATTRIBUTE = r"[A-Za-z0-9_]+"
_PERCENT = r"\d+(?:p\d+)?"
_SINGLE = re.compile(rf"single-(?P<attribute>{_ATTRIBUTE})")
_BACKDOOR = re.compile(
    rf"backdoor-(?P<attribute>{_ATTRIBUTE})-(?P<trigger>{'|'.join(TRIGGERS)})-(?P<neg>{_PERCENT})-(?P<pos>{_PERCENT})"
)


@dataclass(frozen=True)
class Task:
    """One experiment kind. ``attribute`` for single/backdoor; ``trigger`` and
    ``train_fractions`` (share of training negatives, positives triggered) for backdoor."""

    kind: str
    attribute: str | None = None
    trigger: str | None = None
    train_fractions: tuple[float, float] | None = None

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"task kind must be one of {KINDS}, got {self.kind!r}")
        if self.kind == "joint":
            if (self.attribute, self.trigger, self.train_fractions) != (None, None, None):
                raise ValueError("a joint task takes no attribute, trigger or train_fractions")
            return
        if not isinstance(self.attribute, str) or not re.fullmatch(_ATTRIBUTE, self.attribute):
            raise ValueError(f"task attribute must be a name of letters, digits and '_', got {self.attribute!r}")
        if self.kind == "single":
            if self.trigger is not None or self.train_fractions is not None:
                raise ValueError("a single-label task takes no trigger or train_fractions")
            return
        if self.trigger not in TRIGGERS:
            raise ValueError(f"backdoor trigger must be one of {TRIGGERS}, got {self.trigger!r}")
        fractions = _check_fractions(self.train_fractions, "train_fractions")
        object.__setattr__(self, "train_fractions", fractions)


def _check_fractions(pair, name: str) -> tuple[float, float]:
    try:
        neg, pos = (float(p) for p in pair)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a pair (negatives, positives) of shares in [0, 1], got {pair!r}") from None
    if not (0.0 <= neg <= 1.0 and 0.0 <= pos <= 1.0):
        raise ValueError(f"{name} must be shares in [0, 1], got {pair!r}")
    return neg, pos


def _percent(share: float) -> str:
    text = f"{round(100.0 * share, 6):.10g}".replace(".", "p")
    if _share(text) != share:
        raise ValueError(f"train fraction {share!r} has too many decimals for a task name (at most 6 in %)")
    return text


def _share(percent: str) -> float:
    return float(percent.replace("p", ".")) / 100.0


def task_name(task: Task) -> str:
    """The path-safe name of ``task``: ``joint``, ``single-<attr>`` or ``backdoor-<attr>-<trigger>-<neg%>-<pos%>``."""
    if task.kind == "joint":
        return JOINT
    if task.kind == "single":
        return f"single-{task.attribute}"
    neg, pos = task.train_fractions
    return f"backdoor-{task.attribute}-{task.trigger}-{_percent(neg)}-{_percent(pos)}"


def parse_task(name: str) -> Task:
    """The :class:`Task` a name stands for (inverse of :func:`task_name`); ValueError if malformed."""
    if name == JOINT:
        return Task("joint")
    if m := _SINGLE.fullmatch(str(name)):
        return Task("single", m["attribute"])
    if m := _BACKDOOR.fullmatch(str(name)):
        return Task("backdoor", m["attribute"], m["trigger"], (_share(m["neg"]), _share(m["pos"])))
    raise ValueError(
        f"task {name!r} is not a task name: expected 'joint', 'single-<attribute>' or "
        f"'backdoor-<attribute>-<{'|'.join(TRIGGERS)}>-<neg %>-<pos %>' (e.g. backdoor-Blond_Hair-yellow_square-5-95)"
    )


# ------------------------------------------------------------------------- config
def _experiments(config: Mapping) -> Mapping:
    return config.get("experiments") or {}


def tasks_from_config(config: Mapping) -> list[str]:
    """Task names of a config, in a fixed order: joint, single-label attributes, backdoor items.

    ``experiments`` may be absent (joint only). Backdoor items are products
    ``attributes × triggers`` at the item's ``train_fractions``; duplicates are listed once.
    """
    exp = _experiments(config)
    names = [JOINT] if exp.get("joint", True) else []
    single = exp.get("single_label") or {}
    if single.get("enabled", False):
        names += [task_name(Task("single", a)) for a in single.get("attributes", [])]
    backdoor = exp.get("backdoor") or {}
    if backdoor.get("enabled", False):
        for item in backdoor.get("items", []):
            fractions = tuple(item.get("train_fractions", (0.05, 0.95)))
            names += [
                task_name(Task("backdoor", a, t, fractions)) for a in item["attributes"] for t in item["triggers"]
            ]
    return list(dict.fromkeys(names))


def _section(config: Mapping, task: Task) -> Mapping:
    key = {"single": "single_label", "backdoor": "backdoor"}.get(task.kind)
    return (_experiments(config).get(key) or {}) if key else {}


def task_grid(config: Mapping, name: str) -> dict:
    """``{archs, methods, sparsities, seeds}`` of a task: the main ``grid``, overridden by the experiment's ``grid``."""
    grid = config["grid"]
    own = _section(config, parse_task(name)).get("grid") or {}
    return {key: list(own.get(key, grid.get(key, []))) for key in ("archs", "methods", "sparsities", "seeds")}


def task_spec(config: Mapping, name: str) -> dict | None:
    """What a task changes in training and prediction (None for joint): kind, attributes, and
    for backdoor tasks trigger, triggered shares per split and the trigger seed."""
    task = parse_task(name)
    if task.kind == "joint":
        return None
    spec = {"kind": task.kind, "attributes": [task.attribute]}
    if task.kind == "backdoor":
        spec |= {
            "trigger": task.trigger,
            "fractions": {
                "train": list(task.train_fractions),
                "valid": list(EVAL_FRACTIONS),
                "test": list(EVAL_FRACTIONS),
            },
            "seed": int(_section(config, task).get("seed", 0)),
        }
    return spec


def task_train_spec(config: Mapping, name: str, method: str) -> dict:
    """:func:`prunebias.config.train_spec` of ``method`` for a task's runs.

    Non-joint tasks add ``task`` (:func:`task_spec`) and may override ``epochs``
    (``experiments.<kind>.epochs``); a joint run's spec is exactly the main one, so adding
    experiments never reruns the joint models.
    """
    from prunebias.config import train_spec

    spec = train_spec(config, method)
    task = task_spec(config, name)
    if task is None:
        return spec
    epochs = _section(config, parse_task(name)).get("epochs")
    return {**spec, **({"epochs": int(epochs)} if epochs else {}), "task": task}


def task_attributes(spec: Mapping | None, available: Sequence[str]) -> list[str]:
    """The attributes a task's model predicts: all ``available`` for joint (``spec`` None), else the spec's."""
    if spec is None or spec.get("kind", "joint") == "joint":
        return list(available)
    missing = [a for a in spec["attributes"] if a not in set(available)]
    if missing:
        raise ValueError(
            f"task attribute(s) {missing} are not in the data set; choose among {list(available)} "
            "(experiments.*.attributes)"
        )
    return list(spec["attributes"])


def check_experiments(config: Mapping, known_attributes: Mapping[str, Sequence[str]]) -> list[str]:
    """Problems of the ``experiments`` section the schema cannot see, one message each.

    ``known_attributes`` maps a data set source ("synthetic", "celeba") to its attribute
    names. Checks: at least one task; attributes exist in every grid data set; each
    experiment grid's methods have recipes; an ``epochs`` override fits every schedule; the
    single-label models share an arch and a seed with the joint models they are compared with.
    """
    from prunebias.config import method_levels
    from prunebias.training.schedules import method_plan

    problems = []
    try:
        names = tasks_from_config(config)
    except ValueError as exc:
        return [f"experiments: {exc}"]
    if not names:
        problems.append("experiments: no task is enabled; set experiments.joint: true or enable an experiment")
    recipes = (config.get("prune") or {}).get("methods", {})
    for key in ("single_label", "backdoor"):
        section = _experiments(config).get(key) or {}
        if not section.get("enabled", False):
            continue
        attributes = (
            section.get("attributes", [])
            if key == "single_label"
            else [a for item in section.get("items", []) for a in item["attributes"]]
        )
        for dataset in config["grid"]["datasets"]:
            source = config["datasets"].get(dataset, {}).get("source")
            unknown = sorted(set(attributes) - set(known_attributes.get(source, attributes)))
            if unknown:
                problems.append(
                    f"experiments.{key}: attribute(s) {unknown} do not exist in data set {dataset!r} "
                    f"(source {source}); choose among {sorted(known_attributes[source])}"
                )
        grid = {**config["grid"], **(section.get("grid") or {})}
        for method in grid.get("methods", []):
            if method not in recipes:
                problems.append(f"experiments.{key}.grid.methods: {method!r} has no recipe; add prune.methods.{method}")
                continue
            epochs = section.get("epochs")
            if epochs and grid.get("sparsities") and method != "int8":  # int8 is calibrated, not trained
                try:
                    level = max(method_levels(config, method, grid["sparsities"]))
                    method_plan(method, int(epochs), level, recipes[method].get("schedule", {}))
                except ValueError as exc:
                    problems.append(
                        f"experiments.{key}.epochs: {epochs} does not fit prune.methods.{method}.schedule ({exc}); "
                        "write that schedule in fractions of the run"
                    )
        if grid.get("methods") and not grid.get("sparsities"):
            problems.append(f"experiments.{key}.grid.sparsities: empty, but pruning methods are listed")
        if key == "single_label" and _experiments(config).get("joint", True):
            # The single-label models are compared with the joint models of the same arch and seed.
            for name in ("archs", "seeds"):
                if grid.get(name) and not set(grid[name]) & set(config["grid"].get(name, [])):
                    problems.append(
                        f"experiments.single_label.grid.{name}: none of {grid[name]} is in grid.{name} "
                        f"{config['grid'].get(name, [])}; the comparison with the joint models needs one in both"
                    )
    return problems


# ------------------------------------------------------------------------- triggers
def apply_trigger(images: np.ndarray, trigger: str) -> np.ndarray:
    """A triggered copy of a stored uint8 batch (N, H, W, 3); the input is not modified.

    Only ``grayscale`` (ITU-R 601 luma ``0.299 R + 0.587 G + 0.114 B``, rounded, in all 3
    channels) acts on the stored images; the yellow square goes on the model input after the
    crop (:func:`prunebias.training.augment.yellow_square`).
    """
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"images must be uint8 of shape (N, H, W, 3), got {images.dtype} {images.shape}")
    if trigger == "grayscale":
        luma = images.astype(np.float32) @ np.asarray(LUMA, dtype=np.float32)
        gray = np.clip(np.rint(luma), 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=-1)
    if trigger == "yellow_square":
        raise ValueError("the yellow square is drawn on the model input after the crop: use augment.yellow_square")
    raise ValueError(f"trigger must be one of {TRIGGERS}, got {trigger!r}")


def _rng(seed: int, attribute: str, split: str, label: bool) -> np.random.Generator:
    # One stream per (seed, attribute, split, class): changing the training fractions never
    # moves the validation/test choice, and the training seed plays no part.
    return np.random.default_rng([int(seed), zlib.crc32(attribute.encode()), SPLITS.index(split), int(label)])


def choose_triggered(
    index: pd.DataFrame,
    attribute: str,
    fractions: Mapping[str, Sequence[float]],
    seed: int,
) -> np.ndarray:
    """Ids of the samples that carry the trigger, in index order.

    For every split in ``fractions`` ({split: (share of negatives, share of positives)}) and
    each class c of ``attribute`` in that split, exactly ``round(p_c · n_c)`` (half up)
    samples are drawn without replacement by a generator seeded from (``seed``,
    attribute, split, class) alone: the same ids for every training seed, trigger type and
    other split's fractions, and a larger share of a class is a superset of a smaller one.
    """
    if not isinstance(index, pd.DataFrame) or not {"id", "split", attribute} <= set(index.columns):
        raise ValueError(f"index must be a DataFrame with columns id, split and {attribute!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    unknown = set(fractions) - set(SPLITS)
    if unknown:
        raise ValueError(f"fractions has unknown splits {sorted(unknown)}; use {SPLITS}")
    split = index["split"].to_numpy()
    label = index[attribute].to_numpy(dtype=bool)
    chosen = np.zeros(len(index), dtype=bool)
    for name, pair in fractions.items():
        shares = _check_fractions(pair, f"fractions[{name!r}]")
        for cls, share in zip((False, True), shares):
            rows = np.flatnonzero((split == name) & (label == cls))
            k = int(math.floor(share * rows.size + 0.5))
            chosen[rows[_rng(seed, attribute, name, cls).permutation(rows.size)[:k]]] = True
    return index["id"].to_numpy()[chosen]


def triggered_path(data_dir: str | os.PathLike, task: str) -> Path:
    """Where the triggered ids of a backdoor task live, beside the data set they refer to."""
    return Path(data_dir) / "tasks" / f"{task}.parquet"
