"""Tests of the prunebias.report package: generated sentences, tables, gallery, and the rendered file.

Synthetic metric tables are built so that every number in a sentence is known by hand:
per model and attribute the value is a function of sparsity plus offsets that cancel over
attributes and over seeds, so the mean over attributes and seeds is the function itself.
"""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from prunebias.analysis import criteria
from prunebias.data import store
from prunebias.io import save_array, write_parquet
from prunebias.report.captions import caption_html, figure_entry, figure_files
from prunebias.report.context import report_context
from prunebias.report.curves import seed_curves
from prunebias.report.gallery import attach_thumbnails, gallery, thumbnail
from prunebias.report.render import DEFAULT_TEMPLATE, MAX_REPORT_BYTES, build_report, read_benchmarks, render_report
from prunebias.report.runs import compute_table
from prunebias.report.sentences import (
    accuracy_sentence,
    calibration_sentence,
    change_sentence,
    effect_sentences,
    experiment_findings,
    findings,
    predictor_sentence,
    routing_sentence,
    shortcut_control_sentences,
)
from prunebias.report.tables import Table, key_table, shortcut_control_table

SETTING = {"dataset": "synth", "task": "joint", "arch": "cnn"}
SPARSITIES = [0.5, 0.9, 0.99]
SEEDS = [1, 2]
ATTRIBUTES = ["Smiling", "Blond_Hair", "Male", "Young"]
IDENTITIES = ["Male", "Young"]
ATTR_OFFSET = dict(zip(ATTRIBUTES, [-0.002, 0.002, -0.001, 0.001]))
SEED_OFFSET = {1: -0.001, 2: 0.001}
REPO = Path(__file__).resolve().parents[1]
TEMPLATE = DEFAULT_TEMPLATE
CAPTIONS = REPO / "reports" / "captions"


def curve(kind: str, s: float, ba_rise: float = 0.0, acc_drop: float = 0.0) -> float:
    """The mean over attributes and seeds of metric ``kind`` at sparsity ``s`` (0 = dense)."""
    return {
        "accuracy": 0.90 - acc_drop * (s >= 0.99),
        "auc": 0.95,
        "uncertainty": 0.10 + 0.10 * s**2,
        "interdependence": 0.30,
        "bias_amplification": 0.02 + ba_rise * (s >= 0.9) * s,
    }[kind]


def make_metrics(ba_rise: float = 0.0, acc_drop: float = 0.0, methods=("gmp",), tasks=("joint",)) -> pd.DataFrame:
    """Per-model tidy metrics (CONTRACTS.md) whose means are :func:`curve`."""
    rows = []
    models = [("dense", 0.0)] + [(m, s) for m in methods for s in SPARSITIES]
    for task in tasks:
        for method, s in models:
            for seed in SEEDS:
                for threshold in ("default", "calibrated"):
                    for attribute in ATTRIBUTES:
                        noise = ATTR_OFFSET[attribute] + SEED_OFFSET[seed]
                        model = SETTING | {
                            "task": task,
                            "method": method,
                            "sparsity": s,
                            "seed": seed,
                            "attribute": attribute,
                            "threshold": threshold,
                            "group": "all",
                        }
                        for kind in ("accuracy", "auc", "uncertainty", "interdependence"):
                            value = curve(kind, s, ba_rise, acc_drop) + noise
                            rows.append(model | {"identity": "all", "metric": kind, "value": value})
                        for identity in IDENTITIES:
                            # BA of an identity against itself is undefined; the identity attributes
                            # carry no offset, so the defined offsets (Smiling, Blond_Hair) still cancel
                            offset = 0.0 if attribute in IDENTITIES else ATTR_OFFSET[attribute]
                            value = curve("bias_amplification", s, ba_rise) + offset + SEED_OFFSET[seed]
                            value = np.nan if attribute == identity else value
                            rows.append(model | {"identity": identity, "metric": "bias_amplification", "value": value})
    return pd.DataFrame(rows)


def sentences_of(metrics, tables=None) -> list[str]:
    return [s for f in findings(metrics, tables or {}) for s in f["sentences"]]


# ------------------------------------------------------------------ sentences follow the numbers
def test_sentences_change_when_bias_rises():
    rising = sentences_of(make_metrics(ba_rise=0.08))
    flat = sentences_of(make_metrics(ba_rise=0.0))
    # 0.02 + 0.08 * 0.99 = 0.0992
    assert (
        "Bias amplification w.r.t. Male (the study's plain mean, over the pairs each model defines) rises from 0.020 (dense) to 0.099 at 99% sparsity (GMP)."
        in rising
    )
    assert (
        "Bias amplification w.r.t. Male (the study's plain mean, over the pairs each model defines) stays flat: 0.020 (dense) vs 0.020 "
        "at 99% sparsity (GMP)." in flat
    )
    assert rising != flat


