"""Constructed inputs shared by the tests of the criteria modules (cies, sample_criterion,
attribute_criterion, countermeasures)."""

import numpy as np
import pandas as pd


def confident(pred, rng=None, low=2.0, high=6.0):
    """Logits with the sign of ``pred`` and magnitude in [low, high)."""
    size = np.abs(rng.uniform(low, high, np.shape(pred))) if rng is not None else low
    return np.where(pred, size, -size)


def metrics_rows(method, sparsity, seed, threshold, metric, identity, values):
    """Tidy per-model metrics rows (group "all") of one model, one metric: ``values`` {attribute: value}."""
    return pd.DataFrame(
        {
            "method": method,
            "sparsity": sparsity,
            "seed": seed,
            "attribute": list(values),
            "identity": identity,
            "group": "all",
            "threshold": threshold,
            "metric": metric,
            "value": list(values.values()),
        }
    )


def two_threshold_metrics() -> pd.DataFrame:
    """Dense and gmp 0.99 metrics of seeds 23 and 24 at both thresholds; attribute b's dense BA is undefined.

    Seed means: BA(g, a) dense 0.11, sparse 0.31 (default) and 0.21 (calibrated); accuracy of
    a dense 0.90, sparse 0.80 (default) and 0.85 (calibrated); b's accuracy 0.90 throughout.
    """
    rows = []
    for seed, shift in ((23, 0.0), (24, 0.02)):
        for threshold, sparse_ba, sparse_acc in (("default", 0.30, 0.80), ("calibrated", 0.20, 0.85)):
            ba = "bias_amplification"
            rows += [
                metrics_rows("dense", 0.0, seed, threshold, ba, "g", {"a": 0.10 + shift, "b": np.nan}),
                metrics_rows("gmp", 0.99, seed, threshold, ba, "g", {"a": sparse_ba + shift, "b": 0.5}),
                metrics_rows("dense", 0.0, seed, threshold, "accuracy", "all", {"a": 0.90, "b": 0.90}),
                metrics_rows("gmp", 0.99, seed, threshold, "accuracy", "all", {"a": sparse_acc, "b": 0.90}),
            ]
    return pd.concat(rows, ignore_index=True)
