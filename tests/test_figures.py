"""Tests of prunebias.plots.figures on small synthetic tables.

The synthetic values are built so that every mean is known by hand: value = base of the
metric − 0.1·sparsity + an attribute offset + a seed offset, with offsets summing to 0
over attributes and over seeds, so a mean over attributes and seeds is base − 0.1·s.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PolyCollection, QuadMesh
from matplotlib.figure import Figure

from prunebias.analysis.aggregate import summarise
from prunebias.plots import figures

METHODS = ["gmp", "acdc"]
SPARSITIES = [0.9, 0.99, 0.995]
SEEDS = [23, 24]
ATTRIBUTES = ["Male", "Young", "Smiling", "Bald"]
IDENTITIES = ["Male", "Young"]
ATTR_OFFSET = dict(zip(ATTRIBUTES, [-0.03, -0.01, 0.01, 0.03]))
SEED_OFFSET = {23: -0.005, 24: 0.005}
BASE = {"accuracy": 0.9, "auc": 0.95, "uncertainty": 0.2, "interdependence": 0.5, "ece": 0.05}
LEVELS = {
    "attribute": ["accuracy", "auc", "positive_rate", "uncertainty", "interdependence", "ece", "rare_value_ratio"],
    "identity": ["bias_amplification", "demographic_parity_diff", "equal_opportunity_diff", "equalized_odds_diff"],
    "group": ["group_positive_rate", "group_fpr", "group_fnr", "group_accuracy"],
}


def _cross(**columns) -> pd.DataFrame:
    index = pd.MultiIndex.from_product(list(columns.values()), names=list(columns))
    return index.to_frame(index=False)


def make_metrics(methods=METHODS, sparsities=SPARSITIES, seeds=SEEDS, archs=("cnn",)) -> pd.DataFrame:
    """Per-model tidy metrics in the contract's format, with hand-computable values."""
    models = pd.concat(
        [_cross(method=["dense"], sparsity=[0.0], seed=seeds)]
        + [_cross(method=list(methods), sparsity=list(sparsities), seed=seeds)] * bool(len(methods))
    )
    rows = pd.concat(
        [
            _cross(attribute=ATTRIBUTES, identity=["all"], group=["all"], metric=LEVELS["attribute"]),
            _cross(attribute=ATTRIBUTES, identity=IDENTITIES, group=["all"], metric=LEVELS["identity"]),
            _cross(attribute=ATTRIBUTES, identity=IDENTITIES, group=["0", "1"], metric=LEVELS["group"]),
        ]
    )
    rows = rows.merge(pd.DataFrame({"threshold": ["default", "calibrated"]}), how="cross")
    frame = (
        _cross(dataset=["synth"], task=["joint"], arch=list(archs)).merge(models, how="cross").merge(rows, how="cross")
    )
    value = (
        frame["metric"].map(BASE).fillna(0.5)
        - 0.1 * frame["sparsity"]
        + frame["attribute"].map(ATTR_OFFSET)
        + frame["seed"].map(SEED_OFFSET)
    )
    # calibrated thresholds lower BA by 0.1; group 1 has FNR + 0.2 and FPR − 0.05
    value -= 0.1 * ((frame["metric"] == "bias_amplification") & (frame["threshold"] == "calibrated"))
    value += 0.2 * ((frame["metric"] == "group_fnr") & (frame["group"] == "1"))
    value -= 0.05 * ((frame["metric"] == "group_fpr") & (frame["group"] == "1"))
    undefined = (frame["metric"] == "bias_amplification") & (frame["attribute"] == frame["identity"])
    frame["value"] = value.mask(undefined).astype(np.float64)
    return frame


@pytest.fixture(scope="module")
def metrics() -> pd.DataFrame:
    return make_metrics()


@pytest.fixture(scope="module")
def summary(metrics) -> pd.DataFrame:
    return summarise(metrics)


def data_lines(ax):
    return [line for line in ax.get_lines() if line.get_gid() != "reference"]


def bands(ax):
    return [c for c in ax.collections if isinstance(c, PolyCollection)]


def xticklabels(ax) -> list[str]:
    return [t.get_text() for t in ax.get_xticklabels()]


def legend_texts(fig: Figure) -> list[str]:
    return [t.get_text() for legend in fig.legends for t in legend.get_texts()]


def texts(ax) -> str:
    return " ".join(t.get_text() for t in ax.texts)


