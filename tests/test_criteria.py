"""Tests of prunebias.analysis.criteria on constructed predictions whose right answers are known."""

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from prunebias.analysis import criteria as cr
from prunebias.analysis import metrics as pm


def _confident(pred, rng=None, low=2.0, high=6.0):
    """Logits with the sign of ``pred`` and magnitude in [low, high)."""
    size = np.abs(rng.uniform(low, high, np.shape(pred))) if rng is not None else low
    return np.where(pred, size, -size)


# --------------------------------------------------------------------------- votes, CIEs
def test_majority_vote_breaks_ties_by_mean_probability():
    z = np.array([[2.0, 2.0, 1.0, 1.0], [1.0, -1.0, -2.0, -1.0]])[:, :, None]  # 2 seeds, 4 samples
    # both positive; tie with mean p 0.575; tie with mean p 0.425; tie with mean p exactly 0.5
    assert cr.majority_vote(z)[:, 0].tolist() == [True, True, False, False]
    z3 = np.array([[1.0], [-1.0], [-5.0]])[:, :, None]
    assert not cr.majority_vote(z3)[0, 0]


def test_cies_placed_on_purpose_are_found_and_nothing_else():
    rng = np.random.default_rng(0)
    n, n_attr = 300, 5
    base = rng.random((n, n_attr)) < 0.4
    dense = np.stack([_confident(base, rng) for _ in range(3)])
    sparse = dense.copy()
    dense[0, :20, 0] *= -1  # one dense seed disagrees: the dense vote does not change
    cells = rng.choice(n * n_attr, size=40, replace=False)
    cie_cells, decoys = cells[:25], cells[25:]
    cie_rows, cie_cols = np.unravel_index(cie_cells, (n, n_attr))
    sparse[1:, cie_rows, cie_cols] *= -1  # 2 of 3 sparse seeds flip: the sparse vote flips
    dec_rows, dec_cols = np.unravel_index(decoys, (n, n_attr))
    sparse[2, dec_rows, dec_cols] *= -1  # 1 of 3 flips: a flip, but no CIE
    sparse[0, 20:40, 1] *= 0.5  # smaller margins, same sign: nothing
    expected = np.zeros((n, n_attr), dtype=bool)
    expected[cie_rows, cie_cols] = True

    cie = cr.compression_identified_exemplars(dense, sparse)
    np.testing.assert_array_equal(cie, expected)

    flips = cr.prediction_flips(dense, sparse)
    assert flips.shape == (3, n, n_attr)
    assert flips[1].sum() == 25 and flips[2].sum() == 40
    # seed 0: its dense parent disagreed with the other dense seeds on 20 pairs
    assert flips[0].sum() == 20 and flips[0, :20, 0].all()


def test_flips_match_seeds_by_value():
    rng = np.random.default_rng(1)
    dense = _confident(rng.random((3, 50, 2)) < 0.5, rng)
    sparse = dense[[1, 0]].copy()  # seeds 24, 23 of dense seeds 23, 24, 25
    sparse[0, :7, 0] *= -1
    flips = cr.prediction_flips(dense, sparse, dense_seeds=[23, 24, 25], sparse_seeds=[24, 23])
    assert flips.shape == (2, 50, 2)
    assert flips[0].sum() == 7 and flips[1].sum() == 0
    with pytest.raises(ValueError, match="dense_seeds and sparse_seeds"):
        cr.prediction_flips(dense, sparse)  # 3 vs 2 models, no seeds to match them
    with pytest.raises(ValueError, match="no seed in common"):
        cr.align_seeds([23, 24], [7])


