"""Tests of prunebias.plots.figures_criteria on criteria tables built by prunebias.analysis.criteria.criteria_tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PathCollection
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from prunebias.analysis import criteria as cr
from prunebias.analysis import metrics as pm
from prunebias.plots import figures_criteria as fc
from workflow_utils import analysis_settings

IDENTITIES = ["Male", "Young"]
ATTRIBUTES = ["Smiling", "Blond_Hair", "Male", "Young", "Bald", "Eyeglasses"]
SETTINGS = [
    ("dense", 0.0, (23, 24, 25)),
    ("gmp", 0.9, (23, 24, 25)),
    ("gmp", 0.99, (23, 24, 25)),
    ("acdc", 0.99, (23, 24)),
]
SETTING = {"dataset": "synth", "task": "joint", "arch": "cnn"}


@pytest.fixture(scope="module")
def tables() -> dict[str, pd.DataFrame]:
    """Criteria tables of a small constructed run (sparser models are noisier), with the setting columns."""
    rng = np.random.default_rng(8)
    n_train, n_valid, n_test = 600, 200, 400
    n = n_train + n_valid + n_test
    labels = rng.normal(size=(n, len(ATTRIBUTES))) + rng.normal(size=(n, 1)) > np.array([0.3, 1.0, 0.0, -0.5, 1.5, 1.2])
    split = np.repeat(["train", "valid", "test"], [n_train, n_valid, n_test])
    index = pd.DataFrame({"id": [f"{i:05d}.jpg" for i in range(n)], "split": split, "source": "synthetic"})
    for j, name in enumerate(ATTRIBUTES):
        index[name] = labels[:, j]
    runs, metrics = [], []
    for method, sparsity, seeds in SETTINGS:
        for seed in seeds:
            z = np.where(labels, 2.0, -2.0) + (1 + 3 * sparsity) * np.random.default_rng(seed).normal(size=labels.shape)
            frames = {}
            for part in ("valid", "test"):
                frames[part] = pd.DataFrame(z[split == part].astype(np.float32), columns=ATTRIBUTES)
                frames[part].insert(0, "id", index["id"][split == part].to_numpy())
            meta = {"method": method, "target_sparsity": sparsity, "seed": seed}
            runs.append((meta, frames["test"]))
            m = pm.model_metrics(index, frames["valid"], frames["test"], IDENTITIES, min_positives=3)
            metrics.append(m.assign(method=method, sparsity=sparsity, seed=seed))
    settings = analysis_settings(bootstrap=30, gallery_size=2, ba_min_positives=3, routing_fractions=[0, 0.1, 0.3])
    out = cr.criteria_tables(index, runs, pd.concat(metrics, ignore_index=True), settings)
    return {name: t.assign(**SETTING)[list(SETTING) + list(t.columns)] for name, t in out.items()}


def _data_lines(ax):
    """Lines that draw data: not the reference lines or the operating-point markers."""
    return [line for line in ax.lines if line.get_gid() is None]


def _texts(fig: Figure) -> str:
    parts = [t.get_text() for t in fig.texts] + [fig.get_suptitle()]
    for ax in fig.axes:
        parts += [ax.get_title(), ax.get_ylabel()] + [t.get_text() for t in ax.texts]
    return "\n".join(parts)


# ------------------------------------------------------------------ precision-recall
def test_pr_curves_one_line_per_sparsity_with_the_chance_level(tables):
    fig = fc.pr_curves(tables["pr_curve"], tables["headline"])
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 2 * 2  # methods gmp, acdc × targets cie, sparse_error
    gmp_cie, gmp_err, acdc_cie, _ = fig.axes
    assert "GMP" in gmp_cie.get_ylabel() and "AC/DC" in acdc_cie.get_ylabel()
    assert len(_data_lines(gmp_cie)) == 2 and len(_data_lines(acdc_cie)) == 1  # gmp: 90 % and 99 %
    curve = tables["pr_curve"]
    expected = curve[(curve["method"] == "gmp") & (curve["sparsity"] == 0.99) & (curve["target"] == "sparse_error")
                     & (curve["score"] == "uncertainty")]  # fmt: skip
    line = _data_lines(gmp_err)[1]
    np.testing.assert_allclose(line.get_xdata(), expected["recall"])
    np.testing.assert_allclose(line.get_ydata(), expected["precision"])
    # chance level = the target rate = n_targets / n_pairs of the headline
    head = tables["headline"].set_index(["method", "sparsity", "target", "score", "fraction"])
    row = head.loc[("gmp", 0.99, "sparse_error", "uncertainty", 0.1)]
    chance = [ln.get_ydata()[0] for ln in gmp_err.lines if ln.get_gid() == "reference"]
    assert chance[1] == pytest.approx(row["n_targets"] / row["n_pairs"])
    labels = [t.get_text() for t in gmp_err.get_legend().get_texts()]
    assert labels[1] == f"99%  AUC {row['auc']:.2f} [{row['auc_low']:.2f}, {row['auc_high']:.2f}]"
    # one marker per flagged share per curve, at the headline's recall (captured) of that share
    markers = [ln for ln in gmp_err.lines if ln.get_gid() == "marker"]
    assert len(markers) == 2 * 3
    assert markers[4].get_xdata()[0] == pytest.approx(row["captured"], abs=0.02)


def test_pr_curves_without_headline_and_other_score(tables):
    fig = fc.pr_curves(tables["pr_curve"], score="prob_std", fractions=())
    assert not [ln for ax in fig.axes for ln in ax.lines if ln.get_gid() == "marker"]
    assert "AUC" not in fig.axes[0].get_legend().get_texts()[0].get_text()
    with pytest.raises(ValueError, match="score must be one of"):
        fc.pr_curves(tables["pr_curve"], score="nope")


# ------------------------------------------------------------------ ΔBA vs uncertainty
def test_dba_vs_uncertainty_points_labels_and_correlation(tables):
    fig = fc.dba_vs_uncertainty(tables["attribute_ranking"], tables["attribute_criterion"])
    assert len(fig.axes) == 2 * 3  # methods × (pooled, Male, Young)
    pooled = fig.axes[0]
    rank = tables["attribute_ranking"]
    cell = rank[(rank["method"] == "gmp") & (rank["sparsity"] == 0.99) & (rank["identity"] == "all")
                & (rank["statistic"] == "uncertainty")].dropna(subset=["value", "delta_ba"])  # fmt: skip
    (points,) = [c for c in pooled.collections if isinstance(c, PathCollection)]
    np.testing.assert_allclose(points.get_offsets(), cell[["value", "delta_ba"]].to_numpy())
    assert sorted(t.get_text() for t in pooled.texts) == sorted(cell["attribute"])
    crit = tables["attribute_criterion"].set_index(["method", "sparsity", "identity", "statistic"])
    rho = crit.loc[("gmp", 0.99, "all", "uncertainty")]
    assert f"ρ = {rho['spearman']:.2f} [{rho['spearman_low']:.2f}, {rho['spearman_high']:.2f}]" in pooled.get_title()
    assert "99% sparsity" in pooled.get_ylabel()


def test_dba_labels_of_crowded_points_do_not_overlap():
    ranking = pd.DataFrame({
        "method": "gmp", "sparsity": 0.99, "identity": "all", "statistic": "uncertainty",
        "attribute": ["Smiling", "Bald", "Eyeglasses", "Young"], "value": [0.2, 0.2, 0.201, 0.6],
        "delta_ba": [0.01, 0.01, 0.0101, -0.02],
    })  # fmt: skip
    fig = fc.dba_vs_uncertainty(ranking)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    boxes = [t.get_window_extent(renderer) for t in fig.axes[0].texts]
    assert len(boxes) == 4
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1 :])


# ------------------------------------------------------------------ routing
def test_routing_curve_susceptible_vs_random_with_references(tables):
    fig = fc.routing_curve(tables["routing_curve"])
    assert len(fig.axes) == 2 * 2  # methods × (BA, accuracy)
    ba, acc = fig.axes[:2]
    routing = tables["routing_curve"]
    rows = routing[(routing["method"] == "gmp") & (routing["sparsity"] == 0.99) & (routing["identity"] == "all")
                   & (routing["metric"] == "accuracy")]  # fmt: skip
    susceptible, random = _data_lines(acc)
    np.testing.assert_allclose(susceptible.get_xdata(), [0, 10, 30])
    np.testing.assert_allclose(susceptible.get_ydata(), rows[rows["routing"] == "susceptible"]["value"])
    np.testing.assert_allclose(random.get_ydata(), rows[rows["routing"] == "random"]["value"])
    references = sorted(ln.get_ydata()[0] for ln in acc.lines if ln.get_gid() == "reference")
    assert references == pytest.approx(sorted([rows["dense"].iloc[0], rows["sparse"].iloc[0]]))
    assert "10% routed recovers" in acc.get_title() and "random:" in acc.get_title()
    # a chosen sparsity: gmp has 90 %, acdc does not
    fig = fc.routing_curve(tables["routing_curve"], sparsity=0.9)
    assert "90% sparsity" in fig.axes[0].get_ylabel() and "no model at 90%" in fig.axes[2].texts[0].get_text()


# ------------------------------------------------------------------ CIE groups
def test_cie_groups_bars_are_group_rates_and_over_representation_has_a_line_at_one(tables):
    fig = fc.cie_groups(tables["cie_groups"])
    assert len(fig.axes) == 2 * 2 * 2  # methods × (rate, over-representation) × identities
    rate_male, _, over_male, _ = fig.axes[:4]
    cie = tables["cie_groups"]
    male = cie[(cie["method"] == "gmp") & (cie["kind"] == "cie") & (cie["attribute"] == "all")
               & (cie["identity"] == "Male")].sort_values("sparsity")  # fmt: skip
    bars = [p.get_height() for p in rate_male.patches if isinstance(p, Rectangle)]
    expected = np.concatenate([male[male["group"] == g]["rate"] for g in ("0", "1")])
    np.testing.assert_allclose(bars, expected)
    group0, group1 = _data_lines(over_male)
    np.testing.assert_allclose(group1.get_ydata(), male[male["group"] == "1"]["over_representation"])
    assert [ln.get_ydata()[0] for ln in over_male.lines if ln.get_gid() == "reference"] == [1.0]
    # bars sit on the log sparsity axis: group 0 left of the tick (larger remaining weight), 1 right
    left, right = (p for p in rate_male.patches[:: len(male) // 2] if isinstance(p, Rectangle))
    assert left.get_x() >= 1 - 0.9 - 1e-12 and right.get_x() + right.get_width() == pytest.approx(1 - 0.9)
    assert "flip" in fc.cie_groups(tables["cie_groups"], kind="flip").get_suptitle()
    with pytest.raises(ValueError, match="kind must be one of"):
        fc.cie_groups(tables["cie_groups"], kind="flips")


# ------------------------------------------------------------------ settings, empty tables, files
def test_one_row_of_panels_per_setting_and_method(tables):
    two = {name: pd.concat([t, t.assign(arch="resnet18")], ignore_index=True) for name, t in tables.items()}
    fig = fc.pr_curves(two["pr_curve"])
    assert len(fig.axes) == 2 * 2 * 2
    assert fig.axes[0].get_ylabel().startswith("synth / joint / cnn\nGMP")
    assert fig.axes[4].get_ylabel().startswith("synth / joint / resnet18\nGMP")
    assert len(fc.cie_groups(two["cie_groups"]).axes) == 2 * 2 * 2 * 2


@pytest.mark.parametrize("name", list(fc.FIGURES))
def test_missing_or_empty_tables_give_a_figure_that_says_why(tables, name):
    draw = fc.FIGURES[name]
    for table in (None, tables[fc.FIGURE_TABLES[name][0]].iloc[:0]):
        fig = draw(table)
        assert isinstance(fig, Figure) and len(fig.axes) == 1
        assert "no pruned models" in _texts(fig) or "no routing curve" in _texts(fig)


def test_bad_tables_name_the_table(tables):
    with pytest.raises(ValueError, match="routing_curve is missing columns"):
        fc.routing_curve(tables["routing_curve"].drop(columns="recovered"))
    with pytest.raises(ValueError, match="cie_groups must be a DataFrame"):
        fc.cie_groups({"rate": [0.1]})


def test_make_all_writes_every_figure_and_copes_with_missing_tables(tmp_path, tables):
    paths = fc.make_all(tables, tmp_path / "figs")
    expected = {f"{name}.{fmt}" for name in fc.FIGURES for fmt in ("png", "svg")}
    assert {p.name for p in paths} == expected
    assert {p.name for p in (tmp_path / "figs").iterdir()} == expected  # no temp files left
    for path in paths:
        head = path.read_bytes()[:8]
        assert head == b"\x89PNG\r\n\x1a\n" if path.suffix == ".png" else head.startswith(b"<?xml")
    assert len(fc.make_all({}, tmp_path / "empty")) == len(expected)
    assert set(fc.TABLES) == {t for names in fc.FIGURE_TABLES.values() for t in names} <= set(cr.TABLE_COLUMNS)
