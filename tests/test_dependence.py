"""Tests of prunebias.analysis.dependence: R² of predictions on each other and on identity."""

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression

from prunebias.analysis import dependence as d

T, F = True, False


def col(*values):
    """One attribute as an (n, 1) column."""
    return np.array(values)[:, None]


def test_interdependence_hand_computed():
    a = [T, T, F, F]
    b = [T, F, T, F]  # uncorrelated with a
    pred = np.array([a, b, a]).T  # third column duplicates the first
    np.testing.assert_allclose(d.interdependence(pred), [1.0, 0.0, 1.0], atol=1e-12)


def test_interdependence_undefined_cases():
    varying = [T, F, T, F]
    assert np.isnan(d.interdependence(col(*varying))).all()  # nothing to regress on
    r2 = d.interdependence(np.array([varying, [F] * 4, [T] * 4]).T)
    assert r2[0] == 0.0  # only constant others: intercept-only fit
    assert np.isnan(r2[1:]).all()  # constant predictions: no variance to explain


def test_interdependence_matches_sklearn_linear_regression():
    rng = np.random.default_rng(1)
    x = rng.random((400, 6)) < [0.05, 0.2, 0.5, 0.7, 0.3, 0.1]
    x[:, 4] = ~x[:, 0]  # exact collinearity must not break the fit
    x[:, 5] = x[:, 1] ^ (rng.random(400) < 0.02)
    expected = []
    for j in range(6):
        others = np.delete(x, j, axis=1).astype(float)
        expected.append(LinearRegression().fit(others, x[:, j]).score(others, x[:, j]))
    np.testing.assert_allclose(d.interdependence(x), expected, atol=1e-9)


def test_weighted_interdependence_is_that_of_the_repeated_samples():
    # Bootstrap counts: each row of R² must be bit-identical to the unweighted R² of the
    # data with every sample repeated that often, including weightings under which a column
    # is constant (NaN there) and collinear columns.
    rng = np.random.default_rng(2)
    x = rng.random((60, 5)) < [0.03, 0.3, 0.5, 0.6, 0.2]
    x[:, 4] = ~x[:, 2]
    weights = np.stack([rng.multinomial(60, np.full(60, 1 / 60)) for _ in range(40)])
    weights[0] = np.where(x[:, 0], 0, weights[0])  # column 0 constant under this weighting
    weights[1] = 1
    got = d.interdependence(x, weights=weights)
    for w, row in zip(weights, got, strict=True):
        expected = d.interdependence(np.repeat(x, w, axis=0))
        np.testing.assert_array_equal(row, expected)
    assert np.isnan(got[0, 0]) and not np.isnan(got[1]).any()
    np.testing.assert_array_equal(d.interdependence(x, weights=weights[1]), d.interdependence(x))
    with pytest.raises(ValueError, match="weights must be non-negative with 60 columns"):
        d.interdependence(x, weights=-weights)


def test_identity_dependence_matches_weighted_sklearn_linear_regression():
    rng = np.random.default_rng(3)
    groups = rng.random((300, 2)) < [0.4, 0.6]
    # "Male" is an identity and predicted: it is regressed on the other identity only.
    pred = np.column_stack([groups[:, 0] ^ (rng.random(300) < 0.1), rng.random(300) < 0.3, groups[:, 1]])
    attributes, identities = ["Male", "Smiling", "Young_pred"], ["Male", "Young"]
    weights = np.stack([np.ones(300), rng.multinomial(300, np.full(300, 1 / 300))])
    got = d.identity_dependence(pred, groups, attributes=attributes, identities=identities, weights=weights)
    for w, row in zip(weights, got, strict=True):
        for j, name in enumerate(attributes):
            x = groups[:, [i for i, ident in enumerate(identities) if ident != name]].astype(float)
            fit = LinearRegression().fit(x, pred[:, j], sample_weight=w)
            assert row[j] == pytest.approx(fit.score(x, pred[:, j], sample_weight=w), abs=1e-9)
    np.testing.assert_array_equal(
        d.identity_dependence(pred, groups, attributes=attributes, identities=identities), got[0]
    )
    constant = np.column_stack([pred[:, :2], np.zeros(300, bool)])
    assert np.isnan(d.identity_dependence(constant, groups, attributes=attributes, identities=identities)[2])
