"""Reliability (issue 8): kill -9 and Snakemake --retries resume byte-identically, every artifact
is written atomically, numerical faults stop or retry cleanly, bad inputs fail with one message.

The workflow tests run the real Snakefile on a small dense-only config whose training epochs
last about a second, so a job can be killed mid-epoch.
"""

from __future__ import annotations

import copy
import json
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
from torch import nn

import prunebias.training.checkpoint as checkpoint_module
from prunebias import cli, jobs
from prunebias.data import store
from prunebias.data.celeba_format import write_mini_celeba
from prunebias.io import save_torch
from prunebias.training.checkpoint import load_checkpoint
from prunebias.training.train import NonFiniteLossError
from workflow_utils import (
    ANALYSIS_SETTINGS,
    TINY_CONFIG,
    assert_fails_before_any_job,
    prepared_files,
    snakemake,
    snakemake_command,
    train_spec,
    write_config,
)

EPOCHS = 3
# Dense models only; 4000 training images at 16 px make an epoch last about a second on one thread.
KILL_CONFIG = copy.deepcopy(TINY_CONFIG)
KILL_CONFIG["datasets"]["synth"]["sizes"] = {"train": 4000, "valid": 200, "test": 200}
KILL_CONFIG["grid"].update(methods=[], sparsities=[])
KILL_CONFIG["train"]["epochs"] = EPOCHS
UNTIL_PREDICT = ("--cores", "1", "--until", "predict")


@pytest.fixture(scope="module", autouse=True)
def cpu_only():
    """Byte-identical results are a CPU promise: hide any GPU from the workflow's jobs."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CUDA_VISIBLE_DEVICES", "")
        yield


# ------------------------------------------------------------------------------- helpers
def start_snakemake(directory: Path, *args: str) -> subprocess.Popen:
    """Start Snakemake in its own process group (its jobs inherit it), output to directory/snakemake.out."""
    cmd = snakemake_command(directory, "config.yaml", *args)
    with open(directory / "snakemake.out", "w") as out:
        return subprocess.Popen(
            cmd,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )


def one(directory: Path, pattern: str) -> Path | None:
    found = sorted(directory.glob(pattern))
    assert len(found) <= 1, found
    return found[0] if found else None


def wait_for_resume_state(directory: Path, proc: subprocess.Popen, timeout: float = 120) -> Path:
    """Wait until the dense training job has saved its first resume state; return its path."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        resume = one(directory, "results/models/**/dense/seed1/.resume.pt")
        if resume is not None:
            return resume
        if proc.poll() is not None:
            raise AssertionError(f"snakemake ended first:\n{(directory / 'snakemake.out').read_text()[-4000:]}")
        time.sleep(0.02)
    raise AssertionError("no resume state appeared")


def train_log(directory: Path) -> str:
    return one(directory, "results/logs/train_dense/**/seed1.log").read_text()


def sleep_into_next_epoch(directory: Path) -> None:
    """Sleep 40% of the first epoch's duration (from the training log): the kill lands mid-epoch."""
    seconds = float(re.search(r"epoch 1/\d+ .*\(([\d.]+)s\)", train_log(directory)).group(1))
    time.sleep(0.4 * seconds)


def train_processes(directory: Path) -> list[int]:
    """Pids of `prunebias train` processes working in ``directory``."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            cwd = os.path.realpath(os.readlink(entry / "cwd"))
        except OSError:
            continue
        if cwd == os.path.realpath(directory) and b"prunebias.cli" in argv and b"train" in argv:
            pids.append(int(entry.name))
    return pids


def artifacts(directory: Path) -> dict[str, bytes]:
    """Predictions and checkpoints by relative path -> bytes."""
    files = list(directory.glob("results/predictions/**/*.parquet")) + list(
        directory.glob("results/models/**/model.pt")
    )
    return {str(p.relative_to(directory)): p.read_bytes() for p in files}


def leftovers(directory: Path) -> list[Path]:
    """Temporary files of atomic writes and resume states under results/."""
    return sorted(directory.glob("results/**/.*.tmp")) + sorted(directory.glob("results/**/.resume.pt"))


def metrics_less_timings(path: Path) -> pd.DataFrame:
    """A per-model metrics table without its latency rows: everything else is byte-reproducible."""
    frame = pd.read_parquet(path)
    return frame[~frame["metric"].str.startswith("latency_")].reset_index(drop=True)


def assert_same_run(directory: Path, reference: Path) -> None:
    got, expected = artifacts(directory), artifacts(reference)
    assert sorted(got) == sorted(expected) and len(got) == 3  # valid, test, model.pt
    for name in expected:
        assert got[name] == expected[name], f"{name} differs from the uninterrupted run"

    def epochs(d):  # the training log, less its timings
        return pd.read_parquet(one(d, "results/models/**/train_log.parquet")).drop(columns="seconds")

    pd.testing.assert_frame_equal(epochs(directory), epochs(reference))
    assert leftovers(directory) == []


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run."""
    d = tmp_path_factory.mktemp("uninterrupted")
    write_config(d, KILL_CONFIG)
    snakemake(d, *UNTIL_PREDICT)
    assert "resumed" not in train_log(d)
    return d


