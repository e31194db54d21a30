import numpy as np
import pandas as pd
import pytest

from prunebias.analysis import dependence, effects, metrics

ATTRS = ["Male", "a", "b", "c"]
IDENT = ["Male"]


def _data(n=400, seed=0):
    rng = np.random.default_rng(seed)
    g = rng.random((n, 1)) < 0.5
    y = np.concatenate([g, rng.random((n, 3)) < np.where(g, 0.6, 0.2)], axis=1)
    return rng, y, g


def _models(rng, y, g, seeds=(1, 2), sparsities=(0.5, 0.9)):
    rows, preds, probs = [], [], []
    for s in seeds:
        for method, sparsity in [("dense", 0.0)] + [("gmp", x) for x in sparsities]:
            # Sparser models lean more on identity: their predictions follow g more.
            lean = sparsity
            z = np.where(rng.random(y.shape) < lean, np.repeat(g, y.shape[1], 1), y).astype(float) * 4 - 2
            z += rng.normal(0, 1, z.shape)
            rows.append({"method": method, "sparsity": sparsity, "seed": s})
            preds.append(z > 0)
            probs.append(effects.probabilities(z))
    return pd.DataFrame(rows), np.stack(preds), np.stack(probs)


def test_paired_effects_point_estimates_are_the_per_model_metrics():
    rng, y, g = _data()
    models, preds, probs = _models(rng, y, g)
    cond = metrics.train_conditionals(y, g)
    table = effects.paired_effects(models, preds, probs, y, g, cond, attributes=ATTRS, identities=IDENT, n_bootstrap=50)
    row = table[(table["statistic"] == "bias_amplification") & (table["sparsity"] == 0.9)].iloc[0]
    ba = [
        metrics.bias_amplification_batch(p[None], y, g, cond, attributes=ATTRS, identities=IDENT)[0, 0] for p in preds
    ]
    ba = np.array(ba)
    stable = np.isfinite(ba).all(axis=0)
    by = models.assign(ba=[np.nanmean(b[stable]) for b in ba])
    dense = by[by.method == "dense"].set_index("seed")["ba"]
    sparse = by[(by.method == "gmp") & (by.sparsity == 0.9)].set_index("seed")["ba"]
    assert row["delta"] == pytest.approx((sparse - dense).mean())
    assert row["pairs"] == stable.sum()
    unc = table[(table["statistic"] == "uncertainty") & (table["sparsity"] == 0.5)].iloc[0]
    u = ((probs > 0.1) & (probs < 0.9)).mean(axis=(1, 2))
    assert unc["value"] == pytest.approx(u[(models.method == "gmp") & (models.sparsity == 0.5)].mean())
    inter = table[(table["statistic"] == "interdependence") & (table["sparsity"] == 0.9)].iloc[0]
    i = np.array([np.nanmean(dependence.interdependence(p)) for p in preds])
    assert inter["dense"] == pytest.approx(i[models.method == "dense"].mean())


def _recomputed_bootstrap(models, statistic, n=200, n_bootstrap=200, seed=5):
    """The replicates of ``paired_effects`` by hand, for seeds 1 and 2 and one "gmp" sparsity: the
    generator draws all test resamples, then all seed draws; ``statistic(ix)`` gives every model's
    value on the test samples ``ix``."""
    gen = np.random.default_rng(seed)
    idx = [gen.integers(0, n, n) for _ in range(n_bootstrap)]
    seed_draws = [gen.choice([1, 2], 2) for _ in range(n_bootstrap)]
    row_of = {(m, s): i for i, (m, s) in enumerate(zip(models.method, models.seed))}
    diffs = []
    for ix, ss in zip(idx, seed_draws):
        value = statistic(ix)
        diffs.append(np.mean([value[row_of["gmp", s]] - value[row_of["dense", s]] for s in ss]))
    return diffs


def test_seed_range_is_each_seeds_own_change_on_the_pooled_support():
    rng, y, g = _data()
    models, preds, probs = _models(rng, y, g, seeds=(1, 2, 3), sparsities=(0.9,))
    cond = metrics.train_conditionals(y, g)
    kw = dict(attributes=ATTRS, identities=IDENT, n_bootstrap=20)
    pooled = effects.paired_effects(models, preds, probs, y, g, cond, **kw).set_index(["statistic", "identity"])
    # Uncertainty averages every attribute, so a seed alone has the pooled support.
    alone = [
        effects.paired_effects(
            models[models.seed == s], preds[models.seed == s], probs[models.seed == s], y, g, cond, **kw
        )
        for s in (1, 2, 3)
    ]
    own = [t.set_index(["statistic", "identity"]).loc[("uncertainty", "all"), "delta"] for t in alone]
    row = pooled.loc[("uncertainty", "all")]
    assert (row["seed_delta_min"], row["seed_delta_max"]) == pytest.approx((min(own), max(own)))
    assert row["delta"] == pytest.approx(np.mean(own))
    assert (pooled["seed_delta_min"] <= pooled["delta"] + 1e-12).all()
    assert (pooled["delta"] <= pooled["seed_delta_max"] + 1e-12).all()
    assert (pooled["seed_delta_min"] < pooled["seed_delta_max"]).all()


