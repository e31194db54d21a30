"""Writes a small audit-only data set in the formats of :mod:`prunebias.data.user_predictions`.

For the README's worked example, the tests and the audit benchmark: a labels table, a
manifest and one prediction file per model and split, as a user's own evaluation would
produce them. The "models" are simulated: a dense model's logits follow the labels, and a
compressed model's are the dense model's with noise that grows with sparsity, so the files
have the shapes and the kinds of values real ones have. They say nothing about any real model.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from prunebias.io import write_parquet
from prunebias.vocabulary import SPLITS


def write_audit_example(
    directory: str | os.PathLike,
    *,
    attributes: list[str],
    sizes: dict[str, int],
    models: list[tuple[str, str, float, int]],
    seed: int = 0,
    scores: str = "logits",
    fmt: str = "parquet",
) -> dict[str, Path]:
    """Write ``labels.<fmt>``, ``manifest.csv`` and ``predictions/<model>/<split>.<fmt>`` under ``directory``.

    ``models``: (arch, method, sparsity, seed) per model, dense ones with sparsity 0.
    ``scores``: "logits" or "probabilities". Returns the paths of the labels table and the manifest.
    """
    directory = Path(directory)
    rng = np.random.default_rng(seed)
    n = sum(sizes[s] for s in SPLITS)
    labels = rng.random((n, len(attributes))) < rng.uniform(0.1, 0.6, len(attributes))
    table = pd.DataFrame(labels.astype(int), columns=attributes)
    table.insert(0, "split", np.repeat(list(SPLITS), [sizes[s] for s in SPLITS]))
    table.insert(0, "id", [f"img_{i:06d}" for i in range(n)])
    labels_path = _write(table, directory / f"labels.{fmt}")

    rows = []
    for arch, method, sparsity, model_seed in models:
        name = f"{arch}_{method}_{sparsity:g}_{model_seed}"
        model_rng = np.random.default_rng([seed, model_seed])
        base = np.where(labels, 2.0, -2.0) + model_rng.normal(0, 1.5, labels.shape)
        noise = np.random.default_rng([seed, model_seed, round(sparsity * 1e6)]).normal(0, 4 * sparsity, labels.shape)
        logits = base + noise
        files = {}
        for split in ("valid", "test"):
            rows_of = (table["split"] == split).to_numpy()
            values = logits[rows_of] if scores == "logits" else 1 / (1 + np.exp(-logits[rows_of]))
            frame = pd.DataFrame(values.astype(np.float32), columns=attributes)
            frame.insert(0, "id", table.loc[rows_of, "id"].to_numpy())
            files[split] = _write(frame, directory / "predictions" / name / f"{split}.{fmt}").relative_to(directory)
        rows.append({"arch": arch, "method": method, "sparsity": sparsity, "seed": model_seed, **files})
    manifest = directory / "manifest.csv"
    pd.DataFrame(rows).to_csv(manifest, index=False)
    return {"labels": labels_path, "manifest": manifest}


def _write(frame: pd.DataFrame, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    else:
        write_parquet(frame, path)
    return path
