"""Tests of prunebias.analysis.rank_statistics (the scope AUCs are tested through
sample_criterion.evaluate_scores, against sklearn and a recomputed bootstrap)."""

import numpy as np
import pytest

from prunebias.analysis import rank_statistics as rs


def test_spearman_is_one_on_a_monotone_relation_and_drops_undefined_entries():
    x = np.arange(12.0)
    res = rs.spearman_ci(x, np.exp(x / 3), bootstrap=200)
    assert (res["spearman"], res["low"], res["high"], res["n"]) == (1.0, 1.0, 1.0, 12)
    y = -(x**3)
    y[[2, 5]] = np.nan
    res = rs.spearman_ci(x, y, bootstrap=200)
    assert res["spearman"] == pytest.approx(-1.0) and res["n"] == 10
    assert np.isnan(rs.spearman_ci([1.0, 2.0], [3.0, 4.0])["spearman"])
    assert np.isnan(rs.spearman_ci(x, np.ones(12))["spearman"])


def test_rank_helpers_by_hand():
    values = np.array([0.2, np.nan, 0.5, 0.2])
    np.testing.assert_array_equal(rs.ordinal_rank(values), [2.0, np.nan, 1.0, 3.0])  # ties by position
    score = np.array([[0.1, 3.0], [0.9, 1.0], [0.5, 2.0]])
    np.testing.assert_array_equal(rs.descending_rank(score), [[2, 0], [0, 2], [1, 1]])
    tied = np.array([[1.0], [0.5], [0.5], [0.0]])
    # the top half: the largest entry, then the two tied at the cut share one place
    np.testing.assert_allclose(rs.top_fraction_weights(tied, 0.5)[:, 0], [1.0, 0.5, 0.5, 0.0])
    assert not rs.top_fraction_weights(tied, 0.1).any()
