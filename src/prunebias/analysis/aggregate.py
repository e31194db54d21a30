"""Aggregation of tidy per-model metrics over seeds, and differences to the dense model.

Input rows follow the per-model contract: model columns (dataset, task, arch, method,
sparsity, seed) plus attribute, identity, group, threshold, metric, value. The criteria
select and average them with :func:`metric_rows` and :func:`seed_mean`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from prunebias.validation import require_columns
from prunebias.vocabulary import MODEL as MODEL_KEYS
from prunebias.vocabulary import ROW as ROW_KEYS

SUMMARY_KEYS = MODEL_KEYS + ROW_KEYS


def with_dense_delta(metrics: pd.DataFrame) -> pd.DataFrame:
    """Add ``delta``: value minus the dense model's value for the same seed and row keys (NaN for dense rows)."""
    require_columns(metrics, SUMMARY_KEYS + ["seed", "value"], "metrics")
    same = ["dataset", "task", "arch", "seed"] + ROW_KEYS
    dense = metrics.loc[metrics["method"] == "dense", same + ["value"]].rename(columns={"value": "dense_value"})
    if dense.duplicated(same).any():
        raise ValueError("metrics has more than one dense row for the same seed and keys")
    out = metrics.merge(dense, on=same, how="left", validate="many_to_one")
    out["delta"] = np.where(out["method"] == "dense", np.nan, out["value"] - out["dense_value"])
    return out.drop(columns="dense_value")


def summarise(metrics: pd.DataFrame) -> pd.DataFrame:
    """Mean, std and count over seeds per summary key, and the same for the difference to dense."""
    frame = with_dense_delta(metrics)
    grouped = frame.groupby(SUMMARY_KEYS, sort=True, dropna=False)
    summary = grouped.agg(
        mean=("value", "mean"),
        std=("value", "std"),
        count=("value", "count"),
        delta_mean=("delta", "mean"),
        delta_std=("delta", "std"),
    )
    return summary.reset_index()


def group_gaps(summary: pd.DataFrame, metric: str = "group_accuracy", threshold: str = "default") -> pd.DataFrame:
    """Per model setting, attribute and identity: the metric in group 0 and 1 and the gap (1 − 0), in points.

    An identity attribute against itself is left out (its groups are its own labels).
    """
    rows = summary[
        (summary["metric"] == metric)
        & (summary["threshold"] == threshold)
        & (summary["attribute"] != summary["identity"])
    ]
    wide = rows.pivot_table(
        index=MODEL_KEYS + ["attribute", "identity"], columns="group", values="mean", dropna=False
    ).reset_index()
    wide = wide.rename(columns={"0": "group_0", "1": "group_1"})
    wide["gap_points"] = 100 * (wide["group_1"] - wide["group_0"])
    wide.columns.name = None
    order = wide["gap_points"].abs().sort_values(ascending=False, kind="stable").index
    return wide.loc[order].sort_values(MODEL_KEYS, kind="stable").reset_index(drop=True)


def metric_rows(metrics: pd.DataFrame, metric: str, threshold: str) -> pd.DataFrame:
    """The rows of one metric at one threshold kind, whole identities only (group "all").

    ``metrics`` needs the columns method, sparsity, seed, attribute, identity, group,
    threshold, metric and value (dataset, task and arch are not needed).
    """
    need = ["method", "sparsity", "seed", "attribute", "identity", "group", "threshold", "metric", "value"]
    require_columns(metrics, need, "metrics")
    keep = (metrics["metric"] == metric) & (metrics["threshold"] == threshold) & (metrics["group"] == "all")
    return metrics[keep]


def seed_mean(rows: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Mean value over seeds (NaN seeds skipped) per key ``by``: columns ``by`` + value."""
    return rows.groupby(by, sort=True, dropna=False)["value"].mean().reset_index()
