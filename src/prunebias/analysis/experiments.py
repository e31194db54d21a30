"""The controlled experiments: single-label vs joint training, and backdoors.

- :func:`single_vs_joint`: an attribute trained alone (task ``single-<attr>``) against the same
  attribute in the joint model: ΔBA = BA_sparse − BA_dense of each training, and their
  difference, paired over seeds and test samples, with bootstrap intervals. The study found
  joint models less bias-prone; ``dba_diff`` = single − joint.
- :func:`backdoor_effects`: the backdoor metrics (:mod:`prunebias.analysis.backdoor`) of a
  backdoor task's models and their change with sparsity, with bootstrap intervals.
- :func:`paired_dba`: the per-seed ΔBA rows behind the single-vs-joint figure.

The intervals are over test samples (and seeds, where there are several) for the models
trained: they do not cover what another training split would give.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from prunebias.analysis import backdoor, effects, metrics
from prunebias.analysis.aggregate import with_dense_delta
from prunebias.tasks import JOINT, parse_task
from prunebias.validation import require_columns
from prunebias.vocabulary import METRICS_COLUMNS

TRAINING = ("joint", "single-label")
_BA = "bias_amplification"
_INTERVAL = ("", "_ci_low", "_ci_high")

#: Columns of :func:`single_vs_joint` (the job adds dataset, arch, attribute, threshold before them).
SINGLE_VS_JOINT_COLUMNS = [
    "method",
    "sparsity",
    "identity",
    "seeds",
    "ba_joint_dense",
    "ba_joint",
    "ba_single_dense",
    "ba_single",
    *(f"dba_{name}{end}" for name in ("single", "joint", "diff") for end in _INTERVAL),
]
#: Columns of :func:`backdoor_effects` (the job adds dataset, the parsed task, arch, threshold before them).
BACKDOOR_COLUMNS = [
    "method",
    "sparsity",
    "metric",
    "seeds",
    "value",
    "ci_low",
    "ci_high",
    "delta",
    "delta_ci_low",
    "delta_ci_high",
]


def _kinds(tasks: pd.Series) -> pd.Series:
    """The kind (joint, single, backdoor) of every task name."""
    return tasks.map({name: parse_task(name).kind for name in tasks.unique()})


def _single_and_joint(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """BA rows of the single-label tasks and of the joint task restricted to those attributes."""
    ba = frame[(frame["metric"] == _BA) & (frame["group"] == "all")]
    single = ba[_kinds(ba["task"]) == "single"]
    joint = ba[(ba["task"] == JOINT) & ba["attribute"].isin(set(single["attribute"]))]
    return single, joint


def _settings(models: pd.DataFrame, seeds: list[int]) -> dict[tuple[str, float], np.ndarray]:
    """Per sparse (method, sparsity): its model rows in the order of ``seeds``, for the settings
    that have every seed; and ("dense", 0.0): the dense rows. ValueError if a seed lacks its dense model."""
    rows = {}
    for (method, sparsity), part in models.groupby(["method", "sparsity"], sort=True):
        by_seed = dict(zip(part["seed"], part.index))
        if set(seeds) <= set(by_seed):
            rows[(method, float(sparsity))] = np.array([by_seed[s] for s in seeds])
        elif method == "dense":
            raise ValueError(f"seeds {sorted(set(seeds) - set(by_seed))} have no dense model")
    if ("dense", 0.0) not in rows:
        raise ValueError("no dense model")
    return rows


def single_vs_joint(
    models: pd.DataFrame,
    preds: np.ndarray,
    labels: np.ndarray,
    groups: np.ndarray,
    conditionals: tuple[np.ndarray, np.ndarray],
    *,
    attribute: str,
    identities: Sequence[str],
    min_positives: int = 10,
    min_relative_gap: float = 0.1,
    n_bootstrap: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> pd.DataFrame:
    """ΔBA of one attribute trained alone and in the joint model, paired, with bootstrap intervals.

    Parameters
    ----------
    models : DataFrame
        One row per model, in the order of ``preds``: ``training`` ("joint" | "single-label"),
        ``method``, ``sparsity``, ``seed``.
    preds : bool array (M, n)
        Each model's test predictions of ``attribute``.
    labels : bool array (n,)
        Test labels of ``attribute``.
    groups : bool array (n, G)
        Test identity labels, columns ``identities``.
    conditionals : (p1, p0), each (G,)
        The training split's P(attribute | identity) and P(attribute | not identity).

    Both trainings are compared on the seeds both have and on the same test samples: ``dba_*`` = BA(sparse) − BA(dense) of the same
    seed and training, averaged over seeds; ``dba_diff`` = dba_single − dba_joint (the study
    found single-label models more bias-prone: > 0). Intervals: paired bootstrap as in
    :func:`prunebias.analysis.effects.paired_effects` (test samples, then seeds, drawn with
    replacement; one draw for all four models). NaN where a BA is undefined.

    Returns
    -------
    DataFrame, one row per sparse (method, sparsity) of both trainings and identity:
    :data:`SINGLE_VS_JOINT_COLUMNS`.
    """
    models = models.reset_index(drop=True)
    preds = np.asarray(preds)
    if preds.ndim != 2 or len(models) != len(preds):
        raise ValueError(f"preds must be (M, n) for the {len(models)} models, got {preds.shape}")
    unknown = set(models["training"]) - set(TRAINING)
    if unknown:
        raise ValueError(f"training must be one of {TRAINING}, got {sorted(unknown)}")
    seeds_of = {t: {int(s) for s in models.loc[models["training"] == t, "seed"]} for t in TRAINING}
    seeds = sorted(seeds_of[TRAINING[0]] & seeds_of[TRAINING[1]])
    if not seeds:
        raise ValueError(
            f"no seed has both a single-label and a joint model (single-label: {sorted(seeds_of[TRAINING[1]])}, "
            f"joint: {sorted(seeds_of[TRAINING[0]])})"
        )
    p1, p0 = (np.asarray(c, np.float64).reshape(-1, 1) for c in conditionals)
    kw = dict(
        attributes=[attribute], identities=identities, min_positives=min_positives, min_relative_gap=min_relative_gap
    )

    def ba(weights):  # (W, M, G)
        return metrics.bias_amplification_batch(
            preds[:, :, None], np.asarray(labels)[:, None], groups, (p1, p0), weights=weights, **kw
        )[..., 0]

    n = len(labels)
    full = ba(np.ones((1, n), np.int64))[0]
    weights, seed_draws = effects.bootstrap_draws(n, len(seeds), n_bootstrap, seed)
    draws = ba(weights)
    rows = {t: _settings(models[models["training"] == t], seeds) for t in TRAINING}
    out = []
    for setting in sorted(set(rows[TRAINING[0]]) & set(rows[TRAINING[1]]) - {("dense", 0.0)}):
        changes = {}  # training -> (per-seed full (S, G), per-seed draws (B, S, G))
        for t in TRAINING:
            sparse, dense = rows[t][setting], rows[t][("dense", 0.0)]
            changes[t] = (full[sparse] - full[dense], draws[:, sparse] - draws[:, dense])
        changes["diff"] = tuple(s - j for s, j in zip(changes[TRAINING[1]], changes[TRAINING[0]]))
        stats = {k: effects.seed_mean_interval(*v, seed_draws, level) for k, v in changes.items()}
        levels = {
            t: (full[rows[t][("dense", 0.0)]].mean(axis=0), full[rows[t][setting]].mean(axis=0)) for t in TRAINING
        }
        for i, identity in enumerate(identities):
            row = {"method": setting[0], "sparsity": setting[1], "identity": identity, "seeds": len(seeds)}
            for t, name in zip(TRAINING, ("joint", "single")):
                row[f"ba_{name}_dense"], row[f"ba_{name}"] = (float(v[i]) for v in levels[t])
            for key, name in ((TRAINING[1], "single"), (TRAINING[0], "joint"), ("diff", "diff")):
                estimate, low, high = stats[key]
                row |= {f"dba_{name}": float(estimate[i]), f"dba_{name}_ci_low": float(low[i])}
                row[f"dba_{name}_ci_high"] = float(high[i])
            out.append(row)
    return pd.DataFrame(out, columns=SINGLE_VS_JOINT_COLUMNS)


def paired_dba(metrics: pd.DataFrame) -> pd.DataFrame:
    """Per-model ΔBA of single-label tasks and of the same attributes in the joint task.

    Columns: dataset, arch, training ("joint" | "single-label"), method, sparsity, seed,
    attribute, identity, threshold, value (BA), delta (BA − dense BA of the same seed; 0 for
    the dense model itself, so every curve starts at the dense point).
    """
    require_columns(metrics, METRICS_COLUMNS, "metrics")
    single, joint = _single_and_joint(metrics)
    rows = with_dense_delta(pd.concat([single, joint], ignore_index=True))
    rows["training"] = np.where(rows["task"] == JOINT, TRAINING[0], TRAINING[1])
    dense = rows["method"] == "dense"
    rows.loc[dense, "delta"] = np.where(rows.loc[dense, "value"].notna(), 0.0, np.nan)
    cols = [
        "dataset",
        "arch",
        "training",
        "method",
        "sparsity",
        "seed",
        "attribute",
        "identity",
        "threshold",
        "value",
        "delta",
    ]
    return rows[cols].reset_index(drop=True)


def backdoor_effects(
    models: pd.DataFrame,
    preds: np.ndarray,
    labels: np.ndarray,
    triggered: np.ndarray,
    *,
    n_bootstrap: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> pd.DataFrame:
    """The backdoor metrics of one backdoor task's models, and their change against dense, with intervals.

    ``models`` has one row per model in the order of ``preds`` (M, n) bool: ``method``,
    ``sparsity``, ``seed``; ``labels`` and ``triggered`` (n,) bool are the test labels of the
    task's attribute and which test samples carry the trigger. Per (method, sparsity) and
    metric (:data:`prunebias.analysis.backdoor.METRICS`): ``value``, the mean over seeds, and
    for sparse models ``delta``, the mean change against the dense model of the same seed
    (NaN for dense), each with a paired bootstrap interval as in
    :func:`prunebias.analysis.effects.paired_effects`.
    """
    models = models.reset_index(drop=True)
    seeds = sorted(int(s) for s in models["seed"].unique())
    rows = _settings(models, seeds)
    n = len(labels)
    full = {k: v[0] for k, v in backdoor.backdoor_statistics_batch(preds, labels, triggered).items()}
    weights, seed_draws = effects.bootstrap_draws(n, len(seeds), n_bootstrap, seed)
    draws = backdoor.backdoor_statistics_batch(preds, labels, triggered, weights)
    dense = rows[("dense", 0.0)]
    out = []
    for (method, sparsity), at in sorted(rows.items(), key=lambda kv: kv[0][1]):
        for metric in backdoor.METRICS:
            value = effects.seed_mean_interval(full[metric][at], draws[metric][:, at], seed_draws, level)
            delta = (np.nan,) * 3
            if method != "dense":
                change = (full[metric][at] - full[metric][dense], draws[metric][:, at] - draws[metric][:, dense])
                delta = effects.seed_mean_interval(*change, seed_draws, level)
            out.append((method, sparsity, metric, len(seeds), *map(float, value), *map(float, delta)))
    return pd.DataFrame(out, columns=BACKDOOR_COLUMNS)
