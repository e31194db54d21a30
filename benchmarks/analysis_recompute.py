"""Wall time of recomputing the analysis after an edit to the metrics module, on a finished run.

Runs ``snakemake --cores N --forcerun metrics`` in the project folder (on its config and
results): the jobs an edit to ``prunebias/metrics.py`` schedules (the workflow test
``test_editing_a_module_reruns_exactly_the_rules_that_run_it`` checks that an edit schedules
exactly what forcing the rules that import it does). Prints the jobs per rule, refuses to
count a run that would train or predict, and prints the wall time.

    .venv/bin/python benchmarks/analysis_recompute.py [--cores 2] [snakemake args ...]

Run it on a finished default run (``make run``) with the machine otherwise idle.
"""

from __future__ import annotations

import argparse
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
    return {m.group(1): int(m.group(2)) for m in rows if m and m.group(1) != "total"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cores", default="2")
    known, extra = parser.parse_known_args()
    if planned(extra):
        print("the run is not finished (a dry run has jobs to do): run `make run` first", file=sys.stderr)
        return 1
    jobs = planned(["--forcerun", "metrics", *extra])
    if EXPENSIVE & set(jobs):
        print(f"refusing: the recompute would run {sorted(EXPENSIVE & set(jobs))}", file=sys.stderr)
        return 1
    print("jobs:", ", ".join(f"{rule} {n}" for rule, n in jobs.items()), f"(total {sum(jobs.values())})")
    start = time.perf_counter()
    cmd = [sys.executable, "-m", "snakemake", "--cores", known.cores, "--forcerun", "metrics", "--quiet", *extra]
    subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True)
    print(f"recompute after a metrics edit: {time.perf_counter() - start:.1f} s wall ({known.cores} cores)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
