"""Curves over seeds: a metric against sparsity per setting and method, averaged over
attributes per model and then over seeds.

Input is the per-model tidy metrics table (:func:`prunebias.analysis.metrics.model_metrics`,
``results/tables/metrics.parquet``); means and stds over seeds are taken here, after averaging
over attributes per model, so each seed weighs the same whatever its number of defined attributes.
"""

from __future__ import annotations

import pandas as pd

from prunebias.validation import require_columns
from prunebias.vocabulary import MODEL


def seed_curves(
    metrics: pd.DataFrame, metric: str, threshold: str = "default", per_identity: bool = False
) -> pd.DataFrame:
    """Mean over attributes per model, then mean, std and count over seeds.

    Parameters
    ----------
    metrics : DataFrame
        Per-model tidy metrics (:func:`prunebias.analysis.metrics.model_metrics`).
    metric : str
        A metric name; attribute-level metrics use the rows with identity "all", and with
        ``per_identity`` the rows of each identity (e.g. bias amplification).
    threshold : {"default", "calibrated"}
    per_identity : bool

    Returns
    -------
    DataFrame
        ``dataset, task, arch, method, sparsity`` (+ ``identity``), ``mean, std, n_seeds``,
        sorted. Undefined (NaN) values are skipped; a model with none counts no seed.
    """
    need = MODEL + ["seed", "attribute", "identity", "group", "threshold", "metric", "value"]
    require_columns(metrics, need, "metrics")
    rows = metrics[(metrics["metric"] == metric) & (metrics["threshold"] == threshold) & (metrics["group"] == "all")]
    rows = rows[rows["identity"] != "all"] if per_identity else rows[rows["identity"] == "all"]
    keys = MODEL + (["identity"] if per_identity else [])
    per_model = rows.groupby(keys + ["seed"], sort=True)["value"].mean().reset_index()
    out = per_model.groupby(keys, sort=True)["value"].agg(mean="mean", std="std", n_seeds="count").reset_index()
    return out


def split_curve(curve: pd.DataFrame, method: str) -> tuple[float, pd.Series]:
    """(dense mean, Series sparsity -> mean of ``method``, ascending) of one setting's curve."""
    dense = curve.loc[curve["method"] == "dense", "mean"]
    sparse = curve[curve["method"] == method].set_index("sparsity")["mean"].sort_index()
    return (float(dense.iloc[0]) if len(dense) else float("nan")), sparse
