"""No code runs from a file: every torch file is read with ``weights_only=True`` (prunebias.io.load_torch).

A crafted .pt whose unpickling would call a function (here: create a marker file) is refused
by the loader, by ``load_checkpoint`` / ``prunebias predict``, by the resume path of training
and by the non-finite retry; the marker never appears. Real checkpoints and resume states
still load.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pandas as pd
import pytest
import torch
from torch import nn

import prunebias.training.checkpoint as checkpoint_module
from prunebias import cli, jobs
from prunebias.io import RefusedFileError, load_torch, save_torch
from prunebias.training.checkpoint import load_checkpoint
from workflow_utils import prepared_files, train_spec

SPEC = {
    "epochs": 2,
    "batch_size": 64,
    "eval_batch_size": 256,
    "crop_size": None,
    "augment": {"padding": 1, "flip": True},
    "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9},
    "lr_schedule": {"name": "constant"},
    "schedule": {},
    "scope": "global",
}
RUN = {"dataset": "tiny", "task": "joint", "arch": "small_cnn", "method": "dense", "target_sparsity": 0.0, "seed": 4}


class MakesMarker:
    """Unpickling this calls ``opener(marker, ...)``: any code could run the same way."""

    def __init__(self, marker: Path, how: str = "open"):
        self.marker, self.how = str(marker), how

    def __reduce__(self):
        if self.how == "mkdir":
            return (os.mkdir, (self.marker,))
        return (open, (self.marker, "w"))


def write_malicious(path: Path, marker: Path, how: str = "open", inside=None, legacy: bool = False) -> Path:
    """A .pt file holding ``inside`` (a dict, default empty) plus an object that creates ``marker`` when loaded."""
    obj = {**(inside or {}), "payload": MakesMarker(marker, how)}
    if legacy:  # a bare pickle, not torch's zip archive
        path.write_bytes(pickle.dumps(obj, protocol=2))
    else:
        torch.save(obj, path)
    return path


def train(data, out, spec=SPEC, run=RUN):
    jobs.train(*prepared_files(data), out / "model.pt", out / "log.parquet", train_spec(spec), run, device="cpu")
    return load_checkpoint(out / "model.pt"), pd.read_parquet(out / "log.parquet")


def weights_equal(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def model(tiny_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("model")
    train(tiny_data, out)
    return out / "model.pt"


def test_the_payload_really_runs_code_when_loaded_unsafely(tmp_path):
    """Guards the tests below: with weights_only=False this file creates the marker."""
    marker = tmp_path / "marker"
    torch.load(write_malicious(tmp_path / "evil.pt", marker), weights_only=False)
    assert marker.exists()


@pytest.mark.parametrize("how", ["open", "mkdir"])
@pytest.mark.parametrize("legacy", [False, True])
def test_load_torch_refuses_a_file_that_would_run_code(tmp_path, how, legacy):
    marker = tmp_path / "marker"
    path = write_malicious(tmp_path / "evil.pt", marker, how, {"w": torch.ones(2)}, legacy)
    with pytest.raises(RefusedFileError, match="contains objects other than tensors and plain data") as info:
        load_torch(path, "cpu")
    assert str(path) in str(info.value) and "\n" not in str(info.value)
    assert isinstance(info.value, ValueError)
    assert not marker.exists()


def test_load_torch_loads_tensors_and_plain_data(tmp_path):
    from collections import OrderedDict

    obj = {
        "t": torch.arange(6.0).reshape(2, 3),
        "b": torch.ones(3, dtype=torch.bool),
        "n": None,
        "f": 0.5,
        "i": 3,
        "s": "x",
        "flag": True,
        "l": [1, {"k": (2, 3.0)}],
        "od": OrderedDict(a=torch.zeros(1)),
        "dtype": torch.float32,
    }
    save_torch(obj, tmp_path / "ok.pt")
    back = load_torch(tmp_path / "ok.pt", "cpu")
    assert back.keys() == obj.keys() and torch.equal(back["t"], obj["t"]) and back["l"] == obj["l"]
    assert back["dtype"] is torch.float32 and isinstance(back["od"], OrderedDict)


def test_a_damaged_file_is_unreadable_not_refused(tmp_path):
    (tmp_path / "text.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(pickle.UnpicklingError, match="damaged pickle data") as info:
        load_torch(tmp_path / "text.pt")
    assert not isinstance(info.value, RefusedFileError) and "\n" not in str(info.value)


def test_load_checkpoint_refuses_a_malicious_checkpoint(model, tmp_path):
    marker = tmp_path / "marker"
    # Everything a real checkpoint holds, plus the payload: the well-formed part does not get it through.
    evil = write_malicious(tmp_path / "model.pt", marker, inside=torch.load(model, weights_only=True))
    with pytest.raises(
        ValueError, match="refused checkpoint: it contains objects other than tensors and plain data"
    ) as info:
        load_checkpoint(evil)
    assert str(evil) in str(info.value) and "rerun the job that makes it" in str(info.value)
    assert not marker.exists()


def test_predict_refuses_a_malicious_checkpoint_with_one_line(tiny_data, tmp_path, capsys):
    marker = tmp_path / "marker"
    evil = write_malicious(tmp_path / "model.pt", marker)
    out = tmp_path / "out"
    capsys.readouterr()
    code = cli.main(
        [
            "predict",
            "--index",
            str(tiny_data / "index.parquet"),
            "--images",
            str(tiny_data / "images.npy"),
            "--model",
            str(evil),
            "--out",
            f"valid={out}/valid.parquet",
            f"test={out}/test.parquet",
            "--cost",
            f"{out}/cost.json",
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == 1 and err.startswith("prunebias predict: error: ") and "\n" not in err and "Traceback" not in err
    assert str(evil) in err and "refused checkpoint" in err
    assert not marker.exists() and not out.exists()


def test_a_real_checkpoint_and_resume_state_still_load(tiny_data, model, tmp_path, monkeypatch):
    ckpt = load_checkpoint(model, arch="small_cnn")
    assert ckpt["format_version"] == 1 and ckpt["state_dict"] and ckpt["plan"]
    # A pruned run with Adam: masks in the checkpoint, Adam's step counters and betas in the resume state.
    spec = {
        **SPEC,
        "epochs": 3,
        "optimizer": {"name": "adam", "lr": 1e-3},
        "schedule": {"start": 0, "end": 1, "step": 1, "initial_sparsity": 0.1},
    }
    run = {**RUN, "method": "gmp", "target_sparsity": 0.5}
    states = []

    def keep(obj, path):
        save_torch(obj, path)
        states.append(load_torch(path, "cpu"))  # every resume state loads as saved

    monkeypatch.setattr(checkpoint_module, "save_torch", keep)
    pruned, _ = train(tiny_data, tmp_path / "pruned", spec, run)
    assert pruned["masks"] and len(states) == 3
    assert states[-1]["state"]["epoch"] == 3 and states[-1]["state"]["history"][-1]["epoch"] == 2
    assert states[-1]["optimizer"]["param_groups"][0]["betas"] == (0.9, 0.999)


def test_a_malicious_resume_state_is_ignored(tiny_data, model, tmp_path, capsys):
    marker = tmp_path / "marker"
    fresh = load_checkpoint(model)
    cut = tmp_path / "cut"
    cut.mkdir()
    write_malicious(cut / ".resume.pt", marker)
    capsys.readouterr()
    again, log = train(tiny_data, cut)
    err = capsys.readouterr().err
    assert f"ignoring resume state {cut / '.resume.pt'}: it contains objects other than tensors" in err
    assert "resumed from" not in err and list(log["epoch"]) == [0, 1]
    assert weights_equal(again["state_dict"], fresh["state_dict"])
    assert not marker.exists() and not (cut / ".resume.pt").exists()


class NanOnce(nn.BCEWithLogitsLoss):
    """The training loss, NaN at the ``bad_call``-th call."""

    calls, bad_call = 0, 0

    def forward(self, z, y):
        NanOnce.calls += 1
        loss = super().forward(z, y)
        return loss * float("nan") if NanOnce.calls == NanOnce.bad_call else loss


def test_the_nonfinite_retry_refuses_a_resume_state_replaced_by_a_malicious_one(tiny_data, tmp_path, monkeypatch):
    marker = tmp_path / "marker"
    out = tmp_path / "retry"
    resume = out / ".resume.pt"

    def save_then_replace(obj, path):
        save_torch(obj, path)
        if obj["state"]["epoch"] == 1:  # someone swaps the file between epoch 1's save and the retry
            write_malicious(Path(path), marker)

    monkeypatch.setattr(checkpoint_module, "save_torch", save_then_replace)
    monkeypatch.setattr(nn, "BCEWithLogitsLoss", NanOnce)
    NanOnce.calls, NanOnce.bad_call = 0, 4 + 2  # tiny data: 4 steps an epoch; epoch 1, batch 1
    with pytest.raises(RefusedFileError, match="contains objects other than tensors and plain data") as info:
        train(tiny_data, out, {**SPEC, "max_nonfinite_retries": 1})
    assert str(resume) in str(info.value)
    assert not marker.exists() and not (out / "model.pt").exists()
