"""The CelebA path end to end: a generated mini-CelebA (official file formats, real JPEGs)
through the real Snakefile with presets/celeba_quick.yaml, shrunk by config overrides."""

import copy

import pandas as pd
import pytest
import yaml

from prunebias.data.celeba_format import write_mini_celeba
from prunebias.io import read_predictions
from workflow_utils import ROOT, planned_jobs, snakemake, write_config

pytestmark = pytest.mark.slow


def deep_update(base: dict, override: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in override.items():
        out[key] = deep_update(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def test_quick_preset_runs_on_mini_celeba(tmp_path):
    root = write_mini_celeba(tmp_path / "celeba", n=240, split_counts={"train": 120, "valid": 60, "test": 60})
    preset = yaml.safe_load((ROOT / "presets/celeba_quick.yaml").read_text())
    config = deep_update(
        preset,
        {
            "datasets": {"celeba": {"root": str(root), "resolution": 36}},
            "grid": {"sparsities": [0.9]},
            "train": {"epochs": 1, "batch_size": 32, "crop_size": 32},
            "prune": {"methods": {"gmp_pt": {"epochs": 2, "schedule": {"start": 0, "end": 1, "step": 1}}}},
            "analysis": {"bootstrap": 10, "ba_min_positives": 1},
        },
    )
    work = tmp_path / "work"
    work.mkdir()
    write_config(work, config)
    snakemake(work, "--cores", "2")

    res = work / "results"
    index = pd.read_parquet(res / "data/celeba/index.parquet")
    assert len(index) == 240 and index["split"].value_counts().to_dict() == {"train": 120, "valid": 60, "test": 60}
    assert index.columns[3] == "5_o_Clock_Shadow" and len(index.columns) == 3 + 40
    pred, meta = read_predictions(res / "predictions/celeba/joint/resnet18/gmp_pt/s0.9/seed23/test.parquet")
    assert len(pred) == 60 and pred.shape[1] == 41
    assert meta["measured_sparsity"] == pytest.approx(0.9, abs=1e-4)
    assert (res / "report.html").exists() and (res / "tables/summary.parquet").exists()
    assert planned_jobs(work) == {}