def prepared(directory: Path, reference: Path, config: dict = KILL_CONFIG) -> None:
    """Write ``config`` and reuse the reference's prepared data (no provenance: Snakemake keeps it)."""
    write_config(directory, config)
    shutil.copytree(reference / "results/data", directory / "results/data")


# ------------------------------------------------------------------- kill -9 and --retries
@pytest.mark.slow
def test_sigkill_of_snakemake_and_its_job_mid_epoch_then_rerun_is_byte_identical(reference, tmp_path):
    prepared(tmp_path, reference)
    proc = start_snakemake(tmp_path, *UNTIL_PREDICT)
    try:
        resume = wait_for_resume_state(tmp_path, proc)
        sleep_into_next_epoch(tmp_path)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the whole group: a node crash, nothing cleans up
        proc.wait()
    saved = torch.load(resume, weights_only=False)
    assert 1 <= saved["state"]["epoch"] < EPOCHS
    assert one(tmp_path, "results/models/**/model.pt") is None and not list(tmp_path.glob("results/predictions/**/*"))

    # Snakemake's lock survives a kill -9 of Snakemake itself: the next run refuses and says how to fix it.
    locked = snakemake(tmp_path, *UNTIL_PREDICT, check=False)
    assert locked.returncode != 0 and "--unlock" in locked.stdout + locked.stderr
    snakemake(tmp_path, "--unlock")
    snakemake(tmp_path, *UNTIL_PREDICT)  # --rerun-incomplete comes from profiles/default

    assert f"resumed from {resume.relative_to(tmp_path)} at epoch {saved['state']['epoch']}" in train_log(tmp_path)
    assert_same_run(tmp_path, reference)


@pytest.mark.slow
def test_retries_continue_a_killed_job_from_its_resume_state(reference, tmp_path):
    prepared(tmp_path, reference)
    proc = start_snakemake(tmp_path, *UNTIL_PREDICT, "--retries", "1")
    try:
        wait_for_resume_state(tmp_path, proc)
        sleep_into_next_epoch(tmp_path)
        pids = train_processes(tmp_path)
        assert len(pids) == 1
        os.kill(pids[0], signal.SIGKILL)  # the job dies (preemption, OOM killer); Snakemake lives on
        assert proc.wait(timeout=300) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert "Trying to restart job" in (tmp_path / "snakemake.out").read_text()
    assert re.search(r"resumed from \S+\.resume\.pt at epoch [1-3]\b", train_log(tmp_path))
    assert_same_run(tmp_path, reference)


# ------------------------------------------------------------------------- numerical faults
@pytest.mark.slow
def test_nan_loss_fails_the_job_with_epoch_and_batch_and_leaves_no_output(reference, tmp_path):
    cfg = copy.deepcopy(KILL_CONFIG)
    cfg["train"]["optimizer"]["lr"] = 1e30
    prepared(tmp_path, reference, cfg)
    proc = snakemake(tmp_path, *UNTIL_PREDICT, check=False)
    assert proc.returncode != 0
    log = train_log(tmp_path)
    assert re.search(r"prunebias train: error: non-finite training loss at epoch 0, batch \d+", log), log
    assert "train.max_nonfinite_retries" in log and "Traceback" not in log
    assert not list(tmp_path.glob("results/models/**/*.pt")) and not list(tmp_path.glob("results/models/**/*.parquet"))
    assert leftovers(tmp_path) == [] and not (tmp_path / "results/predictions").exists()


SPEC = {
    "epochs": 3,
    "batch_size": 64,
    "eval_batch_size": 256,
    "crop_size": None,
    "augment": {"padding": 1, "flip": True},
    "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9},
    "lr_schedule": {"name": "constant"},
    "schedule": {},
    "scope": "global",
    "max_nonfinite_retries": 1,
    "retry_lr_factor": 0.1,
}
RUN = {"dataset": "tiny", "task": "joint", "arch": "small_cnn", "method": "dense", "target_sparsity": 0.0, "seed": 3}