# ------------------------------------------------------------------ sparsity axis
@pytest.mark.parametrize(
    ("sparsity", "label"), [(0.0, "dense"), (0.8, "80%"), (0.9, "90%"), (0.98, "98%"), (0.99, "99%"), (0.995, "99.5%")]
)
def test_sparsity_label(sparsity, label):
    assert figures.sparsity_label(sparsity) == label


def test_sparsity_axis_is_log_of_remaining_weights_inverted():
    ax = Figure().subplots()
    figures.format_sparsity_axis(ax, [0.99, 0.0, 0.9, 0.995, 0.9])
    assert ax.get_xscale() == "log"
    np.testing.assert_allclose(ax.get_xticks(), [1.0, 0.1, 0.01, 0.005])
    assert xticklabels(ax) == ["dense", "90%", "99%", "99.5%"]
    left, right = ax.get_xlim()
    assert left > 1.0 > 0.005 > right  # dense on the left, highest sparsity on the right


@pytest.mark.parametrize("bad", [[], [1.0], [-0.1], [np.nan]])
def test_sparsity_axis_rejects_bad_sparsities(bad):
    with pytest.raises(ValueError, match="sparsities"):
        figures.format_sparsity_axis(Figure().subplots(), bad)


def test_method_colors_fixed_for_known_and_distinct_for_new_methods():
    colors = figures.method_colors(["acdc", "zeta", "alpha", "dense"])
    assert colors["acdc"] == figures.METHOD_COLORS["acdc"]
    assert colors["dense"] == figures.METHOD_COLORS["dense"]
    assert len(set(colors.values())) == 4


# ------------------------------------------------------------------ line plots
def test_accuracy_auc_lines_bands_and_means(metrics):
    fig = figures.accuracy_auc(metrics)
    assert isinstance(fig, Figure)
    axes = fig.axes
    assert len(axes) == 2
    assert [ax.get_title() for ax in axes] == ["Accuracy", "ROC-AUC (threshold-free)"]
    for ax, base in zip(axes, [0.9, 0.95]):
        lines = data_lines(ax)
        assert len(lines) == 2  # one per method, the dense model on each
        assert len(bands(ax)) == 2
        assert {"dense", "90%", "99%", "99.5%"} == set(xticklabels(ax))
        assert [line.get_color() for line in lines] == [figures.METHOD_COLORS[m] for m in ["gmp", "acdc"]]
        for line in lines:
            x, y = line.get_data()
            order = np.argsort(x)
            np.testing.assert_allclose(x[order], [0.005, 0.01, 0.1, 1.0])
            # mean over attributes and seeds: base − 0.1 · sparsity
            np.testing.assert_allclose(y[order], base - 0.1 * np.array([0.995, 0.99, 0.9, 0.0]))
    assert "GMP (from scratch)" in legend_texts(fig) and "AC/DC" in legend_texts(fig)


def test_single_seed_draws_no_band():
    fig = figures.accuracy_auc(make_metrics(seeds=[23]))
    assert all(len(data_lines(ax)) == 2 and not bands(ax) for ax in fig.axes)


def test_dense_only_is_one_point_at_the_dense_tick():
    fig = figures.accuracy_auc(make_metrics(methods=[]))
    for ax in fig.axes:
        (line,) = data_lines(ax)
        np.testing.assert_allclose(line.get_xdata(), [1.0])
        assert xticklabels(ax) == ["dense"]
    assert legend_texts(fig) == ["dense"]


def test_one_row_of_panels_per_setting():
    fig = figures.accuracy_auc(make_metrics(archs=("cnn", "resnet")))
    assert len(fig.axes) == 4
    assert fig.axes[2].get_title().startswith("synth / joint / resnet")


def test_bias_amplification_per_identity_and_threshold(metrics):
    fig = figures.bias_amplification(metrics)
    assert len(fig.axes) == len(IDENTITIES)
    for ax, identity in zip(fig.axes, IDENTITIES):
        assert ax.get_title() == f"by {identity}"
        lines = data_lines(ax)
        assert len(lines) == 4  # 2 methods × 2 thresholds
        assert sorted(line.get_linestyle() for line in lines) == ["-", "-", "--", "--"]
        # BA defined for the 3 attributes other than the identity itself
        defined = [a for a in ATTRIBUTES if a != identity]
        expected = 0.5 + np.mean([ATTR_OFFSET[a] for a in defined]) - 0.1 * 0.995
        ys = {line.get_linestyle(): line.get_ydata()[np.argmin(line.get_xdata())] for line in lines}
        np.testing.assert_allclose(ys["-"], expected)
        np.testing.assert_allclose(ys["--"], expected - 0.1)
    assert "calibrated threshold" in legend_texts(fig)