def test_ba_coverage_sentence_only_when_pruned_models_lose_pairs():
    metrics = make_metrics(ba_rise=0.08)
    assert not any("pairs at" in t for t in sentences_of(metrics))  # every pair defined everywhere
    # Seed 1 at 99 % predicts no Smiling: its two (identity, Smiling) BA values become undefined.
    collapsed = (
        (metrics["metric"] == "bias_amplification")
        & (metrics["sparsity"] == 0.99)
        & (metrics["seed"] == 1)
        & (metrics["attribute"] == "Smiling")
    )
    metrics.loc[collapsed, "value"] = np.nan
    # dense: 2 identities x 4 attributes - 2 self pairs = 6 per seed; at 99 %: 4 (seed 1) and 6 -> 5
    assert (
        "Bias amplification is defined for 5 (identity, attribute) pairs at 99% sparsity (GMP) against 6 for "
        "dense (mean over seeds); a pair drops out when the model predicts no positive of its attribute, so the "
        'BA means above leave out the attributes that collapsed to "never"; the changes with intervals use '
        "only the pairs defined, and attributes predicted, at every sparsity." in sentences_of(metrics)
    )


def test_sentences_change_when_accuracy_drops():
    drop = sentences_of(make_metrics(acc_drop=0.041))
    kept = sentences_of(make_metrics())
    assert (
        drop[0] == "Accuracy stays within 0.5 points of dense up to 90% sparsity (GMP); at 99% it drops by 4.1 points "
        "(90.0% → 85.9%)."
    )
    assert (
        kept[0]
        == "Accuracy stays within 0.5 points of dense at every sparsity up to 99% (GMP): 90.0% dense, 90.0% at 99%."
    )


def test_uncertainty_sentence_reads_the_numbers():
    text = sentences_of(make_metrics())
    # 0.1 + 0.1 * 0.99² = 0.19801
    assert any(
        s.startswith("Uncertainty") and "rises from 10.0% (dense) to 19.8% at 99% sparsity (GMP)" in s for s in text
    )
    assert any(s.startswith("Interdependence") and "stays flat: 0.30 (dense) vs 0.30" in s for s in text)


def test_accuracy_sentence_cases():
    s = pd.Series([0.91, 0.88, 0.80], index=[0.5, 0.9, 0.99])
    assert accuracy_sentence(0.9, s, "gmp") == (
        "Accuracy stays within 0.5 points of dense up to 50% sparsity (GMP); at 90% it drops by 2.0 points "
        "(90.0% → 88.0%), and by 10.0 points at 99%."
    )
    assert accuracy_sentence(0.95, s, "acdc") == (
        "Accuracy drops by 4.0 points already at 50% sparsity (AC/DC) (95.0% → 91.0%), and by 15.0 points at 99%."
    )
    assert "cannot be compared" in accuracy_sentence(np.nan, s, "gmp")
    dip = pd.Series([0.88, 0.899], index=[0.5, 0.9])
    assert accuracy_sentence(0.9, dip, "gmp").endswith(", but is back within 0.5 points at 90% (89.9%).")
    # the tolerance is a parameter: 2 points keeps 90 %
    assert "up to 90% sparsity" in accuracy_sentence(0.9, s, "gmp", tolerance=2.0)


def test_change_sentence_falls_and_names_the_peak():
    s = pd.Series([0.2, 0.05, 0.03], index=[0.8, 0.95, 0.995])
    text = change_sentence("BA", 0.05, s, "oneshot", tolerance=0.01)
    assert (
        text
        == "BA falls from 0.050 (dense) to 0.030 at 99.5% sparsity (one-shot); the largest change is at 80% (0.200)."
    )
    assert "undefined" in change_sentence("BA", 0.05, pd.Series([np.nan], index=[0.9]), "gmp", 0.01)


# ------------------------------------------------------------------ criteria sentences
def _criteria_frame(name: str, rows: list[dict], identities=()) -> pd.DataFrame:
    """A criteria table with exactly the columns of prunebias.analysis.criteria (NaN where not given)."""
    columns = list(criteria.TABLE_COLUMNS[name])
    if name == "susceptible_samples":
        at = columns.index("prob_std") + 1
        columns = columns[:at] + list(identities) + columns[at:]
    frame = pd.DataFrame([SETTING | r for r in rows], columns=list(SETTING) + columns)
    return frame


