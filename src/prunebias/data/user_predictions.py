"""Audit-only data sets (``source: predictions``): a labels table plus the predictions of your own models.

Nothing is trained or predicted: the workflow checks your files, converts each prediction
file to the project's prediction contract (:func:`prunebias.io.read_predictions`) and runs
metrics, criteria, figures and both reports on them.

The labels table (CSV or Parquet, ``datasets.<name>.labels``), one row per sample::

    id,split,Smiling,Eyeglasses,Male,Young
    img_0001,train,1,0,1,0
    img_0002,valid,0,0,0,1
    img_0003,test,1,1,1,1

``id`` (unique), ``split`` (train / valid / test: the training rows give the prevalences and
group conditionals that bias amplification and the criteria compare against; no images are
needed) and one binary column per attribute, encoded 0/1, true/false or −1/1
(:func:`prunebias.data.tables.binary_labels`). The identities (config key ``identities``)
must be among these columns; ``datasets.<name>.categorical`` names multi-valued group columns
(age bands, skin-tone scales), each level becoming a one-vs-rest identity column, as for folder
data sets (:mod:`prunebias.data.folder`).

The manifest (CSV or Parquet, ``datasets.<name>.manifest``), one row per model::

    arch,method,sparsity,seed,valid,test
    resnet18,dense,0,0,dense0/valid.parquet,dense0/test.parquet
    resnet18,magnitude,0.9,0,mag90/valid.parquet,mag90/test.parquet

``arch`` names the model family and ``method`` the compression (lower-case letters, digits
and ``_``; ``dense`` is the uncompressed model), ``sparsity`` the share of weights removed
(0 for dense, else strictly between 0 and 1), ``seed`` an integer; every (arch, seed) with a
compressed model needs its ``dense`` row, the reference the changes are measured against.
``valid`` and ``test`` are paths relative to the manifest's folder (inside it).

Each prediction file (CSV or Parquet) has an ``id`` column holding exactly the ids of its
split and one float column per attribute of the labels table, in any order: logits, or
probabilities with ``datasets.<name>.scores: probabilities`` (converted to logits, clipped
to [1e-7, 1 − 1e-7]). ``prunebias.cli predictions-from-torch`` writes such a file from the
outputs of a plain PyTorch evaluation loop.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from prunebias.config import sparsity_label
from prunebias.data.folder import attribute_columns
from prunebias.data.tables import TableError, first_duplicate, read_table, table_columns
from prunebias.vocabulary import SPLITS

MANIFEST_COLUMNS = ("arch", "method", "sparsity", "seed", "valid", "test")
SCORES = ("logits", "probabilities")
LABEL_KEYS = ("id", "split")
_NAME = re.compile(r"[a-z0-9_]+")
# Probabilities of exactly 0 or 1 would give infinite logits.
PROBABILITY_CLIP = 1e-7


class PredictionsSourceError(ValueError):
    """A labels table, manifest or prediction file cannot be used; the message names the file, row and value."""


def _row(i: int) -> str:
    return f"row {i + 1}"


def labels_index(labels_path: str | os.PathLike, categorical: Sequence[str] = ()) -> pd.DataFrame:
    """The labels table as a prepared index (:mod:`prunebias.data.store`: id, split, source, bool
    attributes); ``categorical`` columns (multi-valued groups) become one bool column per level."""
    table = read_table(labels_path, text_columns=("id", *categorical))
    missing = [c for c in LABEL_KEYS if c not in table.columns]
    if missing:
        raise PredictionsSourceError(
            f"{labels_path}: the labels table needs columns {list(LABEL_KEYS)}; missing {missing} "
            f"(columns: {list(table.columns)[:10]})"
        )
    attributes = [c for c in table.columns if c not in LABEL_KEYS]
    ids = table["id"]
    if ids.isna().any():
        raise PredictionsSourceError(f"{labels_path}: {_row(int(np.flatnonzero(ids.isna())[0]))}: empty id")
    ids = ids.astype(str)
    if (pair := first_duplicate(ids)) is not None:
        first, second = pair
        raise PredictionsSourceError(
            f"{labels_path}: id {ids.iloc[first]!r} appears twice ({_row(first)} and {_row(second)}); ids must be unique"
        )
    split = table["split"].astype(str)
    bad = ~split.isin(SPLITS)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise PredictionsSourceError(
            f"{labels_path}: {_row(i)}: split {table['split'].iloc[i]!r}; use one of {list(SPLITS)}"
        )
    empty = [s for s in SPLITS if not (split == s).any()]
    if empty:
        raise PredictionsSourceError(
            f"{labels_path}: no rows in split(s) {empty}; the audit needs train (prevalences), valid and test rows"
        )
    labels = attribute_columns(table.reset_index(drop=True), labels_path, attributes, categorical)
    index = pd.DataFrame({"id": ids, "split": split, "source": "predictions"})
    return pd.concat([index, labels], axis=1)


def run_path(arch: str, method: str, sparsity: float, seed: int) -> str:
    """A model's path fragment under ``predictions/<dataset>/joint/``: resnet18/dense/seed0, resnet18/mag/s0.9/seed0."""
    if method == "dense":
        return f"{arch}/dense/seed{seed}"
    return f"{arch}/{method}/s{sparsity_label(sparsity)}/seed{seed}"