def test_bootstrap_interval_matches_a_recomputed_bootstrap():
    rng, y, g = _data(n=200)
    models, preds, probs = _models(rng, y, g, seeds=(1, 2), sparsities=(0.9,))
    cond = metrics.train_conditionals(y, g)
    table = effects.paired_effects(
        models, preds, probs, y, g, cond, attributes=ATTRS, identities=IDENT, n_bootstrap=200, seed=5
    )
    diffs = _recomputed_bootstrap(models, lambda ix: ((probs[:, ix] > 0.1) & (probs[:, ix] < 0.9)).mean(axis=(1, 2)))
    row = table[table["statistic"] == "uncertainty"].iloc[0]
    assert row["ci_low"] == pytest.approx(np.quantile(diffs, 0.025))
    assert row["ci_high"] == pytest.approx(np.quantile(diffs, 0.975))


def test_sparser_models_leaning_on_identity_show_rising_ba_and_identity_dependence():
    rng, y, g = _data(n=1000)
    models, preds, probs = _models(rng, y, g)
    cond = metrics.train_conditionals(y, g)
    table = effects.paired_effects(
        models, preds, probs, y, g, cond, attributes=ATTRS, identities=IDENT, n_bootstrap=100
    )
    at = table[table["sparsity"] == 0.9].set_index("statistic")
    assert at.loc["bias_amplification", "ci_low"] > 0
    assert at.loc["identity_dependence", "ci_low"] > 0


def test_identical_models_give_zero_change_and_a_degenerate_interval():
    rng, y, g = _data()
    models, preds, probs = _models(rng, y, g, sparsities=(0.5,))
    dense = models.index[models.method == "dense"]
    for i, s in zip(models.index[models.method == "gmp"], models.seed[models.method == "gmp"]):
        preds[i] = preds[dense[models.seed[dense] == s][0]]
        probs[i] = probs[dense[models.seed[dense] == s][0]]
    cond = metrics.train_conditionals(y, g)
    table = effects.paired_effects(models, preds, probs, y, g, cond, attributes=ATTRS, identities=IDENT, n_bootstrap=30)
    assert np.allclose(table[["delta", "ci_low", "ci_high"]].to_numpy(), 0)


def test_collapsed_pairs_leave_the_stable_support():
    rng, y, g = _data()
    models, preds, probs = _models(rng, y, g, sparsities=(0.9,))
    preds[models.index[models.method == "gmp"][0], :, 1] = False  # attribute "a" never predicted
    cond = metrics.train_conditionals(y, g)
    table = effects.paired_effects(models, preds, probs, y, g, cond, attributes=ATTRS, identities=IDENT, n_bootstrap=10)
    row = table[table["statistic"] == "bias_amplification"].iloc[0]
    assert (row["pairs"], row["collapsed"]) == (2, 1)


def test_near_collapsed_attributes_leave_every_support():
    rng, y, g = _data()
    models, preds, probs = _models(rng, y, g, sparsities=(0.9,))
    sparse = models.index[models.method == "gmp"]
    preds[sparse[0], :, 1] = np.arange(len(y)) < 3  # "a" predicted for 3 samples: "never" in all but name
    preds[sparse[1], :, 2] = np.arange(len(y)) >= 3  # "b" predicted for all but 3: "always"
    cond = metrics.train_conditionals(y, g)
    table = effects.paired_effects(models, preds, probs, y, g, cond, attributes=ATTRS, identities=IDENT, n_bootstrap=10)
    counts = table.set_index("statistic")[["pairs", "collapsed"]].apply(tuple, axis=1).to_dict()
    assert counts == {
        "bias_amplification": (1, 2),
        "uncertainty": (4, 0),
        "interdependence": (2, 2),
        "identity_dependence": (1, 2),
    }
    # The R² means are over the live attributes only, the same ones for dense and sparse.
    r2 = np.array([dependence.interdependence(p) for p in preds])
    dense = models.index[models.method == "dense"]
    inter = table[table["statistic"] == "interdependence"].iloc[0]
    assert inter["dense"] == pytest.approx(r2[dense][:, [0, 3]].mean())
    # With no minimum, an attribute predicted for no sample still leaves: its R² does not exist.
    preds[sparse[0], :, 1] = False
    table = effects.paired_effects(
        models, preds, probs, y, g, cond, attributes=ATTRS, identities=IDENT, min_positives=0, n_bootstrap=10
    )
    inter = table[table["statistic"] == "interdependence"].iloc[0]
    assert (inter["pairs"], inter["collapsed"]) == (3, 1) and np.isfinite(inter["delta"])


