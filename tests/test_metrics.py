"""Tests of prunebias.analysis.metrics: hand-computed examples, references, properties."""

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import (
    demographic_parity_difference,
    equal_opportunity_difference,
    equalized_odds_difference,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.metrics import roc_auc_score

from prunebias.analysis import metrics as m

T, F = True, False


def col(*values):
    """One attribute as an (n, 1) column."""
    return np.array(values)[:, None]


def logit(p):
    return np.log(p / (1 - p))


# ------------------------------------------------------------------------ thresholds
def test_calibrated_threshold_marks_the_k_largest_validation_logits():
    z = np.array([[3.0, 0.5], [1.0, 0.4], [2.0, 0.3], [0.0, 0.2]])
    y = np.array([[T, F], [F, F], [T, T], [F, F]])  # k = 2 and 1
    t = m.calibrated_thresholds(z, y)
    np.testing.assert_array_equal(t, [1.0, 0.4])
    np.testing.assert_array_equal(m.predict(z, t), [[T, T], [F, F], [T, F], [F, F]])


def test_calibrated_threshold_ties_at_the_boundary_are_negative():
    z = col(3.0, 2.0, 2.0, 0.0)
    t = m.calibrated_thresholds(z, col(T, T, F, F))  # k = 2, but 2nd and 3rd largest tie
    assert t[0] == 2.0
    np.testing.assert_array_equal(m.predict(z, t)[:, 0], [T, F, F, F])


def test_calibrated_threshold_without_validation_positives_predicts_nothing():
    t = m.calibrated_thresholds(col(5.0, -1.0), col(F, F))
    assert t[0] == np.inf
    assert not m.predict(col(1e30, np.inf), t).any()


def test_calibrated_threshold_with_only_validation_positives_predicts_everything():
    t = m.calibrated_thresholds(col(5.0, -1.0), col(T, T))
    assert t[0] == -np.inf
    assert m.predict(col(-1e30, 0.0), t).all()


def test_predict_is_strict():
    np.testing.assert_array_equal(m.predict([[0.0, 1.0, -0.1]], 0.0), [[F, T, F]])
    np.testing.assert_array_equal(m.predict([[0.5, 0.5]], [0.5, 0.4]), [[F, T]])


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=40, unique=True).flatmap(
        lambda z: st.tuples(st.just(z), st.lists(st.booleans(), min_size=len(z), max_size=len(z)))
    )
)
def test_calibrated_threshold_gives_exactly_k_validation_positives(zy):
    z, y = col(*zy[0]), col(*zy[1])
    assert m.predict(z, m.calibrated_thresholds(z, y)).sum() == y.sum()


# ----------------------------------------------------------------- per-attribute metrics
def test_accuracy_and_positive_rate():
    pred = np.array([[T, F], [T, T], [F, F], [F, F]])
    labels = np.array([[T, T], [F, T], [F, F], [F, T]])
    np.testing.assert_allclose(m.accuracy(pred, labels), [0.75, 0.5])
    np.testing.assert_allclose(m.positive_rate(pred), [0.5, 0.25])
    np.testing.assert_allclose(m.accuracy(pred.astype(int), labels.astype(int)), [0.75, 0.5])


def test_auc_hand_computed_with_ties_and_single_class():
    z = np.array([[0.1, 1, 0], [0.4, 1, 1], [0.35, 2, 2], [0.8, 2, 3]])
    y = np.array([[F, F, T], [F, T, T], [T, T, T], [T, F, T]])
    # col 0: sklearn's docstring example; col 1: pairs (pos, neg) = (1|1: 1/2),
    # (1|2: 0), (2|1: 1), (2|2: 1/2) -> 2/4; col 2: a single class.
    np.testing.assert_allclose(m.auc(z, y), [0.75, 0.5, np.nan])


def test_auc_matches_sklearn_on_tied_scores():
    rng = np.random.default_rng(0)
    z = rng.integers(0, 6, size=(300, 4)).astype(np.float32)
    y = rng.random((300, 4)) < [0.05, 0.3, 0.5, 0.9]
    expected = [roc_auc_score(y[:, j], z[:, j]) for j in range(4)]
    np.testing.assert_allclose(m.auc(z, y), expected, rtol=1e-12)


def test_uncertainty_counts_the_open_band():
    z = col(0.0, 1.0, 5.0, -5.0)  # p = 0.5, 0.73, 0.993, 0.007
    assert m.uncertainty(z)[0] == 0.5
    assert m.uncertainty(z, band=(0.4, 0.6))[0] == 0.25
    assert m.uncertainty(col(logit(0.5)), band=(0.5, 0.9))[0] == 0.0  # open at both ends