class FlakyLoss(nn.BCEWithLogitsLoss):
    """The training loss, NaN at the ``bad_call``-th call while armed (a transient numerical fault)."""

    armed, calls, bad_call = False, 0, 0

    def forward(self, z, y):
        FlakyLoss.calls += 1
        loss = super().forward(z, y)
        return loss * float("nan") if FlakyLoss.armed and FlakyLoss.calls == FlakyLoss.bad_call else loss


def train(data, out, spec=SPEC, run=RUN, parent=None):
    jobs.train(
        *prepared_files(data), out / "model.pt", out / "log.parquet", train_spec(spec), run, parent=parent, device="cpu"
    )
    return load_checkpoint(out / "model.pt"), pd.read_parquet(out / "log.parquet")


def flaky(monkeypatch, epoch, batch, steps_per_epoch=4):
    """Make the loss NaN once, at ``epoch``/``batch`` of the next run (tiny data: 4 steps an epoch)."""
    monkeypatch.setattr(nn, "BCEWithLogitsLoss", FlakyLoss)
    FlakyLoss.armed, FlakyLoss.calls, FlakyLoss.bad_call = True, 0, epoch * steps_per_epoch + batch + 1


def record_saves(monkeypatch, crash_at=None):
    """Record (epoch, lr_scale, retries_left) of every resume state saved; optionally crash after one."""
    saves = []

    def save(obj, path):
        save_torch(obj, path)
        saves.append((obj["state"]["epoch"], obj["lr_scale"], obj["retries_left"]))
        if crash_at is not None and saves[-1][0] == crash_at:
            raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint_module, "save_torch", save)
    return saves


def weights_equal(a, b):
    return all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])


def test_nonfinite_retry_restarts_the_last_good_epoch_with_a_lower_lr(tiny_data, tmp_path, monkeypatch, capsys):
    flaky(monkeypatch, epoch=1, batch=2)
    saves = record_saves(monkeypatch)
    ckpt, log = train(tiny_data, tmp_path / "retried")
    err = capsys.readouterr().err
    assert "non-finite training loss at epoch 1, batch 2" in err and "retrying from epoch 1 with lr x0.1" in err
    assert list(log["epoch"]) == [0, 1, 2]
    assert log["lr"].tolist() == pytest.approx([0.05, 0.005, 0.005])
    assert all(torch.isfinite(v).all() for v in ckpt["state_dict"].values() if v.is_floating_point())
    # The lowered lr and the spent retry are part of the resume state from the retried epoch on.
    assert saves == [(0, 1.0, 1), (1, 1.0, 1), (2, 0.1, 0), (3, 0.1, 0)]
    assert not (tmp_path / "retried" / ".resume.pt").exists()

    # Killed after the retried epoch, the run resumes with the lowered lr: bit-identical result.
    flaky(monkeypatch, epoch=1, batch=2)
    record_saves(monkeypatch, crash_at=2)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_data, tmp_path / "cut")
    FlakyLoss.armed = False
    monkeypatch.setattr(checkpoint_module, "save_torch", save_torch)
    resumed, resumed_log = train(tiny_data, tmp_path / "cut")
    assert "resumed from" in capsys.readouterr().err
    assert resumed_log["lr"].tolist() == pytest.approx([0.05, 0.005, 0.005])
    assert weights_equal(resumed, ckpt)


def test_nonfinite_retry_in_the_first_epoch_restarts_from_the_initial_weights(tiny_data, tmp_path, monkeypatch, capsys):
    flaky(monkeypatch, epoch=0, batch=1)
    _, log = train(tiny_data, tmp_path)
    assert "retrying from epoch 0 with lr x0.1" in capsys.readouterr().err
    assert log["lr"].tolist() == pytest.approx([0.005] * 3)


def test_nonfinite_loss_after_the_last_retry_fails_with_no_output(tiny_data, tmp_path, capsys):
    spec = {**SPEC, "optimizer": {"name": "sgd", "lr": 1e30}, "max_nonfinite_retries": 2}
    with pytest.raises(NonFiniteLossError, match=r"epoch 0, batch \d+"):
        train(tiny_data, tmp_path, spec)
    err = capsys.readouterr().err
    assert "with lr x0.1" in err and "with lr x0.01" in err
    assert not (tmp_path / "model.pt").exists() and not (tmp_path / "log.parquet").exists()
    assert not list(tmp_path.glob(".*.tmp"))


