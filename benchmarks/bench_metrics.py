"""Time `prunebias.analysis.metrics.model_metrics` on CelebA-sized synthetic predictions.

Generates one index (train / valid / test splits, correlated bool attributes) and,
per model, fresh float32 logits for the validation and test split, then times
only the `model_metrics` calls. Example:

    .venv/bin/python benchmarks/bench_metrics.py            # 100 models x 40 x 20k
    .venv/bin/python benchmarks/bench_metrics.py --profile  # plus cProfile of one model
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import time

import numpy as np
import pandas as pd

from prunebias.analysis.metrics import model_metrics


def make_index(rng: np.random.Generator, n_train: int, n_valid: int, n_test: int, n_attr: int):
    """Index with correlated attributes: each is a noisy threshold of a shared latent."""
    n = n_train + n_valid + n_test
    latent = rng.normal(size=(n, 4))
    mixing = rng.normal(size=(4, n_attr))
    prevalence = rng.uniform(0.02, 0.8, size=n_attr)
    score = latent @ mixing + rng.normal(scale=1.5, size=(n, n_attr))
    cut = np.quantile(score, 1 - prevalence, axis=0).diagonal()  # per-attribute prevalence
    labels = score > cut
    frame = pd.DataFrame(labels, columns=[f"attr{j:02d}" for j in range(n_attr)])
    frame.insert(0, "id", [f"{i:06d}.jpg" for i in range(n)])
    frame.insert(1, "split", np.repeat(["train", "valid", "test"], [n_train, n_valid, n_test]))
    frame.insert(2, "source", "synthetic")
    return frame


def make_predictions(rng, index: pd.DataFrame, split: str, attributes: list[str], skill: float):
    """Logits that separate the classes by `skill` standard deviations-ish, plus noise."""
    rows = index[index["split"] == split]
    y = rows[attributes].to_numpy()
    logits = (skill * (2 * y - 1) + rng.normal(scale=1.5, size=y.shape) - 0.5).astype(np.float32)
    frame = pd.DataFrame(logits, columns=attributes)
    frame.insert(0, "id", rows["id"].to_numpy())
    return frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=100)
    parser.add_argument("--attributes", type=int, default=40)
    parser.add_argument("--identities", type=int, default=4, help="the first N attributes act as identities")
    parser.add_argument("--train", type=int, default=162_770)
    parser.add_argument("--valid", type=int, default=19_867)
    parser.add_argument("--test", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--profile", action="store_true", help="also print a cProfile of one extra model")
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    index = make_index(rng, args.train, args.valid, args.test, args.attributes)
    attributes = [c for c in index.columns if c.startswith("attr")]
    identities = attributes[: args.identities]

    elapsed, cpu = [], []
    rows = 0
    for _ in range(args.models):
        skill = rng.uniform(0.5, 3.0)  # from near-chance to good models
        valid = make_predictions(rng, index, "valid", attributes, skill)
        test = make_predictions(rng, index, "test", attributes, skill)
        start, start_cpu = time.perf_counter(), time.process_time()
        table = model_metrics(index, valid, test, identities)
        elapsed.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
        rows = len(table)
    elapsed, cpu = np.array(elapsed), np.array(cpu)
    print(
        f"{args.models} models x {args.attributes} attributes x {args.test} test samples "
        f"({args.valid} valid, {args.train} train; {args.identities} identities, {rows} rows/model)"
    )
    print(
        f"total {elapsed.sum():.2f} s; per model mean {1e3 * elapsed.mean():.1f} ms, "
        f"median {1e3 * np.median(elapsed):.1f} ms, max {1e3 * elapsed.max():.1f} ms"
    )
    # CPU time tells apart a slow metric from a busy machine.
    print(f"cpu {cpu.sum():.2f} s; per model mean {1e3 * cpu.mean():.1f} ms")

    if args.profile:
        profiler = cProfile.Profile()
        profiler.runcall(model_metrics, index, valid, test, identities)
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)


if __name__ == "__main__":
    main()
