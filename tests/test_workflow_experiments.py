"""Workflow test of the controlled experiments: the real Snakefile on a tiny config with one
single-label attribute and one backdoor setting (one method, one sparsity, one seed)."""

import copy
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from prunebias.io import read_predictions
from prunebias.vocabulary import COST_METRICS
from workflow_utils import (
    EXPENSIVE,
    TINY_CONFIG,
    assert_fails_before_any_job,
    install_package,
    planned_jobs,
    snakemake,
    write_config,
)

pytestmark = pytest.mark.slow

SINGLE = "single-Blond_Hair"
BACKDOOR = "backdoor-Smiling-yellow_square-5-95"
RUNS = ["dense/seed1", "oneshot/s0.9/seed1"]


def _config():
    cfg = copy.deepcopy(TINY_CONFIG)
    cfg["grid"].update(methods=["oneshot"], sparsities=[0.9])
    cfg["experiments"] = {
        "single_label": {"enabled": True, "attributes": ["Blond_Hair"]},
        "backdoor": {
            "enabled": True,
            "seed": 0,
            "items": [{"attributes": ["Smiling"], "triggers": ["yellow_square"], "train_fractions": [0.05, 0.95]}],
        },
    }
    return cfg


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    """The package as `pip install .` (not editable) installs it: this module's runs use it."""
    return install_package(tmp_path_factory.mktemp("installed") / "site")


@pytest.fixture(scope="module")
def finished(tmp_path_factory, package):
    d = tmp_path_factory.mktemp("wf_experiments")
    write_config(d, _config())
    snakemake(d, "--cores", "2", package=package)
    return d


def test_every_task_has_its_models_and_predictions(finished):
    res = finished / "results"
    index = pd.read_parquet(res / "data/synth/index.parquet")
    test_ids = index.loc[index["split"] == "test", "id"].tolist()
    for task, columns in (("joint", None), (SINGLE, ["Blond_Hair"]), (BACKDOOR, ["Smiling"])):
        for run in RUNS:
            pred, meta = read_predictions(res / f"predictions/synth/{task}/small_cnn/{run}/test.parquet")
            assert pred["id"].tolist() == test_ids and meta["task"] == task
            if columns is not None:  # single-label models: id + one logit column
                assert list(pred.columns) == ["id"] + columns and meta["attributes"] == columns
            ckpt = torch.load(res / f"models/synth/{task}/small_cnn/{run}/model.pt", weights_only=False)
            assert ckpt["task"] == task
            assert (ckpt["task_spec"] is None) == (task == "joint")
            assert (res / f"metrics/synth/{task}/small_cnn/{run}.parquet").exists()


def test_triggered_ids_match_the_fractions(finished):
    res = finished / "results"
    index = pd.read_parquet(res / "data/synth/index.parquet")
    ids = pd.read_parquet(res / f"data/synth/tasks/{BACKDOOR}.parquet")
    assert list(ids.columns) == ["id", "split", "label"]
    merged = ids.merge(index[["id", "split", "Smiling"]], on="id", suffixes=("", "_index"))
    assert len(merged) == len(ids) and (merged["split"] == merged["split_index"]).all()
    assert (merged["label"] == merged["Smiling"]).all()
    shares = {"train": (0.05, 0.95), "valid": (0.5, 0.5), "test": (0.5, 0.5)}
    for (split, label), n in index.groupby(["split", "Smiling"]).size().items():
        expected = int(shares[split][int(label)] * n + 0.5)
        assert ((ids["split"] == split) & (ids["label"] == label)).sum() == expected, (split, label)


