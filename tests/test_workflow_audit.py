"""Audit-only data sets (source: predictions) through the real Snakefile: three models' prediction
files and a labels table in, metrics, criteria, figures and both reports out, and no training job."""

import copy

import numpy as np
import pandas as pd
import pytest

from prunebias.data.audit_example import write_audit_example
from prunebias.io import read_predictions
from workflow_utils import EXPENSIVE, TINY_CONFIG, assert_fails_before_any_job, planned_jobs, snakemake, write_config

pytestmark = pytest.mark.slow

ATTRIBUTES = ["Smiling", "Eyeglasses", "Bangs", "Male", "Young"]
MODELS = [("vit_tiny", "dense", 0.0, 0), ("vit_tiny", "magnitude", 0.5, 0), ("vit_tiny", "magnitude", 0.9, 0)]


def audit_config(files: dict, **dataset) -> dict:
    config = copy.deepcopy(TINY_CONFIG)
    config["datasets"] = {
        "mine": {"source": "predictions", "labels": str(files["labels"]), "manifest": str(files["manifest"]), **dataset}
    }
    config["grid"]["datasets"] = ["mine"]
    config["identities"] = ["Male", "Young"]
    config["report"] = {"title": "Audit of my models"}
    return config


@pytest.fixture
def audit_files(tmp_path):
    return write_audit_example(
        tmp_path / "audit",
        attributes=ATTRIBUTES,
        sizes={"train": 400, "valid": 200, "test": 300},
        models=MODELS,
        scores="probabilities",
        fmt="csv",
    )


def test_audit_only_run_makes_every_output_and_trains_nothing(tmp_path, audit_files):
    work = tmp_path / "work"
    work.mkdir()
    write_config(work, audit_config(audit_files, scores="probabilities"))
    jobs = planned_jobs(work)
    assert jobs["import_predictions"] == 3 and jobs["prepare_labels"] == 1
    assert not set(jobs) & EXPENSIVE
    snakemake(work, "--cores", "2")

    res = work / "results"
    pred, meta = read_predictions(res / "predictions/mine/joint/vit_tiny/magnitude/s0.9/seed0/test.parquet")
    assert list(pred.columns) == ["id", *ATTRIBUTES] and len(pred) == 300
    assert meta["method"] == "magnitude" and meta["target_sparsity"] == 0.9
    source = pd.read_csv(audit_files["manifest"].parent / "predictions/vit_tiny_magnitude_0.9_0/test.csv")
    # probabilities became logits: sigmoid of the written logit is the user's probability
    expected = source.set_index("id").loc[pred["id"], "Smiling"].to_numpy()
    np.testing.assert_allclose(1 / (1 + np.exp(-pred["Smiling"].to_numpy(np.float64))), expected, atol=1e-5)
    summary = pd.read_parquet(res / "tables/summary.parquet")
    assert set(summary["method"]) == {"dense", "magnitude"}
    assert (res / "tables/effects.parquet").exists() and (res / "tables/criteria/sample_criterion.parquet").exists()
    html = (res / "report.html").read_text()
    assert "Audit of my models" in html and "magnitude" in html
    assert "CelebA" not in html and "synthetic" not in html.lower().replace("synthetic data sets", "")
    assert (res / "workflow_report.html").exists()
    assert planned_jobs(work) == {}

    # a user's new prediction file redoes that model's analysis, never anything else
    path = audit_files["manifest"].parent / "predictions/vit_tiny_magnitude_0.5_0/test.csv"
    frame = pd.read_csv(path)
    frame.loc[0, "Smiling"] = 0.5
    frame.to_csv(path, index=False)
    again = planned_jobs(work)
    assert again["import_predictions"] == 1 and not set(again) & EXPENSIVE


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda m: m.drop(columns="seed"), "missing ['seed']"),
        (lambda m: m[m["method"] != "dense"], "no dense model of arch 'vit_tiny' with seed 0"),
        (lambda m: m.assign(test=["../elsewhere.csv"] * len(m)), "leaves the manifest's folder"),
        (lambda m: m.assign(valid=["nowhere.csv"] * len(m)), "'nowhere.csv' does not exist"),
        (lambda m: m.assign(method=["dense", "Mag Nitude", "x"]), "row 2: method 'Mag Nitude'"),
        (lambda m: pd.concat([m, m.iloc[[1]]]), "row 2 and row 4 are the same model"),
    ],
)
def test_bad_manifest_fails_before_any_job(tmp_path, audit_files, change, message):
    manifest = audit_files["manifest"]
    change(pd.read_csv(manifest)).to_csv(manifest, index=False)
    work = tmp_path / "work"
    work.mkdir()
    assert_fails_before_any_job(work, audit_config(audit_files), message)


def test_identity_that_is_not_a_label_column_fails_before_any_job(tmp_path, audit_files):
    work = tmp_path / "work"
    work.mkdir()
    config = audit_config(audit_files)
    config["identities"] = ["Male", "Skin_Tone"]
    assert_fails_before_any_job(work, config, "identities: ['Skin_Tone'] are not columns of datasets.mine.labels")


def test_prediction_file_with_a_missing_column_fails_before_any_job(tmp_path, audit_files):
    path = audit_files["manifest"].parent / "predictions/vit_tiny_magnitude_0.9_0/valid.csv"
    pd.read_csv(path).drop(columns="Bangs").to_csv(path, index=False)
    work = tmp_path / "work"
    work.mkdir()
    assert_fails_before_any_job(work, audit_config(audit_files), "valid.csv: its columns must be 'id' and one per")
