"""Helpers of benchmarks/gpu_check.sh (the one prepared GPU check, issue 18).

Standard library only, except ``env`` (torch) and ``mkdata`` (the package), so the summary is
written whatever else is missing on the machine::

    python benchmarks/gpu_check.py imports OUT.json            # which modules import (never fails)
    python benchmarks/gpu_check.py missing IMPORTS.json mod ...  # print the missing ones; exit 1 if any
    python benchmarks/gpu_check.py env OUT.json --device cuda   # python / torch / CUDA / GPU facts
    python benchmarks/gpu_check.py mkdata ROOT N                # a mini-CelebA (write_mini_celeba)
    python benchmarks/gpu_check.py wfconfig OUT.yaml --root R --resolution 72 --crop 64 ...
    python benchmarks/gpu_check.py summarize OUTDIR WORKDIR     # OUTDIR/summary.json
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import re
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

# Import name -> distribution, for the project's runtime dependencies (pyproject.toml) and
# what the check itself needs (pytest for step b, triton for torch.compile on CUDA).
PROJECT_IMPORTS = {
    "torch": "torch",
    "torchvision": "torchvision",
    "numpy": "numpy",
    "pandas": "pandas",
    "pyarrow": "pyarrow",
    "sklearn": "scikit-learn",
    "scipy": "scipy",
    "matplotlib": "matplotlib",
    "seaborn": "seaborn",
    "jinja2": "jinja2",
    "PIL": "pillow",
    "yaml": "pyyaml",
    "snakemake": "snakemake",
}
EXTRA_IMPORTS = {"pytest": "pytest", "triton": "triton", "setuptools": "setuptools"}


def _try_import(name: str) -> tuple[bool, str]:
    # One subprocess per module: a broken install (e.g. an ABI mismatch) fails alone.
    code = f"import {name} as m; print(getattr(m, '__version__', '?'))"
    try:
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        return False, "import timed out (120 s)"
    if proc.returncode == 0:
        return True, proc.stdout.strip()
    lines = proc.stderr.strip().splitlines()
    return False, lines[-1] if lines else f"exit code {proc.returncode}"


def cmd_imports(a) -> int:
    from concurrent.futures import ThreadPoolExecutor

    names = list({**PROJECT_IMPORTS, **EXTRA_IMPORTS})
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        found = dict(zip(names, pool.map(_try_import, names)))
    result = {}
    for name in names:
        ok, text = found[name]
        dist = PROJECT_IMPORTS.get(name) or EXTRA_IMPORTS[name]
        result[name] = {
            "ok": ok,
            "dist": dist,
            "project_dep": name in PROJECT_IMPORTS,
            ("version" if ok else "error"): text,
        }
        print(f"  import {name:<12} " + (f"ok {text}" if ok else f"FAILED: {text}"), flush=True)
    Path(a.out).write_text(json.dumps(result, indent=2))
    missing = [n for n, r in result.items() if r["project_dep"] and not r["ok"]]
    print(
        "all project dependencies import" if not missing else "MISSING project dependencies: " + ", ".join(missing),
        flush=True,
    )
    return 0


def cmd_missing(a) -> int:
    if not Path(a.imports).exists():  # the install step did not run (--only): nothing known, try anyway
        return 0
    result = json.loads(Path(a.imports).read_text())
    missing = [m for m in a.modules if not result.get(m, {}).get("ok", False)]
    print(" ".join(missing))
    return 1 if missing else 0


def cmd_env(a) -> int:
    import torch

    info = {
        "python": platform.python_version(),
        "executable": sys.executable,
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "load_avg": os.getloadavg(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "cuda_available": torch.cuda.is_available(),
        "device_count": torch.cuda.device_count(),
        "env": {k: os.environ.get(k) for k in ("CUDA_VISIBLE_DEVICES", "PRUNEBIAS_DEVICE", "OMP_NUM_THREADS")},
    }
    try:
        import torchvision

        info["torchvision"] = torchvision.__version__
    except Exception as exc:  # noqa: BLE001 - reported, not fatal
        info["torchvision"] = f"import failed: {exc}"
    try:
        import triton

        info["triton"] = triton.__version__
    except Exception as exc:  # noqa: BLE001
        info["triton"] = f"import failed: {exc}"
    if torch.cuda.is_available():
        info["gpus"] = []
        for i in range(torch.cuda.device_count()):
            p = torch.cuda.get_device_properties(i)
            info["gpus"].append(
                {
                    "name": p.name,
                    "capability": f"{p.major}.{p.minor}",
                    "memory_gib": round(p.total_memory / 2**30, 1),
                    "multiprocessors": p.multi_processor_count,
                }
            )
        info["bf16_supported"] = torch.cuda.is_bf16_supported()
    for k, v in info.items():
        print(f"{k:>16}: {v}")
    Path(a.out).write_text(json.dumps(info, indent=2, default=str))
    if a.device == "cuda" and not torch.cuda.is_available():
        print("NOTE: FAILED: --device cuda but torch.cuda.is_available() is False", file=sys.stderr)
        return 1
    return 0


def cmd_mkdata(a) -> int:
    from prunebias.data.celeba_format import write_mini_celeba

    start = time.perf_counter()
    root = write_mini_celeba(a.root, n=a.n, seed=0)  # official 178 x 218 JPEGs, 60/20/20 split
    print(f"wrote {a.n} CelebA-format JPEGs (178x218) to {root} in {time.perf_counter() - start:.1f}s")
    return 0


def cmd_wfconfig(a) -> int:
    """The override merged over config.yaml + presets/celeba_quick.yaml (JSON is valid YAML)."""
    celeba = {"root": str(Path(a.root).resolve()), "resolution": a.resolution}
    if a.allow_upscale:
        celeba["allow_upscale"] = True
    override = {
        "results": "results",
        "datasets": {"celeba": celeba},
        "train": {
            "epochs": a.epochs,
            "batch_size": a.batch_size,
            "eval_batch_size": a.eval_batch_size,
            "crop_size": a.crop,
        },
        # 2 epochs: prune at epoch 0 and reach the target at epoch 1 (integers: epochs, not fractions)
        "prune": {"methods": {"gmp_pt": {"epochs": 2, "schedule": {"start": 0, "end": 1, "step": 1}}}},
        "analysis": {"bootstrap": a.bootstrap, "ba_min_positives": a.ba_min_positives},
        "runtime": {"compile": a.compile},
    }
    Path(a.out).write_text(json.dumps(override, indent=2) + "\n")
    print(json.dumps(override))
    return 0


# ---------------------------------------------------------------------------------- summary

EPOCH_RE = re.compile(r"^epoch (\d+)/(\d+) loss (\S+) val_loss (\S+) val_acc (\S+) sparsity (\S+) lr \S+ \((\S+)s\)")
TRAINING_RE = re.compile(r"^training (\{.*\}) on (\S+?)( \(compiled step\))? \((\d+) train / (\d+) valid images\)")
SELECTED_RE = re.compile(r"^selected epoch (\d+); measured sparsity (\S+)")


def read_steps(work: Path) -> list[dict]:
    steps = []
    path = work / "steps.tsv"
    if path.exists():
        for row in csv.reader(path.open(), delimiter="\t"):
            if len(row) >= 6:
                name, status, rc, seconds, limit, note = row[:6]
                steps.append(
                    {
                        "name": name,
                        "status": status,
                        "rc": int(rc) if rc.lstrip("-").isdigit() else None,
                        "seconds": float(seconds) if seconds else None,
                        "limit_s": int(limit) if limit.isdigit() else None,
                        "note": note,
                        "log": f"logs/{name}.log",
                    }
                )
    return steps


def pytest_summary(xml_path: Path) -> dict | None:
    if not xml_path.exists():
        return None
    try:
        root = ET.parse(xml_path).getroot()
    except ET.ParseError as exc:
        return {"error": f"unreadable junit xml: {exc}"}
    out = {"tests": 0, "passed": 0, "failed": 0, "errors": 0, "skipped": 0, "cases": []}
    for case in root.iter("testcase"):
        out["tests"] += 1
        name = f"{case.get('classname', '')}::{case.get('name', '')}"
        status, message = "passed", ""
        for tag in ("failure", "error", "skipped"):
            el = case.find(tag)
            if el is not None:
                status, message = (
                    {"failure": "failed", "error": "errors", "skipped": "skipped"}[tag],
                    (el.get("message") or "")[:300],
                )
                break
        out[status] += 1
        out["cases"].append(
            {
                "name": name,
                "status": status.rstrip("s") if status == "errors" else status,
                "seconds": float(case.get("time", 0) or 0),
                "message": message,
            }
        )
    return out


def bench_summary(path: Path) -> dict | None:
    if not path.exists():
        return None
    data = json.loads(path.read_text())
    header = data.get("header", {})
    return {
        "gpu": header.get("gpu"),
        "torch": header.get("torch"),
        "load_avg": header.get("load_avg"),
        "settings": header.get("settings"),
        "sizes": data.get("sizes"),
    }


def workflow_summary(wdir: Path) -> dict | None:
    if not wdir.exists():
        return None
    res = wdir / "results"
    out: dict = {"override": None, "training_jobs": [], "job_seconds": {}, "outputs": {}}
    if (wdir / "override.yaml").exists():
        out["override"] = json.loads((wdir / "override.yaml").read_text())
    for log in sorted((res / "logs").glob("train_dense/**/*.log")) + sorted((res / "logs").glob("prune/**/*.log")):
        job = {"log": str(log.relative_to(res)), "device": None, "compiled": False, "epochs": []}
        for line in log.read_text(errors="replace").splitlines():
            if m := TRAINING_RE.match(line):
                job.update(
                    device=m.group(2),
                    compiled=bool(m.group(3)),
                    train_images=int(m.group(4)),
                    valid_images=int(m.group(5)),
                )
            elif m := EPOCH_RE.match(line):
                job["epochs"].append(
                    {
                        "epoch": int(m.group(1)),
                        "train_loss": float(m.group(3)),
                        "val_acc": float(m.group(5)),
                        "sparsity": float(m.group(6)),
                        "seconds": float(m.group(7)),
                    }
                )
            elif m := SELECTED_RE.match(line):
                job.update(selected_epoch=int(m.group(1)), measured_sparsity=float(m.group(2)))
        later = [e["seconds"] for e in job["epochs"][1:]]  # the first epoch includes cuDNN autotuning
        if later and job.get("train_images"):
            job["epoch_images_per_s_after_first"] = round(job["train_images"] / (sum(later) / len(later)), 1)
        out["training_jobs"].append(job)
    for tsv in sorted((res / "benchmarks").glob("**/*.tsv")):
        try:
            rows = list(csv.DictReader(tsv.open(), delimiter="\t"))
            out["job_seconds"][str(tsv.relative_to(res / "benchmarks"))] = float(rows[0]["s"])
        except (OSError, KeyError, IndexError, ValueError):
            pass
    for name in (
        "report.html",
        "workflow_report.html",
        "tables/summary.parquet",
        "tables/metrics.parquet",
        "data/celeba/images.npy",
    ):
        p = res / name
        out["outputs"][name] = p.stat().st_size if p.exists() else None
    devices = {j["device"] for j in out["training_jobs"]}
    out["training_devices"] = sorted(d for d in devices if d)
    return out


def cmd_summarize(a) -> int:
    outdir, work = Path(a.outdir), Path(a.work)
    meta = json.loads((work / "meta.json").read_text()) if (work / "meta.json").exists() else {}
    steps = read_steps(work)
    failed = [s["name"] for s in steps if s["status"] != "ok"]
    summary = {
        "check": "benchmarks/gpu_check.sh (issue 18)",
        **meta,
        "ok": bool(steps) and not failed,
        "failed_steps": failed,
        "steps": steps,
        "env": json.loads((outdir / "env.json").read_text()) if (outdir / "env.json").exists() else None,
        "imports": json.loads((work / "imports.json").read_text()) if (work / "imports.json").exists() else None,
        "install": (work / "install_mode.txt").read_text().strip() if (work / "install_mode.txt").exists() else None,
        "pytest_gpu": pytest_summary(work / "pytest_gpu.xml"),
        "bench": {k: bench_summary(outdir / f"bench_{k}.json") for k in ("eager", "compile")},
        "workflow": {tag: workflow_summary(work / f"wf_{tag}") for tag in ("small", "large")},
    }
    if meta.get("finished_unix") and meta.get("started_unix"):
        summary["wall_s"] = round(meta["finished_unix"] - meta["started_unix"], 1)
    (outdir / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    # A short human-readable digest on stdout (the device tool returns the output's tail).
    print(f"summary: ok={summary['ok']} failed={failed or 'none'} wall={summary.get('wall_s')}s")
    env = summary["env"] or {}
    print(
        f"  {[g['name'] for g in env.get('gpus', [])] or 'no GPU'}, torch {env.get('torch')}, CUDA "
        f"{env.get('torch_cuda')}, cuDNN {env.get('cudnn')}, triton {env.get('triton')}, python {env.get('python')}"
    )
    for s in steps:
        print(
            f"  {s['name']:<14} {s['status']:<8} rc={s['rc']!s:<4} {s['seconds'] or 0:7.1f}s "
            f"(limit {s['limit_s']}s) {s['note']}"
        )
    if summary["pytest_gpu"] and "cases" in summary["pytest_gpu"]:
        p = summary["pytest_gpu"]
        print(
            f"  pytest -m gpu: {p['passed']} passed, {p['failed']} failed, {p['errors']} errors, {p['skipped']} skipped"
        )
    for kind, b in summary["bench"].items():
        for size, r in ((b or {}).get("sizes") or {}).items():
            print(
                f"  bench {kind} {size}px: project {r['project_images_per_s']:.1f} img/s, baseline "
                f"{r['baseline_images_per_s']:.1f} img/s, ratio {r['ratio']:.2f}, epoch {r['project_epoch_s']:.1f}s, "
                f"data share {100 * r['project_data_share']:.2f}%, inference {r['inference_images_per_s']:.1f} img/s"
            )
    for tag, w in summary["workflow"].items():
        if w:
            rates = [j.get("epoch_images_per_s_after_first") for j in w["training_jobs"]]
            print(
                f"  workflow {tag}: {len(w['training_jobs'])} training jobs on {w['training_devices']}, "
                f"epoch img/s after the first {rates}, report.html {w['outputs'].get('report.html')} bytes"
            )
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("imports")
    s.add_argument("out")
    s.set_defaults(func=cmd_imports)
    s = sub.add_parser("missing")
    s.add_argument("imports")
    s.add_argument("modules", nargs="+")
    s.set_defaults(func=cmd_missing)
    s = sub.add_parser("env")
    s.add_argument("out")
    s.add_argument("--device", choices=["cpu", "cuda"], default="cuda")
    s.set_defaults(func=cmd_env)
    s = sub.add_parser("mkdata")
    s.add_argument("root")
    s.add_argument("n", type=int)
    s.set_defaults(func=cmd_mkdata)
    s = sub.add_parser("wfconfig")
    s.add_argument("out")
    s.add_argument("--root", required=True)
    s.add_argument("--resolution", type=int, required=True)
    s.add_argument("--crop", type=int, required=True)
    s.add_argument("--allow-upscale", action="store_true")
    s.add_argument("--epochs", type=int, default=2)
    s.add_argument("--batch-size", type=int, default=256)
    s.add_argument("--eval-batch-size", type=int, default=2048)
    s.add_argument("--bootstrap", type=int, default=200)
    s.add_argument("--ba-min-positives", type=int, default=10)
    s.add_argument("--compile", action="store_true")
    s.set_defaults(func=cmd_wfconfig)
    s = sub.add_parser("summarize")
    s.add_argument("outdir")
    s.add_argument("work")
    s.set_defaults(func=cmd_summarize)
    a = p.parse_args()
    return a.func(a)


if __name__ == "__main__":
    sys.exit(main())
