"""Tests of prunebias.analysis.attribute_criterion on hand-made statistics and metrics."""

import numpy as np
import pandas as pd
import pytest

from criteria_inputs import metrics_rows, two_threshold_metrics
from prunebias.analysis import attribute_criterion as ac


def test_attribute_criterion_ranks_attributes_when_dense_statistics_predict_delta_ba():
    attributes = [f"a{j}" for j in range(8)]
    uncertainty = np.linspace(0.05, 0.4, 8)
    statistics = pd.concat(
        [
            pd.DataFrame({"identity": "all", "attribute": attributes, "statistic": stat, "value": value})
            for stat, value in (("uncertainty", uncertainty), ("auc", 1 - uncertainty))
        ]
    )
    delta_ba = uncertainty**2
    delta_ba[0] = np.nan  # an undefined BA
    delta = pd.DataFrame(
        {"method": "gmp", "sparsity": 0.99, "identity": "all", "attribute": attributes, "delta_ba": delta_ba}
    )
    criterion, ranking = ac.attribute_criterion(statistics, delta, bootstrap=100, top_k=2)
    assert list(criterion.columns) == ac.ATTRIBUTE_CRITERION_COLUMNS
    got = criterion.set_index("statistic")
    assert got.loc["uncertainty", "spearman"] == 1.0 and got.loc["auc", "spearman"] == -1.0
    assert (got["n_attributes"] == 7).all() and (got["top_k_overlap"] == 1.0).all()
    assert got.loc["uncertainty", "top_k_chance"] == pytest.approx(2 / 7)
    used = ranking[ranking["delta_ba"].notna()]
    np.testing.assert_array_equal(used["predicted_rank"], used["realised_rank"])
    assert ranking.loc[ranking["attribute"] == "a7", "predicted_top_k"].all()
    assert ranking.loc[ranking["attribute"] == "a0", "predicted_rank"].isna().all()


def test_delta_ba_by_hand():
    delta = ac.delta_bias_amplification(two_threshold_metrics()).set_index(["identity", "attribute"])
    assert delta.loc[("g", "a"), "delta_ba"] == pytest.approx(0.2)
    assert np.isnan(delta.loc[("g", "b"), "delta_ba"])
    assert delta.loc[("all", "a"), "delta_ba"] == pytest.approx(0.2)
    assert np.isnan(delta.loc[("all", "b"), "delta_ba"])


def test_dense_attribute_statistics_by_hand():
    # training split: g=1 rows 0-3, g=0 rows 4-9; a: 3 of 4 vs 1 of 6; b: 1 of 4 vs 3 of 6
    train_g = (np.arange(10) < 4)[:, None]
    train_y = np.zeros((10, 2), dtype=bool)
    train_y[[0, 1, 2, 4], 0] = True
    train_y[[0, 4, 5, 6], 1] = True
    rows = []
    for seed, unc in ((23, 0.1), (24, 0.3)):
        rows += [
            metrics_rows("dense", 0.0, seed, "default", "uncertainty", "all", {"a": unc, "b": 0.5}),
            metrics_rows("dense", 0.0, seed, "default", "bias_amplification", "g", {"a": 0.1, "b": np.nan}),
        ]
    stats = ac.dense_attribute_statistics(pd.concat(rows), train_y, train_g, ["a", "b"], ["g"])
    got = stats.set_index(["identity", "statistic", "attribute"])["value"]
    assert got[("g", "group_gap", "a")] == pytest.approx(3 / 4 - 1 / 6)
    assert got[("g", "group_gap", "b")] == pytest.approx(1 / 2 - 1 / 4)  # absolute value
    assert got[("all", "group_gap", "a")] == pytest.approx(3 / 4 - 1 / 6)
    assert np.isnan(got[("all", "group_gap", "b")])  # its dense BA is undefined
    assert got[("all", "uncertainty", "a")] == pytest.approx(0.2)
    assert got[("g", "train_prevalence", "b")] == pytest.approx(0.4)
    assert got[("all", "train_rarity", "a")] == pytest.approx(0.4)
    assert np.isnan(got[("all", "interdependence", "a")])  # not in this metrics table
