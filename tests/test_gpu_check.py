"""benchmarks/gpu_check.sh, the one prepared GPU check: its bookkeeping, without running any step.

With no time budget every step is skipped, so this checks in a second or two that each step
is recorded in summary.json, that a step which did not run makes the exit code non-zero, and
that what comes back fits the device tool (few files, directly in the output folder).
The steps themselves are checked by the dry mode: ``benchmarks/gpu_check.sh --device cpu OUT``.
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"
STEPS = ["env", "install", "mkdata", "pytest_gpu", "bench_eager", "wf_small", "wf_large", "bench_compile"]

pytestmark = pytest.mark.skipif(
    shutil.which("bash") is None or shutil.which("timeout") is None, reason="needs bash and coreutils timeout"
)


def run_check(tmp_path, *args):
    env = {"PATH": "/usr/bin:/bin", "PYTHON": sys.executable, "TMPDIR": str(tmp_path), "HOME": str(tmp_path)}
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=120)


def test_every_step_is_recorded_and_a_skipped_step_fails_the_run(tmp_path):
    out = tmp_path / "out"
    proc = run_check(tmp_path, "--device", "cpu", "--budget", "0", str(out))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["mode"] == "cpu" and summary["ok"] is False
    assert sorted(s["name"] for s in summary["steps"]) == sorted(STEPS)
    assert all(s["status"] == "skipped" and "no time left" in s["note"] for s in summary["steps"])
    assert sorted(summary["failed_steps"]) == sorted(STEPS)
    files = sorted(p.name for p in out.iterdir())
    assert files == ["logs.tar.gz", "summary.json"] and all(p.is_file() for p in out.iterdir())
    assert not list(tmp_path.glob("gpu_check.*")), "the scratch directory is removed"


def test_bad_arguments_stop_before_any_step(tmp_path):
    proc = run_check(tmp_path, "--device", "tpu", str(tmp_path / "out"))
    assert proc.returncode == 2 and "--device must be cuda or cpu" in proc.stderr
    assert not (tmp_path / "out").exists()
