import numpy as np
import pandas as pd
import pytest
from scipy.special import logit

from prunebias.analysis import effects, metrics, shortcut_control
from prunebias.jobs import _thresholded

IDENT = ["Male", "Young"]
ATTRS = ["Male", "Young", "a", "b", "c"]


def _split(n, rng):
    """Identity labels (n, 2) and labels (n, 5): a follows Male, b follows Young, c neither;
    Young is independent of Male."""
    g = rng.random((n, 2)) < [0.4, 0.7]
    a = rng.random(n) < np.where(g[:, 0], 0.7, 0.2)
    b = rng.random(n) < np.where(g[:, 1], 0.6, 0.15)
    c = rng.random(n) < 0.3
    return g, np.column_stack([g, a, b, c])


def test_identity_logits_are_the_training_conditionals():
    rng = np.random.default_rng(0)
    g, y = _split(20000, rng)
    query = np.array([[True, True], [True, False], [False, True], [False, False]])
    z = shortcut_control.identity_logits(y, g, query, attributes=ATTRS, identities=IDENT)
    assert z.shape == (4, 5)
    # a depends on Male only: its logit is P(a | Male) whatever Young is.
    assert z[[0, 1], 2] == pytest.approx([logit(0.7)] * 2, abs=0.08)
    assert z[[2, 3], 2] == pytest.approx([logit(0.2)] * 2, abs=0.08)
    # An identity as target is fitted on the other identities only: Young does not predict Male.
    assert z[:, 0] == pytest.approx(np.full(4, logit(g[:, 0].mean())), abs=0.08)
    # c depends on no identity.
    assert np.ptp(z[:, 4]) < 0.1


def test_an_attribute_with_one_training_value_gets_its_prior():
    rng = np.random.default_rng(1)
    g, y = _split(500, rng)
    y[:, 4] = False
    z = shortcut_control.identity_logits(y, g, g[:10], attributes=ATTRS, identities=IDENT)
    assert (z[:, 4] == effects.prior_logits(y)[4]).all() and np.isfinite(z[:, 4]).all()


def test_prior_reference_is_each_attributes_prevalence_for_every_sample():
    rng = np.random.default_rng(2)
    g, y = _split(1000, rng)
    z = shortcut_control.reference_logits("prior", y, g, g[:7], attributes=ATTRS, identities=IDENT)
    assert z.shape == (7, 5) and (z == effects.prior_logits(y)).all()
    with pytest.raises(ValueError, match="unknown reference predictor 'age'"):
        shortcut_control.reference_logits("age", y, g, g, attributes=ATTRS, identities=IDENT)


def test_mix_goes_from_the_dense_model_to_the_reference():
    dense, ref = np.arange(6.0).reshape(1, 2, 3), np.full((2, 3), -1.0)
    assert (shortcut_control.mix(dense, ref, 0.0) == dense).all()
    assert (shortcut_control.mix(dense, ref, 1.0) == ref).all()
    assert shortcut_control.mix(dense, ref, 0.25) == pytest.approx(0.75 * dense - 0.25)
    with pytest.raises(ValueError, match="outside"):
        shortcut_control.mix(dense, ref, 1.5)


def _control_effects(reference, weight, seeds=(1, 2)):
    """paired_effects of dense models (labels plus noise) against their mixture with ``reference``."""
    rng = np.random.default_rng(3)
    g_train, y_train = _split(5000, rng)
    g_valid, y_valid = _split(1500, rng)
    g_test, y_test = _split(2000, rng)
    kw = dict(attributes=ATTRS, identities=IDENT)
    ref = {
        "valid": shortcut_control.reference_logits(reference, y_train, g_train, g_valid, **kw),
        "test": shortcut_control.reference_logits(reference, y_train, g_train, g_test, **kw),
    }
    rows, z_valid, z_test = [], [], []
    for s in seeds:
        dense = {
            k: (2.0 * y - 1) * 1.5 + rng.normal(0, 1.5, y.shape) for k, y in (("valid", y_valid), ("test", y_test))
        }
        for method, w in (("dense", 0.0), ("mixed", weight)):
            rows.append({"method": method, "sparsity": w, "seed": s})
            z_valid.append(shortcut_control.mix(dense["valid"], ref["valid"], w))
            z_test.append(shortcut_control.mix(dense["test"], ref["test"], w))
    models, z_valid, z_test = pd.DataFrame(rows), np.stack(z_valid), np.stack(z_test)
    cond = metrics.train_conditionals(y_train, g_train)
    return {
        kind: effects.paired_effects(
            models,
            preds,
            effects.probabilities(z_test),
            y_test,
            g_test,
            cond,
            n_bootstrap=200,
            statistics=shortcut_control.STATISTICS,
            **kw,
        ).set_index(["statistic", "identity"])
        for kind, preds in _thresholded(z_valid, z_test, y_valid).items()
    }


def test_the_measurement_finds_a_planted_identity_shortcut_beyond_what_degradation_does():
    # At the default threshold losing evidence alone moves BA too (here up: fewer false
    # positives from the larger, unfavoured group), so the shortcut must beat the prior mixture.
    planted, degraded = _control_effects("identity", 0.6), _control_effects("prior", 0.6)
    for kind in ("default", "calibrated"):
        for key in [("bias_amplification", g) for g in IDENT] + [("identity_dependence", "all")]:
            row, null = planted[kind].loc[key], degraded[kind].loc[key]
            assert row["pairs"] >= 1 and row["ci_low"] > max(0.0, null["ci_high"]), (kind, key, row, null)
    assert set(planted["default"].index.get_level_values("statistic")) == set(shortcut_control.STATISTICS)


def test_losing_evidence_to_the_prior_changes_nothing_at_calibrated_thresholds():
    # Mixing with a constant per attribute is increasing in the dense logit: each attribute's
    # calibrated threshold moves with it, so the predictions, and every change, stay the same.
    table = _control_effects("prior", 0.6)["calibrated"]
    assert (table["pairs"] > 0).all()
    assert (table[["delta", "ci_low", "ci_high"]] == 0).all().all()
