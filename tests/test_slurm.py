"""Cluster execution: Snakemake's Slurm executor against a real (local, single-node) Slurm.

Uses profiles/slurm layered with profiles/slurm-test. Needs the cluster started by
tests/slurm/setup.sh; skipped, with the reason, when it is not running. Besides plain runs, a
killed cluster job: a training job scancelled mid-epoch, or Snakemake itself killed and its
jobs cancelled, is resumed from its resume state with outputs byte-identical to a local run.
"""

import importlib.util
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

# The kill -9 / --retries machinery of the local reliability tests, reused on Slurm.
from test_reliability import (
    EPOCHS,
    KILL_CONFIG,
    assert_same_run,
    cpu_only,  # noqa: F401  (autouse: no GPU, byte-identical results are a CPU promise)
    metrics_less_timings,
    one,
    prepared,
    sleep_into_next_epoch,
    start_snakemake,
    train_log,
    wait_for_resume_state,
)
from workflow_utils import TINY_CONFIG, snakemake, write_config

REPO = Path(__file__).resolve().parents[1]
# profiles/slurm layered with the override for the local test cluster.
PROFILES = [
    *("--profile", str(REPO / "profiles/slurm")),
    *("--profile", str(REPO / "profiles/slurm-test")),
]
PARTITION = "debug"  # the partition of tests/slurm/setup.sh and profiles/slurm-test
NOT_RUNNING = "local Slurm not running: run tests/slurm/setup.sh"

# Two independent "GPU" jobs (run in parallel with --jobs 2) feeding one analysis job;
# each writes the Slurm job id it ran under, which proves it ran inside an sbatch job.
TINY_SNAKEFILE = """
localrules: all

rule all:
    input: "out/summary.txt"

rule train_dense:
    output: "out/seed{seed}.txt"
    shell: "echo $SLURM_JOB_ID > {output}"

rule aggregate:
    input: expand("out/seed{seed}.txt", seed=[1, 2])
    output: "out/summary.txt"
    shell: "cat {input} > {output}; echo $SLURM_JOB_ID >> {output}"
"""


def _run(cmd, **kwargs):
    return subprocess.run(cmd, capture_output=True, text=True, **kwargs)


def _last_line(text: str) -> str:
    return (text.strip().splitlines() or [""])[-1]


@pytest.fixture(scope="module")
def slurm_cluster():
    """Skip unless slurmctld answers, the test partition's node is up and sacct works."""
    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        pytest.skip("snakemake-executor-plugin-slurm not installed: pip install -e '.[slurm]'")
    if shutil.which("sinfo") is None:
        pytest.skip(f"{NOT_RUNNING} (no sinfo on PATH)")
    try:
        # scontrol ping fails at once when slurmctld is down; sinfo would retry for ~10 s.
        ping = _run(["scontrol", "ping"], timeout=30)
        if ping.returncode != 0:
            # "Slurmctld(primary) at HOST is DOWN", or the error of a missing slurm.conf.
            reason = ping.stdout.strip().splitlines()[:1] or [_last_line(ping.stderr)]
            pytest.skip(f"{NOT_RUNNING} ({reason[0]})")
        sinfo = _run(["sinfo", "--noheader", "--partition", PARTITION, "-o", "%T"], timeout=30)
        states = sinfo.stdout.split()
        if not {"idle", "mixed", "allocated"} & set(states):
            pytest.skip(f"{NOT_RUNNING} (partition {PARTITION!r}: nodes {states or 'none'})")
        sacct = _run(["sacct", "--noheader", "--allocations", "--jobs", "1"], timeout=30)
        if sacct.returncode != 0:
            pytest.skip(f"{NOT_RUNNING} ({_last_line(sacct.stderr)})")
    except subprocess.TimeoutExpired as timeout:
        pytest.skip(f"{NOT_RUNNING} ({timeout.cmd[0]} timed out)")


def run_id_of(log: str) -> str:
    """The SLURM run ID (the job name of all the run's Slurm jobs) that Snakemake printed."""
    run_id = re.search(r"SLURM run ID: (\S+)", log)
    assert run_id, f"no SLURM run ID in the log:\n{log[-3000:]}"
    return run_id.group(1)


