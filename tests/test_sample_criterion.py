"""Tests of prunebias.analysis.sample_criterion: scores, their evaluation against known targets,
precision-recall curves and the gallery."""

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from criteria_inputs import confident
from prunebias.analysis import sample_criterion as sc


def test_susceptibility_scores_by_hand():
    p = np.array([[0.5, 0.95], [0.7, 0.99], [0.9, 0.05]])  # 3 seeds, 2 samples
    scores = sc.susceptibility_scores(np.log(p / (1 - p))[:, :, None], band=(0.1, 0.9))
    np.testing.assert_allclose(scores["uncertainty"][:, 0], [(0.5 + 0.3 + 0.1) / 3, (0.05 + 0.01 + 0.05) / 3])
    np.testing.assert_allclose(scores["prob_std"][:, 0], np.std([[0.5, 0.7, 0.9], [0.95, 0.99, 0.05]], axis=1))
    # votes: sample 0 = (F, T, T) -> T, one dissenter; sample 1 = (T, T, F) -> T, one dissenter
    np.testing.assert_allclose(scores["disagreement"][:, 0], [1 / 3, 1 / 3])
    np.testing.assert_array_equal(scores["flag"][:, 0], [1.0, 1.0])  # mean p 0.7 and 0.663


def _evaluate(scores, target, groups, **kw):
    n_attr = target.shape[1]
    kw.setdefault("bootstrap", 0)
    attributes = [f"a{j}" for j in range(n_attr)]
    identities = [f"g{j}" for j in range(groups.shape[1])]
    return sc.evaluate_scores(scores, {"t": target}, groups, attributes, identities, **kw)


def test_perfect_score_has_auc_one_and_random_score_about_one_half():
    rng = np.random.default_rng(2)
    n, n_attr = 4000, 3
    target = rng.random((n, n_attr)) < 0.05
    groups = rng.random((n, 2)) < 0.5
    perfect = target + 0.1 * rng.random((n, n_attr))
    out = _evaluate({"perfect": perfect, "random": rng.random((n, n_attr))}, target, groups, bootstrap=200)
    perfect_rows = out[out["score"] == "perfect"]
    np.testing.assert_allclose(perfect_rows["auc"], 1.0)
    np.testing.assert_allclose(perfect_rows[["auc_low", "auc_high"]], 1.0)
    random_rows = out[out["score"] == "random"]
    assert np.abs(random_rows["auc"] - 0.5).max() < 0.06
    pooled = random_rows[(random_rows["attribute"] == "all") & (random_rows["identity"] == "all")].iloc[0]
    assert pooled["auc_low"] < 0.5 < pooled["auc_high"]
    # flagging the top 10% by a perfect score catches every target when they are fewer
    top = perfect_rows[(perfect_rows["fraction"] == 0.1) & (perfect_rows["attribute"] != "all")]
    np.testing.assert_allclose(top["precision"], top["n_targets"] / (0.1 * n))
    np.testing.assert_allclose(top["recall"], 1.0)


def test_auc_matches_sklearn_per_attribute_pooled_and_per_group_with_ties():
    rng = np.random.default_rng(3)
    n, n_attr = 500, 3
    score = np.round(rng.random((n, n_attr)), 1)  # many ties
    target = rng.random((n, n_attr)) < 0.2 + 0.5 * score
    groups = rng.random((n, 2)) < 0.4
    out = _evaluate({"s": score}, target, groups).drop_duplicates(["attribute", "identity", "group"])
    got = out.set_index(["attribute", "identity", "group"])["auc"]
    for j in range(n_attr):
        assert got[(f"a{j}", "all", "all")] == pytest.approx(roc_auc_score(target[:, j], score[:, j]))
    assert got[("all", "all", "all")] == pytest.approx(roc_auc_score(target.ravel(), score.ravel()))
    for j in range(2):
        for value in (0, 1):
            rows = groups[:, j] == value
            expected = roc_auc_score(target[rows].ravel(), score[rows].ravel())
            assert got[("all", f"g{j}", str(value))] == pytest.approx(expected)


def test_auc_interval_agrees_with_a_recomputed_bootstrap():
    rng = np.random.default_rng(4)
    n = 400
    score = rng.random((n, 2))
    target = rng.random((n, 2)) < 0.1 + 0.3 * score
    groups = rng.random((n, 1)) < 0.5
    out = _evaluate({"s": score}, target, groups, bootstrap=1000, seed=5).drop_duplicates(["attribute", "identity"])
    row = out.set_index(["attribute", "identity", "group"]).loc[("all", "all", "all")]
    # the same statistic, recomputed on every resample (pairs of a sample stay together)
    weights = np.stack([np.bincount(rng.integers(0, n, n), minlength=n) for _ in range(400)])
    draws = [roc_auc_score(target.ravel(), score.ravel(), sample_weight=np.repeat(w, 2)) for w in weights]
    low, high = np.percentile(draws, [2.5, 97.5])
    assert row["auc_low"] == pytest.approx(low, abs=0.015)
    assert row["auc_high"] == pytest.approx(high, abs=0.015)
    assert row["auc_low"] < row["auc"] < row["auc_high"]


def test_top_fraction_precision_recall_by_hand_and_ties_share_the_cut():
    score = np.arange(10, dtype=float)[:, None] / 10
    target = np.zeros((10, 1), dtype=bool)
    target[[9, 8, 0]] = True
    groups = np.zeros((10, 1), dtype=bool)
    out = _evaluate({"s": score}, target, groups, fractions=[0.2])
    row = out[out["attribute"] == "a0"].iloc[0]
    assert (row["share_flagged"], row["precision"], row["recall"]) == pytest.approx((0.2, 1.0, 2 / 3))
    assert row["lift"] == pytest.approx(1.0 / 0.3)
    flat = _evaluate({"s": np.zeros((10, 1))}, target, groups, fractions=[0.5])
    row = flat[flat["attribute"] == "a0"].iloc[0]  # all tied: every pair half selected
    assert (row["share_flagged"], row["precision"], row["recall"]) == pytest.approx((0.5, 0.3, 0.5))
    assert row["auc"] == 0.5


