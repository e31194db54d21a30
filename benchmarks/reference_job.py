"""How fast this machine is, against the slowest machine of this kind seen: the reference job.

The slowest 2-core machine seen ran the default dense training job of cd7ea2e (2026-12-02: 12
epochs of 5,000 synthetic 32 px faces, small_cnn, AdamW, both seeds at once, one thread each) in
165 s. This script runs that job (the same model, images, epochs and batches; today's code and
generator) through the real Snakefile, two seeds side by side as in `make run`, in a temporary
directory, and prints each job's seconds from Snakemake's benchmark files and the factor
165 s / their mean. A run timed here projects to the slowest machine as its time × that factor;
the machine's speed drifts by ~10 % within an hour, so time the reference job right beside the run.

    .venv/bin/python benchmarks/reference_job.py [--run-seconds 291]
"""

from __future__ import annotations

import argparse
import csv
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: The slowest machine's time for one of the two dense jobs (README, "Timings").
SLOWEST_SECONDS = 165.0
SEEDS = (23, 24)
#: cd7ea2e's default recipe where it differs from today's `config.yaml`.
REFERENCE_CONFIG = """\
datasets:
  synth:
    sizes: {train: 5000, valid: 1000, test: 2000}
train:
  epochs: 12
"""


def snakemake_command(results: Path, overlay: Path) -> list[str]:
    """The Snakemake call that makes the two reference dense models under ``results``."""
    models = [f"{results}/models/synth/joint/small_cnn/dense/seed{s}/model.pt" for s in SEEDS]
    cmd = [sys.executable, "-m", "snakemake", "--cores", "2", "--quiet", "--configfile", str(overlay)]
    return [*cmd, "--config", f"results={results}", "--", *models]


def run_reference(workdir: Path) -> list[float]:
    """Seconds of the two dense jobs (Snakemake's benchmark ``s`` column), run side by side in ``workdir``."""
    results = workdir / "results"
    overlay = workdir / "reference.yaml"
    overlay.write_text(REFERENCE_CONFIG)
    subprocess.run(snakemake_command(results, overlay), cwd=REPO, check=True)
    seconds = []
    for seed in SEEDS:
        tsv = results / f"benchmarks/train_dense/synth/joint/small_cnn/seed{seed}.tsv"
        with tsv.open() as f:
            seconds.append(float(next(csv.DictReader(f, delimiter="\t"))["s"]))
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-seconds", type=float, help="a run's time on this machine, to project")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="reference-job-") as tmp:
        seconds = run_reference(Path(tmp))
    mean = statistics.mean(seconds)
    factor = SLOWEST_SECONDS / mean
    print(f"reference dense jobs: {', '.join(f'{s:.1f}' for s in seconds)} s (mean {mean:.1f} s)")
    print(f"slowest machine seen: {SLOWEST_SECONDS:.0f} s, {factor:.2f}x this machine now")
    if args.run_seconds:
        projected = args.run_seconds * factor
        print(f"a {args.run_seconds:.0f} s run here projects to {projected:.0f} s ({projected / 60:.1f} min) there")


if __name__ == "__main__":
    main()