def test_ece_hand_computed():
    z = col(logit(0.25), logit(0.25), logit(0.75), logit(0.75))
    y = col(F, T, T, T)
    # bin [0.2, 0.3): |0.25 - 0.5| * 2/4; bin [0.7, 0.8): |0.75 - 1| * 2/4
    np.testing.assert_allclose(m.ece(z, y), [0.25])
    np.testing.assert_allclose(m.ece(z, y, n_bins=1), [abs(0.5 - 0.75)])


def test_ece_puts_probability_one_in_the_last_bin():
    z = col(1000.0, 1000.0, logit(0.95))  # p = 1, 1, 0.95 share bin [0.9, 1]
    # one bin of 3 samples: |mean p - mean y| = |(1 + 1 + 0.95) / 3 - 1| = 0.05 / 3
    np.testing.assert_allclose(m.ece(z, col(T, T, T)), [0.05 / 3])


def test_rare_value_ratio_picks_the_rare_value_from_training():
    train = np.array([[T, T, T], [F, T, F], [F, T, T], [F, F, F]])  # prevalence .25, .75, .5
    labels = np.array([[T, T, F], [T, T, F], [F, F, F], [F, F, F]])  # test .5, .5, 0
    pred = np.array([[T, T, T], [F, T, F], [F, T, F], [F, F, F]])  # q = .25, .75, .25
    # rare positive: q/π = .5; rare negative: (1-q)/(1-π) = .5; π = 0 -> NaN
    np.testing.assert_allclose(m.rare_value_ratio(pred, labels, train), [0.5, 0.5, np.nan])


# ------------------------------------------------------------------- bias amplification
# Test split: identity g, attribute a; 2 positives of a in each group.
G_TEST = col(T, T, T, T, F, F, F, F)
Y_TEST = col(T, T, F, F, T, T, F, F)
PRED = col(T, T, T, F, T, F, F, F)  # 4 predicted positives, 3 in g=1


def train_split(pos_g1, n_g1, pos_g0, n_g0):
    """Training labels with P(a | g=1) = pos_g1/n_g1 and P(a | g=0) = pos_g0/n_g0."""
    y = [T] * pos_g1 + [F] * (n_g1 - pos_g1) + [T] * pos_g0 + [F] * (n_g0 - pos_g0)
    return col(*y), col(*([T] * n_g1 + [F] * n_g0))


def ba(pred, train, *, min_positives=2, min_relative_gap=0.1, identities=("g",)):
    return m.bias_amplification(
        pred,
        Y_TEST,
        G_TEST,
        *train,
        attributes=["a"],
        identities=list(identities),
        min_positives=min_positives,
        min_relative_gap=min_relative_gap,
    )[0, 0]


def test_bias_amplification_hand_computed():
    favours_g1 = train_split(3, 4, 1, 4)  # P1 = .75 > P0 = .25
    assert ba(PRED, favours_g1) == pytest.approx(3 / 4 - 2 / 4)
    favours_g0 = train_split(1, 4, 3, 4)
    assert ba(PRED, favours_g0) == pytest.approx(1 / 4 - 2 / 4)


def test_bias_amplification_needs_min_positives_in_both_groups():
    train = train_split(3, 4, 1, 4)
    assert np.isnan(ba(PRED, train, min_positives=3))  # only 2 test positives per group
    labels = col(T, T, T, F, T, T, F, F)  # 3 positives in g=1, still 2 in g=0
    out = m.bias_amplification(PRED, labels, G_TEST, *train, attributes=["a"], identities=["g"], min_positives=3)
    assert np.isnan(out[0, 0])


def test_bias_amplification_favours_group_zero_on_equal_training_rates():
    # SPEC: G = {g=1} only if P1 > P0; equal rates pass only with min_relative_gap=0.
    assert ba(PRED, train_split(2, 4, 2, 4), min_relative_gap=0.0) == pytest.approx(1 / 4 - 2 / 4)


def test_bias_amplification_needs_a_relative_training_gap():
    train = train_split(25, 50, 24, 50)  # |.50 - .48| / .48 = 0.0417
    assert np.isnan(ba(PRED, train, min_relative_gap=0.1))
    assert ba(PRED, train, min_relative_gap=0.04) == pytest.approx(0.25)


