"""Compression families beyond unstructured masks through the real Snakefile: dense → N:M, channel
pruning and int8 → predictions → metrics with cost rows → the equal-cost figure and report section."""

import copy
import json

import pandas as pd
import pytest
import torch

from prunebias.io import load_torch
from prunebias.training import nm
from prunebias.training.checkpoint import checkpoint_model
from prunebias.vocabulary import COST_METRICS
from workflow_utils import TINY_CONFIG, assert_fails_before_any_job, planned_jobs, snakemake, write_config

pytestmark = pytest.mark.slow


def families_config() -> dict:
    config = copy.deepcopy(TINY_CONFIG)
    config["grid"]["methods"] = ["gmp_pt", "nm", "channels", "int8"]
    config["grid"]["sparsities"] = [0.9]
    recipe = {"epochs": 2, "optimizer": {"name": "adam", "lr": 0.001}, "lr_schedule": {"name": "constant"}}
    config["prune"]["methods"] |= {
        "nm": {**recipe, "n_m": [2, 4], "schedule": {"start": 0, "end": 1, "step": 1}},
        "channels": {**recipe, "sparsities": [0.5]},
        "int8": {"calibration_samples": 64},
    }
    config["identities"] = ["Male", "Young"]
    return config


def test_families_run_end_to_end_with_measured_costs(tmp_path):
    write_config(tmp_path, families_config())
    jobs = planned_jobs(tmp_path)
    assert jobs["prune"] == 3 and jobs["quantize"] == 1 and jobs["predict"] == 5
    snakemake(tmp_path, "--cores", "2")
    res = tmp_path / "results"
    models = res / "models/synth/joint/small_cnn"

    nm_ckpt = load_torch(models / "nm/s0.5/seed1/model.pt", "cpu")
    assert nm_ckpt["compression"]["n_m"] == [2, 4] and nm_ckpt["compression"]["tensors"]
    for name in nm_ckpt["compression"]["tensors"]:
        assert nm.pattern_violations(nm_ckpt["state_dict"][name], 2, 4) == 0

    channels = load_torch(models / "channels/s0.5/seed1/model.pt", "cpu")
    assert channels["compression"]["flops_share_removed"] >= 0.49
    assert channels["cost"]["flops"] < 0.55 * load_torch(models / "dense/seed1/model.pt", "cpu")["cost"]["flops"]

    int8_path = models / "int8/s0/seed1/model.pt"
    int8 = load_torch(int8_path, "cpu")
    assert int8["calibration"] and int8["calibration_samples"] == 64
    # predict rebuilds the quantized module itself: int8 kernels, not a float simulation
    module = checkpoint_model(int8, int8_path)
    assert any("quantized" in type(m).__module__ for m in module.modules())
    deterministic = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(deterministic, warn_only=True)  # as predict runs int8 kernels
    try:
        assert module(torch.zeros(2, 3, 16, 16)).shape == (2, len(int8["attributes"]))
    finally:
        torch.use_deterministic_algorithms(deterministic)

    cost = json.loads((res / "predictions/synth/joint/small_cnn/int8/s0/seed1/cost.json").read_text())
    assert set(cost) == set(COST_METRICS) and all(v > 0 for v in cost.values())
    metrics = pd.read_parquet(res / "tables/metrics.parquet")
    cost = metrics[metrics["metric"].isin(COST_METRICS)]
    assert len(cost) == 5 * len(COST_METRICS) and (cost["value"] > 0).all()
    assert (res / "figures/cost_tradeoff.svg").stat().st_size > 0
    report = (res / "report.html").read_text()
    assert "Compression families at equal cost" in report and "int8" in report
    # The analyses run unchanged for every family: criteria and effects cover the new methods.
    effects = pd.read_parquet(res / "tables/effects.parquet")
    assert {"nm", "channels", "int8"} <= set(effects["method"])
    assert planned_jobs(tmp_path) == {}


def test_nm_needs_n_smaller_than_m(tmp_path):
    config = families_config()
    config["prune"]["methods"]["nm"]["n_m"] = [4, 4]
    assert_fails_before_any_job(tmp_path, config, "prune.methods.nm.n_m: [4, 4]")


def test_method_only_keys_are_refused_elsewhere(tmp_path):
    config = families_config()
    config["prune"]["methods"]["gmp_pt"]["n_m"] = [2, 4]
    assert_fails_before_any_job(tmp_path, config, "prune.methods.gmp_pt.n_m: only used by method nm")