def read_manifest(manifest_path: str | os.PathLike) -> pd.DataFrame:
    """The checked manifest: one row per model, ``valid``/``test`` as absolute paths, plus its ``run`` path.

    Every problem raises one :class:`PredictionsSourceError` naming the manifest, the row and
    the value: missing columns, bad names, a sparsity outside [0, 1) (or non-zero for dense),
    duplicate models, a compressed model without its dense reference, prediction paths that
    leave the manifest's folder or do not exist.
    """
    path = Path(manifest_path)
    table = read_table(path)
    missing = [c for c in MANIFEST_COLUMNS if c not in table.columns]
    if missing:
        raise PredictionsSourceError(
            f"{path}: the manifest needs columns {list(MANIFEST_COLUMNS)}; missing {missing} (columns: {list(table.columns)})"
        )
    if table.empty:
        raise PredictionsSourceError(f"{path}: the manifest lists no models")
    extra = [c for c in table.columns if c not in MANIFEST_COLUMNS]
    if extra:
        raise PredictionsSourceError(f"{path}: unknown manifest column(s) {extra}; allowed: {list(MANIFEST_COLUMNS)}")
    rows = []
    for i, row in enumerate(table.to_dict("records")):
        rows.append(_manifest_row(row, path, i))
    out = pd.DataFrame(rows)
    if (pair := first_duplicate(out["run"])) is not None:
        first, second = pair
        raise PredictionsSourceError(
            f"{path}: {_row(first)} and {_row(second)} are the same model ({out['run'].iloc[first]}); "
            "give each model its own (arch, method, sparsity, seed)"
        )
    dense = set(out.loc[out["method"] == "dense", ["arch", "seed"]].itertuples(index=False, name=None))
    for i, (arch, seed) in enumerate(zip(out["arch"], out["seed"])):
        if (arch, seed) not in dense:
            raise PredictionsSourceError(
                f"{path}: {_row(i)}: no dense model of arch {arch!r} with seed {seed}; add its row "
                f"(method dense, sparsity 0): the changes are measured against it"
            )
    return out


def _manifest_row(row: dict, path: Path, i: int) -> dict:
    where = f"{path}: {_row(i)}"
    for key in ("arch", "method"):
        if not isinstance(row[key], str) or not _NAME.fullmatch(row[key]):
            raise PredictionsSourceError(
                f"{where}: {key} {row[key]!r}; use lower-case letters, digits and _ (it becomes part of file paths)"
            )
    try:
        sparsity = float(row["sparsity"])
        seed_value = float(row["seed"])
    except (TypeError, ValueError):
        raise PredictionsSourceError(
            f"{where}: sparsity {row['sparsity']!r} and seed {row['seed']!r} must be numbers"
        ) from None
    if not (np.isfinite(seed_value) and seed_value >= 0 and seed_value.is_integer()):
        raise PredictionsSourceError(f"{where}: seed {row['seed']!r}; use a non-negative integer")
    if row["method"] == "dense" and sparsity != 0:
        raise PredictionsSourceError(f"{where}: a dense model has sparsity 0, not {row['sparsity']!r}")
    if row["method"] != "dense" and not (0 < sparsity < 1 and re.fullmatch(r"0\.[0-9]+", sparsity_label(sparsity))):
        raise PredictionsSourceError(
            f"{where}: sparsity {row['sparsity']!r}; a compressed model's sparsity lies strictly between 0 and 1"
        )
    seed = int(seed_value)
    files = {split: _prediction_path(row[split], path, f"{where}: {split}") for split in ("valid", "test")}
    return {
        "arch": row["arch"],
        "method": row["method"],
        "sparsity": sparsity,
        "seed": seed,
        **files,
        "run": run_path(row["arch"], row["method"], sparsity, seed),
    }