def make_criteria() -> dict[str, pd.DataFrame]:
    """Small criteria tables with hand-set numbers, in the columns of prunebias.analysis.criteria."""
    headline = [
        {
            "method": "gmp",
            "sparsity": s,
            "target": "cie",
            "score": "uncertainty",
            "selection": "top",
            "fraction": f,
            "n_pairs": 400,
            "n_targets": 40,
            "share_flagged": f,
            "captured": c,
            "chance": f,
            "lift": c / f,
            "auc": 0.81,
            "auc_low": 0.78,
            "auc_high": 0.84,
        }
        for s in SPARSITIES
        for f, c in ((0.05, 0.3), (0.1, 0.45), (0.2, 0.7))
    ]
    counter = [
        {
            "method": "gmp",
            "sparsity": 0.99,
            "countermeasure": "calibrated_threshold",
            "fraction": np.nan,
            "identity": "all",
            "metric": "bias_amplification",
            "dense": 0.02,
            "sparse": 0.10,
            "countered": 0.04,
            "recovered": 0.75,
        },
        {
            "method": "gmp",
            "sparsity": 0.99,
            "countermeasure": "calibrated_threshold",
            "fraction": np.nan,
            "identity": "all",
            "metric": "accuracy",
            "dense": 0.9,
            "sparse": 0.86,
            "countered": 0.87,
            "recovered": 0.25,
        },
    ]
    routing = [
        {
            "method": "gmp",
            "sparsity": 0.99,
            "routing": r,
            "fraction": f,
            "identity": "all",
            "metric": "bias_amplification",
            "value": v,
            "std": 0.0,
            "n_seeds": 2,
            "dense": 0.02,
            "sparse": 0.10,
            "recovered": (0.10 - v) / 0.08,
        }
        for r, f, v in (("susceptible", 0.0, 0.10), ("susceptible", 0.1, 0.064), ("random", 0.1, 0.092))
    ]
    predictors = [
        {
            "method": "gmp",
            "sparsity": 0.99,
            "identity": "all",
            "statistic": st,
            "direction": 1,
            "n_attributes": 20,
            "spearman": rho,
            "spearman_low": lo,
            "spearman_high": hi,
            "p_value": 0.01,
            "rank": rank,
            "top_k": 5,
            "top_k_overlap": 0.6,
            "top_k_chance": 0.25,
        }
        for st, rho, lo, hi, rank in (("uncertainty", 0.62, 0.31, 0.83, 1), ("auc", -0.2, -0.6, 0.3, 2))
    ]
    cie = [
        {
            "method": "gmp",
            "sparsity": 0.99,
            "kind": "cie",
            "attribute": "all",
            "identity": "Male",
            "group": g,
            "n_pairs": 200,
            "n_events": n,
            "rate": n / 200,
            "event_share": n / 40,
            "sample_share": 0.5,
            "over_representation": n / 20,
        }
        for g, n in (("0", 15), ("1", 25))
    ]
    samples = []
    for attribute in ("Smiling", "Blond_Hair"):
        for rank in (1, 2, 3):
            sid = f"s{rank + (3 if attribute == 'Smiling' else 0):03d}"
            base = {
                "attribute": attribute,
                "rank": rank,
                "id": sid,
                "label": rank % 2 == 0,
                "uncertainty": 0.5 - rank / 100,
                "prob_std": 0.01,
                "Male": rank == 1,
                "Young": rank != 2,
            }
            samples.append(
                base | {"method": "dense", "sparsity": 0.0, "probability": 0.48, "prediction": False, "cie": False}
            )
            for s in SPARSITIES:
                flip = attribute == "Smiling" and s == 0.99
                samples.append(
                    base
                    | {
                        "method": "gmp",
                        "sparsity": s,
                        "probability": 0.7 if flip else 0.4,
                        "prediction": flip,
                        "cie": flip,
                    }
                )
    return {
        "headline": _criteria_frame("headline", headline),
        "countermeasures": _criteria_frame("countermeasures", counter),
        "routing_curve": _criteria_frame("routing_curve", routing),
        "attribute_criterion": _criteria_frame("attribute_criterion", predictors),
        "cie_groups": _criteria_frame("cie_groups", cie),
        "susceptible_samples": _criteria_frame("susceptible_samples", samples, IDENTITIES),
        "sample_criterion": _criteria_frame("sample_criterion", []),
        "attribute_ranking": _criteria_frame("attribute_ranking", []),
    }


def test_criteria_sentences_read_the_tables():
    tables = make_criteria()
    text = sentences_of(make_metrics(ba_rise=0.08), tables)
    assert (
        "Calibrated thresholds remove 75% of the BA increase at 99% (GMP): mean BA 0.020 dense, 0.100 pruned, "
        "0.040 with calibrated thresholds; accuracy 86.0% → 87.0%."
    ) in text
    assert (
        "At 99% (GMP) dense uncertainty identifies compression-identified exemplars (CIEs) with ROC-AUC 0.81 "
        "[0.78, 0.84]; flagging 10% of (sample, attribute) pairs catches 45% of the 40 CIEs (chance: 10%)."
    ) in text
    assert (
        "Routing the 10% most uncertain samples to the dense model recovers 45% of the BA increase at 99% (GMP), "
        "vs 10% for 10% routed at random."
    ) in text
    assert (
        "The dense statistic that best predicts ΔBA at 99% (GMP) is dense uncertainty "
        "(Spearman ρ = +0.62 [0.31, 0.83] over 20 attributes)."
    ) in text
    assert not any("Not computed" in s for s in text)


def test_calibration_sentence_when_pruning_lowers_bias():
    c = make_criteria()["countermeasures"]
    c.loc[c["metric"] == "bias_amplification", ["sparse", "recovered"]] = [0.005, -2.0]
    text = calibration_sentence(c, "gmp")
    assert text.startswith(
        "Pruning lowers BA at 99% (GMP), so there is no increase for calibrated thresholds to remove"
    )


def test_predictor_sentence_warns_when_the_interval_includes_zero():
    a = make_criteria()["attribute_criterion"]
    a.loc[a["statistic"] == "uncertainty", "spearman_low"] = -0.1
    assert "the interval includes 0, so this is not a reliable ranking" in predictor_sentence(a, "gmp")


def test_routing_sentence_when_routing_makes_it_worse():
    r = make_criteria()["routing_curve"]
    r.loc[(r["routing"] == "susceptible") & (r["fraction"] == 0.1), "recovered"] = -0.44
    assert routing_sentence(r, "gmp").startswith(
        "Routing the 10% most uncertain samples to the dense model moves BA further from dense at 99% (GMP) (-44% of"
    )