def test_over_representation_is_one_for_uniform_cies_and_inverse_share_when_concentrated():
    n, n_attr = 1000, 3
    idx = np.arange(n)
    cie = np.zeros((n, n_attr), dtype=bool)
    cie[idx % 5 == 0] = True  # 1 in 5 of every group of the first identity
    groups = np.stack([(idx // 5) % 2 == 0, idx % 5 == 0], axis=1)
    table = cr.cie_group_table(cie, None, groups, ["a", "b", "c"], ["g", "h"])
    g = table[table["identity"] == "g"]
    np.testing.assert_allclose(g["over_representation"], 1.0)
    np.testing.assert_allclose(g["rate"], 0.2)
    h = table[(table["identity"] == "h") & (table["attribute"] == "a")].set_index("group")
    assert h.loc["1", "over_representation"] == pytest.approx(5.0)  # every CIE in 20% of samples
    assert h.loc["0", "over_representation"] == 0.0
    pooled = table[(table["attribute"] == "all") & (table["identity"] == "all")].iloc[0]
    assert pooled["n_pairs"] == n * n_attr and pooled["n_events"] == 600


def test_cie_group_table_averages_flips_over_seeds_and_leaves_no_event_undefined():
    n = 100
    cie = np.zeros((n, 1), dtype=bool)
    flips = np.zeros((2, n, 1), dtype=bool)
    flips[0, :10] = True  # 10 flips in one model, 0 in the other: 5 per model
    groups = (np.arange(n) < 50)[:, None]
    table = cr.cie_group_table(cie, flips, groups, ["a"], ["g"])
    flip = table[(table["kind"] == "flip") & (table["attribute"] == "a")].set_index(["identity", "group"])
    assert flip.loc[("all", "all"), "n_events"] == 5.0
    assert flip.loc[("g", "1"), "over_representation"] == pytest.approx(2.0)
    assert table[table["kind"] == "cie"]["over_representation"].isna().all()


# --------------------------------------------------------------------------- sample criterion
def test_susceptibility_scores_by_hand():
    p = np.array([[0.5, 0.95], [0.7, 0.99], [0.9, 0.05]])  # 3 seeds, 2 samples
    scores = cr.susceptibility_scores(np.log(p / (1 - p))[:, :, None], band=(0.1, 0.9))
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
    return cr.evaluate_scores(scores, {"t": target}, groups, attributes, identities, **kw)


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
    head = cr.headline(out)
    assert list(head.columns) == cr.TABLE_COLUMNS["headline"][2:]  # no method, sparsity keys here
    assert (head["captured"].iloc[0], head["chance"].iloc[0], head["lift"].iloc[0]) == (0.5, 0.5, 1.0)


def test_evaluate_scores_rejects_bad_inputs():
    with pytest.raises(ValueError, match="shape"):
        _evaluate({"s": np.zeros((5, 2)), "u": np.zeros((4, 2))}, np.zeros((5, 2), bool), np.zeros((5, 1), bool))
    with pytest.raises(ValueError, match="flag"):
        _evaluate({"flag": np.full((5, 1), 0.5)}, np.zeros((5, 1), bool), np.zeros((5, 1), bool))
    with pytest.raises(ValueError, match="fractions"):
        _evaluate({"s": np.zeros((5, 1))}, np.zeros((5, 1), bool), np.zeros((5, 1), bool), fractions=[1.5])


# --------------------------------------------------------------------------- attribute criterion
def test_spearman_is_one_on_a_monotone_relation_and_drops_undefined_entries():
    x = np.arange(12.0)
    res = cr.spearman_ci(x, np.exp(x / 3), bootstrap=200)
    assert (res["spearman"], res["low"], res["high"], res["n"]) == (1.0, 1.0, 1.0, 12)
    y = -(x**3)
    y[[2, 5]] = np.nan
    res = cr.spearman_ci(x, y, bootstrap=200)
    assert res["spearman"] == pytest.approx(-1.0) and res["n"] == 10
    assert np.isnan(cr.spearman_ci([1.0, 2.0], [3.0, 4.0])["spearman"])
    assert np.isnan(cr.spearman_ci(x, np.ones(12))["spearman"])


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
    criterion, ranking = cr.attribute_criterion(statistics, delta, bootstrap=100, top_k=2)
    assert list(criterion.columns) == cr.TABLE_COLUMNS["attribute_criterion"]
    got = criterion.set_index("statistic")
    assert got.loc["uncertainty", "spearman"] == 1.0 and got.loc["auc", "spearman"] == -1.0
    assert (got["n_attributes"] == 7).all() and (got["top_k_overlap"] == 1.0).all()
    assert got.loc["uncertainty", "top_k_chance"] == pytest.approx(2 / 7)
    used = ranking[ranking["delta_ba"].notna()]
    np.testing.assert_array_equal(used["predicted_rank"], used["realised_rank"])
    assert ranking.loc[ranking["attribute"] == "a7", "predicted_top_k"].all()
    assert ranking.loc[ranking["attribute"] == "a0", "predicted_rank"].isna().all()


def _metrics_rows(method, sparsity, seed, threshold, metric, identity, values):
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


def test_delta_ba_and_calibrated_threshold_recovery_by_hand():
    rows = []
    for seed, shift in ((23, 0.0), (24, 0.02)):
        for threshold, sparse_ba, sparse_acc in (("default", 0.30, 0.80), ("calibrated", 0.20, 0.85)):
            ba = "bias_amplification"
            rows += [
                _metrics_rows("dense", 0.0, seed, threshold, ba, "g", {"a": 0.10 + shift, "b": np.nan}),
                _metrics_rows("gmp", 0.99, seed, threshold, ba, "g", {"a": sparse_ba + shift, "b": 0.5}),
                _metrics_rows("dense", 0.0, seed, threshold, "accuracy", "all", {"a": 0.90, "b": 0.90}),
                _metrics_rows("gmp", 0.99, seed, threshold, "accuracy", "all", {"a": sparse_acc, "b": 0.90}),
            ]
    metrics = pd.concat(rows, ignore_index=True)
    delta = cr.delta_bias_amplification(metrics).set_index(["identity", "attribute"])
    assert delta.loc[("g", "a"), "delta_ba"] == pytest.approx(0.2)
    assert np.isnan(delta.loc[("g", "b"), "delta_ba"])
    assert delta.loc[("all", "a"), "delta_ba"] == pytest.approx(0.2)
    assert np.isnan(delta.loc[("all", "b"), "delta_ba"])

    out = cr.calibrated_threshold_recovery(metrics)
    assert list(out.columns) == cr.TABLE_COLUMNS["countermeasures"]
    out = out.set_index(["metric", "identity"])
    ba = out.loc[("bias_amplification", "all")]
    assert (ba["dense"], ba["sparse"], ba["countered"]) == pytest.approx((0.11, 0.31, 0.21))  # pair (g, a) only
    assert ba["recovered"] == pytest.approx(0.5)
    acc = out.loc[("accuracy", "all")]
    assert (acc["dense"], acc["sparse"], acc["countered"]) == pytest.approx((0.90, 0.85, 0.875))
    assert acc["recovered"] == pytest.approx(0.5)


def test_recovered_fraction_and_its_undefined_small_gap():
    got = cr.recovered_fraction([0.3, 0.3, 0.3, 0.1005], [0.2, 0.35, 0.05, 0.1], [0.1, 0.1, 0.1, 0.1])
    np.testing.assert_allclose(got[:3], [0.5, -0.25, 1.25])
    assert np.isnan(got[3])
    with pytest.raises(ValueError, match="min_gap"):
        cr.recovered_fraction(1, 1, 1, min_gap=-1)


# --------------------------------------------------------------------------- routing
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
    dense = _confident(y, rng, 0.1, 6.0)
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
    curve = cr.routing_curve(
        dense,
        sparse,
        y,
        g,
        y_train,
        g_train,
        ["a", "b"],
        ["g"],
        fractions=[0, 0.1, 0.3, 0.5, 1.0],
        n_random=10,
        seed=1,
    )
    assert list(curve.columns) == cr.TABLE_COLUMNS["routing_curve"][2:]
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
    curve = cr.routing_curve(
        dense,
        -dense,
        labels,
        groups,
        np.ones((4, 1), bool),
        np.array([[True], [False]] * 2),
        ["a"],
        ["g"],
        fractions=[0.3, 0.26],
        n_random=0,
        min_positives=0,
    )
    acc = curve[curve["metric"] == "accuracy"].set_index("fraction")["value"]
    assert acc[0.3] == pytest.approx(0.3) and acc[0.26] == pytest.approx(0.3)  # round(2.6) = 3


def test_dense_attribute_statistics_by_hand():
    # training split: g=1 rows 0-3, g=0 rows 4-9; a: 3 of 4 vs 1 of 6; b: 1 of 4 vs 3 of 6
    train_g = (np.arange(10) < 4)[:, None]
    train_y = np.zeros((10, 2), dtype=bool)
    train_y[[0, 1, 2, 4], 0] = True
    train_y[[0, 4, 5, 6], 1] = True
    rows = []
    for seed, unc in ((23, 0.1), (24, 0.3)):
        rows += [
            _metrics_rows("dense", 0.0, seed, "default", "uncertainty", "all", {"a": unc, "b": 0.5}),
            _metrics_rows("dense", 0.0, seed, "default", "bias_amplification", "g", {"a": 0.1, "b": np.nan}),
        ]
    stats = cr.dense_attribute_statistics(pd.concat(rows), train_y, train_g, ["a", "b"], ["g"])
    got = stats.set_index(["identity", "statistic", "attribute"])["value"]
    assert got[("g", "group_gap", "a")] == pytest.approx(3 / 4 - 1 / 6)
    assert got[("g", "group_gap", "b")] == pytest.approx(1 / 2 - 1 / 4)  # absolute value
    assert got[("all", "group_gap", "a")] == pytest.approx(3 / 4 - 1 / 6)
    assert np.isnan(got[("all", "group_gap", "b")])  # its dense BA is undefined
    assert got[("all", "uncertainty", "a")] == pytest.approx(0.2)
    assert got[("g", "train_prevalence", "b")] == pytest.approx(0.4)
    assert got[("all", "train_rarity", "a")] == pytest.approx(0.4)
    assert np.isnan(got[("all", "interdependence", "a")])  # not in this metrics table


def test_routing_matches_seeds_and_reports_spread_over_them():
    dense, sparse, y, g, y_train, g_train = _routing_data(n=2000)
    dense3 = np.concatenate([dense, dense, -dense])  # seed 25 would be a different model
    sparse2 = np.concatenate([sparse, sparse])
    curve = cr.routing_curve(
        dense3,
        sparse2,
        y,
        g,
        y_train,
        g_train,
        ["a", "b"],
        ["g"],
        fractions=[0, 0.5],
        dense_seeds=[23, 24, 25],
        sparse_seeds=[24, 23],
        n_random=0,
    )
    assert set(curve["routing"]) == {"susceptible"} and (curve["n_seeds"] == 2).all()
    np.testing.assert_allclose(curve["std"], 0.0, atol=1e-12)


# --------------------------------------------------------------------------- gallery and entry point
def test_susceptible_samples_lists_the_most_uncertain_first():
    rng = np.random.default_rng(7)
    n = 50
    dense = _confident(rng.random((3, n, 2)) < 0.5, rng)
    dense[:, 17, 0] = [0.1, -0.05, 0.2]  # the least certain sample of attribute 0
    y = rng.random((n, 2)) < 0.5
    g = rng.random((n, 1)) < 0.5
    sparse = {("gmp", 0.99): -dense[:2]}
    out = cr.susceptible_samples([f"id{i}" for i in range(n)], y, g, dense, sparse, ["a", "b"], ["Male"], n=4)
    assert len(out) == 4 * 2 * 2
    first = out[(out["attribute"] == "a") & (out["rank"] == 1)].set_index("method")
    assert (first["id"] == "id17").all() and first.loc["dense", "Male"] == g[17, 0]
    assert first.loc["dense", "prediction"] and not first.loc["gmp", "prediction"]
    assert first.loc["gmp", "cie"] and not first.loc["dense", "cie"]
    assert (out.groupby(["attribute", "method"])["uncertainty"].is_monotonic_decreasing).all()


IDENTITIES = ["Male", "Young"]


@pytest.fixture(scope="module")
def synthetic():
    """A small index, dense and sparse runs and their tidy metrics (via metrics.model_metrics)."""
    rng = np.random.default_rng(8)
    attributes = ["Smiling", "Blond_Hair", "Male", "Young", "Bald", "Eyeglasses"]
    n_train, n_valid, n_test = 600, 200, 400
    n = n_train + n_valid + n_test
    latent = rng.normal(size=(n, len(attributes))) + rng.normal(size=(n, 1))
    labels = latent > np.array([0.3, 1.0, 0.0, -0.5, 1.5, 1.2])
    split = np.repeat(["train", "valid", "test"], [n_train, n_valid, n_test])
    index = pd.DataFrame({"id": [f"{i:05d}.jpg" for i in range(n)], "split": split, "source": "synthetic"})
    for j, name in enumerate(attributes):
        index[name] = labels[:, j]
    runs, metrics = [], []
    seeds = (23, 24, 25)
    settings = [("dense", 0.0, seeds), ("gmp", 0.9, seeds), ("gmp", 0.99, seeds), ("acdc", 0.99, seeds[:2])]
    for method, sparsity, seeds in settings:
        for seed in seeds:
            r = np.random.default_rng(seed)
            noise = (1 + 3 * sparsity) * r.normal(size=labels.shape)  # sparser: noisier
            z = np.where(labels, 2.0, -2.0) + noise
            frames = {}
            for part in ("valid", "test"):
                rows = split == part
                frames[part] = pd.DataFrame(z[rows].astype(np.float32), columns=attributes)
                frames[part].insert(0, "id", index["id"][rows].to_numpy())
            meta = {
                "dataset": "synth",
                "task": "joint",
                "arch": "cnn",
                "method": method,
                "target_sparsity": sparsity,
                "measured_sparsity": sparsity,
                "seed": seed,
            }
            runs.append((meta, frames["test"]))
            m = pm.model_metrics(index, frames["valid"], frames["test"], IDENTITIES, min_positives=3)
            metrics.append(m.assign(method=method, sparsity=sparsity, seed=seed))
    return index, runs, pd.concat(metrics, ignore_index=True)


def test_criteria_tables_returns_every_table_with_the_documented_columns(synthetic):
    index, runs, metrics = synthetic
    tables = cr.criteria_tables(
        index,
        runs[::-1],
        metrics,
        IDENTITIES,
        bootstrap=50,
        gallery_size=3,
        min_positives=3,
        routing_fractions=(0, 0.1, 0.5),
    )
    assert set(tables) == set(cr.TABLE_COLUMNS)
    for name, table in tables.items():
        expected = cr.TABLE_COLUMNS[name]
        if name == "susceptible_samples":
            at = expected.index("prob_std") + 1
            expected = expected[:at] + IDENTITIES + expected[at:]
        assert list(table.columns) == expected, name
        assert len(table) > 0, name
    settings = {("gmp", 0.9), ("gmp", 0.99), ("acdc", 0.99)}
    for name in ("cie_groups", "sample_criterion", "headline", "routing_curve", "attribute_criterion"):
        assert set(map(tuple, tables[name][["method", "sparsity"]].drop_duplicates().to_numpy())) == settings, name
    curve = tables["routing_curve"]
    assert curve.loc[curve["method"] == "acdc", "n_seeds"].eq(2).all()  # seeds 23, 24 matched
    head = tables["headline"]
    assert head["auc"].between(0, 1).all() and (head["auc_low"] <= head["auc_high"]).all()
    assert set(tables["countermeasures"]["countermeasure"]) == {"calibrated_threshold", "routing", "random_routing"}
    gallery = tables["susceptible_samples"]
    assert len(gallery) == 3 * 6 * 4 and set(gallery["method"]) == {"dense", "gmp", "acdc"}


def test_criteria_tables_rejects_inconsistent_runs(synthetic):
    index, runs, metrics = synthetic
    sparse_only = [r for r in runs if r[0]["method"] != "dense"]
    with pytest.raises(ValueError, match="no dense model"):
        cr.criteria_tables(index, sparse_only, metrics, IDENTITIES, bootstrap=0)
    meta, frame = runs[0]
    with pytest.raises(ValueError, match="other test ids"):
        cr.criteria_tables(index, [runs[1], (meta, frame.iloc[1:])], metrics, IDENTITIES, bootstrap=0)
    with pytest.raises(ValueError, match="two models"):
        cr.criteria_tables(index, [runs[0], runs[0]], metrics, IDENTITIES, bootstrap=0)
    with pytest.raises(ValueError, match="index is missing columns"):
        cr.criteria_tables(index, runs, metrics, ["Chubby"], bootstrap=0)


def test_precision_recall_curves_by_hand_match_sklearn_and_stay_small():
    from sklearn.metrics import precision_recall_curve

    score = np.array([[0.9, 0.8], [0.8, 0.1]])  # pairs flattened: 0.9, 0.8, 0.8, 0.1
    target = np.array([[True, False], [True, False]])
    curve = cr.precision_recall_curves(
        {"uncertainty": score}, {("gmp", 0.9, "cie"): target}, key_names=("method", "sparsity", "target")
    )
    assert list(curve.columns) == cr.TABLE_COLUMNS["pr_curve"]
    np.testing.assert_allclose(curve["threshold"], [0.9, 0.8, 0.1])  # tied pairs are flagged together
    np.testing.assert_allclose(curve["share_flagged"], [0.25, 0.75, 1.0])
    np.testing.assert_allclose(curve["recall"], [0.5, 1.0, 1.0])
    np.testing.assert_allclose(curve["precision"], [1.0, 2 / 3, 0.5])  # last point: the target rate

    rng = np.random.default_rng(3)
    y = rng.random((500, 4)) < 0.2
    s = np.round(rng.random((500, 4)) + 0.5 * y, 2)  # informative, with ties
    full = cr.precision_recall_curves({"s": s}, {"cie": y}, max_points=10_000)
    precision, recall, thresholds = precision_recall_curve(y.ravel(), s.ravel())
    expected = pd.DataFrame({"threshold": thresholds, "precision": precision[:-1], "recall": recall[:-1]})
    expected = expected.sort_values("threshold", ascending=False, ignore_index=True)
    np.testing.assert_allclose(full[["threshold", "precision", "recall"]], expected)

    small = cr.precision_recall_curves({"s": s, "t": -s}, {"cie": y, "none": np.zeros_like(y)}, max_points=20)
    for (score_name, target), c in small.groupby(["score", "target"]):
        assert 2 <= len(c) <= 20 and c["share_flagged"].is_monotonic_increasing
        assert c["share_flagged"].iloc[-1] == 1.0 and c["threshold"].iloc[0] == (s if score_name == "s" else -s).max()
        assert c["recall"].isna().all() if target == "none" else c["recall"].is_monotonic_increasing
    with pytest.raises(ValueError, match="max_points"):
        cr.precision_recall_curves({"s": s}, {"cie": y}, max_points=1)
    for bad, message in (
        ({}, "scores is empty"),
        ({"s": s, "t": s[:-1]}, "scores\\['t'\\] must be a NaN-free array"),
        ({"s": np.where(y, np.nan, s)}, "NaN-free"),
        ({"flag": s}, "only 0 and 1"),
    ):
        with pytest.raises(ValueError, match=message):
            cr.precision_recall_curves(bad, {"cie": y})