def _prediction_path(value, manifest: Path, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise PredictionsSourceError(f"{where}: empty path; give the prediction file relative to {manifest.parent}")
    rel = Path(value)
    root = manifest.parent.resolve()
    if rel.is_absolute() or ".." in rel.parts:
        raise PredictionsSourceError(f"{where}: {value!r} leaves the manifest's folder; give a path relative to {root}")
    full = (manifest.parent / rel).resolve()
    if not full.is_relative_to(root):
        raise PredictionsSourceError(f"{where}: {value!r} links out of the manifest's folder {root}; refused")
    if not full.is_file():
        raise PredictionsSourceError(f"{where}: {value!r} does not exist (looked for {full})")
    return str(full)


def _check_columns(columns: list[str], attributes: list[str], path) -> None:
    if "id" not in columns:
        raise PredictionsSourceError(f"{path}: no 'id' column (columns: {columns[:10]})")
    missing = [a for a in attributes if a not in columns]
    extra = [c for c in columns if c != "id" and c not in attributes]
    if missing or extra:
        raise PredictionsSourceError(
            f"{path}: its columns must be 'id' and one per attribute of the labels table; "
            f"missing {missing[:10]}, unknown {extra[:10]}"
        )


def check_prediction_columns(path: str | os.PathLike, attributes: list[str]) -> None:
    """Check a prediction file's columns from its header alone (cheap enough for every workflow
    parse); its ids and values are checked when it is imported (:func:`prediction_frame`)."""
    try:
        columns = table_columns(path)
    except TableError as exc:
        raise PredictionsSourceError(str(exc)) from None
    _check_columns(columns, attributes, path)


def prediction_frame(
    frame: pd.DataFrame, ids: pd.Series, attributes: list[str], scores: str, *, path: str | os.PathLike
) -> pd.DataFrame:
    """A user's prediction table as the project's contract: ``id`` in the order of ``ids``, then one
    float32 logit column per attribute in ``attributes`` order.

    ``ids`` are the split's ids in the index; the file must hold exactly those, once each.
    ``scores``: "logits" or "probabilities" (in [0, 1], turned into clipped logits).
    """
    if scores not in SCORES:
        raise ValueError(f"scores must be one of {SCORES}, got {scores!r}")
    _check_columns(list(frame.columns), attributes, path)
    file_ids = frame["id"].astype(str)
    dup = file_ids.duplicated()
    if dup.any():
        raise PredictionsSourceError(f"{path}: id {file_ids[dup].iloc[0]!r} appears more than once")
    expected = pd.Index(ids.astype(str))
    unknown = file_ids[~file_ids.isin(expected)]
    absent = expected[~expected.isin(file_ids)]
    if len(unknown) or len(absent):
        raise PredictionsSourceError(
            f"{path}: its ids must be exactly the {len(expected)} ids of this split in the labels table; "
            f"{len(absent)} missing (e.g. {list(absent[:3])}), {len(unknown)} not in the split (e.g. {list(unknown[:3])})"
        )
    not_float = [c for c in attributes if not pd.api.types.is_numeric_dtype(frame[c]) or frame[c].dtype == bool]
    if not_float:
        raise PredictionsSourceError(f"{path}: score columns must be numbers, not: {not_float[:5]}")
    values = frame.set_index(file_ids).loc[expected, attributes].to_numpy(np.float64)
    bad = ~np.isfinite(values)
    if scores == "probabilities":
        bad |= (values < 0) | (values > 1)
    if bad.any():
        r, c = (int(x[0]) for x in np.nonzero(bad))
        kind = "a probability in [0, 1]" if scores == "probabilities" else "a finite logit"
        raise PredictionsSourceError(
            f"{path}: id {expected[r]!r}, column {attributes[c]!r}: {values[r, c]} is not {kind}"
            + ("" if scores == "probabilities" else " (probabilities? set datasets.<name>.scores: probabilities)")
        )
    if scores == "probabilities":
        p = np.clip(values, PROBABILITY_CLIP, 1 - PROBABILITY_CLIP)
        values = np.log(p) - np.log1p(-p)
    out = pd.DataFrame(values.astype(np.float32), columns=attributes)
    out.insert(0, "id", ids.to_numpy())
    return out


def from_arrays(ids, scores, attributes: list[str]) -> pd.DataFrame:
    """A prediction table (``id`` + one column per attribute) from an evaluation loop's outputs:
    ``ids`` (N,), ``scores`` (N, A) logits or probabilities (NumPy or torch, moved to CPU by the caller)."""
    scores = np.asarray(scores, dtype=np.float32)
    ids = np.asarray(ids).astype(str)
    if scores.ndim != 2 or scores.shape != (len(ids), len(attributes)):
        raise PredictionsSourceError(
            f"scores have shape {scores.shape}; expected ({len(ids)} ids, {len(attributes)} attributes)"
        )
    frame = pd.DataFrame(scores, columns=list(attributes))
    frame.insert(0, "id", ids)
    return frame
