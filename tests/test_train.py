import json
import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from prunebias import jobs
from prunebias.io import read_predictions
from prunebias.settings import Optimizer
from prunebias.training.checkpoint import load_checkpoint
from prunebias.training.train import NonFiniteLossError, learning_rate
from prunebias.vocabulary import COST_METRICS
from workflow_utils import prepared_files, train_spec

SPEC = {
    "epochs": 3,
    "batch_size": 64,
    "eval_batch_size": 256,
    "crop_size": None,
    "augment": {"padding": 1, "flip": True},
    "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9, "weight_decay": 1e-4},
    "lr_schedule": {"name": "cosine", "warmup_epochs": 1},
    "schedule": {},
    "scope": "global",
}
RUN = {"dataset": "tiny", "task": "joint", "arch": "small_cnn", "method": "dense", "target_sparsity": 0.0, "seed": 5}


def train(tiny_data, out, spec=SPEC, run=RUN, parent=None):
    jobs.train(
        *prepared_files(tiny_data),
        out / "model.pt",
        out / "log.parquet",
        train_spec(spec),
        run,
        parent=parent,
        device="cpu",
    )
    return load_checkpoint(out / "model.pt"), pd.read_parquet(out / "log.parquet")


def test_learning_rate_warmup_then_cosine():
    assert learning_rate(0, 100, 1.0, "cosine", 10) == pytest.approx(0.1)
    assert learning_rate(9, 100, 1.0, "cosine", 10) == pytest.approx(1.0)
    assert learning_rate(55, 100, 1.0, "cosine", 10) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.5)))
    assert learning_rate(100, 100, 1.0, "cosine", 10) == pytest.approx(0.0, abs=1e-12)
    assert learning_rate(70, 100, 0.3, "constant", 0) == 0.3


def test_loss_decreases_and_checkpoint_records_the_run(tiny_data, tmp_path):
    ckpt, log = train(tiny_data, tmp_path, {**SPEC, "epochs": 4})
    assert log["train_loss"].iloc[-1] < log["train_loss"].iloc[0]
    assert list(log["epoch"]) == [0, 1, 2, 3]
    assert ckpt["selected_epoch"] == int(log["val_accuracy"].idxmax())
    assert ckpt["arch"] == "small_cnn" and ckpt["image_size"] == 16
    assert ckpt["measured_sparsity"]["global"] == 0.0
    assert not (tmp_path / ".resume.pt").exists()


def test_same_seed_same_weights_and_predictions(tiny_data, tmp_path):
    a, _ = train(tiny_data, tmp_path / "a")
    b, _ = train(tiny_data, tmp_path / "b")
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])
    for d in ("a", "b"):
        jobs.predict(
            *prepared_files(tiny_data),
            tmp_path / d / "model.pt",
            {"test": tmp_path / d / "test.parquet"},
            tmp_path / d / "cost.json",
            device="cpu",
        )
    pa, _ = read_predictions(tmp_path / "a" / "test.parquet")
    pb, _ = read_predictions(tmp_path / "b" / "test.parquet")
    assert pa.equals(pb)
    c, _ = train(tiny_data, tmp_path / "c", run={**RUN, "seed": 6})
    assert not torch.equal(a["state_dict"]["fc.weight"], c["state_dict"]["fc.weight"])


def test_resume_is_bit_identical(tiny_data, tmp_path, monkeypatch):
    full, _ = train(tiny_data, tmp_path / "full")
    # Interrupt after the second epoch's resume state is written, then rerun the job.
    import prunebias.training.checkpoint as checkpoint_module

    real_save = checkpoint_module.save_torch
    calls = {"n": 0}

    def crash_after_two(obj, path):
        real_save(obj, path)
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint_module, "save_torch", crash_after_two)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_data, tmp_path / "cut")
    monkeypatch.setattr(checkpoint_module, "save_torch", real_save)
    assert (tmp_path / "cut" / ".resume.pt").exists() and not (tmp_path / "cut" / "model.pt").exists()
    resumed, log = train(tiny_data, tmp_path / "cut")
    assert list(log["epoch"]) == [0, 1, 2]
    assert all(torch.equal(full["state_dict"][k], resumed["state_dict"][k]) for k in full["state_dict"])


def test_post_training_pruning_hits_the_target(tiny_data, tmp_path):
    train(tiny_data, tmp_path / "dense")
    spec = {
        **SPEC,
        "epochs": 4,
        "optimizer": {"name": "adam", "lr": 1e-3},
        "lr_schedule": {"name": "constant"},
        "schedule": {"start": 0, "end": 2, "step": 1, "initial_sparsity": 0.05},
    }
    run = {**RUN, "method": "gmp_pt", "target_sparsity": 0.9}
    ckpt, log = train(tiny_data, tmp_path / "pruned", spec, run, parent=tmp_path / "dense" / "model.pt")
    weights = [ckpt["state_dict"][n] for n in ckpt["masks"]]
    zeros = sum(int((w == 0).sum()) for w in weights)
    total = sum(w.numel() for w in weights)
    assert zeros == round(0.9 * total)
    assert ckpt["measured_sparsity"]["global"] == pytest.approx(0.9, abs=1e-6)
    assert ckpt["selected_epoch"] >= 2  # only epochs at the final sparsity count
    assert log.loc[log["eligible"], "epoch"].min() == 2