def test_missing_criteria_tables_are_named():
    text = sentences_of(make_metrics(), {"headline": make_criteria()["headline"]})
    note = [s for s in text if s.startswith("Not computed")]
    assert note == [
        "Not computed in this run, so not summarised here: criteria table 'countermeasures', criteria table "
        "'routing_curve', criteria table 'attribute_criterion'."
    ]


def test_only_dense_models():
    metrics = make_metrics(methods=())
    assert sentences_of(metrics) == ["Only dense models were trained: there is no pruned model to compare."]


# ------------------------------------------------------------------ tables
def test_key_table_holds_mean_and_std_over_seeds():
    table = key_table(make_metrics(ba_rise=0.08))
    assert table.columns[:3] == ["method", "sparsity", "accuracy"]
    assert table.columns[-2:] == ["BA Male", "BA Young"]
    rows = {r[1][0]: r for r in table.rows}
    assert list(rows) == ["dense", "50%", "90%", "99%"]
    acc = rows["99%"][table.columns.index("accuracy")]
    # seeds give 0.899 and 0.901: mean 0.9, std sqrt(2) * 0.001
    assert acc[0] == "90.0% ± 0.1%" and acc[1] == pytest.approx(0.9)
    ba = rows["99%"][table.columns.index("BA Male")]
    assert ba[0] == "+0.099 ± 0.001" and ba[1] == pytest.approx(0.02 + 0.08 * 0.99)


def test_seed_curves_skip_undefined_values():
    m = make_metrics()
    m.loc[(m["metric"] == "bias_amplification") & (m["seed"] == 1) & (m["identity"] == "Young"), "value"] = np.nan
    c = seed_curves(m, "bias_amplification", per_identity=True)
    young = c[(c["identity"] == "Young") & (c["method"] == "dense")].iloc[0]
    assert young["n_seeds"] == 1 and young["mean"] == pytest.approx(0.02 + SEED_OFFSET[2])


def test_compute_table_sums_benchmarks(tmp_path):
    for rule, times in {"train_dense": [30.0, 90.0], "predict": [2.5]}.items():
        for i, t in enumerate(times):
            p = tmp_path / "results" / "benchmarks" / rule / "synth" / f"seed{i}.tsv"
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(f"s\th:m:s\tmax_rss\n{t}\t0:00:00\t{100 + i}\n")
    bench = read_benchmarks(sorted(tmp_path.rglob("*.tsv")))
    assert sorted(set(bench["stage"])) == ["predict", "train_dense"]
    table = compute_table(bench)
    assert [r[0][0] for r in table.rows] == ["train_dense", "predict"]
    assert table.rows[0][1:4] == [("2", 2.0), ("0:02:00", 120.0), ("0:01:00", 60.0)]
    assert table.rows[1][2] == ("2.5 s", 2.5)
    assert "0:02:02 in all" in table.note


def test_table_rejects_ragged_rows():
    with pytest.raises(ValueError, match="cells"):
        Table(["a", "b"], [False, True], [[("x", "x")]])


def test_gallery_puts_attributes_with_cies_first():
    sections = gallery(make_criteria()["susceptible_samples"], IDENTITIES)
    assert [s["attribute"] for s in sections] == ["Smiling", "Blond_Hair"]
    first = sections[0]["cards"][0]
    assert first["rank"] == 1 and first["groups"] == [("Male", True), ("Young", True)]
    assert first["dense"] == {"p": 0.48, "pred": False}
    method, models = first["methods"][0]
    assert method == "GMP" and [m["sparsity"] for m in models] == ["50%", "90%", "99%"]
    assert first["cie_at"] == ["GMP 99%"] and sections[1]["n_cie"] == 0


def test_thumbnail_upscales_small_images_with_nearest_neighbour():
    image = np.zeros((16, 16, 3), dtype=np.uint8)
    image[0, 0] = (255, 0, 0)
    uri = thumbnail(image, size=96)
    decoded = np.asarray(Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))))
    assert decoded.shape == (96, 96, 3)
    assert (decoded[:6, :6] == (255, 0, 0)).all() and (decoded[6:, :] == 0).all()
    big = thumbnail(np.full((300, 200, 3), 7, dtype=np.uint8), size=96)
    assert big.startswith("data:image/jpeg;base64,")
    assert Image.open(io.BytesIO(base64.b64decode(big.split(",", 1)[1]))).size == (64, 96)
    with pytest.raises(ValueError, match="uint8"):
        thumbnail(np.zeros((8, 8), dtype=np.uint8))


def test_caption_rst_is_rendered():
    html = caption_html("Share of **biased** outputs; see ``metrics.parquet``.")
    assert "<strong>biased</strong>" in html and "metrics.parquet" in html and "**" not in html


def test_figures_prefer_svg_and_say_when_a_caption_is_missing():
    files = figure_files(["f/a.png", "f/a.svg", "f/b.PNG", "f/c.pdf"])
    assert files == [("a", Path("f/a.svg")), ("b", Path("f/b.PNG"))]
    entry = figure_entry("b", Path("f/b.PNG"), b"\x89PNG", None)
    assert entry["src"] == "data:image/png;base64," + base64.b64encode(b"\x89PNG").decode("ascii")
    assert entry["title"] == "B" and "No caption: add reports/captions/b.rst." in entry["caption"]
    titled = figure_entry("a_b", Path("a_b.svg"), b"<svg/>", "My title\n========\n\nBody *text*.")
    assert titled["src"].startswith("data:image/svg+xml;base64,") and titled["title"] == "My title"
    assert "<em>text</em>" in titled["caption"] and "My title" not in titled["caption"]