def test_bias_amplification_for_chosen_attributes(metrics):
    fig = figures.bias_amplification(metrics, attributes=["Smiling", "Male"], thresholds=["default"])
    assert len(fig.axes) == 4
    titles = ["Smiling by Male", "Smiling by Young", "Male by Male", "Male by Young"]
    assert [ax.get_title() for ax in fig.axes] == titles
    assert "BA undefined" in texts(fig.axes[2]) and not data_lines(fig.axes[2])
    assert len(fig.axes[2].get_yticks()) > 0  # an undefined panel keeps its row's shared y ticks
    assert len(data_lines(fig.axes[3])) == 2
    with pytest.raises(ValueError, match="Nope"):
        figures.bias_amplification(metrics, attributes=["Nope"])


def test_bias_amplification_all_nan_identity_says_undefined(metrics):
    nan_young = metrics.copy()
    nan_young.loc[(nan_young["metric"] == "bias_amplification") & (nan_young["identity"] == "Young"), "value"] = np.nan
    fig = figures.bias_amplification(nan_young)
    male, young = fig.axes
    assert len(data_lines(male)) == 4
    assert not data_lines(young) and "BA undefined" in texts(young)


def test_uncertainty_interdependence_panels(metrics):
    fig = figures.uncertainty_interdependence(metrics)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["Uncertainty", "Interdependence", "Calibration error (ECE)", "Rare-value ratio"]
    # threshold-free metrics: one line per method; the others also per threshold
    assert [len(data_lines(ax)) for ax in fig.axes] == [2, 4, 2, 4]
    reference = [line for line in fig.axes[3].get_lines() if line.get_gid() == "reference"]
    np.testing.assert_allclose(reference[0].get_ydata(), [1.0, 1.0])


def test_group_gaps_are_absolute_rate_differences(metrics):
    fig = figures.group_gaps(metrics)
    assert len(fig.axes) == 2 * len(IDENTITIES)  # rows: FNR gap, FPR gap
    for ax, gap in zip(fig.axes, [0.2, 0.2, 0.05, 0.05]):
        for line in data_lines(ax):
            np.testing.assert_allclose(line.get_ydata(), gap)
    assert "false-negative" in fig.axes[0].get_ylabel() and "false-positive" in fig.axes[2].get_ylabel()


# ------------------------------------------------------------------ heatmap
def test_dba_heatmap_cells_are_delta_mean(summary):
    fig = figures.dba_heatmap(summary)
    panels = fig.axes[:-1]  # the last axes is the colour bar
    meshes = [(ax, c) for ax in panels for c in ax.collections if isinstance(c, QuadMesh)]
    assert len(meshes) == len(METHODS) * len(IDENTITIES)
    assert [ax.get_title() for ax in panels] == ["by Male", "by Young", "", ""]  # identities on top only
    ax, mesh = meshes[0]  # gmp by Male; rows = sorted attributes, columns = sparsities
    assert ax.get_ylabel().startswith("GMP") and panels[2].get_ylabel().startswith("AC/DC")
    assert xticklabels(panels[-1]) == ["90%", "99%", "99.5%"]  # labelled on the bottom row
    cells = np.ma.filled(mesh.get_array(), np.nan).reshape(len(ATTRIBUTES), len(SPARSITIES))
    rows = sorted(ATTRIBUTES)
    assert np.isnan(cells[rows.index("Male")]).all()  # BA(Male, Male) is undefined
    np.testing.assert_allclose(cells[rows.index("Smiling")], -0.1 * np.array(SPARSITIES))
    assert mesh.norm.vmin == -mesh.norm.vmax  # diverging scale centred at 0


def test_dba_heatmap_without_pruned_models(summary):
    fig = figures.dba_heatmap(summary[summary["method"] == "dense"])
    assert "no pruned models" in texts(fig.axes[0])


def test_dba_heatmap_all_nan(summary):
    nan_ba = summary.assign(delta_mean=np.nan)
    fig = figures.dba_heatmap(nan_ba)
    assert all("BA undefined" in texts(ax) for ax in fig.axes[:-1])
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == sorted(ATTRIBUTES)