# ------------------------------------------------------------------- resume state validity
@pytest.mark.parametrize(
    "method, schedule, crash_at",
    [
        ("gmp_pt", {"start": 0, "end": 2, "step": 1, "initial_sparsity": 0.05}, 2),  # between two pruning steps
        ("acdc", {"warmup": 1, "phase": 1, "final_sparse": 1}, 2),  # sparse phase done, dense phase next
        ("acdc", {"warmup": 1, "phase": 1, "final_sparse": 1}, 3),  # dense phase done, final sparse next
    ],
)
def test_pruning_resumes_bit_identically(tiny_data, tiny_model, tmp_path, monkeypatch, method, schedule, crash_at):
    spec = {**SPEC, "epochs": 4, "optimizer": {"name": "adam", "lr": 1e-3}, "schedule": schedule}
    run = {**RUN, "method": method, "target_sparsity": 0.8}
    parent = tiny_model if method == "gmp_pt" else None
    full, full_log = train(tiny_data, tmp_path / "full", spec, run, parent)
    record_saves(monkeypatch, crash_at=crash_at)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_data, tmp_path / "cut", spec, run, parent)
    monkeypatch.setattr(checkpoint_module, "save_torch", save_torch)
    resumed, resumed_log = train(tiny_data, tmp_path / "cut", spec, run, parent)
    assert weights_equal(resumed, full) and resumed["selected_epoch"] == full["selected_epoch"]
    assert all(torch.equal(resumed["masks"][k], full["masks"][k]) for k in full["masks"])
    pd.testing.assert_frame_equal(resumed_log.drop(columns="seconds"), full_log.drop(columns="seconds"))
    assert (tmp_path / "cut/model.pt").read_bytes() == (tmp_path / "full/model.pt").read_bytes()


def test_resume_state_of_other_settings_is_ignored(tiny_data, tmp_path, monkeypatch, capsys):
    fresh, _ = train(tiny_data, tmp_path / "fresh", {**SPEC, "optimizer": {"name": "sgd", "lr": 0.02}})
    record_saves(monkeypatch, crash_at=2)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_data, tmp_path / "cut")  # lr 0.05, killed after epoch 2
    monkeypatch.setattr(checkpoint_module, "save_torch", save_torch)
    capsys.readouterr()
    # The user lowers the lr and reruns: the old epochs must not be reused.
    changed, log = train(tiny_data, tmp_path / "cut", {**SPEC, "optimizer": {"name": "sgd", "lr": 0.02}})
    assert "ignoring resume state" in capsys.readouterr().err
    assert list(log["epoch"]) == [0, 1, 2] and weights_equal(changed, fresh)


def test_unreadable_resume_state_is_ignored(tiny_data, tmp_path, capsys):
    fresh, _ = train(tiny_data, tmp_path / "fresh")
    (tmp_path / "cut").mkdir()
    (tmp_path / "cut" / ".resume.pt").write_bytes(b"PK\x03\x04 not a zip")
    damaged, _ = train(tiny_data, tmp_path / "cut")
    assert "ignoring unreadable resume state" in capsys.readouterr().err
    assert weights_equal(damaged, fresh) and not (tmp_path / "cut" / ".resume.pt").exists()


# ------------------------------------------------------------------------ atomic artifacts
def test_checkpoints_are_byte_reproducible(tmp_path):
    obj = {"state_dict": {"w": torch.arange(6.0).reshape(2, 3)}, "arch": "small_cnn"}
    save_torch(obj, tmp_path / "a.pt")
    save_torch(obj, tmp_path / "b.pt")
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "b.pt").read_bytes()


def test_a_writer_killed_mid_write_leaves_no_output_and_the_next_write_cleans_up(tmp_path):
    target = tmp_path / "model.pt"
    other = tmp_path / ".model.pt.bak.abcd1234.tmp"  # the temp file of another target, model.pt.bak
    other.write_text("in progress")
    code = (
        "import os, signal, sys\nfrom prunebias.io import atomic_path\n"
        "with atomic_path(sys.argv[1]) as tmp:\n"
        "    tmp.write_bytes(b'half a checkpoint')\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(target)], capture_output=True)
    assert proc.returncode == -signal.SIGKILL
    assert not target.exists()
    stale = [p for p in tmp_path.glob(".model.pt.*.tmp") if p != other]
    assert len(stale) == 1 and stale[0].read_bytes() == b"half a checkpoint"
    # The rerun's write of the same file removes the killed writer's temporary file.
    save_torch({"w": 1}, target)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["model.pt", other.name])