# ------------------------------------------------------------------ captions exist for everything
def test_every_figure_and_table_has_a_caption():
    from prunebias.plots import figures

    missing = [n for n in figures.FIGURES if not (CAPTIONS / f"{n}.rst").exists()]
    missing += [n for n in criteria.TABLE_COLUMNS if not (CAPTIONS / "tables" / f"{n}.rst").exists()]
    missing += [n for n in ("summary", "metrics", "group_gaps") if not (CAPTIONS / "tables" / f"{n}.rst").exists()]
    assert missing == [] and (CAPTIONS / "audit_report.rst").exists()
    for rst in CAPTIONS.rglob("*.rst"):  # Snakemake renders captions with Jinja first
        assert "{{" not in rst.read_text() and "{%" not in rst.read_text(), rst


# ------------------------------------------------------------------ the whole file
def write_inputs(
    directory: Path,
    metrics: pd.DataFrame,
    tables: dict | None,
    image_size: int = 16,
    n_attributes_gallery: int | None = None,
) -> dict:
    """Write every input of :func:`prunebias.report.render.build_report` for a synthetic run; return its keywords."""
    directory.mkdir(parents=True, exist_ok=True)
    write_parquet(metrics, directory / "metrics.parquet")
    ids = [f"s{i:03d}" for i in range(12)]
    index = pd.DataFrame({"id": ids, "split": ["train"] * 4 + ["valid"] * 2 + ["test"] * 6, "source": "synthetic"})
    for a in ATTRIBUTES:
        index[a] = np.arange(12) % (2 + ATTRIBUTES.index(a) % 2) == 0
    data = directory / "data" / "synth"
    rng = np.random.default_rng(0)
    save_array(rng.integers(0, 256, (12, image_size, image_size, 3), dtype=np.uint8), data / "images.npy")
    store.write_index(index, data / "index.parquet", {"source": "synthetic", "resolution": image_size})
    predictions = []
    for model in metrics[["method", "sparsity", "seed"]].drop_duplicates().itertuples(index=False):
        p = directory / "predictions" / f"{model.method}-{model.sparsity}-{model.seed}.parquet"
        meta = SETTING | {
            "method": model.method,
            "target_sparsity": model.sparsity,
            "seed": int(model.seed),
            "measured_sparsity": model.sparsity + 1e-6 * (model.sparsity > 0),
        }
        write_parquet(pd.DataFrame({"id": ids[6:]}), p, metadata=meta)
        predictions.append(p)
    bench = directory / "benchmarks" / "train_dense" / "seed1.tsv"
    bench.parent.mkdir(parents=True)
    bench.write_text("s\th:m:s\tmax_rss\n12.5\t0:00:12\t300\n")
    groups = directory / "group_gaps.tsv"
    groups.write_text(
        "dataset\ttask\tarch\tmethod\tsparsity\tattribute\tidentity\tgroup_0\tgroup_1\tgap_points\n"
        "synth\tjoint\tcnn\tgmp\t0.99\tSmiling\tMale\t0.9\t0.8\t-10.0\n"
    )
    figure = directory / "figures" / "accuracy_auc.png"
    figure.parent.mkdir()
    Image.fromarray(np.full((40, 60, 3), 200, dtype=np.uint8)).save(figure)
    svg = directory / "figures" / "bias_amplification.svg"
    svg.write_text(
        '<svg xmlns="http://www.w3.org/2000/svg" width="60" height="40">'
        '<rect width="60" height="40" fill="teal"/></svg>'
    )
    crit = []
    for name, frame in (tables or {}).items():
        write_parquet(frame, directory / "criteria" / f"{name}.parquet")
        crit.append(directory / "criteria" / f"{name}.parquet")
    return dict(
        metrics=directory / "metrics.parquet",
        groups=groups,
        criteria=crit,
        figures=[figure, svg],
        benchmarks=[bench],
        data={"synth": (data / "index.parquet", data / "images.npy")},
        predictions=predictions,
        captions=CAPTIONS,
        template=TEMPLATE,
        settings={"title": "Synthetic audit"},
    )


def build_synthetic_report(directory: Path, out: Path, **kwargs) -> Path:
    """The report of a small synthetic run with every input present (also used by test_browser)."""
    build_report(out, **write_inputs(directory, make_metrics(ba_rise=0.08, acc_drop=0.04), make_criteria(), **kwargs))
    return out


def test_report_renders_self_contained(tmp_path):
    out = build_synthetic_report(tmp_path / "in", tmp_path / "report.html")
    html = out.read_text()
    assert html.startswith("<!DOCTYPE html>") and "<title>Synthetic audit</title>" in html
    assert "default-src 'none'" in html  # the browser may fetch nothing
    # no reference that would leave the file: every src/href is a data URI or an in-page anchor
    refs = re.findall(r'(?:src|href)\s*=\s*"([^"]*)"', html)
    assert refs and all(r.startswith("data:") or r.startswith("#") for r in refs), [
        r[:40] for r in refs if not r.startswith(("data:", "#"))
    ]
    assert "http://" not in html and "https://" not in html and "url(" not in html
    assert "rises from 0.020 (dense) to 0.099 at 99% sparsity" in html
    assert html.count('<img src="data:image/png;base64,') == 1 + 6  # a figure and six distinct samples
    assert html.count('<img src="data:image/svg+xml;base64,') == 1
    assert "Calibrated thresholds remove 75% of the BA increase" in html
    # captions were read: the figure title comes from reports/captions/accuracy_auc.rst
    assert "<h3>Accuracy and ROC-AUC vs sparsity</h3>" in html
    assert 'id="t-key"' in html and 'class="sortable"' in html and "addEventListener" in html


