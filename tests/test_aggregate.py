import numpy as np
import pandas as pd
import pytest

from prunebias.analysis.aggregate import group_gaps, summarise, with_dense_delta


def rows(method, sparsity, seed, metric, value, identity="all", group="all", attribute="Smiling"):
    return dict(
        dataset="d",
        task="joint",
        arch="a",
        method=method,
        sparsity=sparsity,
        seed=seed,
        attribute=attribute,
        identity=identity,
        group=group,
        threshold="default",
        metric=metric,
        value=value,
    )


def test_summary_means_and_deltas_per_seed():
    frame = pd.DataFrame(
        [
            rows("dense", 0.0, 1, "accuracy", 0.90),
            rows("dense", 0.0, 2, "accuracy", 0.80),
            rows("gmp", 0.9, 1, "accuracy", 0.85),
            rows("gmp", 0.9, 2, "accuracy", 0.70),
        ]
    )
    summary = summarise(frame).set_index("method")
    assert summary.loc["dense", "mean"] == pytest.approx(0.85)
    assert summary.loc["dense", "std"] == pytest.approx(np.std([0.9, 0.8], ddof=1))
    assert summary.loc["dense", "count"] == 2
    assert np.isnan(summary.loc["dense", "delta_mean"])
    # Each sparse seed is compared with its own dense parent: -0.05 and -0.10.
    assert summary.loc["gmp", "delta_mean"] == pytest.approx(-0.075)
    assert summary.loc["gmp", "delta_std"] == pytest.approx(np.std([-0.05, -0.10], ddof=1))


def test_delta_is_nan_without_a_dense_parent():
    frame = pd.DataFrame([rows("dense", 0.0, 1, "auc", 0.9), rows("gmp", 0.9, 2, "auc", 0.8)])
    out = with_dense_delta(frame)
    assert out["delta"].isna().all()


def test_missing_columns_are_named():
    with pytest.raises(ValueError, match="missing columns.*seed"):
        summarise(pd.DataFrame([rows("dense", 0.0, 1, "auc", 0.9)]).drop(columns="seed"))


def test_group_gaps_in_points_sorted_by_size():
    frame = pd.DataFrame(
        [
            rows("dense", 0.0, 1, "group_accuracy", 0.95, "Male", "0", "Bald"),
            rows("dense", 0.0, 1, "group_accuracy", 0.80, "Male", "1", "Bald"),
            rows("dense", 0.0, 1, "group_accuracy", 0.90, "Male", "0", "Smiling"),
            rows("dense", 0.0, 1, "group_accuracy", 0.91, "Male", "1", "Smiling"),
            rows("dense", 0.0, 1, "group_accuracy", 1.0, "Male", "0", "Male"),
            rows("dense", 0.0, 1, "group_accuracy", 0.0, "Male", "1", "Male"),
        ]
    )
    gaps = group_gaps(summarise(frame))
    assert list(gaps["attribute"]) == ["Bald", "Smiling"]
    assert gaps["gap_points"].tolist() == pytest.approx([-15.0, 1.0])