def test_every_artifact_is_renamed_into_place(tmp_path, monkeypatch):
    """Each job's every output file arrives by an atomic rename from a temporary sibling."""
    renames = {}
    real_replace = os.replace

    def replace(src, dst):
        renames[Path(dst)] = Path(src)
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)

    def check(directory):
        files = [p for p in Path(directory).rglob("*") if p.is_file()]
        assert files
        for f in files:
            src = renames.get(f)
            assert src is not None, f"{f} was written in place, not renamed into place"
            assert src.parent == f.parent and src.name.startswith(f".{f.name}.") and src.name.endswith(".tmp")

    data = tmp_path / "data"
    jobs.prepare(
        {"source": "synthetic", "resolution": 16, "seed": 0, "sizes": {"train": 128, "valid": 64, "test": 64}},
        *prepared_files(data),
    )
    check(data)
    write_mini_celeba(tmp_path / "celeba_src", n=10, size=(24, 30))
    jobs.prepare(
        {"source": "celeba", "root": str(tmp_path / "celeba_src"), "resolution": 16},
        *prepared_files(tmp_path / "celeba"),
    )
    check(tmp_path / "celeba")
    spec = {**SPEC, "epochs": 1}
    jobs.train(
        *prepared_files(data),
        tmp_path / "dense/model.pt",
        tmp_path / "dense/log.parquet",
        train_spec(spec),
        RUN,
        device="cpu",
    )
    check(tmp_path / "dense")
    jobs.train(
        *prepared_files(data),
        tmp_path / "pruned/model.pt",
        tmp_path / "pruned/log.parquet",
        train_spec({**spec, "optimizer": {"name": "adam", "lr": 1e-3}}),
        {**RUN, "method": "oneshot", "target_sparsity": 0.5},
        parent=tmp_path / "dense/model.pt",
        device="cpu",
    )
    check(tmp_path / "pruned")
    for run in ("dense", "pruned"):
        jobs.predict(
            *prepared_files(data),
            tmp_path / run / "model.pt",
            {s: tmp_path / "pred" / run / f"{s}.parquet" for s in ("valid", "test")},
            tmp_path / "pred" / run / "cost.json",
            device="cpu",
        )
        jobs.model_metrics(
            data / "index.parquet",
            tmp_path / "pred" / run / "valid.parquet",
            tmp_path / "pred" / run / "test.parquet",
            tmp_path / "metrics" / f"{run}.parquet",
            ANALYSIS_SETTINGS,
        )
    check(tmp_path / "pred")
    check(tmp_path / "metrics")
    jobs.aggregate(
        sorted(map(str, (tmp_path / "metrics").iterdir())),
        tmp_path / "tables/metrics.parquet",
        tmp_path / "tables/summary.parquet",
        tmp_path / "tables/group_gaps.tsv",
    )
    check(tmp_path / "tables")


# ------------------------------------------------------------------------------ bad inputs
@pytest.fixture(scope="module")
def tiny_model(tiny_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("model")
    jobs.train(
        *prepared_files(tiny_data),
        out / "model.pt",
        out / "log.parquet",
        train_spec({**SPEC, "epochs": 1}),
        RUN,
        device="cpu",
    )
    return out / "model.pt"


def copy_data(src: Path, dst: Path, index: pd.DataFrame | None = None) -> Path:
    dst.mkdir()
    (dst / "images.npy").symlink_to(src / "images.npy")
    if index is not None:
        store.write_index(index, dst / "index.parquet", store.index_info(src / "index.parquet"))
    return dst


def cli_error(capsys, *argv) -> str:
    """Run the CLI; assert it fails with exit code 1 and one `prunebias <cmd>: error:` line, no traceback."""
    capsys.readouterr()
    assert cli.main(list(argv)) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"prunebias {argv[0]}: error: ") and "\n" not in err and "Traceback" not in err, err
    return err


def predict_error(capsys, data, model, tmp_path) -> str:
    out = tmp_path / "out"
    err = cli_error(
        capsys,
        "predict",
        "--index",
        str(data / "index.parquet"),
        "--images",
        str(data / "images.npy"),
        "--model",
        str(model),
        "--out",
        f"valid={out}/valid.parquet",
        f"test={out}/test.parquet",
        "--cost",
        f"{out}/cost.json",
    )
    assert not out.exists()
    return err