def test_metrics_and_tables(finished):
    res = finished / "results"
    single = pd.read_parquet(res / f"metrics/synth/{SINGLE}/small_cnn/dense/seed1.parquet")
    # the model's cost rows are about the whole model (attribute "all")
    assert set(single.loc[~single["metric"].isin(COST_METRICS), "attribute"]) == {"Blond_Hair"}
    # BA of the one attribute w.r.t. every identity (identity labels come from the index)
    assert set(single.loc[single["metric"] == "bias_amplification", "identity"]) == {
        "Male",
        "Young",
        "Chubby",
        "Pale_Skin",
    }
    summary = pd.read_parquet(res / "tables/summary.parquet")
    names = ["backdoor_bias_amplification", "triggered_accuracy", "clean_accuracy"]
    backdoor = summary[summary["task"] == BACKDOOR]
    assert set(names) <= set(backdoor["metric"])
    assert set(backdoor.loc[backdoor["metric"].isin(names), "identity"]) == {"trigger"}
    assert set(summary["task"]) == {"joint", SINGLE, BACKDOOR}
    table = pd.read_parquet(res / "tables/backdoor.parquet")
    assert set(table["task"]) == {BACKDOOR} and set(table["sparsity"]) == {0.0, 0.9}
    comparison = pd.read_parquet(res / "tables/single_vs_joint.parquet")
    assert set(comparison["attribute"]) == {"Blond_Hair"} and {"dba_single", "dba_joint"} <= set(comparison.columns)
    # Both tables carry paired bootstrap intervals, read from the models' predictions.
    assert {"dba_diff_ci_low", "dba_diff_ci_high"} <= set(comparison.columns)
    assert {"ci_low", "delta_ci_low", "delta_ci_high"} <= set(table.columns)
    assert table.loc[table["method"] == "dense", "delta"].isna().all()
    assert 'id="experiment-findings"' in (res / "report.html").read_text()
    # Every trained model has a convergence row; the experiments' carry their loss trend only.
    conv = pd.read_parquet(res / "tables/convergence.parquet").set_index(["task", "method", "seed"])
    assert len(conv) == 6 and set(conv.index.get_level_values("task")) == {"joint", SINGLE, BACKDOOR}
    experiments = conv.drop(index="joint", level="task")
    assert experiments["final_train_loss"].notna().all() and experiments["information_kept"].isna().all()
    assert conv.loc["joint", "val_bce"].notna().all() and experiments["val_bce"].isna().all()
    for name in ("single_vs_joint", "backdoor"):
        for ext in ("png", "svg"):
            assert (res / f"figures/{name}.{ext}").stat().st_size > 0


def test_second_dry_run_has_nothing_to_do(finished, package):
    assert planned_jobs(finished, package=package) == {}


def test_changing_the_backdoor_seed_reruns_only_the_backdoor_models(finished, package):
    cfg = _config()
    cfg["experiments"]["backdoor"]["seed"] = 1
    write_config(finished, cfg, "variant.yaml")
    jobs = planned_jobs(finished, config="variant.yaml", package=package)
    assert jobs["triggered_ids"] == 1 and jobs["train_dense"] == 1 and jobs["prune"] == 1, jobs
    assert jobs["predict"] == 2 and jobs["metrics"] == 2 and "prepare" not in jobs, jobs


def test_turning_experiments_off_keeps_the_joint_models(finished, package):
    cfg = _config()
    cfg["experiments"] = {"single_label": {"enabled": False}, "backdoor": {"enabled": False}}
    write_config(finished, cfg, "joint_only.yaml")
    jobs = planned_jobs(finished, config="joint_only.yaml", package=package)
    # Only the aggregation over fewer models reruns: the joint models' settings never changed.
    assert "aggregate" in jobs and not ({"prepare", "train_dense", "prune", "predict", "metrics"} & set(jobs)), jobs