def test_same_inputs_same_bytes(tmp_path):
    kwargs = write_inputs(tmp_path / "in", make_metrics(), make_criteria())
    a = build_report(tmp_path / "a.html", **kwargs)
    build_report(tmp_path / "b.html", **kwargs)
    assert a == (tmp_path / "a.html").stat().st_size
    assert (tmp_path / "a.html").read_bytes() == (tmp_path / "b.html").read_bytes()


def test_report_without_optional_inputs(tmp_path):
    kwargs = write_inputs(tmp_path / "in", make_metrics(), None)
    kwargs.update(groups=None, figures=[], benchmarks=[], data={}, predictions=[])
    build_report(tmp_path / "report.html", **kwargs)
    html = (tmp_path / "report.html").read_text()
    assert "Not computed in this run: <code>headline</code>" in html
    assert "No figures were given to the report." in html
    assert "no gallery" in html and "measured sparsities unknown" in html and "No benchmark files" in html
    assert "Not computed in this run, so not summarised here" in html


def test_experiment_tasks_get_their_own_table():
    metrics = make_metrics(tasks=("joint", "single-Smiling", "single-Male"))
    context = report_context(title="t", metrics=metrics)
    assert [f["setting"] for f in context["findings"]] == ["synth / joint / cnn"]
    assert len(context["key"].rows) == 4 and "task" not in context["key"].columns
    experiments = context["key_experiments"]
    assert len(experiments.rows) == 8 and experiments.columns[0] == "task"


def test_effect_sentences_quote_the_interval_and_caution_on_few_pairs():
    rows = [
        ("bias_amplification", "Male", 5, 0.03, 0.01, 0.05),
        ("bias_amplification", "Young", 1, 0.15, 0.04, 0.22),
        ("uncertainty", "all", 21, 0.02, -0.01, 0.05),
    ]
    effects = (
        pd.DataFrame(
            [
                dict(statistic=st, identity=i, pairs=p, collapsed=0, delta=d, ci_low=lo, ci_high=hi)
                for st, i, p, d, lo, hi in rows
            ]
        )
        .assign(
            method="gmp_pt", threshold="default", sparsity=0.98, seeds=2, dense=0.1, value=0.2, seed_delta_min=-0.01
        )
        .assign(seed_delta_max=lambda t: 2 * t["delta"] + 0.01)
    )
    earlier = effects.assign(sparsity=0.9, delta=-1.0)  # only the highest sparsity is read
    male, young, uncertainty = effect_sentences(pd.concat([earlier, effects]), "gmp_pt")
    assert male.startswith("BA w.r.t. Male on the 5 pairs defined at every sparsity (0 collapsed) rises by 0.030")
    assert male.endswith("(0.100 → 0.200; 2 seeds, each seed's own change -0.010 to +0.070), 95 % CI [+0.010, +0.050].")
    assert (
        young.endswith("which the interval (over test samples and seeds) does not cover.")
        and "Read with care" not in male
    )
    assert young.startswith("BA w.r.t. Young on the 1 pair defined")
    assert uncertainty.startswith(
        "Uncertainty (share of outputs inside the uncertainty band) does not change detectably (+0.020)"
    )
    assert effect_sentences(effects, "gmp") == []

    calibrated = effects.assign(threshold="calibrated", pairs=12, delta=0.04, ci_low=0.02, ci_high=0.06)
    male, young, uncertainty = effect_sentences(pd.concat([effects, calibrated]), "gmp_pt")
    assert male.endswith(
        "95 % CI [+0.010, +0.050]. At validation-calibrated thresholds (each attribute predicted at its validation "
        "rate) it rises by 0.040 on 12 pairs (0 collapsed; 2 seeds, each seed's own change -0.010 to +0.070), "
        "95 % CI [+0.020, +0.060]."
    )
    assert "calibrated" not in uncertainty  # probabilities, hence uncertainty, do not depend on the threshold
    assert all(
        "calibrated" not in s for s in effect_sentences(pd.concat([effects, calibrated]), "gmp_pt", "calibrated")
    )