def test_predict_with_a_checkpoint_of_another_attribute_set(tiny_data, tiny_model, tmp_path, capsys):
    index = store.load_index(tiny_data / "index.parquet")
    other = copy_data(tiny_data, tmp_path / "other", index.drop(columns=store.attribute_names(index)[-1]))
    err = predict_error(capsys, other, tiny_model, tmp_path)
    assert str(tiny_model) in err and "trained on another data set or task" in err


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda p: p.unlink(), "checkpoint not found"),
        (lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]), "unreadable checkpoint"),
        (lambda p: p.write_bytes(b"not a checkpoint"), "unreadable checkpoint"),
        (lambda p: torch.save({"weights": 1}, p), "not a prunebias checkpoint of format 1"),
        (lambda p: torch.save({**torch.load(p, weights_only=False), "format_version": 0}, p), "found 0"),
    ],
)
def test_predict_with_a_bad_checkpoint(tiny_data, tiny_model, tmp_path, capsys, damage, message):
    model = tmp_path / "model.pt"
    model.write_bytes(tiny_model.read_bytes())
    damage(model)
    err = predict_error(capsys, tiny_data, model, tmp_path)
    assert str(model) in err and message in err and "rerun the job that makes it" in err


def test_pruning_from_a_parent_of_another_arch(tiny_data, tiny_model, tmp_path, capsys):
    out = tmp_path / "pruned"
    run = {**RUN, "arch": "resnet18", "method": "oneshot", "target_sparsity": 0.5}
    err = cli_error(
        capsys,
        "train",
        "--index",
        str(tiny_data / "index.parquet"),
        "--images",
        str(tiny_data / "images.npy"),
        "--model",
        str(out / "model.pt"),
        "--log",
        str(out / "log.parquet"),
        "--spec",
        json.dumps(train_spec({**SPEC, "epochs": 1}).to_json()),
        "--run",
        json.dumps(run),
        "--parent",
        str(tiny_model),
        "--device",
        "cpu",
    )
    assert "checkpoint is a 'small_cnn' model, expected 'resnet18'" in err
    assert not out.exists() or list(out.iterdir()) == []


@pytest.mark.parametrize(
    "make_index, message",
    [
        (None, "index.parquet: missing"),
        (lambda d: (d / "index.parquet").write_bytes(b"PAR1 garbage"), "not a valid index"),
        (
            lambda d: store.load_index(d / "index.parquet").drop(columns="split").to_parquet(d / "index.parquet"),
            "missing columns ['split']",
        ),
        (
            lambda d: store.load_index(d / "index.parquet").assign(Male=1).to_parquet(d / "index.parquet"),
            "must be bool, not: ['Male']",
        ),
    ],
)
def test_predict_with_a_missing_or_malformed_index(tiny_data, tiny_model, tmp_path, capsys, make_index, message):
    data = copy_data(tiny_data, tmp_path / "data")
    if make_index is not None:
        (data / "index.parquet").write_bytes((tiny_data / "index.parquet").read_bytes())
        make_index(data)
    err = predict_error(capsys, data, tiny_model, tmp_path)
    assert str(data / "index.parquet") in err and message in err and "rerun the prepare step" in err


# Config mistakes not covered by tests/test_workflow.py: each stops Snakemake before any job,
# with a message that names the key.
@pytest.mark.slow
@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda c: c.update(grids=c["grid"]), "did you mean 'grid'"),
        (lambda c: c["grid"].update(archs=[]), "grid.archs: [] should be non-empty"),
        (lambda c: c["grid"].update(sparsities=[]), "grid.sparsities: empty"),
        (lambda c: c["grid"].update(sparsities=0.9), "grid.sparsities: 0.9 is not of type 'array'"),
        (
            lambda c: c["grid"].update(sparsities=[0.0, 0.5]),
            "grid.sparsities.0: 0.0 is less than or equal to the minimum",
        ),
        (lambda c: c["grid"].update(datasets=["celeb"]), "grid.datasets: 'celeb' is not defined"),
        (lambda c: c["train"]["optimizer"].update(lr="fast"), "train.optimizer.lr: 'fast' is not of type 'number'"),
        (
            lambda c: c["train"].update(max_nonfinite_retries=-1),
            "train.max_nonfinite_retries: -1 is less than the minimum of 0",
        ),
    ],
)
def test_more_config_mistakes_fail_before_any_job(tmp_path, edit, message):
    cfg = copy.deepcopy(TINY_CONFIG)
    edit(cfg)
    assert_fails_before_any_job(tmp_path, cfg, message)