def run_on_slurm(workdir: Path, *args: str, timeout: int = 600) -> tuple[str, set[str]]:
    """Run Snakemake in workdir through the Slurm profiles; return its run id and job ids.

    The run id is the Slurm job name of all its jobs; the job ids are those that
    Snakemake reports to have submitted with sbatch.
    """
    cmd = [sys.executable, "-m", "snakemake", *PROFILES, "--workflow-profile", "none", *args]
    proc = _run(cmd, cwd=workdir, timeout=timeout)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"snakemake failed:\n{log[-6000:]}"
    job_ids = set(re.findall(r"submitted with SLURM jobid (\d+)", log))
    return run_id_of(log), job_ids


def sacct_jobs(run_id: str) -> dict[str, tuple[str, str]]:
    """Slurm's accounting of one Snakemake run: job id -> (state, comment)."""
    proc = _run(
        [
            "sacct",
            "--noheader",
            "--parsable2",
            "--allocations",
            "--starttime",
            "now-1days",
            "--name",
            run_id,
            "--format",
            "JobIDRaw,State,Comment",
        ],
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    rows = [line.split("|") for line in proc.stdout.splitlines() if line]
    return {job_id: (state, comment) for job_id, state, comment in rows}


@pytest.mark.slurm
@pytest.mark.slow
def test_jobs_go_through_sbatch_and_appear_in_sacct(slurm_cluster, tmp_path):
    (tmp_path / "Snakefile").write_text(TINY_SNAKEFILE)

    run_id, submitted = run_on_slurm(tmp_path, "--jobs", "2")

    # Two train_dense jobs and the aggregate (profiles/slurm-test groups no analysis rules).
    assert len(submitted) == 3
    accounted = sacct_jobs(run_id)
    assert set(accounted) == submitted
    assert {state for state, _ in accounted.values()} == {"COMPLETED"}
    assert sorted(comment for _, comment in accounted.values()) == [
        "rule_aggregate",
        "rule_train_dense_wildcards_1",
        "rule_train_dense_wildcards_2",
    ]
    # Every rule ran inside its own one of those Slurm jobs.
    seed_jobs = [(tmp_path / f"out/seed{s}.txt").read_text().strip() for s in (1, 2)]
    summary = (tmp_path / "out/summary.txt").read_text().split()
    assert summary[:2] == seed_jobs
    assert set(summary) == submitted


@pytest.mark.slow
def test_test_profile_drops_gpus_and_placeholders(tmp_path):
    """profiles/slurm asks GPUs for train_dense; layered with slurm-test it asks none.

    A dry run: needs the executor plugin, not a cluster.
    """
    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        pytest.skip("snakemake-executor-plugin-slurm not installed: pip install -e '.[slurm]'")
    (tmp_path / "Snakefile").write_text(TINY_SNAKEFILE)

    def train_dense_resources(profiles):
        # A dry run caps threads at --cores (a Slurm run does not): give it room.
        cmd = [sys.executable, "-m", "snakemake", "-n", "--cores", "16", *profiles]
        proc = _run([*cmd, "--workflow-profile", "none"], cwd=tmp_path, timeout=120)
        log = proc.stdout + proc.stderr
        assert proc.returncode == 0, log
        found = re.findall(r"rule train_dense:.*?resources: ([^\n]*)", log, re.S)
        assert len(found) == 2, log
        return found

    for resources in train_dense_resources(PROFILES[:2]):
        assert "gpu=1" in resources and "slurm_partition=CHANGE_ME" in resources
        assert "cpus_per_task=8" in resources
    for resources in train_dense_resources(PROFILES):
        assert "gpu=" not in resources and "CHANGE_ME" not in resources
        assert "slurm_partition=debug" in resources and "slurm_account=prunebias-test" in resources
        assert "cpus_per_task=1" in resources


@pytest.mark.slurm
@pytest.mark.slow
def test_real_workflow_on_slurm_matches_a_local_run(slurm_cluster, tmp_path):
    """The project's Snakefile on a tiny config through profiles/slurm: every job is an sbatch
    job in Slurm's accounting, and the predictions and metrics equal a local run's bytes."""
    import copy

    cfg = copy.deepcopy(TINY_CONFIG)
    cfg["grid"].update(methods=["oneshot"], sparsities=[0.9])
    local, cluster = tmp_path / "local", tmp_path / "slurm"
    for d in (local, cluster):
        d.mkdir()
        write_config(d, cfg)
    snakemake(local, "--cores", "2")
    proc = snakemake(cluster, *PROFILES, "--jobs", "2", timeout=900)
    log = proc.stdout + proc.stderr
    run_id = run_id_of(log)
    submitted = set(re.findall(r"submitted with SLURM jobid (\d+)", log))
    accounted = sacct_jobs(run_id)
    assert submitted and set(accounted) == submitted
    assert {state for state, _ in accounted.values()} == {"COMPLETED"}
    rules = " ".join(comment for _, comment in accounted.values())
    for rule in ("prepare", "train_dense", "prune", "predict", "metrics", "aggregate", "audit_report"):
        assert f"rule_{rule}" in rules, rules
    for rel in (
        "predictions/synth/joint/small_cnn/dense/seed1/test.parquet",
        "predictions/synth/joint/small_cnn/oneshot/s0.9/seed1/test.parquet",
        "models/synth/joint/small_cnn/oneshot/s0.9/seed1/model.pt",
    ):
        assert (cluster / "results" / rel).read_bytes() == (local / "results" / rel).read_bytes(), rel
    rel = "metrics/synth/joint/small_cnn/oneshot/s0.9/seed1.parquet"  # all but the timed latencies
    pd.testing.assert_frame_equal(
        metrics_less_timings(cluster / "results" / rel), metrics_less_timings(local / "results" / rel)
    )
    assert (cluster / "results/report.html").exists()


# ------------------------------------------------------------------- a killed cluster job
# The config of tests/test_reliability.py (dense training only, epochs of about a second) up
# to the metrics: the model, its predictions and its metrics come from three Slurm jobs.
UNTIL_METRICS = ("--until", "metrics")
# predict and metrics as one Slurm job (a group replaces profiles/slurm-test's groups): each
# Slurm job costs 15-35 s here (two Snakemake starts inside it, the plugin's status polling).
AFTER_TRAINING_IN_ONE_JOB = ("--groups", "predict=after_training", "metrics=after_training")


@pytest.fixture(scope="module")
def uninterrupted(slurm_cluster, tmp_path_factory):
    """The local run that the interrupted Slurm runs must equal byte for byte."""
    d = tmp_path_factory.mktemp("uninterrupted")
    write_config(d, KILL_CONFIG)
    snakemake(d, "--cores", "1", *UNTIL_METRICS)
    assert "resumed" not in train_log(d)
    return d


def slurm_job_of(directory: Path, rule: str) -> str:
    """The Slurm job id of ``rule``'s (latest) job in directory/snakemake.out."""
    log = (directory / "snakemake.out").read_text()
    found = re.findall(rf"submitted with SLURM jobid (\d+) \(log: \S*/rule_{rule}/", log)
    assert found, f"no {rule} job submitted:\n{log[-3000:]}"
    return found[-1]


def wait_until_gone(run_id: str, timeout: float = 60) -> None:
    """Wait until no job of the run is pending, running or completing (squeue's default states)."""
    deadline = time.monotonic() + timeout
    while _run(["squeue", "--noheader", "--name", run_id, "-o", "%i"], timeout=30).stdout.strip():
        assert time.monotonic() < deadline, f"jobs of run {run_id} still in squeue after {timeout}s"
        time.sleep(0.5)


def train_dense_states(run_id: str) -> list[str]:
    """The states of the run's train_dense jobs in sacct, in job order ("CANCELLED by 0" -> CANCELLED)."""
    jobs = sacct_jobs(run_id)
    return [jobs[j][0].split()[0] for j in sorted(jobs, key=int) if jobs[j][1].startswith("rule_train_dense")]


def assert_same_as_local(directory: Path, reference: Path) -> None:
    """Model, predictions, training log and metrics equal the uninterrupted run's; no leftovers."""
    assert_same_run(directory, reference)  # model.pt, predictions, train_log less timings; leftovers == []
    metrics = one(reference, "results/metrics/**/dense/seed1.parquet")
    rel = metrics.relative_to(reference)
    # exactly equal but for the latencies, which are timed anew by every predict job
    pd.testing.assert_frame_equal(metrics_less_timings(directory / rel), metrics_less_timings(metrics), obj=str(rel))


@pytest.mark.slurm
@pytest.mark.slow
def test_scancel_of_the_training_job_mid_epoch_retries_and_resumes_byte_identically(uninterrupted, tmp_path):
    prepared(tmp_path, uninterrupted)
    proc = start_snakemake(tmp_path, *PROFILES, *UNTIL_METRICS, *AFTER_TRAINING_IN_ONE_JOB, "--retries", "2")
    try:
        resume = wait_for_resume_state(tmp_path, proc, timeout=300)
        sleep_into_next_epoch(tmp_path)
        cancelled = slurm_job_of(tmp_path, "train_dense")
        subprocess.run(["scancel", cancelled], check=True, timeout=30)  # preemption, an admin, a user
        assert proc.wait(timeout=600) == 0, (tmp_path / "snakemake.out").read_text()[-6000:]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    log = (tmp_path / "snakemake.out").read_text()
    assert "Trying to restart job" in log and slurm_job_of(tmp_path, "train_dense") != cancelled
    match = re.search(
        rf"resumed from {re.escape(str(resume.relative_to(tmp_path)))} at epoch (\d+)", train_log(tmp_path)
    )
    assert match and 1 <= int(match.group(1)) < EPOCHS, train_log(tmp_path)
    assert train_dense_states(run_id_of(log)) == ["CANCELLED", "COMPLETED"]
    assert_same_as_local(tmp_path, uninterrupted)


@pytest.mark.slurm
@pytest.mark.slow
def test_sigkill_of_snakemake_and_scancel_of_its_jobs_then_rerun_on_slurm_is_byte_identical(uninterrupted, tmp_path):
    prepared(tmp_path, uninterrupted)
    proc = start_snakemake(tmp_path, *PROFILES, *UNTIL_METRICS, *AFTER_TRAINING_IN_ONE_JOB)
    try:
        resume = wait_for_resume_state(tmp_path, proc, timeout=300)
        sleep_into_next_epoch(tmp_path)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the login node dies: nothing cancels the Slurm jobs
        proc.wait()
    # The orphaned Slurm job trains on; the cleanup after the crash cancels the run's jobs.
    killed_run = run_id_of((tmp_path / "snakemake.out").read_text())
    orphans = _run(["squeue", "--noheader", "--name", killed_run, "-o", "%T"], timeout=30).stdout.split()
    assert orphans == ["RUNNING"], orphans
    subprocess.run(["scancel", "--name", killed_run], check=True, timeout=30)
    wait_until_gone(killed_run)
    saved = torch.load(resume, weights_only=False)
    assert 1 <= saved["state"]["epoch"] < EPOCHS
    assert one(tmp_path, "results/models/**/model.pt") is None and not list(tmp_path.glob("results/predictions/**/*"))

    assert list((tmp_path / ".snakemake/locks").iterdir())  # the lock outlives a kill -9 (tests/test_reliability.py)
    snakemake(tmp_path, "--unlock")
    proc = snakemake(tmp_path, *PROFILES, *UNTIL_METRICS, *AFTER_TRAINING_IN_ONE_JOB)  # with --rerun-incomplete
    rerun = run_id_of(proc.stdout + proc.stderr)

    assert f"resumed from {resume.relative_to(tmp_path)} at epoch {saved['state']['epoch']}" in train_log(tmp_path)
    assert train_dense_states(killed_run) == ["CANCELLED"] and train_dense_states(rerun) == ["COMPLETED"]
    assert_same_as_local(tmp_path, uninterrupted)