def test_non_finite_loss_stops_with_epoch_and_batch(tiny_data, tmp_path):
    spec = {**SPEC, "optimizer": {"name": "sgd", "lr": 1e30}}
    with pytest.raises(NonFiniteLossError, match=r"epoch 0, batch \d+"):
        train(tiny_data, tmp_path, spec)
    assert not (tmp_path / "model.pt").exists() and not (tmp_path / "log.parquet").exists()


def test_checkpoint_checks(tiny_data, tmp_path):
    train(tiny_data, tmp_path)
    with pytest.raises(ValueError, match="'small_cnn' model, expected 'resnet18'"):
        load_checkpoint(tmp_path / "model.pt", arch="resnet18")
    with pytest.raises(ValueError, match="another data set or task"):
        load_checkpoint(tmp_path / "model.pt", attributes=["Male"])
    torch.save({"weights": 1}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a prunebias checkpoint"):
        load_checkpoint(tmp_path / "other.pt")


def test_predictions_follow_the_parquet_contract(tiny_data, tmp_path):
    train(tiny_data, tmp_path)
    jobs.predict(
        *prepared_files(tiny_data),
        tmp_path / "model.pt",
        {"valid": tmp_path / "v.parquet", "test": tmp_path / "t.parquet"},
        tmp_path / "cost.json",
        device="cpu",
    )
    cost = json.loads((tmp_path / "cost.json").read_text())
    assert set(cost) == set(COST_METRICS) and all(v > 0 for v in cost.values())
    frame, meta = read_predictions(tmp_path / "t.parquet")
    index = pd.read_parquet(tiny_data / "index.parquet")
    attrs = [c for c in index.columns if c not in ("id", "split", "source")]
    assert list(frame.columns) == ["id"] + attrs
    assert all(frame[a].dtype == np.float32 for a in attrs)
    assert frame["id"].tolist() == index.loc[index["split"] == "test", "id"].tolist()
    assert meta["method"] == "dense" and meta["seed"] == 5 and meta["split"] == "test"
    assert {"dataset", "task", "arch", "target_sparsity", "measured_sparsity", "selected_epoch", "attributes"} <= set(
        meta
    )


@pytest.mark.slow
def test_compiled_step_trains_the_same_model(tiny_data, tmp_path):
    # runtime.compile changes how the step runs, not what it computes: same run, same
    # selected epoch, weights equal up to the compiler's float rounding.
    eager, eager_log = train(tiny_data, tmp_path / "eager", {**SPEC, "epochs": 2})
    jobs.train(
        *prepared_files(tiny_data),
        tmp_path / "c/model.pt",
        tmp_path / "c/log.parquet",
        train_spec({**SPEC, "epochs": 2}),
        RUN,
        device="cpu",
        compile_step=True,
    )
    compiled, compiled_log = load_checkpoint(tmp_path / "c/model.pt"), pd.read_parquet(tmp_path / "c/log.parquet")
    assert compiled["selected_epoch"] == eager["selected_epoch"]
    np.testing.assert_allclose(compiled_log["train_loss"], eager_log["train_loss"], rtol=1e-3)
    for key, value in eager["state_dict"].items():
        torch.testing.assert_close(compiled["state_dict"][key], value, rtol=1e-2, atol=1e-3)


def test_reset_momentum_zeroes_sgd_buffers_only():
    import torch

    from prunebias.training.train import make_optimizer, reset_momentum

    model = torch.nn.Linear(3, 2)
    opt = make_optimizer(model.parameters(), Optimizer("sgd", 0.1, 0.9, 0.0, False, True), torch.device("cpu"))
    model(torch.ones(4, 3)).sum().backward()
    opt.step()
    assert any(s["momentum_buffer"].abs().sum() > 0 for s in opt.state.values())
    reset_momentum(opt)
    assert all(s["momentum_buffer"].abs().sum() == 0 for s in opt.state.values())
    adam = make_optimizer(model.parameters(), Optimizer("adam", 0.1, 0.0, 0.0, False, True), torch.device("cpu"))
    model(torch.ones(4, 3)).sum().backward()
    adam.step()
    before = {k: v["exp_avg"].clone() for k, v in adam.state.items()}
    reset_momentum(adam)  # Adam keeps its moments: the study's reset is an SGD thing
    assert all(torch.equal(adam.state[k]["exp_avg"], v) for k, v in before.items())


def test_cpu_jobs_get_deterministic_kernels_without_importing_the_compiler():
    # A fresh interpreter: this test process may already have imported torch._inductor.
    code = (
        "import sys, torch\n"
        "from prunebias.training.train import compiled, configure_backend\n"
        "configure_backend(torch.device('cpu'))\n"
        "assert torch.are_deterministic_algorithms_enabled()\n"
        "assert 'torch._inductor.config' not in sys.modules\n"
        "compiled(torch.nn.Linear(2, 1), True)\n"
        "import torch._inductor.config as inductor\n"
        "assert inductor.deterministic\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
