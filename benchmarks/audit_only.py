"""Wall time of an audit-only run (source: predictions): metrics, criteria, figures and reports of
20 models × 40 attributes × 20,000 test samples, from their prediction files; nothing trained.

Writes the inputs (prunebias.data.audit_example: a labels table, a manifest, a Parquet file per
model and split) into a scratch folder, runs the real Snakefile there with ``--cores N`` and
prints the jobs per rule and the wall time of the run (inputs excluded).

    .venv/bin/python benchmarks/audit_only.py [--cores 2] [--dir /tmp/prunebias-audit-bench]

Run it with the machine otherwise idle.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

from prunebias.data.audit_example import write_audit_example

ROOT = Path(__file__).resolve().parents[1]
SPARSITIES = (0.5, 0.8, 0.9, 0.95)
SEEDS = (0, 1, 2, 3)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cores", default="2")
    parser.add_argument("--dir", type=Path, default=Path("/tmp/prunebias-audit-bench"))
    parser.add_argument("--test", type=int, default=20_000, help="test samples")
    parser.add_argument("--attributes", type=int, default=40)
    a = parser.parse_args()
    shutil.rmtree(a.dir, ignore_errors=True)
    attributes = [f"attr_{i:02d}" for i in range(a.attributes - 2)] + ["group_a", "group_b"]
    models = [("net", "dense", 0.0, s) for s in SEEDS] + [("net", "mag", p, s) for s in SEEDS for p in SPARSITIES]
    files = write_audit_example(
        a.dir / "inputs",
        attributes=attributes,
        sizes={"train": a.test, "valid": a.test // 4, "test": a.test},
        models=models,
    )
    # The default config with the audit data set as the grid's only one.
    config = yaml.safe_load((ROOT / "config.yaml").read_text()) | {
        "datasets": {
            "mine": {"source": "predictions", "labels": str(files["labels"]), "manifest": str(files["manifest"])}
        },
        "grid": {"datasets": ["mine"], "archs": ["small_cnn"], "seeds": [0]},  # archs, seeds: for trained data sets
        "identities": ["group_a", "group_b"],
        "report": {"title": "Audit benchmark"},
    }
    (a.dir / "config.yaml").write_text(yaml.safe_dump(config))
    base = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory", str(a.dir)]
    base += ["--configfile", str(a.dir / "config.yaml")]
    dry = subprocess.run(base + ["-n", "--quiet", "rules"], capture_output=True, text=True, check=True)
    rows = (re.match(r"^(\w+)\s+(\d+)$", line.strip()) for line in (dry.stdout + dry.stderr).splitlines())
    jobs = {m.group(1): int(m.group(2)) for m in rows if m and m.group(1) not in ("total", "all")}
    print(f"{len(models)} models × {a.attributes} attributes × {a.test} test samples")
    print("jobs:", ", ".join(f"{rule} {n}" for rule, n in jobs.items()), f"(total {sum(jobs.values())})")
    start = time.perf_counter()
    subprocess.run(base + ["--cores", a.cores, "--quiet"], check=True, capture_output=True)
    print(f"wall time: {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
