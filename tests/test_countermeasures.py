"""Tests of prunebias.analysis.countermeasures: calibrated thresholds and routing, with known answers."""

import numpy as np
import pytest

from criteria_inputs import confident, two_threshold_metrics
from prunebias.analysis import countermeasures as cm
from prunebias.analysis import metrics as pm
from prunebias.analysis.metrics import train_conditionals


def test_calibrated_threshold_recovery_by_hand():
    out = cm.calibrated_threshold_recovery(two_threshold_metrics())
    assert list(out.columns) == cm.COUNTERMEASURE_COLUMNS
    out = out.set_index(["metric", "identity"])
    ba = out.loc[("bias_amplification", "all")]
    assert (ba["dense"], ba["sparse"], ba["countered"]) == pytest.approx((0.11, 0.31, 0.21))  # pair (g, a) only
    assert ba["recovered"] == pytest.approx(0.5)
    acc = out.loc[("accuracy", "all")]
    assert (acc["dense"], acc["sparse"], acc["countered"]) == pytest.approx((0.90, 0.85, 0.875))
    assert acc["recovered"] == pytest.approx(0.5)


def test_recovered_fraction_and_its_undefined_small_gap():
    got = cm.recovered_fraction([0.3, 0.3, 0.3, 0.1005], [0.2, 0.35, 0.05, 0.1], [0.1, 0.1, 0.1, 0.1])
    np.testing.assert_allclose(got[:3], [0.5, -0.25, 1.25])
    assert np.isnan(got[3])
    with pytest.raises(ValueError, match="min_gap"):
        cm.recovered_fraction(1, 1, 1, min_gap=-1)


def _routing_data(seed=6, n=6000):
    """Dense = labels; the sparse model moves positives from g=0 to g=1 on the samples the
    dense model is least sure of, keeping the number of positives (so BA is linear in k)."""
    rng = np.random.default_rng(seed)
    g = rng.random((n, 1)) < 0.5
    y = rng.random((n, 2)) < 0.3
    n_train = 4000
    g_train = np.arange(n_train)[:, None] < n_train // 2
    y_train = np.zeros((n_train, 2), dtype=bool)
    y_train[: int(0.4 * n_train // 2)] = True  # P(a | g=1) = 0.4
    y_train[n_train // 2 : n_train // 2 + int(0.2 * n_train // 2)] = True  # P(a | g=0) = 0.2
    dense = confident(y, rng, 0.1, 6.0)
    sparse = dense.copy()
    for j in range(2):
        margin = np.abs(dense[:, j])
        up = np.flatnonzero(~y[:, j] & g[:, 0])
        down = np.flatnonzero(y[:, j] & ~g[:, 0])
        m = 120
        up, down = up[np.argsort(margin[up])[:m]], down[np.argsort(margin[down])[:m]]
        sparse[up, j], sparse[down, j] = 1.0, -1.0
    return dense[None], sparse[None], y, g, y_train, g_train


def test_random_routing_recovers_about_k_and_full_routing_recovers_everything():
    dense, sparse, y, g, y_train, g_train = _routing_data()
    curve = cm.routing_curve(
        dense,
        sparse,
        y,
        g,
        train_conditionals(y_train, g_train),
        attributes=["a", "b"],
        identities=["g"],
        fractions=[0, 0.1, 0.3, 0.5, 1.0],
        n_random=10,
        seed=1,
    )
    assert list(curve.columns) == cm.ROUTING_CURVE_COLUMNS
    ident_all = curve[curve["identity"] == "all"].set_index(["routing", "metric", "fraction"])["recovered"]
    for metric in ("bias_amplification", "accuracy"):
        for k in (0.1, 0.3, 0.5):
            assert ident_all[("random", metric, k)] == pytest.approx(k, abs=0.05)
        for routing in ("random", "susceptible"):
            assert ident_all[(routing, metric, 1.0)] == pytest.approx(1.0)
            assert ident_all[(routing, metric, 0.0)] == pytest.approx(0.0, abs=1e-12)
        # the flipped samples are the dense model's least certain: routing 30% finds them all
        assert ident_all[("susceptible", metric, 0.1)] > ident_all[("random", metric, 0.1)] + 0.5
        assert ident_all[("susceptible", metric, 0.3)] == pytest.approx(1.0)
    # the BA values are those of metrics.bias_amplification
    row = curve[(curve["identity"] == "g") & (curve["metric"] == "bias_amplification")].iloc[0]
    for model, key in ((dense, "dense"), (sparse, "sparse")):
        ba = pm.bias_amplification(model[0] > 0, y, g, y_train, g_train, attributes=["a", "b"], identities=["g"])
        assert row[key] == pytest.approx(np.nanmean(ba))
    assert row["sparse"] > row["dense"] + 0.03


def test_routing_routes_exactly_round_k_n_samples_with_the_least_certain_first():
    margins = np.arange(1.0, 11.0)  # sample i has dense |z| = i + 1
    dense = margins[None, :, None]
    labels = np.ones((10, 1), dtype=bool)  # the dense model is right, the sparse one wrong
    groups = np.zeros((10, 1), dtype=bool)
    curve = cm.routing_curve(
        dense,
        -dense,
        labels,
        groups,
        train_conditionals(np.ones((4, 1), bool), np.array([[True], [False]] * 2)),
        attributes=["a"],
        identities=["g"],
        fractions=[0.3, 0.26],
        n_random=0,
        min_positives=0,
    )
    acc = curve[curve["metric"] == "accuracy"].set_index("fraction")["value"]
    assert acc[0.3] == pytest.approx(0.3) and acc[0.26] == pytest.approx(0.3)  # round(2.6) = 3


def test_routing_matches_seeds_and_reports_spread_over_them():
    dense, sparse, y, g, y_train, g_train = _routing_data(n=2000)
    dense3 = np.concatenate([dense, dense, -dense])  # seed 25 would be a different model
    sparse2 = np.concatenate([sparse, sparse])
    curve = cm.routing_curve(
        dense3,
        sparse2,
        y,
        g,
        train_conditionals(y_train, g_train),
        attributes=["a", "b"],
        identities=["g"],
        fractions=[0, 0.5],
        dense_seeds=[23, 24, 25],
        sparse_seeds=[24, 23],
        n_random=0,
    )
    assert set(curve["routing"]) == {"susceptible"} and (curve["n_seeds"] == 2).all()
    np.testing.assert_allclose(curve["std"], 0.0, atol=1e-12)
