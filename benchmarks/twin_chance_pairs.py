"""How many (identity, target) pairs of the decoupled twin have a defined BA, by training-split size.

The twin's targets do not depend on its identities in the population, so every pair that
passes the study's two rules (a relative training gap of at least ``ba_min_relative_gap`` and
``ba_min_positives`` test positives per group) passes by chance. Counted on the labels alone
(no images, no training): BA with the labels as predictions is 0 where defined, NaN elsewhere.

    .venv/bin/python benchmarks/twin_chance_pairs.py [TRAIN_SIZE ...]   (default: 3000 5000)

Splits are the default config's valid (1,000) and test (2,000); generator seeds 0, 1, 2.
"""

from __future__ import annotations

import sys

import numpy as np

from prunebias.analysis import metrics
from prunebias.data import synthetic

VALID, TEST = 1000, 2000


def defined_pairs(train_size: int, seed: int) -> dict[str, int]:
    """Per identity, the twin's pairs with a defined BA (the study's default rules)."""
    rng = np.random.default_rng(seed)  # the draws generate() makes before rendering
    true = synthetic.sample_attributes(train_size + VALID + TEST, rng, decoupled=True)
    labels = synthetic.noisy_labels(true, rng)
    identities = list(synthetic.IDENTITY_ATTRIBUTES)
    train, test = labels.iloc[:train_size], labels.iloc[train_size + VALID :]
    y = test.to_numpy(bool)
    ba = metrics.bias_amplification(
        y,
        y,
        test[identities].to_numpy(bool),
        train.to_numpy(bool),
        train[identities].to_numpy(bool),
        attributes=list(labels.columns),
        identities=identities,
    )
    return {g: int(np.isfinite(ba[i]).sum()) for i, g in enumerate(identities)}


def main(sizes: list[int]) -> None:
    for size in sizes:
        for seed in (0, 1, 2):
            counts = defined_pairs(size, seed)
            print(f"train {size}, generator seed {seed}: {sum(counts.values())} pairs {counts}")


if __name__ == "__main__":
    main([int(s) for s in sys.argv[1:]] or [3000, 5000])