def test_flag_score_is_evaluated_at_its_flag_and_headline_reports_capture_vs_chance():
    target = np.array([[True], [True], [False], [False]])
    flag = np.array([[1.0], [0.0], [1.0], [0.0]])
    out = _evaluate({"flag": flag}, target, np.zeros((4, 1), dtype=bool), fractions=[0.1, 0.2])
    assert set(out["selection"]) == {"flag"} and out["fraction"].isna().all()
    head = sc.headline(out)
    assert list(head.columns) == ["target"] + sc.HEADLINE_COLUMNS  # no method, sparsity keys here
    assert (head["captured"].iloc[0], head["chance"].iloc[0], head["lift"].iloc[0]) == (0.5, 0.5, 1.0)


def test_evaluate_scores_rejects_bad_inputs():
    with pytest.raises(ValueError, match="shape"):
        _evaluate({"s": np.zeros((5, 2)), "u": np.zeros((4, 2))}, np.zeros((5, 2), bool), np.zeros((5, 1), bool))
    with pytest.raises(ValueError, match="flag"):
        _evaluate({"flag": np.full((5, 1), 0.5)}, np.zeros((5, 1), bool), np.zeros((5, 1), bool))
    with pytest.raises(ValueError, match="fractions"):
        _evaluate({"s": np.zeros((5, 1))}, np.zeros((5, 1), bool), np.zeros((5, 1), bool), fractions=[1.5])


def test_precision_recall_curves_by_hand_match_sklearn_and_stay_small():
    from sklearn.metrics import precision_recall_curve

    score = np.array([[0.9, 0.8], [0.8, 0.1]])  # pairs flattened: 0.9, 0.8, 0.8, 0.1
    target = np.array([[True, False], [True, False]])
    curve = sc.precision_recall_curves(
        {"uncertainty": score}, {("gmp", 0.9, "cie"): target}, key_names=("method", "sparsity", "target")
    )
    assert list(curve.columns) == ["method", "sparsity", "target"] + sc.PR_CURVE_COLUMNS
    np.testing.assert_allclose(curve["threshold"], [0.9, 0.8, 0.1])  # tied pairs are flagged together
    np.testing.assert_allclose(curve["share_flagged"], [0.25, 0.75, 1.0])
    np.testing.assert_allclose(curve["recall"], [0.5, 1.0, 1.0])
    np.testing.assert_allclose(curve["precision"], [1.0, 2 / 3, 0.5])  # last point: the target rate

    rng = np.random.default_rng(3)
    y = rng.random((500, 4)) < 0.2
    s = np.round(rng.random((500, 4)) + 0.5 * y, 2)  # informative, with ties
    full = sc.precision_recall_curves({"s": s}, {"cie": y}, max_points=10_000)
    precision, recall, thresholds = precision_recall_curve(y.ravel(), s.ravel())
    expected = pd.DataFrame({"threshold": thresholds, "precision": precision[:-1], "recall": recall[:-1]})
    expected = expected.sort_values("threshold", ascending=False, ignore_index=True)
    np.testing.assert_allclose(full[["threshold", "precision", "recall"]], expected)

    small = sc.precision_recall_curves({"s": s, "t": -s}, {"cie": y, "none": np.zeros_like(y)}, max_points=20)
    for (score_name, target), c in small.groupby(["score", "target"]):
        assert 2 <= len(c) <= 20 and c["share_flagged"].is_monotonic_increasing
        assert c["share_flagged"].iloc[-1] == 1.0 and c["threshold"].iloc[0] == (s if score_name == "s" else -s).max()
        assert c["recall"].isna().all() if target == "none" else c["recall"].is_monotonic_increasing
    with pytest.raises(ValueError, match="max_points"):
        sc.precision_recall_curves({"s": s}, {"cie": y}, max_points=1)
    for bad, message in (
        ({}, "scores is empty"),
        ({"s": s, "t": s[:-1]}, "scores\\['t'\\] must be a NaN-free array"),
        ({"s": np.where(y, np.nan, s)}, "NaN-free"),
        ({"flag": s}, "only 0 and 1"),
    ):
        with pytest.raises(ValueError, match=message):
            sc.precision_recall_curves(bad, {"cie": y})


def test_susceptible_samples_lists_the_most_uncertain_first():
    rng = np.random.default_rng(7)
    n = 50
    dense = confident(rng.random((3, n, 2)) < 0.5, rng)
    dense[:, 17, 0] = [0.1, -0.05, 0.2]  # the least certain sample of attribute 0
    y = rng.random((n, 2)) < 0.5
    g = rng.random((n, 1)) < 0.5
    sparse = {("gmp", 0.99): -dense[:2]}
    out = sc.susceptible_samples([f"id{i}" for i in range(n)], y, g, dense, sparse, ["a", "b"], ["Male"], n=4)
    assert len(out) == 4 * 2 * 2
    first = out[(out["attribute"] == "a") & (out["rank"] == 1)].set_index("method")
    assert (first["id"] == "id17").all() and first.loc["dense", "Male"] == g[17, 0]
    assert first.loc["dense", "prediction"] and not first.loc["gmp", "prediction"]
    assert first.loc["gmp", "cie"] and not first.loc["dense", "cie"]
    assert (out.groupby(["attribute", "method"])["uncertainty"].is_monotonic_decreasing).all()