def test_bias_amplification_zero_training_prevalence():
    assert ba(PRED, train_split(2, 4, 0, 4)) == pytest.approx(0.25)  # gap / 0 = inf: defined
    assert np.isnan(ba(PRED, train_split(0, 4, 0, 4)))  # no correlation to amplify


def test_bias_amplification_without_predicted_positives_is_nan():
    assert np.isnan(ba(np.zeros_like(PRED), train_split(3, 4, 1, 4)))


def test_bias_amplification_of_an_identity_on_itself_is_nan():
    assert np.isnan(ba(PRED, train_split(3, 4, 1, 4), identities=("a",)))


def test_train_conditionals_hand_computed():
    p1, p0 = m.train_conditionals(*train_split(3, 4, 1, 4))
    assert p1.shape == p0.shape == (1, 1)
    assert p1[0, 0] == pytest.approx(0.75) and p0[0, 0] == pytest.approx(0.25)
    p1, _ = m.train_conditionals(col(T, F), col(F, F))  # nobody in g=1
    assert np.isnan(p1[0, 0])


def test_bias_amplification_batch_equals_one_call_per_matrix():
    rng = np.random.default_rng(4)
    labels, groups = rng.random((60, 3)) < 0.4, rng.random((60, 2)) < 0.5
    train = rng.random((200, 3)) < 0.3, rng.random((200, 2)) < 0.5
    preds = rng.random((4, 60, 3)) < 0.4
    names = {"attributes": ["a", "b", "g1"], "identities": ["g0", "g1"], "min_positives": 2}
    batch = m.bias_amplification_batch(preds, labels, groups, m.train_conditionals(*train), **names)
    single = np.stack([m.bias_amplification(p, labels, groups, *train, **names) for p in preds])
    np.testing.assert_array_equal(batch, single)
    assert np.isnan(batch[:, 1, 2]).all() and np.isfinite(batch).any()  # g1 on itself


def test_bias_amplification_batch_checks_its_inputs():
    train = m.train_conditionals(*train_split(3, 4, 1, 4))
    with pytest.raises(ValueError, match=r"preds must be a boolean array \(M, n_samples, n_attributes\)"):
        m.bias_amplification_batch(PRED, Y_TEST, G_TEST, train, attributes=["a"], identities=["g"])
    with pytest.raises(ValueError, match="conditionals must be two arrays of shape"):
        m.bias_amplification_batch(
            PRED[None], Y_TEST, G_TEST, (np.zeros((2, 1)),) * 2, attributes=["a"], identities=["g"]
        )


@settings(max_examples=80, deadline=None)
@given(
    data=st.data(),
    n=st.integers(4, 40),
    n_attr=st.integers(1, 3),
    n_ident=st.integers(1, 2),
)
def test_bias_amplification_within_minus_one_and_one(data, n, n_attr, n_ident):
    def bools(rows, cols):
        return data.draw(arrays(bool, (rows, cols)))

    out = m.bias_amplification(
        bools(n, n_attr),
        bools(n, n_attr),
        bools(n, n_ident),
        bools(n, n_attr),
        bools(n, n_ident),
        attributes=[f"a{j}" for j in range(n_attr)],
        identities=[f"g{j}" for j in range(n_ident)],
        min_positives=data.draw(st.integers(0, 2)),
        min_relative_gap=0.0,
    )
    assert out.shape == (n_ident, n_attr)
    defined = out[~np.isnan(out)]
    assert ((defined >= -1) & (defined <= 1)).all()


# ----------------------------------------------------------------- group rates and gaps
def test_group_rates_and_gaps_hand_computed():
    pred = col(T, T, T, T, T, F, F, F)
    # g=1 (rows 0-3): y = 1 1 0 0, ŷ = 1 1 1 1; g=0 (rows 4-7): y = 1 1 0 0, ŷ = 1 0 0 0
    rates, gaps = m.group_rates(pred, Y_TEST, G_TEST), m.fairness_gaps(pred, Y_TEST, G_TEST)
    np.testing.assert_allclose(rates["group_positive_rate"][0, :, 0], [0.25, 1.0])
    np.testing.assert_allclose(rates["group_fpr"][0, :, 0], [0.0, 1.0])
    np.testing.assert_allclose(rates["group_fnr"][0, :, 0], [0.5, 0.0])
    np.testing.assert_allclose(rates["group_accuracy"][0, :, 0], [0.75, 0.5])
    assert gaps["demographic_parity_diff"][0, 0] == pytest.approx(0.75)
    assert gaps["equal_opportunity_diff"][0, 0] == pytest.approx(0.5)
    assert gaps["equalized_odds_diff"][0, 0] == pytest.approx(1.0)