def test_changes_on_a_fixed_support_lead_and_the_plain_means_follow():
    """With an effects table the findings read accuracy, then the intervals, then the study's plain means."""
    metrics = make_metrics(ba_rise=0.08)
    top = metrics["sparsity"].max()
    effects = pd.DataFrame(
        [
            dict(statistic="bias_amplification", identity="Male", pairs=3, collapsed=0, delta=0.02),
            dict(statistic="interdependence", identity="all", pairs=4, collapsed=0, delta=0.01),
        ]
    ).assign(
        ci_low=0.005, ci_high=0.03, method="gmp", threshold="default", sparsity=top, seeds=2, dense=0.1, value=0.12
    )
    effects = effects.assign(seed_delta_min=0.0, seed_delta_max=0.04)
    text = sentences_of(metrics, {"effects": effects})
    plain = [i for i, s in enumerate(text) if "the study's plain mean" in s]
    fixed = [i for i, s in enumerate(text) if "defined at every sparsity" in s or "predicted at every sparsity" in s]
    assert text[0].startswith("Accuracy") and len(fixed) == 2 and plain
    assert max(fixed) < min(plain)
    assert text[fixed[1]].startswith("Interdependence (R² of each prediction on the others) on the 4 attributes")
    assert sentences_of(metrics)[1] == text[min(plain)]  # without effects the plain means follow accuracy
    # Uncertainty is a mean over every attribute: one sentence, from the effects where they have it.
    assert sum(s.startswith("Uncertainty") for s in text) == 1
    quoted = pd.concat([effects, effects.iloc[[1]].assign(statistic="uncertainty", identity="all")])
    (uncertainty,) = [s for s in sentences_of(metrics, {"effects": quoted}) if s.startswith("Uncertainty")]
    assert "95 % CI" in uncertainty


def test_identity_dependence_is_glossed_where_it_is_first_reported():
    """The effect sentence says what identity dependence is; the shortcut control, read after it, names it only."""
    effects = pd.DataFrame(
        [dict(statistic="identity_dependence", identity="all", pairs=7, collapsed=3, delta=0.01, ci_low=0.005)]
    ).assign(ci_high=0.015, method="gmp_pt", threshold="default", sparsity=0.98, seeds=2, dense=0.1, value=0.11)
    (sentence,) = effect_sentences(effects.assign(seed_delta_min=0.0, seed_delta_max=0.02), "gmp_pt")
    assert sentence.startswith(
        "Identity dependence (R² of each predicted target on the true identities) on the 7 targets predicted at "
        "every sparsity (3 collapsed) rises by 0.010"
    )
    dependence = shortcut_control_sentences(_control_table(), kept=0.62)[-1]
    assert dependence.startswith("Identity dependence: ") and "R²" not in dependence


def test_effect_sentences_say_when_no_pair_is_left():
    """An empty support reads as such, not as a change of undefined numbers ("nan → nan")."""
    effects = pd.DataFrame(
        [
            dict(threshold="default", pairs=0, collapsed=4, delta=np.nan, ci_low=np.nan, ci_high=np.nan),
            dict(threshold="calibrated", pairs=0, collapsed=5, delta=np.nan, ci_low=np.nan, ci_high=np.nan),
        ]
    ).assign(
        statistic="bias_amplification",
        identity="Male",
        method="gmp_pt",
        sparsity=0.98,
        seeds=2,
        dense=np.nan,
        value=np.nan,
        seed_delta_min=np.nan,
        seed_delta_max=np.nan,
    )
    (male,) = effect_sentences(effects, "gmp_pt")
    assert male == (
        "BA w.r.t. Male cannot be compared at 98% sparsity: no pair is defined, and predicted, by every model of "
        "the curve (4 collapsed). At validation-calibrated thresholds no pair is defined, and predicted, by every "
        "model of the curve (5 collapsed)."
    )
    assert "nan" not in male


def _experiment_tables():
    backdoor = pd.DataFrame(
        [
            {"method": m, "sparsity": x, "value": v, "delta": d, "delta_ci_low": lo, "delta_ci_high": hi}
            for m, x, v, d, lo, hi in (
                ("dense", 0.0, 0.15, np.nan, np.nan, np.nan),
                ("gmp_pt", 0.9, 0.17, 0.02, -0.01, 0.05),
                ("gmp_pt", 0.98, 0.20, 0.05, 0.02, 0.07),
            )
        ]
    ).assign(
        dataset="synth",
        task="backdoor-A-yellow_square-5-95",
        attribute="A",
        trigger="yellow_square",
        train_negatives=0.05,
        train_positives=0.95,
        arch="cnn",
        threshold="default",
        metric="backdoor_bias_amplification",
        seeds=1,
    )
    single = pd.DataFrame(
        {
            "identity": ["Male", "Young"],
            "dba_single": [0.03, np.nan],
            "dba_joint": [0.01, np.nan],
            "dba_diff": [0.02, np.nan],
            "dba_diff_ci_low": [0.005, np.nan],
            "dba_diff_ci_high": [0.04, np.nan],
        }
    ).assign(dataset="synth", arch="cnn", attribute="A", threshold="default", method="gmp_pt", sparsity=0.98, seeds=1)
    return single, backdoor


def test_experiment_findings_quote_the_change_at_the_top_sparsity_with_its_interval():
    single, backdoor = _experiment_tables()
    cards = experiment_findings(single, backdoor)
    assert [c["setting"] for c in cards] == [
        "synth / backdoor-A-yellow_square-5-95 / cnn",
        "synth / single-A vs joint / cnn",
    ]
    assert cards[0]["sentences"][0].startswith("Backdoor BA (yellow_square on 5% of the training negatives")
    assert (
        "rises by 0.050 at 98% sparsity vs dense (0.150 → 0.200; 1 seed), 95 % CI [+0.020, +0.070]"
        in cards[0]["sentences"][0]
    )
    male, young = cards[1]["sentences"][:2]
    assert (
        "w.r.t. Male" in male and "is larger trained alone than jointly by 0.020" in male and "[+0.005, +0.040]" in male
    )
    assert young.endswith("undefined (BA is not defined for this pair).")
    wide = single.assign(dba_diff_ci_low=-0.01)
    assert (
        "does not differ detectably between training alone and jointly (+0.020)"
        in experiment_findings(wide, None)[0]["sentences"][0]
    )
    assert experiment_findings(None, None) == []


