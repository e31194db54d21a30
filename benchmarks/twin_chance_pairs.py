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
    # The workflow's own generator, so the labels are those a run with these sizes prepares;
    # the images are rendered at the smallest size and not used.
    sizes = {"train": train_size, "valid": VALID, "test": TEST}
    index, _ = synthetic.generate(sizes, image_size=16, seed=seed, decoupled=True)
    attributes, identities = list(synthetic.ATTRIBUTES), list(synthetic.IDENTITY_ATTRIBUTES)
    train, test = index[index["split"] == "train"], index[index["split"] == "test"]
    y = test[attributes].to_numpy(bool)
    ba = metrics.bias_amplification(
        y,
        y,
        test[identities].to_numpy(bool),
        train[attributes].to_numpy(bool),
        train[identities].to_numpy(bool),
        attributes=attributes,
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