def test_group_rates_undefined_without_positives():
    labels = col(T, T, F, F, F, F, F, F)  # group g=0 has no positives
    rates, gaps = m.group_rates(PRED, labels, G_TEST), m.fairness_gaps(PRED, labels, G_TEST)
    assert np.isnan(rates["group_fnr"][0, 0, 0])
    assert np.isnan(gaps["equal_opportunity_diff"][0, 0])
    assert np.isnan(gaps["equalized_odds_diff"][0, 0])
    assert not np.isnan(rates["group_fpr"]).any()
    assert not np.isnan(gaps["demographic_parity_diff"]).any()


def test_fairness_gaps_agree_with_fairlearn():
    rng = np.random.default_rng(2)
    n = 400
    labels = rng.random((n, 3)) < [0.2, 0.5, 0.7]
    pred = labels ^ (rng.random((n, 3)) < [0.1, 0.3, 0.2])
    groups = rng.random((n, 2)) < [0.3, 0.6]
    gaps = m.fairness_gaps(pred, labels, groups)
    ours = {
        "dp": gaps["demographic_parity_diff"],
        "eo": gaps["equal_opportunity_diff"],
        "eodds": gaps["equalized_odds_diff"],
    }
    for g in range(2):
        for a in range(3):
            kw = dict(y_true=labels[:, a], y_pred=pred[:, a], sensitive_features=groups[:, g])
            assert ours["dp"][g, a] == pytest.approx(demographic_parity_difference(**kw))
            assert ours["eo"][g, a] == pytest.approx(equal_opportunity_difference(**kw))
            assert ours["eodds"][g, a] == pytest.approx(equalized_odds_difference(**kw))