# ------------------------------------------------------------------ checks and files
def test_bad_inputs_name_the_argument(metrics, summary):
    with pytest.raises(ValueError, match="metrics is missing columns \\['seed'\\]"):
        figures.accuracy_auc(metrics.drop(columns="seed"))
    with pytest.raises(ValueError, match="threshold"):
        figures.dba_heatmap(summary, threshold="best")
    with pytest.raises(ValueError, match="errorbar"):
        figures.accuracy_auc(metrics, errorbar="iqr")


def test_make_all_writes_every_figure_atomically(tmp_path, metrics, summary):
    paths = figures.make_all(summary, metrics, tmp_path / "figs")
    expected = {f"{name}.{fmt}" for name in figures.FIGURES for fmt in ("png", "svg")}
    assert {p.name for p in paths} == expected
    assert {p.name for p in (tmp_path / "figs").iterdir()} == expected  # no temp files left
    for path in paths:
        head = path.read_bytes()[:8]
        assert head == b"\x89PNG\r\n\x1a\n" if path.suffix == ".png" else head.startswith(b"<?xml")


def test_make_all_on_dense_only_single_seed_tables(tmp_path):
    metrics = make_metrics(methods=[], seeds=[23])
    metrics.loc[metrics["metric"] == "bias_amplification", "value"] = np.nan
    paths = figures.make_all(summarise(metrics), metrics, tmp_path)
    assert len(paths) == 2 * len(figures.FIGURES) and all(p.stat().st_size > 0 for p in paths)


def test_save_figure_is_deterministic(tmp_path, metrics):
    first = figures.save_figure(figures.accuracy_auc(metrics), tmp_path / "a")
    second = figures.save_figure(figures.accuracy_auc(metrics), tmp_path / "b")
    for p, q in zip(first, second):
        assert p.read_bytes() == q.read_bytes()


def test_shortcut_control_figure_sets_the_pruned_models_beside_the_mixtures():
    from prunebias.plots import figures_effects

    setting = dict(dataset="synth", task="joint", arch="cnn")
    control = pd.DataFrame(
        [
            dict(reference=r, weight=w, information_kept=1 - w / 2, threshold=t, statistic=s, identity=i, delta=0.01)
            for r in ("identity", "prior")
            for w in (0.4, 0.8)
            for t in ("default", "calibrated")
            for s, i in (
                ("bias_amplification", "Male"),
                ("bias_amplification", "Young"),
                ("identity_dependence", "all"),
            )
        ]
    ).assign(ci_low=0.0, ci_high=0.02, **setting)
    effects = pd.DataFrame(
        [
            dict(method="gmp_pt", sparsity=x, threshold=t, statistic=s, identity=i, delta=0.02)
            for x in (0.9, 0.98)
            for t in ("default", "calibrated")
            for s, i in (
                ("bias_amplification", "Male"),
                ("bias_amplification", "Young"),
                ("identity_dependence", "all"),
                ("uncertainty", "all"),
            )
        ]
    ).assign(ci_low=0.01, ci_high=0.03, **setting)
    convergence = pd.DataFrame(
        [
            dict(method="gmp_pt", sparsity=x, seed=s, information_kept=k)
            for x, k in ((0.9, 1.0), (0.98, 0.7))
            for s in (1, 2)
        ]
    ).assign(**setting)
    fig = figures_effects.shortcut_control(control, effects, convergence)
    axes = [ax for ax in fig.axes if ax.get_ylabel()]
    assert len(axes) == 6  # (default, calibrated) x (Male, Young, identity dependence)
    assert [ax.get_ylabel() for ax in axes[:3]] == ["ΔBA w.r.t. Male", "ΔBA w.r.t. Young", "Δ identity dependence (R²)"]
    first = axes[0]
    # Two mixture lines of two weights and the two pruned sparsities, each an errorbar container.
    assert [len(c.lines[0].get_xdata()) for c in first.containers] == [2, 2, 2]
    assert first.containers[2].lines[0].get_xdata().tolist() == [1.0, 0.7] and first.xaxis_inverted()
    assert {t.get_text() for t in first.texts} == {"90%", "98%"}
    with pytest.raises(ValueError, match="shortcut control table"):
        figures_effects.shortcut_control(control.drop(columns="weight"), effects, convergence)
