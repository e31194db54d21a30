import itertools

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from prunebias.analysis.aggregate import summarise
from prunebias.analysis.experiments import backdoor_table, paired_dba, single_vs_joint
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


def test_single_vs_joint_table_by_hand():
    table = single_vs_joint(summarise(_metrics()))
    assert set(table["attribute"]) == {"A"} and set(table["identity"]) == {"Male"}
    row = table[(table["method"] == "gmp_pt") & (table["threshold"] == "default")].iloc[0]
    # ΔBA single: (0.2 + 0.1) / 2; joint: (0.05 + 0.02) / 2
    assert row["dba_single"] == pytest.approx(0.15)
    assert row["dba_joint"] == pytest.approx(0.035)
    assert row["dba_diff"] == pytest.approx(0.115)
    assert row["ba_single"] == pytest.approx(0.25) and row["ba_joint"] == pytest.approx(0.185)
    assert row["seeds_single"] == 2 and row["seeds_joint"] == 2
    dense = table[table["method"] == "dense"]
    assert dense["dba_single"].isna().all() and dense["ba_joint"].to_numpy() == pytest.approx([0.15, 0.15])


def test_single_vs_joint_without_single_tasks_is_empty():
    metrics = _metrics()
    table = single_vs_joint(summarise(metrics[metrics["task"] != "single-A"]))
    assert table.empty and "dba_diff" in table.columns


def test_paired_dba_starts_every_curve_at_zero():
    data = paired_dba(_metrics())
    assert set(data["training"]) == {"joint", "single-label"} and set(data["attribute"]) == {"A"}
    assert (data.loc[data["method"] == "dense", "delta"] == 0).all()
    pruned = data[(data["method"] == "gmp_pt") & (data["threshold"] == "default")]
    got = pruned.set_index(["training", "seed"])["delta"].sort_index()
    assert got.to_dict() == pytest.approx(
        {("joint", 1): 0.05, ("joint", 2): 0.02, ("single-label", 1): 0.2, ("single-label", 2): 0.1}
    )


def test_backdoor_table_parses_the_task():
    table = backdoor_table(summarise(_metrics()))
    assert set(table["task"]) == {BACKDOOR}
    assert set(table["metric"]) == {"backdoor_bias_amplification", "triggered_accuracy", "clean_accuracy"}
    first = table.iloc[0]
    assert (first["attribute"], first["trigger"], first["train_negatives"], first["train_positives"]) == (
        "A",
        "yellow_square",
        0.05,
        0.95,
    )
    ba = table[(table["metric"] == "backdoor_bias_amplification") & (table["method"] == "gmp_pt")]
    assert ba["mean"].to_numpy() == pytest.approx([0.105, 0.105])  # (0.1 + 0.01·s), s = 1, 2
    assert ba["delta_mean"].to_numpy() == pytest.approx([0.09, 0.09])


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
