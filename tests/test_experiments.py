import itertools

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from prunebias.analysis import metrics as m
from prunebias.analysis.backdoor import backdoor_bias_amplification
from prunebias.analysis.experiments import backdoor_effects, paired_dba, single_vs_joint
from prunebias.plots import figures_experiments

BACKDOOR = "backdoor-A-yellow_square-5-95"
# BA(Male, A) per (task, seed): (dense, pruned at 0.9)
BA = {
    ("joint", 1): (0.10, 0.15),
    ("joint", 2): (0.20, 0.22),
    ("single-A", 1): (0.10, 0.30),
    ("single-A", 2): (0.10, 0.20),
}


def _metrics() -> pd.DataFrame:
    rows = []
    model = dict(dataset="synth", arch="small_cnn", identity="Male", group="all")
    for (task, seed), (dense, pruned) in BA.items():
        for threshold, (method, sparsity, value) in itertools.product(
            ("default", "calibrated"), (("dense", 0.0, dense), ("gmp_pt", 0.9, pruned))
        ):
            rows.append(
                {
                    **model,
                    "task": task,
                    "method": method,
                    "sparsity": sparsity,
                    "seed": seed,
                    "attribute": "A",
                    "threshold": threshold,
                    "metric": "bias_amplification",
                    "value": value,
                }
            )
            if task == "joint":  # an attribute trained jointly only: not compared
                rows.append({**rows[-1], "attribute": "B", "value": 0.5})
    for seed, threshold, (method, sparsity) in itertools.product(
        (1, 2), ("default", "calibrated"), (("dense", 0.0), ("gmp_pt", 0.9))
    ):
        for metric, value in (
            ("backdoor_bias_amplification", 0.01 * seed + sparsity / 10),
            ("triggered_accuracy", 0.9),
            ("clean_accuracy", 0.8),
        ):
            rows.append(
                {
                    **model,
                    "task": BACKDOOR,
                    "method": method,
                    "sparsity": sparsity,
                    "seed": seed,
                    "attribute": "A",
                    "identity": "trigger",
                    "threshold": threshold,
                    "metric": metric,
                    "value": value,
                }
            )
    return pd.DataFrame(rows)


def _experiment(n=300, seed=0):
    """One attribute A coupled to identity Male; joint models of seeds 1 and 2, single-label of
    seed 1 only, each dense and at 0.9, sparser ones leaning more on identity."""
    rng = np.random.default_rng(seed)
    g = rng.random((n, 1)) < 0.5
    y = rng.random(n) < np.where(g[:, 0], 0.6, 0.3)
    rows, preds = [], []
    for training, seeds in (("joint", (1, 2)), ("single-label", (1,))):
        for s, (method, sparsity) in itertools.product(seeds, (("dense", 0.0), ("gmp_pt", 0.9))):
            lean = 0.1 + sparsity * (0.5 if training == "single-label" else 0.2)
            preds.append(np.where(rng.random(n) < lean, g[:, 0], y))
            rows.append({"training": training, "method": method, "sparsity": sparsity, "seed": s})
    cond = tuple(c[:, 0] for c in m.train_conditionals(y[:, None], g))
    return pd.DataFrame(rows), np.stack(preds), y, g, cond


def _ba(pred, y, g, cond):
    return m.bias_amplification_batch(
        pred[None, :, None], y[:, None], g, tuple(c[:, None] for c in cond), attributes=["A"], identities=["Male"]
    )[0, 0, 0]


def test_single_vs_joint_pairs_the_seeds_of_the_single_label_models():
    models, preds, y, g, cond = _experiment()
    table = single_vs_joint(models, preds, y, g, cond, attribute="A", identities=["Male"], n_bootstrap=20)
    assert list(table[["method", "sparsity", "identity", "seeds"]].iloc[0]) == ["gmp_pt", 0.9, "Male", 1]
    ba = {tuple(r): _ba(p, y, g, cond) for r, p in zip(models[["training", "method", "seed"]].to_numpy(), preds)}
    single = ba["single-label", "gmp_pt", 1] - ba["single-label", "dense", 1]
    joint = ba["joint", "gmp_pt", 1] - ba["joint", "dense", 1]  # seed 2 has no single-label model
    row = table.iloc[0]
    assert row["dba_single"] == pytest.approx(single) and row["dba_joint"] == pytest.approx(joint)
    assert row["dba_diff"] == pytest.approx(single - joint) and single - joint > 0
    assert row["ba_joint_dense"] == pytest.approx(ba["joint", "dense", 1])
    assert row["dba_single_ci_low"] <= single <= row["dba_single_ci_high"]


