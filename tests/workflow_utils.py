"""Run the real Snakefile on a tiny config in a temporary directory."""

from __future__ import annotations

import copy
import dataclasses
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from prunebias.settings import AnalysisSettings, TrainSpec

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]

# The rules that train, prune, predict or make data: no analysis edit may schedule one.
EXPENSIVE = {"prepare", "triggered_ids", "train_dense", "import_dense", "prune", "quantize", "predict"}
# The tiny config of the workflow tests; the tests change copies of it.
TINY_CONFIG = yaml.safe_load((ROOT / ".test/config.yaml").read_text())
SCHEMA = ROOT / "workflow/schemas/config.schema.yaml"
# Keys of a training spec that come from the pruning recipe or the task, not the ``train`` block.
_NOT_TRAIN_KEYS = ("schedule", "scope", "task")


def benchmark_script(name: str):
    """The module of ``benchmarks/<name>.py`` (the benchmark scripts are not a package)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _validated(config: dict) -> dict:
    """``config`` checked against the config schema, its defaults filled in (as the Snakefile does)."""
    from snakemake.utils import validate

    validate(config, str(SCHEMA))
    return config


def analysis_settings(**changes) -> AnalysisSettings:
    """The analysis settings a job of the tiny config gets with an empty ``analysis`` block (the
    schema's defaults) and identities Male and Young, with ``changes``."""
    from prunebias.config import analysis_settings as settings_of

    config = _validated({**copy.deepcopy(TINY_CONFIG), "analysis": {}, "identities": ["Male", "Young"]})
    return dataclasses.replace(AnalysisSettings.from_json(settings_of(config)), **changes)


# The analysis settings the stage-level tests pass to jobs.model_metrics.
ANALYSIS_SETTINGS = analysis_settings(ba_min_positives=2)


def train_spec(partial: dict) -> TrainSpec:
    """The training spec of a test's partial settings, completed as the workflow completes a user's:
    the ``train`` keys validated with the config schema (its defaults filled in), then
    :func:`prunebias.config.train_spec`, with ``schedule``/``scope``/``task`` as given."""
    from prunebias.config import train_spec as spec_of

    config = copy.deepcopy(TINY_CONFIG)
    config["train"] = {k: v for k, v in partial.items() if k not in _NOT_TRAIN_KEYS}
    _validated(config)
    extra = {k: partial[k] for k in _NOT_TRAIN_KEYS if k in partial}
    return TrainSpec.from_json({**spec_of(config, "dense"), **extra})


def prepared_files(folder: Path) -> tuple[Path, Path]:
    """(index file, image array file) of a prepared data set folder, as a stage takes them."""
    return Path(folder) / "index.parquet", Path(folder) / "images.npy"


def write_config(directory: Path, config: dict, name: str = "config.yaml") -> Path:
    path = Path(directory) / name
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def install_package(target: Path) -> Path:
    """A non-editable install of the package (what `pip install .` gives a user) into ``target``.

    Built from a copy of the sources, so the working tree gets no build folders. Put it first
    on the path with ``snakemake(..., package=target)``.
    """
    sources = Path(target).parent / f"{Path(target).name}-sources"
    for name in ("pyproject.toml", "README.md"):
        sources.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, sources / name)
    shutil.copytree(ROOT / "src", sources / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), str(sources)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return Path(target)


def snakemake_command(directory: Path, config: str, *args: str) -> list[str]:
    """The command line that runs the project's Snakefile in ``directory`` on its ``config`` file."""
    directory = Path(directory)
    return SNAKEMAKE + [
        "-s",
        str(ROOT / "Snakefile"),
        "--directory",
        str(directory),
        "--configfile",
        str(directory / config),
        *args,
    ]


def snakemake(
    directory: Path,
    *args: str,
    config: str = "config.yaml",
    check: bool = True,
    timeout: int = 900,
    package: Path | None = None,
) -> subprocess.CompletedProcess:
    """Run the project's Snakefile with ``directory`` as working directory and its ``config`` file
    (with ``package``: the prunebias installed there, for Snakemake and its jobs)."""
    cmd = snakemake_command(directory, config, *args)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if package is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(package), env.get("PYTHONPATH", "")])
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}")
    return proc


def assert_fails_before_any_job(directory: Path, config: dict, message: str) -> None:
    """The workflow on ``config`` stops with ``message`` before writing anything."""
    write_config(directory, config)
    proc = snakemake(directory, "--cores", "1", check=False)
    assert proc.returncode != 0
    assert message in proc.stdout + proc.stderr
    assert not (Path(directory) / "results").exists()


def planned_jobs(
    directory: Path, *args: str, config: str = "config.yaml", package: Path | None = None
) -> dict[str, int]:
    """Job counts per rule of a dry run ({} when there is nothing to do)."""
    proc = snakemake(directory, "-n", "--quiet", "rules", *args, config=config, package=package)
    counts = {}
    for line in (proc.stdout + proc.stderr).splitlines():
        m = re.match(r"^(\w+)\s+(\d+)$", line.strip())
        if m and m.group(1) != "total":
            counts[m.group(1)] = int(m.group(2))
    return counts