def test_ba_interval_keeps_the_support_in_every_replicate():
    # Groups with barely min_positives test positives: a replicate often has fewer, and must
    # still average over the same pairs as the estimate.
    rng, y, g = _data(n=200, seed=3)
    models, preds, probs = _models(rng, y, g, seeds=(1, 2), sparsities=(0.9,))
    cond = metrics.train_conditionals(y, g)
    rules = dict(attributes=ATTRS, identities=IDENT, min_positives=18)
    table = effects.paired_effects(models, preds, probs, y, g, cond, **rules, n_bootstrap=200, seed=5)
    ba = metrics.bias_amplification_batch(preds, y, g, cond, **rules)[:, 0]
    positives = np.stack([y[~g[:, 0]].sum(axis=0), y[g[:, 0]].sum(axis=0)]).min(axis=0)
    stable = np.isfinite(ba).all(axis=0) & effects.live_attributes(preds, 18).all(axis=0)
    assert stable.sum() >= 2 and positives[stable].min() < 22  # precondition: a replicate often drops below 18

    def mean_ba(ix):
        drawn = metrics.bias_amplification_batch(preds[:, ix], y[ix], g[ix], cond, **{**rules, "min_positives": 0})
        return drawn[:, 0][:, stable].mean(axis=1)

    diffs = _recomputed_bootstrap(models, mean_ba)
    row = table[table["statistic"] == "bias_amplification"].iloc[0]
    assert row["pairs"] == stable.sum()
    assert row["ci_low"] == pytest.approx(np.nanquantile(diffs, 0.025))
    assert row["ci_high"] == pytest.approx(np.nanquantile(diffs, 0.975))


def test_missing_dense_or_seed_is_refused():
    rng, y, g = _data()
    models, preds, probs = _models(rng, y, g)
    cond = metrics.train_conditionals(y, g)
    with pytest.raises(ValueError, match="dense"):
        effects.paired_effects(
            models.assign(method="gmp"), preds, probs, y, g, cond, attributes=ATTRS, identities=IDENT
        )
    with pytest.raises(ValueError, match="do not match"):
        effects.paired_effects(models.iloc[:-1], preds, probs, y, g, cond, attributes=ATTRS, identities=IDENT)


def test_information_kept_and_bce():
    y = np.array([[True, False], [False, False], [True, True]])
    assert effects.mean_bce(np.zeros((3, 2)), y) == pytest.approx(np.log(2))
    prior = effects.prior_bce(y, y)
    assert prior < np.log(2)
    assert effects.information_kept(prior, 0.1, prior) == 0
    assert effects.information_kept(0.1, 0.1, prior) == 1
    assert np.isnan(effects.information_kept(0.2, prior, prior))


def test_training_trend_flags_a_falling_loss():
    falling = pd.DataFrame(
        {"epoch": range(5), "train_loss": [1.0, 0.8, 0.6, 0.5, 0.4], "val_loss": [1.0, 0.9, 0.8, 0.8, 0.8]}
    )
    flat = pd.DataFrame({"epoch": range(5), "train_loss": [1.0, 0.8, 0.5, 0.5, 0.499]})
    meta = {
        "dataset": "d",
        "task": "joint",
        "arch": "a",
        "method": "gmp",
        "target_sparsity": 0.9,
        "seed": 1,
        "selected_epoch": 4,
    }
    trend = effects.training_trend([(falling, meta), (flat, meta)])
    assert trend["still_falling"].tolist() == [True, False]
    assert trend["loss_drop_last_epochs"].iloc[0] == pytest.approx(1 / 3)
    # The validation loss has flattened while the training loss still falls; a log without one has NaN.
    assert trend["val_loss_drop_last_epochs"].iloc[0] == pytest.approx(0.0)
    assert np.isnan(trend["val_loss_drop_last_epochs"].iloc[1])


def test_a_subset_of_statistics_gives_the_same_rows_as_all_of_them():
    rng, y, g = _data()
    models, preds, probs = _models(rng, y, g)
    cond = metrics.train_conditionals(y, g)
    kw = dict(attributes=ATTRS, identities=IDENT, n_bootstrap=40)
    every = effects.paired_effects(models, preds, probs, y, g, cond, **kw)
    some = effects.paired_effects(models, preds, probs, y, g, cond, statistics=["identity_dependence"], **kw)
    expected = every[every["statistic"] == "identity_dependence"].reset_index(drop=True)
    # The bootstrap draws are the same whatever is computed on them.
    pd.testing.assert_frame_equal(some, expected)
    with pytest.raises(ValueError, match="unknown statistics \\['ba'\\]"):
        effects.paired_effects(models, preds, probs, y, g, cond, statistics=["ba"], **kw)
