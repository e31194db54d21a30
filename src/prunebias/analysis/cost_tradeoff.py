"""Compression families compared at equal real cost: bias and accuracy against measured speed-up and size.

Sparsity is not a common currency: 50 % unstructured sparsity costs as much to run as the dense
model on dense kernels, 50 % of the FLOPs removed by channel pruning runs about twice as
fast, int8 removes nothing and runs faster still. So each model is placed by what it costs
(:mod:`prunebias.training.cost`, measured per model), relative to the dense model of the same
seed, and by what it changed:

- ``speedup_b1``, ``speedup_b64``: dense latency per image / the model's (batch 1, batch 64);
- ``size_ratio``, ``params_ratio``, ``flops_ratio``: the model's / the dense model's;
- ``delta_accuracy``: change of the mean accuracy over attributes, in points;
- ``delta_ba``: change of the mean bias amplification over (identity, attribute) pairs
  (the study's plain mean, pairs where BA is undefined skipped), default threshold.

Each is computed per seed against that seed's dense model, then averaged over seeds.
"""

from __future__ import annotations

import pandas as pd

from prunebias.validation import require_columns
from prunebias.vocabulary import FAMILIES, METRICS_COLUMNS, SETTING

#: The accuracy loss (points) at which families are compared by default.
MATCHED_DROP = 1.0

POINT_COLUMNS = [
    *SETTING,
    "method",
    "family",
    "sparsity",
    "seeds",
    "speedup_b1",
    "speedup_b64",
    "size_ratio",
    "params_ratio",
    "flops_ratio",
    "delta_accuracy",
    "delta_ba",
]


def _per_model(metrics: pd.DataFrame) -> pd.DataFrame:
    """One row per model and seed: its costs, mean accuracy (points) and mean BA."""
    keys = [*SETTING, "method", "sparsity", "seed"]
    rows = metrics[(metrics["threshold"] == "default") & (metrics["group"] == "all")]
    cost = rows[rows["attribute"] == "all"].pivot_table(index=keys, columns="metric", values="value").reset_index()
    acc = rows[(rows["metric"] == "accuracy") & (rows["identity"] == "all")]
    ba = rows[(rows["metric"] == "bias_amplification") & (rows["identity"] != "all")]
    out = cost.merge(acc.groupby(keys)["value"].mean().mul(100).rename("accuracy").reset_index(), on=keys)
    return out.merge(ba.groupby(keys)["value"].mean().rename("ba").reset_index(), on=keys, how="left")


def cost_points(metrics: pd.DataFrame) -> pd.DataFrame:
    """Every compressed model's costs and changes relative to dense, averaged over seeds (:data:`POINT_COLUMNS`).

    ``metrics``: the tidy per-model metrics (``results/tables/metrics.parquet``). Models
    without cost rows (imported predictions) are left out; an empty frame when none has them.
    """
    require_columns(metrics, METRICS_COLUMNS, "metrics")
    if not (metrics["metric"] == "latency_ms_b64").any():
        return pd.DataFrame(columns=POINT_COLUMNS)
    models = _per_model(metrics)
    dense = models[models["method"] == "dense"].drop(columns=["method", "sparsity"])
    same = [*SETTING, "seed"]
    paired = models[models["method"] != "dense"].merge(dense, on=same, suffixes=("", "_dense"))
    changes = paired[[*SETTING, "method", "sparsity", "seed"]].assign(
        speedup_b1=paired["latency_ms_b1_dense"] / paired["latency_ms_b1"],
        speedup_b64=paired["latency_ms_b64_dense"] / paired["latency_ms_b64"],
        size_ratio=paired["size_bytes"] / paired["size_bytes_dense"],
        params_ratio=paired["params"] / paired["params_dense"],
        flops_ratio=paired["flops"] / paired["flops_dense"],
        delta_accuracy=paired["accuracy"] - paired["accuracy_dense"],
        delta_ba=paired["ba"] - paired["ba_dense"],
    )
    grouped = changes.groupby([*SETTING, "method", "sparsity"], sort=True)
    points = grouped.mean(numeric_only=True).drop(columns="seed").join(grouped["seed"].nunique().rename("seeds"))
    points = points.reset_index()
    points["family"] = points["method"].map(FAMILIES).fillna(points["method"])
    return points[POINT_COLUMNS]


def matched_accuracy(points: pd.DataFrame, max_drop: float = MATCHED_DROP) -> pd.DataFrame:
    """Per setting and method, its most compressed model that loses at most ``max_drop`` points of
    accuracy: the least FLOPs, then the smallest size, then the fewest parameters kept (the
    analytic measures; latencies of models that cost the same differ only by timing noise). A
    method none of whose models qualifies is left out. Sorted by ``delta_ba`` within each
    setting: the first row adds the least bias at that accuracy."""
    require_columns(points, POINT_COLUMNS, "cost points")
    within = points[points["delta_accuracy"] >= -max_drop]
    ranked = within.sort_values([*SETTING, "method", "flops_ratio", "size_ratio", "params_ratio"])
    best = ranked.groupby([*SETTING, "method"], sort=False).head(1)
    return best.sort_values([*SETTING, "delta_ba"]).reset_index(drop=True)
