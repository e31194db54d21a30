"""Wall time of recomputing the analysis after an edit to one package module, on a finished run.

Appends a comment line to ``src/prunebias/<module>.py`` (default: analysis/metrics), runs
``snakemake --cores N`` in the project folder (its config and results), then puts the file's
bytes and modification time back, so the run is up to date again afterwards. Prints the jobs
per rule the edit scheduled, refuses to go on if that would train, prune or predict, and
prints the wall time of the run.

    .venv/bin/python benchmarks/analysis_recompute.py [--cores 2] [--module analysis/metrics] [snakemake args ...]

Run it on a finished default run (``make run``) with the machine otherwise idle.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXPENSIVE = {"prepare", "triggered_ids", "train_dense", "prune", "predict"}


def planned(args: list[str]) -> dict[str, int]:
    cmd = [sys.executable, "-m", "snakemake", "-n", "--quiet", "rules", *args]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True)
    rows = (re.match(r"^(\w+)\s+(\d+)$", line.strip()) for line in (out.stdout + out.stderr).splitlines())
    return {m.group(1): int(m.group(2)) for m in rows if m and m.group(1) not in ("total", "all")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cores", default="2")
    parser.add_argument(
        "--module",
        default="analysis/metrics",
        help="package module to edit (e.g. analysis/metrics, plots/figures, data/store)",
    )
    known, extra = parser.parse_known_args()
    if planned(extra):
        print("the run is not finished (a dry run has jobs to do): run `make run` first", file=sys.stderr)
        return 1
    module = ROOT / "src" / "prunebias" / f"{known.module}.py"
    text, before = module.read_bytes(), module.stat()
    try:
        # A new comment each time: Snakemake skips an input whose checksum it has seen before.
        module.write_bytes(text + f"\n# edited by benchmarks/analysis_recompute.py ({time.time_ns()})\n".encode())
        jobs = planned(extra)
        if EXPENSIVE & set(jobs):
            print(f"refusing: the edit would rerun {sorted(EXPENSIVE & set(jobs))}", file=sys.stderr)
            return 1
        print("jobs:", ", ".join(f"{rule} {n}" for rule, n in jobs.items()), f"(total {sum(jobs.values())})")
        start = time.perf_counter()
        cmd = [sys.executable, "-m", "snakemake", "--cores", known.cores, "--quiet", *extra]
        subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True)
        seconds = time.perf_counter() - start
    finally:
        module.write_bytes(text)
        os.utime(module, ns=(before.st_atime_ns, before.st_mtime_ns))
    print(f"recompute after an edit to {module.relative_to(ROOT)}: {seconds:.1f} s wall ({known.cores} cores)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
