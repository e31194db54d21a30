"""What a torch job pays before its first batch: a fresh interpreter importing torch and setting up
its CPU backend, with ``prunebias.training.train.configure_backend`` against the public
``torch.use_deterministic_algorithms(True)`` (which also imports ``torch._inductor``).

Every predict, train and prune job of the workflow is such an interpreter, so a second here is a
second per job. Runs alternate between the two variants to share the machine's load.

    .venv/bin/python benchmarks/job_startup.py --repeats 5
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

VARIANTS = {
    "import torch only": "import torch",
    "configure_backend (CPU)": (
        "import torch\nfrom prunebias.training.train import configure_backend\nconfigure_backend(torch.device('cpu'))"
    ),
    "torch.use_deterministic_algorithms": "import torch\ntorch.use_deterministic_algorithms(True)",
}


def seconds(code: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    times = {name: [] for name in VARIANTS}
    for code in VARIANTS.values():  # warm the file cache
        seconds(code)
    for _ in range(args.repeats):
        for name, code in VARIANTS.items():
            times[name].append(seconds(code))
    for name, values in times.items():
        print(f"{name:38s} median {statistics.median(values):.2f} s  (min {min(values):.2f}, max {max(values):.2f})")


if __name__ == "__main__":
    main()
