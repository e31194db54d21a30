"""Workflow tests: the real Snakefile on a tiny config, its outputs, and its dry-run job lists."""

import copy
import os

import pandas as pd
import pytest
import torch

from prunebias.io import read_predictions
from workflow_utils import (
    EXPENSIVE,
    TINY_CONFIG,
    assert_fails_before_any_job,
    benchmark_script,
    planned_jobs,
    snakemake,
    write_config,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A directory where the tiny workflow ran to completion."""
    d = tmp_path_factory.mktemp("wf")
    write_config(d, TINY_CONFIG)
    snakemake(d, "--cores", "2")
    return d


def variant(directory, edit, name="variant.yaml"):
    cfg = copy.deepcopy(TINY_CONFIG)
    edit(cfg)
    write_config(directory, cfg, name)
    return name


def test_outputs_follow_the_contracts(finished):
    res = finished / "results"
    runs = ["dense/seed1"] + [f"{m}/s{s}/seed1" for m in ("gmp_pt", "oneshot") for s in ("0.5", "0.9")]
    index = pd.read_parquet(res / "data/synth/index.parquet")
    for run in runs:
        pred, meta = read_predictions(res / f"predictions/synth/joint/small_cnn/{run}/test.parquet")
        assert pred["id"].tolist() == index.loc[index["split"] == "test", "id"].tolist()
        target = meta["target_sparsity"]
        assert meta["measured_sparsity"] == pytest.approx(target, abs=1e-4)
        ckpt = torch.load(res / f"models/synth/joint/small_cnn/{run}/model.pt", weights_only=False)
        assert ckpt["measured_sparsity"]["global"] == pytest.approx(target, abs=1e-4)
        assert (res / f"models/synth/joint/small_cnn/{run}/train_log.parquet").exists()
        assert not (res / f"models/synth/joint/small_cnn/{run}/.resume.pt").exists()
    summary = pd.read_parquet(res / "tables/summary.parquet")
    assert {"dense", "gmp_pt", "oneshot"} == set(summary["method"])
    assert (res / "tables/group_gaps.tsv").read_text().startswith("dataset\t")


def test_seed_effects_script_reproduces_the_effects_table(finished):
    script = benchmark_script("seed_effects")
    settings = script.analysis_settings(finished / "config.yaml")
    table = script.seed_tables(finished / "results", settings)
    assert set(table["seeds_used"]) == {"all", "seed 1"}
    keys = ["dataset", "arch", "method", "sparsity", "statistic", "identity", "threshold"]
    values = ["pairs", "delta", "ci_low", "ci_high"]
    effects = pd.read_parquet(finished / "results/tables/effects.parquet")
    for name in ("all", "seed 1"):  # one seed: alone it is the pooled curve
        mine = table[table["seeds_used"] == name].set_index(keys)[values].sort_index()
        pd.testing.assert_frame_equal(mine, effects.set_index(keys)[values].sort_index(), check_dtype=False)
    assert script.seed_lines(table)


def test_support_pairs_script_reproduces_the_effects_ba(finished):
    script = benchmark_script("support_pairs")
    pairs = script.run_pairs(finished / "results", TINY_CONFIG["analysis"]["ba_min_positives"])
    mine = script.support_means(pairs).set_index(script.CURVE).sort_index()
    effects = pd.read_parquet(finished / "results/tables/effects.parquet")
    ba = effects[(effects["statistic"] == "bias_amplification") & (effects["task"] == "joint")]
    ba = ba[ba["sparsity"] == ba.groupby("method")["sparsity"].transform("max")]
    expected = ba.set_index(script.CURVE)[["pairs", "delta"]].sort_index()
    # The tiny models leave most supports empty; tests/test_support_pairs.py has non-empty ones.
    assert len(expected)
    pd.testing.assert_frame_equal(mine, expected, check_dtype=False)
    assert script.support_lines(pairs, ["Male"], "default")


def test_effects_convergence_and_design_tables(finished):
    res = finished / "results"
    effects = pd.read_parquet(res / "tables/effects.parquet")
    # Every sparse setting x statistic x threshold, BA per identity, each with an interval around it.
    assert set(effects["statistic"]) == {"bias_amplification", "uncertainty", "interdependence", "identity_dependence"}
    assert len(effects[["method", "sparsity"]].drop_duplicates()) == 4 and set(effects["threshold"]) == {
        "default",
        "calibrated",
    }
    finite = effects.dropna(subset=["ci_low", "ci_high"])
    assert len(finite) and (finite["ci_low"] <= finite["ci_high"]).all()
    conv = pd.read_parquet(res / "tables/convergence.parquet")
    dense = conv[conv["method"] == "dense"]
    learned = dense["val_bce"] < dense["prior_bce"]  # a 2-epoch tiny model may not beat the prior
    assert len(conv) == 5 and (dense.loc[learned, "information_kept"] == 1).all()
    assert dense.loc[~learned, "information_kept"].isna().all()
    assert {"still_falling", "loss_drop_last_epochs", "selected_epoch"} <= set(conv.columns)
    design = pd.read_parquet(res / "tables/design/synth.parquet")
    assert len(design) == 21 and design["cue_delta"].gt(0).sum() == 20
    html = (res / "report.html").read_text()
    assert "information kept" in html and "95 % CI" in html and "Design of the synthetic data set synth" in html


def test_shortcut_control_table_figure_and_report_section(finished):
    res = finished / "results"
    control = pd.read_parquet(res / "tables/shortcut_control.parquet")
    assert set(control["reference"]) == {"identity", "prior"} and set(control["threshold"]) == {"default", "calibrated"}
    assert sorted(control["weight"].unique()) == [0.2, 0.4, 0.6, 0.8]  # the schema's default
    assert set(control["statistic"]) == {"bias_amplification", "identity_dependence"}
    # The known null is exactly 0 at calibrated thresholds, wherever it is defined.
    null = control[(control["reference"] == "prior") & (control["threshold"] == "calibrated")].dropna(subset=["delta"])
    assert len(null) and (null[["delta", "ci_low", "ci_high"]] == 0).all().all()
    assert (res / "figures/shortcut_control.svg").exists() and (res / "figures/shortcut_control.png").exists()
    html = (res / "report.html").read_text()
    assert "Known positive and known null: the shortcut control" in html and 'id="fig-shortcut_control"' in html


def test_second_dry_run_has_nothing_to_do(finished):
    assert planned_jobs(finished) == {}


def test_decoupled_twin_beside_the_main_data_runs_only_its_own_models(finished):
    def add_twin(c):
        c["datasets"]["twin"] = {**c["datasets"]["synth"], "decoupled": True}
        c["grid"]["datasets"] = ["synth", "twin"]
        c["experiments"] = {"datasets": ["synth"]}

    jobs = planned_jobs(finished, config=variant(finished, add_twin))
    assert jobs["prepare"] == 1 and jobs["train_dense"] == 1 and jobs["prune"] == 4 and jobs["predict"] == 5, jobs
    assert jobs["effects"] == 1 and jobs["shortcut_control"] == 1 and jobs["design"] == 1, jobs


def test_analysis_setting_reruns_only_analysis(finished):
    name = variant(finished, lambda c: c["analysis"].update(ece_bins=5))
    jobs = planned_jobs(finished, config=name)
    assert jobs and not (EXPENSIVE & set(jobs)), jobs


def test_runtime_switches_rerun_nothing_but_reach_the_training_command(finished):
    name = variant(finished, lambda c: c.update(runtime={"compile": True}))
    assert planned_jobs(finished, config=name) == {}
    forced = snakemake(finished, "-n", "-p", "--forcerun", "train_dense", config=name)
    commands = [line for line in forced.stdout.splitlines() if "python -m prunebias.cli train " in line]
    assert commands and all("--compile 1" in line for line in commands), forced.stdout[-3000:]


def test_adding_a_sparsity_runs_only_the_new_models(finished):
    name = variant(finished, lambda c: c["grid"].update(sparsities=[0.5, 0.9, 0.95]))
    jobs = planned_jobs(finished, config=name)
    # One prune and one predict job per (method, seed); nothing trains again.
    assert jobs["prune"] == 2 and jobs["predict"] == 2 and jobs["metrics"] == 2, jobs
    assert "train_dense" not in jobs and "prepare" not in jobs


def test_adding_a_seed_runs_only_its_models(finished):
    name = variant(finished, lambda c: c["grid"].update(seeds=[1, 2]))
    jobs = planned_jobs(finished, config=name)
    assert jobs["train_dense"] == 1 and jobs["prune"] == 4 and jobs["predict"] == 5, jobs
    assert "prepare" not in jobs


def test_changing_a_fine_tuning_setting_reruns_that_method_only(finished):
    name = variant(finished, lambda c: c["prune"]["methods"]["oneshot"]["optimizer"].update(lr=0.002))
    jobs = planned_jobs(finished, config=name)
    assert jobs["prune"] == 2 and jobs["predict"] == 2 and "train_dense" not in jobs, jobs


def test_changing_dense_training_reruns_everything_downstream(finished):
    name = variant(finished, lambda c: c["train"].update(epochs=3))
    jobs = planned_jobs(finished, config=name)
    # gmp_pt and oneshot start from the dense checkpoint: all of them rerun.
    assert jobs["train_dense"] == 1 and jobs["prune"] == 4 and jobs["predict"] == 5 and "prepare" not in jobs, jobs


def test_deleting_a_prediction_reruns_only_it_and_its_dependants(finished):
    path = finished / "results/predictions/synth/joint/small_cnn/oneshot/s0.9/seed1/test.parquet"
    saved = path.read_bytes()
    path.unlink()
    try:
        jobs = planned_jobs(finished)
    finally:
        path.write_bytes(saved)
        os.utime(path, (path.stat().st_atime, (path.parent / "valid.parquet").stat().st_mtime))
    assert jobs.get("predict") == 1 and jobs.get("metrics") == 1 and not ({"prune", "train_dense"} & set(jobs)), jobs


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda c: c["train"].update(epochz=3), "did you mean 'train.epochs'"),
        (lambda c: c["train"].update(epochs="ten"), "epochs"),
        (lambda c: c["grid"].update(sparsities=[0.5, 1.0]), "sparsities"),
        (lambda c: c["grid"].update(sparsities=[0.5, 0.5]), "sparsities"),
        (lambda c: c["grid"].update(seeds=[]), "seeds"),
    ],
)
def test_malformed_config_fails_before_any_job(tmp_path, edit, message):
    cfg = copy.deepcopy(TINY_CONFIG)
    edit(cfg)
    assert_fails_before_any_job(tmp_path, cfg, message)
