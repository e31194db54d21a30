"""benchmarks/reference_job.py plans exactly the slowest machine's reference job: cd7ea2e's default
dense training (12 epochs of 5,000 synthetic 32 px faces, small_cnn, AdamW, batches of 64), two
seeds at one thread each, and nothing else. A dry run: no training."""

import json
import re
import subprocess

import pytest

from workflow_utils import benchmark_script


@pytest.mark.slow
def test_the_reference_job_is_cd7ea2e_s_dense_training(tmp_path):
    reference = benchmark_script("reference_job")
    overlay = tmp_path / "reference.yaml"
    overlay.write_text(reference.REFERENCE_CONFIG)
    cmd = reference.snakemake_command(tmp_path / "results", overlay)
    targets = cmd.index("--")
    # Without --quiet, and dry: the planned jobs and their shell commands are printed.
    cmd = [c for c in cmd[:targets] if c != "--quiet"] + ["-n", "-p"] + cmd[targets:]
    proc = subprocess.run(cmd, cwd=reference.REPO, capture_output=True, text=True, timeout=120)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-3000:]

    planned = dict(re.findall(r"^(\w+)\s+(\d+)$", log.split("Job stats:")[1].split("total")[0], re.M))
    assert planned == {"prepare": "1", "train_dense": "2"}
    (data,) = [json.loads(c) for c in re.findall(r"prunebias\.cli prepare --config '(\{.*?\})'", log)]
    assert data["source"] == "synthetic" and data["resolution"] == 32
    assert data["sizes"] == {"train": 5000, "valid": 1000, "test": 2000}
    specs = [json.loads(s) for s in re.findall(r"prunebias\.cli train .*?--spec '(\{.*?\})'", log)]
    runs = [json.loads(r) for r in re.findall(r"prunebias\.cli train .*?--run '(\{.*?\})'", log)]
    assert sorted(r["seed"] for r in runs) == list(reference.SEEDS)
    assert {(r["arch"], r["method"], r["task"]) for r in runs} == {("small_cnn", "dense", "joint")}
    for spec in specs:
        assert (spec["epochs"], spec["batch_size"], spec["eval_batch_size"], spec["crop_size"]) == (12, 64, 1000, None)
        optimizer = spec["optimizer"]
        assert (optimizer["name"], optimizer["lr"], optimizer["weight_decay"]) == ("adamw", 0.003, 0.01)
        assert spec["lr_schedule"] == {"name": "cosine", "warmup_epochs": 1}
        assert spec["augment"] == {"padding": 2, "flip": True}
    assert len(re.findall(r"prunebias\.cli train .*--threads 1 ", log)) == 2