# ------------------------------------------------------------------------ input checks
@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: m.accuracy(np.zeros(3, bool), np.zeros(3, bool)), "pred must be 2-D"),
        (lambda: m.accuracy(np.zeros((3, 2), bool), np.zeros((3, 1), bool)), "same shape"),
        (lambda: m.accuracy(np.full((2, 1), 2), np.zeros((2, 1), bool)), "pred must be boolean"),
        (lambda: m.auc([[np.nan]], [[T]]), "logits contains NaN"),
        (lambda: m.uncertainty([[0.0]], band=(0.9, 0.1)), "band"),
        (lambda: m.ece([[0.0]], [[T]], n_bins=0), "n_bins"),
        (lambda: m.predict([[0.0, 1.0]], [0.0]), "thresholds must have shape"),
        (lambda: m.calibrated_thresholds(np.zeros((0, 1)), np.zeros((0, 1), bool)), "no rows"),
        (lambda: ba(PRED, train_split(3, 4, 1, 4), min_positives=-1), "min_positives"),
        (lambda: ba(PRED, train_split(3, 4, 1, 4), identities=("g", "h")), "identities must name 1"),
    ],
)
def test_inputs_are_checked(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# -------------------------------------------------------------------------- model_metrics
IDENTITIES = ["Male", "Young"]


def make_frames(seed=0, n=(60, 40, 50)):
    """A random index with train/valid/test splits and the two prediction frames."""
    rng = np.random.default_rng(seed)
    attrs = ["Male", "Young", "Smiling", "Bald"]
    total = sum(n)
    labels = rng.random((total, 4)) < [0.5, 0.6, 0.4, 0.1]
    index = pd.DataFrame(labels, columns=attrs)
    index.insert(0, "id", [f"{i:04d}.jpg" for i in range(total)])
    index.insert(1, "split", np.repeat(["train", "valid", "test"], n))
    index.insert(2, "source", "synthetic")
    predicted = attrs[1:] + ["Male"]  # order differs from the index; identity predicted too

    def logits(split):
        rows = index[index["split"] == split]
        z = 2 * (rows[predicted].to_numpy() - 0.5) + rng.normal(size=(len(rows), 4))
        frame = pd.DataFrame(z.astype(np.float32), columns=predicted)
        frame.insert(0, "id", rows["id"].to_numpy())
        return frame

    return index, logits("valid"), logits("test")


def run(index, valid, test, **kw):
    return m.model_metrics(index, valid, test, IDENTITIES, **kw)


def test_model_metrics_schema():
    index, valid, test = make_frames()
    out = run(index, valid, test, min_positives=1)
    assert list(out.columns) == ["attribute", "identity", "group", "threshold", "metric", "value"]
    for c in out.columns[:-1]:
        assert pd.api.types.is_string_dtype(out[c]), c
    assert out["value"].dtype == np.float64
    n_attr, n_ident = 4, len(IDENTITIES)
    per_kind = (
        len(m.METRICS["attribute"]) * n_attr
        + len(m.METRICS["identity"]) * n_ident * n_attr
        + len(m.METRICS["group"]) * n_ident * 2 * n_attr
    )
    assert len(out) == 2 * per_kind
    assert not out.duplicated(["attribute", "identity", "group", "threshold", "metric"]).any()
    all_metrics = {name for names in m.METRICS.values() for name in names}
    # The study's metrics (README, "What is measured"), written out: METRICS cannot lose one.
    assert m.METRICS == {
        "attribute": (
            "accuracy", "auc", "positive_rate", "uncertainty", "interdependence", "identity_dependence", "ece",
            "rare_value_ratio",
        ),
        "identity": ("bias_amplification", "demographic_parity_diff", "equal_opportunity_diff", "equalized_odds_diff"),
        "group": ("group_positive_rate", "group_fpr", "group_fnr", "group_accuracy"),
    }  # fmt: skip
    for kind in ("default", "calibrated"):
        assert set(out.loc[out["threshold"] == kind, "metric"]) == all_metrics
    attr_rows = out["metric"].isin(m.METRICS["attribute"])
    assert (out.loc[attr_rows, ["identity", "group"]] == "all").all().all()
    assert set(out.loc[out["metric"].isin(m.METRICS["group"]), "group"]) == {"0", "1"}
    assert set(out.loc[out["metric"].isin(m.METRICS["identity"]), "group"]) == {"all"}
    # Threshold-free metrics repeat the same value for both kinds.
    free = out[out["metric"].isin(["auc", "uncertainty", "ece"])].pivot_table(
        index=["attribute", "metric"], columns="threshold", values="value"
    )
    np.testing.assert_array_equal(free["default"], free["calibrated"])


def value(out, metric, attribute, threshold="default", identity="all", group="all"):
    sel = out[
        (out["metric"] == metric)
        & (out["attribute"] == attribute)
        & (out["threshold"] == threshold)
        & (out["identity"] == identity)
        & (out["group"] == group)
    ]
    assert len(sel) == 1
    return sel["value"].iloc[0]


def test_model_metrics_matches_the_array_functions():
    index, valid, test = make_frames()
    out = run(index, valid, test)
    labels = index.set_index("id")
    attrs = list(test.columns[1:])
    z_valid, z_test = valid[attrs].to_numpy(), test[attrs].to_numpy()
    y_test = labels.loc[test["id"], attrs].to_numpy()
    t = m.calibrated_thresholds(z_valid, labels.loc[valid["id"], attrs].to_numpy())
    pred = m.predict(z_test, t)
    groups = labels.loc[test["id"], IDENTITIES].to_numpy()
    for j, a in enumerate(attrs):
        assert value(out, "accuracy", a, "calibrated") == m.accuracy(pred, y_test)[j]
        assert value(out, "auc", a, "calibrated") == m.auc(z_test, y_test)[j]
        fnr = m.group_rates(pred, y_test, groups)["group_fnr"][1, 1, j]  # identity Young, group "1"
        assert value(out, "group_fnr", a, "calibrated", "Young", "1") == fnr
    assert np.isnan(value(out, "bias_amplification", "Male", identity="Male"))


def test_model_metrics_no_positives():
    """k = 0 validation positives and an attribute the model never predicts."""
    index, valid, test = make_frames()
    index.loc[index["split"] == "valid", "Bald"] = False
    test["Smiling"] = np.float32(-50.0)
    out = run(index, valid, test, min_positives=1)
    assert value(out, "positive_rate", "Bald", "calibrated") == 0.0  # threshold +inf
    assert value(out, "positive_rate", "Smiling") == 0.0
    assert value(out, "rare_value_ratio", "Smiling") == 0.0
    assert np.isnan(value(out, "interdependence", "Smiling"))
    assert np.isnan(value(out, "bias_amplification", "Smiling", identity="Young"))
    prevalence = index.set_index("id").loc[test["id"], "Smiling"].mean()
    assert value(out, "accuracy", "Smiling") == pytest.approx(1 - prevalence)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_model_metrics_invariant_to_sample_order(seed):
    index, valid, test = make_frames(seed % 7)
    rng = np.random.default_rng(seed)
    expected = run(index, valid, test, min_positives=2)
    shuffled = [f.iloc[rng.permutation(len(f))].reset_index(drop=True) for f in (index, valid, test)]
    pd.testing.assert_frame_equal(run(*shuffled, min_positives=2), expected, check_exact=False, rtol=1e-12)


@pytest.mark.parametrize(
    "mutate, match",
    [
        (
            lambda i, v, t: (i, v, t.assign(id=t["id"].where(t.index > 0, "nope.jpg"))),
            "test has ids missing from index: 'nope.jpg'",
        ),
        (lambda i, v, t: (i.drop(columns="Smiling"), v, t), r"no attribute columns \['Smiling'\]"),
        (
            lambda i, v, t: (i.drop(columns="Young"), *(f.drop(columns="Young") for f in (v, t))),
            r"no identity columns \['Young'\]",
        ),
        (lambda i, v, t: (i, v.drop(columns="Bald"), t), r"only in test: \['Bald'\]"),
        (lambda i, v, t: (i, t, v), 'valid has ids whose index split is not "valid"'),
        (lambda i, v, t: (i, v, t.assign(Bald=np.nan)), r"test has NaN logits in columns \['Bald'\]"),
        (lambda i, v, t: (i.assign(Bald=i["Bald"].astype(int)), v, t), r"must be bool, not: \['Bald'\]"),
        (lambda i, v, t: (i.assign(split="valid"), v, t), "test has ids whose index split"),
    ],
)
def test_model_metrics_checks_its_inputs(mutate, match):
    with pytest.raises(ValueError, match=match):
        run(*mutate(*make_frames()))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(min_positives=-1), "min_positives"),
        (dict(min_relative_gap=float("nan")), "min_relative_gap"),
        (dict(uncertainty_band=(0.5, 0.5)), "band"),
        (dict(ece_bins=0), "n_bins"),
    ],
)
def test_model_metrics_checks_its_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        run(*make_frames(), **kwargs)