def test_training_goes_first_the_grid_models_before_the_experiments(finished, package):
    """The grid's training jobs have priority 2, the experiments' 1 and the analysis jobs none, so
    on few cores the scheduler starts the grid's dense models first, then the experiments' short
    runs, and fills the cores with predictions and tables only when no training job is ready."""
    proc = snakemake(finished, "-n", "--forceall", package=package)
    priorities = {}
    # A dry run lists jobs back to back: each starts with its "rule <name>:" line.
    for block in re.split(r"(?m)^(?=(?:local)?rule \w+:)", proc.stdout + proc.stderr):
        job = re.match(r"(?:local)?rule (train_dense|prune|predict):", block)
        if job:
            task = re.search(r"wildcards: .*task=([\w-]+)", block).group(1)
            priority = re.search(r"^\s+priority: (\d+)", block, re.M)
            priorities.setdefault((job.group(1), task), set()).add(int(priority.group(1)) if priority else 0)
    training = {"joint": {2}, SINGLE: {1}, BACKDOOR: {1}}
    assert priorities == {
        **{(rule, task): p for rule in ("train_dense", "prune") for task, p in training.items()},
        **{("predict", task): {0} for task in training},
    }


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda c: c["experiments"]["single_label"].update(attributes=["Blond_Hiar"]), "['Blond_Hiar'] do not exist"),
        (lambda c: c["experiments"]["backdoor"]["items"][0].update(triggers=["red_square"]), "red_square"),
        (lambda c: c["experiments"]["backdoor"]["items"][0].update(train_fractions=[0.05, 1.5]), "1.5"),
        (lambda c: c["experiments"].update(joint=False, single_label={}, backdoor={}), "no task is enabled"),
    ],
)
def test_malformed_experiments_fail_before_any_job(tmp_path, edit, message):
    cfg = _config()
    edit(cfg)
    assert_fails_before_any_job(tmp_path, cfg, message)


# Analysis rule -> the `prunebias` command it runs (workflow/rules/*.smk).
ANALYSIS_COMMANDS = {
    "metrics": "metrics",
    "aggregate": "aggregate",
    "figures": "figures",
    "criteria": "criteria",
    "criteria_table": "concat",
    "criteria_figures": "criteria-figures",
    "effects": "effects",
    "design": "design",
    "experiment_single_vs_joint": "experiment",
    "experiment_backdoor": "experiment",
    "audit_report": "report",
}


def test_editing_a_module_reruns_exactly_the_rules_that_run_it(finished, package):
    """Each package module in turn, edited in the installed copy (not the working tree): a dry
    run schedules exactly the jobs that forcing the rules whose stage imports it would (those
    rules and what depends on them), and never an expensive one."""
    from prunebias.code_inputs import stage_files

    stages = {
        rule: set(stage_files("prunebias.cli:main", f"prunebias.cli:cmd_{command.replace('-', '_')}", root=package))
        for rule, command in ANALYSIS_COMMANDS.items()
    }
    assert package / "prunebias/plots/figures.py" in stages["experiment_backdoor"]  # imported by figures_experiments
    forced = {(): {}}  # rules forced -> the jobs a dry run then plans
    for module in [*sorted(set.union(*stages.values())), package / "prunebias/training/train.py"]:
        expected = tuple(sorted(rule for rule, files in stages.items() if module in files))
        if expected not in forced:
            forced[expected] = planned_jobs(finished, "--forcerun", *expected, package=package)
        # An edit, not a touch: Snakemake skips an input whose mtime changed but not its checksum.
        text, before = module.read_bytes(), module.stat()
        try:
            module.write_bytes(text + b"\n# edited by a test\n")
            planned = planned_jobs(finished, package=package)
        finally:
            module.write_bytes(text)
            os.utime(module, ns=(before.st_atime_ns, before.st_mtime_ns))
        assert planned == forced[expected], module
        assert not set(planned) & EXPENSIVE, (module, planned)
    assert forced[()] == {}  # train.py: no analysis rule runs it, and no training reruns


def test_the_runs_use_the_installed_package(finished, package):
    proc = subprocess.run(
        [sys.executable, "-c", "import prunebias.report.render as r; print(r.DEFAULT_TEMPLATE)"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(package)},
    )
    template = Path(proc.stdout.strip())
    assert template.is_relative_to(package) and template.is_file(), proc.stderr  # package data installed
    assert (finished / "results/report.html").stat().st_size > 0
