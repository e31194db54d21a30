"""Time :func:`prunebias.analysis.dependence.identity_dependence` under bootstrap weightings.

The effects and the shortcut control compute it for every model at both thresholds under
``analysis.bootstrap`` resamplings of the test split; the defaults are the default run's
shape (2,000 test samples, 21 attributes of which 4 are identities, 1,000 replicates).

    .venv/bin/python benchmarks/bench_dependence.py [--repeats 10]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from prunebias.analysis.dependence import identity_dependence
from prunebias.analysis.effects import bootstrap_draws


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--attributes", type=int, default=21)
    parser.add_argument("--identities", type=int, default=4, help="the first N attributes act as identities")
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    groups = rng.random((args.samples, args.identities)) < 0.4
    pred = rng.random((args.samples, args.attributes)) < 0.3
    pred[:, : args.identities] = groups
    attributes = [f"a{j}" for j in range(args.attributes)]
    identities = attributes[: args.identities]
    weights, _ = bootstrap_draws(args.samples, 1, args.bootstrap, 0)
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        identity_dependence(pred, groups, attributes=attributes, identities=identities, weights=weights)
        times.append(time.perf_counter() - start)
    print(
        f"identity_dependence: {args.samples} samples x {args.attributes} attributes ({args.identities} identities) "
        f"x {args.bootstrap} weightings: median {1e3 * np.median(times):.1f} ms, min {1e3 * min(times):.1f} ms "
        f"over {args.repeats} calls"
    )


if __name__ == "__main__":
    main()