def test_model_metrics_rejects_duplicate_ids_and_a_missing_train_split():
    index, valid, test = make_frames()
    with pytest.raises(ValueError, match="test has duplicate ids"):
        run(index, valid, pd.concat([test, test.iloc[:1]]))
    with pytest.raises(ValueError, match='no rows with split == "train"'):
        run(index[index["split"] != "train"], valid, test)
    with pytest.raises(ValueError, match="identities must be a list"):
        m.model_metrics(index, valid, test, "Male")


def test_model_metrics_single_attribute_model():
    """A single-label model: identities are grouped by, not predicted."""
    index, valid, test = make_frames()
    out = run(index, valid[["id", "Smiling"]], test[["id", "Smiling"]], min_positives=1)
    assert set(out["attribute"]) == {"Smiling"}
    assert set(out["identity"]) == {"all", *IDENTITIES}
    assert out.loc[out["metric"] == "interdependence", "value"].isna().all()
    assert out.loc[out["metric"] == "group_accuracy", "value"].notna().all()


def test_weighted_bias_amplification_equals_that_of_each_materialised_resample():
    rng = np.random.default_rng(0)
    n, n_attr, n_models, b = 400, 6, 3, 12
    y, g, preds = rng.random((n, n_attr)) < 0.4, rng.random((n, 2)) < 0.5, rng.random((n_models, n, n_attr)) < 0.4
    conditionals = m.train_conditionals(rng.random((n, n_attr)) < 0.4, rng.random((n, 2)) < 0.5)
    names, rules = [f"a{i}" for i in range(n_attr)], {"min_positives": 2, "min_relative_gap": 0.0}
    weights = rng.multinomial(n, np.full(n, 1 / n), size=b)
    batch = m.bias_amplification_batch(
        preds, y, g, conditionals, attributes=names, identities=["a0", "a1"], weights=weights, **rules
    )
    assert batch.shape == (b, n_models, 2, n_attr) and np.isfinite(batch).any()
    for w, got in zip(weights, batch):
        idx = np.repeat(np.arange(n), w)
        expected = m.bias_amplification_batch(
            preds[:, idx], y[idx], g[idx], conditionals, attributes=names, identities=["a0", "a1"], **rules
        )
        np.testing.assert_array_equal(got, expected)
    with pytest.raises(ValueError, match="weights must be non-negative integers"):
        m.bias_amplification_batch(
            preds, y, g, conditionals, attributes=names, identities=["a0", "a1"], weights=weights * 0.5, **rules
        )