def test_report_shows_the_experiment_findings(tmp_path):
    single, backdoor = _experiment_tables()
    context = report_context(
        title="t", metrics=make_metrics(), criteria={"single_vs_joint": single, "backdoor": backdoor}
    )
    assert len(context["experiment_findings"]) == 2
    shown = {t["name"] for t in context["criteria"]}
    assert not {"single_vs_joint", "backdoor"} & shown  # not criteria tables
    html = render_report(context)
    assert 'id="experiment-findings"' in html and "is larger trained alone than jointly by 0.020" in html


def test_size_stays_bounded_for_a_celeba_sized_gallery(tmp_path):
    """40 attributes × 12 samples of 128 px pure-noise images (the worst case for compression)."""
    tables = make_criteria()
    rows = []
    for a in range(40):
        for rank in range(1, 13):
            base = {
                "attribute": f"A{a:02d}",
                "rank": rank,
                "id": f"s{(a * 12 + rank) % 12:03d}",
                "label": True,
                "uncertainty": 0.4,
                "prob_std": 0.0,
                "Male": True,
                "Young": False,
            }
            rows.append(
                base | {"method": "dense", "sparsity": 0.0, "probability": 0.5, "prediction": True, "cie": False}
            )
            rows += [
                base | {"method": "gmp", "sparsity": s, "probability": 0.5, "prediction": True, "cie": False}
                for s in SPARSITIES
            ]
    tables["susceptible_samples"] = _criteria_frame("susceptible_samples", rows, IDENTITIES)
    kwargs = write_inputs(tmp_path / "in", make_metrics(), tables, image_size=128)
    size = build_report(tmp_path / "report.html", **kwargs)
    assert size == (tmp_path / "report.html").stat().st_size < MAX_REPORT_BYTES
    html = (tmp_path / "report.html").read_text()
    assert html.count('<img src="data:image/jpeg;base64,') == 40 * 12  # downscaled photos are JPEG


def test_gallery_budget_leaves_out_images_past_it():
    sections = [{"cards": [{"id": "a"}, {"id": "b"}]}, {"cards": [{"id": "c"}]}]
    images = np.zeros((3, 8, 8, 3), dtype=np.uint8)
    attach_thumbnails(sections, images, {"a": 0, "b": 1, "c": 2}, budget=10)
    # the first card already uses more than 10 bytes, but a section is only cut at its start
    assert sections[0]["cards"][0]["src"].startswith("data:image/png") and not sections[0]["no_images"]
    assert sections[1]["no_images"] and sections[1]["cards"][0]["src"] is None


def _control_table():
    rows = []
    for reference, weight, kept in (
        ("identity", 0.4, 0.9),
        ("identity", 0.8, 0.6),
        ("prior", 0.4, 0.85),
        ("prior", 0.8, 0.5),
    ):
        for threshold in ("default", "calibrated"):
            for statistic, identity in (("bias_amplification", "Male"), ("identity_dependence", "all")):
                delta = weight / 10 if reference == "identity" else (-0.01 if threshold == "default" else 0.0)
                rows.append(
                    dict(
                        reference=reference,
                        weight=weight,
                        information_kept=kept,
                        threshold=threshold,
                        statistic=statistic,
                        identity=identity,
                        pairs=7,
                        delta=delta,
                        ci_low=delta - 0.005,
                        ci_high=delta + 0.005,
                    )
                )
    return pd.DataFrame(rows).assign(dataset="synth", task="joint", arch="cnn")


def test_shortcut_control_sentences_take_the_mixtures_that_kept_as_much_as_the_pruned_models():
    intro, male, dependence = shortcut_control_sentences(_control_table(), kept=0.62)
    assert intro.startswith(
        "Shortcut control: the dense models mixed with the identity-only predictor (known positive) at weight 0.8 "
        "keep 60% and with the prevalences (known null) at weight 0.8 keep 50% of the dense model's information "
        "(the pruned models at the highest sparsity keep 62%)."
    )
    assert male == (
        "BA w.r.t. Male: +0.080 [+0.075, +0.085] (identity), -0.010 [-0.015, -0.005] (prior) at the default threshold; "
        "+0.080 [+0.075, +0.085] (identity), +0.000 [-0.005, +0.005] (prior) at calibrated thresholds."
    )
    assert dependence.startswith("Identity dependence: +0.080")
    # Closer to the weight-0.4 mixtures: those are read; without the pruned models' figure, the largest weight.
    assert "at weight 0.4" in shortcut_control_sentences(_control_table(), kept=0.88)[0]
    assert "(the pruned models" not in shortcut_control_sentences(_control_table(), kept=None)[0]
    assert shortcut_control_sentences(_control_table().iloc[:0], kept=0.6) == []


def test_shortcut_control_table_has_a_row_per_change():
    table = shortcut_control_table(_control_table())
    assert len(table.rows) == 16 and "mixed with" in table.columns and "change [95 % CI]" in table.columns
    texts = {row[table.columns.index("mixed with")][0] for row in table.rows}
    assert texts == {"identity-only predictor (known positive)", "prevalences (known null)"}
