"""Tables of the controlled experiments: single-label vs joint training, and backdoors.

Pure functions over the aggregated tables (prunebias.analysis.aggregate):

- :func:`single_vs_joint`: for every attribute trained alone (task ``single-<attr>``), its
  bias amplification BA(identity, attribute) and the growth with sparsity
  ΔBA = BA_sparse − BA_dense (same seed), next to the same attribute in the joint model.
  The study found joint models less bias-prone; ``dba_diff`` = single − joint.
- :func:`backdoor_table`: the backdoor metrics (:mod:`prunebias.analysis.backdoor`) of every backdoor
  task, with the task's attribute, trigger and training fractions as columns.
- :func:`paired_dba`: the per-seed ΔBA rows behind the single-vs-joint figure.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from prunebias.analysis.aggregate import with_dense_delta
from prunebias.analysis.backdoor import METRICS as BACKDOOR_METRICS
from prunebias.tasks import JOINT, parse_task
from prunebias.validation import require_columns
from prunebias.vocabulary import METRICS_COLUMNS, SUMMARY_COLUMNS

TRAINING = ("joint", "single-label")
_BA = "bias_amplification"


def _kinds(tasks: pd.Series) -> pd.Series:
    """The kind (joint, single, backdoor) of every task name."""
    return tasks.map({name: parse_task(name).kind for name in tasks.unique()})


def _single_and_joint(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """BA rows of the single-label tasks and of the joint task restricted to those attributes."""
    ba = frame[(frame["metric"] == _BA) & (frame["group"] == "all")]
    single = ba[_kinds(ba["task"]) == "single"]
    joint = ba[(ba["task"] == JOINT) & ba["attribute"].isin(set(single["attribute"]))]
    return single, joint


def single_vs_joint(summary: pd.DataFrame) -> pd.DataFrame:
    """One row per (dataset, arch, method, sparsity, attribute, identity, threshold).

    Columns: ``ba_single``, ``ba_joint`` (mean BA over seeds), ``dba_single``,
    ``dba_joint`` (mean ΔBA to the dense model of the same seed; NaN for dense rows),
    their ``*_std``, ``seeds_single``, ``seeds_joint`` (counts) and ``dba_diff`` =
    dba_single − dba_joint. Only settings present in both trainings are kept; an empty
    frame (same columns) when there is no single-label task or no joint task.
    """
    require_columns(summary, SUMMARY_COLUMNS, "summary")
    single, joint = _single_and_joint(summary)
    keys = ["dataset", "arch", "method", "sparsity", "attribute", "identity", "threshold"]
    cols = {"mean": "ba", "std": "ba_std", "count": "seeds", "delta_mean": "dba", "delta_std": "dba_std"}

    def side(frame, suffix):
        return frame[keys + list(cols)].rename(columns={k: f"{v}_{suffix}" for k, v in cols.items()})

    out = side(single, "single").merge(side(joint, "joint"), on=keys, how="inner", validate="one_to_one")
    out["dba_diff"] = out["dba_single"] - out["dba_joint"]
    order = [
        "ba_single",
        "ba_joint",
        "dba_single",
        "dba_joint",
        "dba_diff",
        "ba_std_single",
        "ba_std_joint",
        "dba_std_single",
        "dba_std_joint",
        "seeds_single",
        "seeds_joint",
    ]
    return out[keys + order].sort_values(keys, kind="stable").reset_index(drop=True)


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


def backdoor_table(summary: pd.DataFrame) -> pd.DataFrame:
    """Summary rows of the backdoor metrics, with the task parsed into columns.

    Columns: dataset, task, attribute, trigger, train_negatives, train_positives (shares
    triggered in training), arch, method, sparsity, threshold, metric, mean, std, count,
    delta_mean, delta_std. Empty (same columns) when there is no backdoor task.
    """
    require_columns(summary, SUMMARY_COLUMNS, "summary")
    rows = summary[summary["metric"].isin(BACKDOOR_METRICS)]
    rows = rows[_kinds(rows["task"]) == "backdoor"]
    tasks = {name: parse_task(name) for name in rows["task"].unique()}
    parsed = pd.DataFrame(
        [(n, t.trigger, t.train_fractions[0], t.train_fractions[1]) for n, t in tasks.items()],
        columns=["task", "trigger", "train_negatives", "train_positives"],
    )
    out = rows.merge(parsed, on="task", how="left")
    cols = [
        "dataset",
        "task",
        "attribute",
        "trigger",
        "train_negatives",
        "train_positives",
        "arch",
        "method",
        "sparsity",
        "threshold",
        "metric",
        "mean",
        "std",
        "count",
        "delta_mean",
        "delta_std",
    ]
    keys = ["dataset", "task", "arch", "sparsity", "method", "threshold", "metric"]
    return out[cols].sort_values(keys, kind="stable").reset_index(drop=True)
