"""Sparsity schedules and per-method epoch plans: which epochs prune, to what, and which are sparse.

Pure Python (no torch): the workflow checks configs with it before any job runs. The masks
a plan drives are :mod:`prunebias.training.pruning`'s.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from prunebias.vocabulary import MASK_METHODS


def check_sparsity(sparsity: float, name: str = "sparsity") -> float:
    if not isinstance(sparsity, numbers.Real) or isinstance(sparsity, bool) or not 0.0 <= float(sparsity) < 1.0:
        raise ValueError(f"{name} must be a number in [0, 1), got {sparsity!r}")
    return float(sparsity)


def _check_int(value, name: str, minimum: int) -> int:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def cubic_sparsity(t: float, t0: float, t_end: float, s_initial: float, s_final: float) -> float:
    """Cubic schedule of Zhu & Gupta (2017): ``s_f − (s_f − s_i)·(1 − (t − t0)/(t_end − t0))³``.

    ``s(t0) = s_i`` and ``s(t_end) = s_f`` exactly. Raises ValueError unless
    ``t0 <= t <= t_end``, ``t0 < t_end`` and ``0 <= s_i <= s_f < 1``.
    """
    if not t0 < t_end:
        raise ValueError(f"t_end ({t_end!r}) must be greater than t0 ({t0!r})")
    if not t0 <= t <= t_end:
        raise ValueError(f"t ({t!r}) must lie in [t0, t_end] = [{t0!r}, {t_end!r}]")
    s_initial = check_sparsity(s_initial, "s_initial")
    s_final = check_sparsity(s_final, "s_final")
    if s_initial > s_final:
        raise ValueError(f"s_initial ({s_initial}) must not exceed s_final ({s_final})")
    return s_final - (s_final - s_initial) * (1.0 - (t - t0) / (t_end - t0)) ** 3


def pruning_steps(t0: int, t_end: int, step: int) -> list[int]:
    """Pruning steps ``t0, t0+Δ, …`` up to ``t_end``, always ending with ``t_end``.

    When ``t_end − t0`` is not a multiple of ``Δ`` the last interval is shorter: e.g.
    ``pruning_steps(0, 10, 4) == [0, 4, 8, 10]``. (The study's released code stopped one
    step short of ``t_end`` and so never reached the target sparsity.)
    """
    t0 = _check_int(t0, "t0", 0)
    step = _check_int(step, "step", 1)
    t_end = _check_int(t_end, "t_end", t0 + 1)
    return [*range(t0, t_end, step), t_end]


# --------------------------------------------------------------------------- epoch plans


@dataclass(frozen=True)
class EpochPlan:
    """What pruning does in one epoch.

    ``prune_to``: recompute masks to this sparsity at the START of the epoch, before
    training it (``None``: keep the current masks). ``sparse``: enforce the masks after every
    optimiser step of the epoch (``False``: train dense; pruned weights may regrow).
    """

    prune_to: float | None
    sparse: bool


def resolve_epochs(value: int | float, epochs: int, key: str = "value") -> int:
    """An epoch-valued schedule setting as a number of epochs (or an epoch index).

    An int is taken as is; a float in [0, 1] is a fraction of ``epochs``, rounded to the
    nearest epoch (Python ``round``, ties to even). So ``1`` is one epoch and ``1.0`` is the
    whole run. Raises ValueError (naming ``key``) for a negative int, an int beyond
    ``epochs``, a float outside [0, 1], or a bool/str.
    """
    epochs = _check_int(epochs, "epochs", 1)
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        if not 0 <= value <= epochs:
            raise ValueError(f"{key} = {value!r}: an epoch count must lie in [0, {epochs}]")
        return int(value)
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        if not 0.0 <= value <= 1.0:
            raise ValueError(
                f"{key} = {value!r}: a float is a fraction of the run and must lie in [0, 1]"
                " (write an int for a number of epochs)"
            )
        return round(float(value) * epochs)
    raise ValueError(f"{key} = {value!r}: expected an int (epochs) or a float in [0, 1]")


_SCHEDULE_KEYS = {
    "dense": set(),
    "oneshot": set(),
    "gmp": {"start", "end", "step", "initial_sparsity"},
    "gmp_pt": {"start", "end", "step", "initial_sparsity"},
    "acdc": {"warmup", "phase", "final_sparse"},
    "nm": {"start", "end", "step", "initial_sparsity"},
    "channels": set(),
}


def method_plan(method: str, epochs: int, target: float, schedule: Mapping) -> list[EpochPlan]:
    """One :class:`EpochPlan` per epoch for a training ``method`` (:data:`prunebias.vocabulary.METHODS` but int8, which is not trained).

    - ``dense``: never prunes (``target`` must be 0).
    - ``oneshot``: prunes to ``target`` at epoch 0, sparse throughout.
    - ``gmp`` / ``gmp_pt``: cubic schedule (:func:`cubic_sparsity`) from
      ``initial_sparsity`` (default 0.05) at epoch ``start`` to ``target`` at epoch ``end``,
      pruning at :func:`pruning_steps` ``(start, end, step)``; sparse from ``start`` on.
      The two differ only in what the training loop starts from (scratch / dense checkpoint).
    - ``nm``: as ``gmp_pt`` towards the pattern's sparsity 1 − N/M (the pattern grows group by
      group: :mod:`prunebias.training.nm`); with an empty schedule, one-shot at epoch 0.
    - ``channels``: fine-tuning only (the channels are removed before epoch 0), no masks;
      every epoch is eligible.
    - ``acdc``: ``warmup`` dense epochs; then cycles of ``phase`` sparse epochs (each
      starting with ``prune_to=target``) and ``phase`` dense epochs, as many full cycles as
      fit before the final sparse phase; epochs left over lengthen the last dense phase; a
      final sparse phase of ``final_sparse`` epochs (pruned to ``target`` at its start).
      Study: 100 epochs, warmup 10, phase 5, final_sparse 15 → sparse 10–14, 20–24, …,
      70–74 and 85–99.

    Epoch-valued keys (start, end, step, warmup, phase, final_sparse) take an int or a
    fraction of ``epochs`` (:func:`resolve_epochs`). Raises ValueError, naming the key and
    value, for unknown/missing keys and schedules that do not fit in the run.
    """
    epochs = _check_int(epochs, "epochs", 1)
    if method not in _SCHEDULE_KEYS:
        raise ValueError(f"method must be one of {sorted(_SCHEDULE_KEYS)}, got {method!r}")
    target = check_sparsity(target, "target")
    if (method == "dense") != (target == 0.0):
        raise ValueError(
            f"target = {target!r}: method {method!r} needs "
            + ("target 0.0" if method == "dense" else "a target sparsity in (0, 1)")
        )
    unknown = set(schedule) - _SCHEDULE_KEYS[method]
    if unknown:
        raise ValueError(
            f"schedule keys {sorted(unknown)} are not used by method {method!r}"
            f" (allowed: {sorted(_SCHEDULE_KEYS[method])})"
        )
    if method in ("dense", "channels"):
        return [EpochPlan(None, False)] * epochs
    if method == "oneshot" or (method == "nm" and not schedule):
        return [EpochPlan(target, True)] + [EpochPlan(None, True)] * (epochs - 1)
    if method == "acdc":
        return _acdc_plan(epochs, target, schedule)
    return _gmp_plan(epochs, target, schedule)


def _require(schedule: Mapping, key: str, epochs: int) -> int:
    if key not in schedule:
        raise ValueError(f"schedule key {key!r} is required")
    return resolve_epochs(schedule[key], epochs, key)


def _gmp_plan(epochs: int, target: float, schedule: Mapping) -> list[EpochPlan]:
    start = _require(schedule, "start", epochs)
    end = _require(schedule, "end", epochs)
    step = _require(schedule, "step", epochs)
    s_initial = schedule.get("initial_sparsity", 0.05)
    check_sparsity(s_initial, "initial_sparsity")
    if s_initial > target:
        raise ValueError(f"initial_sparsity = {s_initial!r} exceeds the target {target!r}")
    if step < 1:
        raise ValueError(f"step = {schedule['step']!r} resolves to 0 epochs; need >= 1")
    if end >= epochs:
        raise ValueError(f"end = {schedule['end']!r} resolves to epoch {end}, beyond the last epoch {epochs - 1}")
    if start >= end:
        raise ValueError(
            f"start = {schedule['start']!r} (epoch {start}) must come before"
            f" end = {schedule['end']!r} (epoch {end}); use method 'oneshot' for one step"
        )
    steps = set(pruning_steps(start, end, step))
    return [
        EpochPlan(cubic_sparsity(e, start, end, s_initial, target) if e in steps else None, e >= start)
        for e in range(epochs)
    ]


def _acdc_plan(epochs: int, target: float, schedule: Mapping) -> list[EpochPlan]:
    warmup = _require(schedule, "warmup", epochs)
    phase = _require(schedule, "phase", epochs)
    final = _require(schedule, "final_sparse", epochs)
    if phase < 1:
        raise ValueError(f"phase = {schedule['phase']!r} resolves to 0 epochs; need >= 1")
    if final < 1:
        raise ValueError(f"final_sparse = {schedule['final_sparse']!r} resolves to 0 epochs; need >= 1")
    final_start = epochs - final
    cycles = (final_start - warmup) // (2 * phase)
    if cycles < 1:
        raise ValueError(
            f"warmup = {schedule['warmup']!r} ({warmup} epochs) + one sparse and one dense phase"
            f" (phase = {schedule['phase']!r}: 2 x {phase}) + final_sparse ="
            f" {schedule['final_sparse']!r} ({final}) do not fit in {epochs} epochs"
        )
    plan = [EpochPlan(None, False)] * epochs
    for c in range(cycles):
        first = warmup + 2 * phase * c
        plan[first : first + phase] = [EpochPlan(target, True)] + [EpochPlan(None, True)] * (phase - 1)
    plan[final_start:] = [EpochPlan(target, True)] + [EpochPlan(None, True)] * (final - 1)
    return plan


def mask_target(method: str, level: float) -> float:
    """The sparsity a method's masks reach: its level for mask methods, 0 for the others (the level of
    ``channels`` is a share of FLOPs, removed with the channels themselves; int8 removes nothing)."""
    return level if method in MASK_METHODS else 0.0


def eligible_for_selection(plan: Sequence[EpochPlan], target: float) -> list[bool]:
    """Per epoch: may the model at the END of this epoch be selected?

    True when the masks in force are at the final ``target`` sparsity and enforced
    (``sparse``); for a dense plan (``target == 0``) every epoch. GMP: epochs from ``end``
    on; one-shot: all; AC/DC: every sparse epoch (all are at the target), never a dense one.
    """
    target = check_sparsity(target, "target")
    current = 0.0
    out = []
    for step in plan:
        if step.prune_to is not None:
            current = step.prune_to
        out.append(current == target and (step.sparse or target == 0.0))
    return out


def describe_plan(plan: Sequence[EpochPlan]) -> list[dict]:
    """The plan as ``[{"epoch", "prune_to", "sparse"}, …]`` for checkpoints and logs."""
    return [{"epoch": e, "prune_to": s.prune_to, "sparse": s.sparse} for e, s in enumerate(plan)]