def test_single_vs_joint_interval_matches_a_recomputed_bootstrap():
    models, preds, y, g, cond = _experiment(n=150)
    table = single_vs_joint(models, preds, y, g, cond, attribute="A", identities=["Male"], n_bootstrap=100, seed=3)
    gen = np.random.default_rng(3)
    idx = [gen.integers(0, 150, 150) for _ in range(100)]  # then one seed draw each, of the one seed
    row_of = {tuple(r): i for i, r in enumerate(models[["training", "method", "seed"]].to_numpy())}
    diffs = []
    for ix in idx:
        ba = {k: _ba(preds[i][ix], y[ix], g[ix], cond) for k, i in row_of.items()}
        single = ba["single-label", "gmp_pt", 1] - ba["single-label", "dense", 1]
        diffs.append(single - (ba["joint", "gmp_pt", 1] - ba["joint", "dense", 1]))
    row = table.iloc[0]
    assert row["dba_diff_ci_low"] == pytest.approx(np.nanquantile(diffs, 0.025))
    assert row["dba_diff_ci_high"] == pytest.approx(np.nanquantile(diffs, 0.975))


def test_single_vs_joint_needs_a_seed_with_both_trainings():
    models, preds, y, g, cond = _experiment()
    keep = ~((models["training"] == "joint") & (models["seed"] == 1)).to_numpy()
    with pytest.raises(ValueError, match=r"no seed has both .* \(single-label: \[1\], joint: \[2\]\)"):
        single_vs_joint(models[keep], preds[keep], y, g, cond, attribute="A", identities=["Male"], n_bootstrap=5)


def test_paired_dba_starts_every_curve_at_zero():
    data = paired_dba(_metrics())
    assert set(data["training"]) == {"joint", "single-label"} and set(data["attribute"]) == {"A"}
    assert (data.loc[data["method"] == "dense", "delta"] == 0).all()
    pruned = data[(data["method"] == "gmp_pt") & (data["threshold"] == "default")]
    got = pruned.set_index(["training", "seed"])["delta"].sort_index()
    assert got.to_dict() == pytest.approx(
        {("joint", 1): 0.05, ("joint", 2): 0.02, ("single-label", 1): 0.2, ("single-label", 2): 0.1}
    )


def test_backdoor_effects_by_hand_and_against_a_recomputed_bootstrap():
    rng = np.random.default_rng(1)
    n = 200
    y, b = rng.random(n) < 0.5, rng.random(n) < 0.5
    # The sparse model of each seed predicts positive from the trigger more often.
    preds = np.stack([np.where(rng.random(n) < lean, b, y) for lean in (0.1, 0.4, 0.1, 0.4)])
    models = pd.DataFrame({"method": ["dense", "gmp_pt"] * 2, "sparsity": [0.0, 0.9] * 2, "seed": [1, 1, 2, 2]})
    table = backdoor_effects(models, preds, y, b, n_bootstrap=100, seed=4).set_index(["method", "metric"])
    ba = [backdoor_bias_amplification(p, y, b) for p in preds]
    row = table.loc[("gmp_pt", "backdoor_bias_amplification")]
    assert row["value"] == pytest.approx((ba[1] + ba[3]) / 2)
    assert row["delta"] == pytest.approx((ba[1] - ba[0] + ba[3] - ba[2]) / 2) and row["delta_ci_low"] > 0
    assert np.isnan(table.loc[("dense", "clean_accuracy"), "delta"])
    gen = np.random.default_rng(4)
    idx = [gen.integers(0, n, n) for _ in range(100)]
    seed_draws = [gen.choice(2, 2) for _ in range(100)]
    deltas = [
        np.mean(
            [
                backdoor_bias_amplification(preds[2 * s + 1][ix], y[ix], b[ix])
                - backdoor_bias_amplification(preds[2 * s][ix], y[ix], b[ix])
                for s in ss
            ]
        )
        for ix, ss in zip(idx, seed_draws)
    ]
    assert row["delta_ci_low"] == pytest.approx(np.quantile(deltas, 0.025))
    assert row["delta_ci_high"] == pytest.approx(np.quantile(deltas, 0.975))


def _data_lines(ax):
    return [line for line in ax.get_lines() if line.get_gid() != "reference" and len(line.get_xdata()) > 0]


def test_figures_draw_one_panel_per_setting():
    metrics = _metrics()
    fig = figures_experiments.single_vs_joint(metrics)
    assert isinstance(fig, Figure) and len(fig.axes) == 1  # attribute A × method gmp_pt, identity Male
    assert len(_data_lines(fig.axes[0])) == 4  # joint / single × default / calibrated
    fig = figures_experiments.backdoor(metrics)
    assert len(fig.axes) == 3
    ba_lines = _data_lines(fig.axes[0])
    assert len(ba_lines) == 2 and np.allclose(sorted(ba_lines[0].get_xdata()), [0.1, 1.0])


def test_figures_need_their_rows():
    metrics = _metrics()
    with pytest.raises(ValueError, match="single-label tasks"):
        figures_experiments.single_vs_joint(metrics[metrics["task"] != "single-A"])
    with pytest.raises(ValueError, match="no backdoor rows"):
        figures_experiments.backdoor(metrics[metrics["task"] != BACKDOOR])
    with pytest.raises(ValueError, match="thresholds"):
        figures_experiments.backdoor(metrics, thresholds=["median"])
