"""Users' tables (CSV or Parquet) and their binary label columns.

Labels are accepted in the encodings people use: 0/1, true/false (bool, or the strings in any
case) and −1/1 (CelebA's, −1 = false). Each column must use one encoding throughout; empty
cells are refused.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

TABLE_SUFFIXES = {".csv": ",", ".tsv": "\t", ".parquet": None, ".pq": None}


class TableError(ValueError):
    """A user's table is missing or malformed; the message names the file, row, column and value."""


def _table_path(path: str | os.PathLike) -> tuple[Path, str | None]:
    """(the path, its CSV separator or None for Parquet), refusing other suffixes and missing files."""
    path = Path(path)
    if path.suffix.lower() not in TABLE_SUFFIXES:
        raise TableError(f"{path}: a table must be {', '.join(TABLE_SUFFIXES)} (by its suffix)")
    if not path.is_file():
        raise TableError(f"{path}: no such file")
    return path, TABLE_SUFFIXES[path.suffix.lower()]


def _unreadable(path: Path, exc: Exception) -> TableError:
    # any parser error: name the file, not pandas' internals
    return TableError(f"{path}: not a readable table ({type(exc).__name__}: {str(exc)[:200]})")


def table_columns(path: str | os.PathLike) -> list[str]:
    """The column names of a table, from its header alone (Parquet schema, CSV first line)."""
    path, sep = _table_path(path)
    try:
        return pq.read_schema(path).names if sep is None else list(pd.read_csv(path, sep=sep, nrows=0).columns)
    except Exception as exc:
        raise _unreadable(path, exc) from None


def first_duplicate(values: pd.Series) -> tuple[int, int] | None:
    """Positions (first occurrence, first repeat) of the earliest repeated value, or None if all differ."""
    repeat = np.flatnonzero(values.duplicated().to_numpy())
    if not repeat.size:
        return None
    second = int(repeat[0])
    return int(np.flatnonzero((values == values.iloc[second]).to_numpy())[0]), second


def read_table(path: str | os.PathLike, text_columns: tuple[str, ...] = ("id",)) -> pd.DataFrame:
    """A CSV/TSV or Parquet table by its suffix; missing, unreadable or other suffixes: :class:`TableError`.

    CSV columns are typed by pandas, except ``text_columns`` (ids, paths), read as text so that
    an id like ``000123`` keeps its zeros.
    """
    path, sep = _table_path(path)
    try:
        if sep is None:
            return pd.read_parquet(path)
        return pd.read_csv(path, sep=sep, dtype=dict.fromkeys(text_columns, str))
    except Exception as exc:
        raise _unreadable(path, exc) from None


#: The accepted label encodings, value (lower-case text) -> label.
ENCODINGS = ({"0": False, "1": True}, {"false": False, "true": True}, {"-1": False, "1": True})


def _encoding(values: pd.Series) -> dict | None:
    """The encoding all ``values`` fit, else None."""
    present = set(values)
    return next((m for m in ENCODINGS if present <= set(m)), None)


def _first_bad_row(text: pd.Series) -> int:
    """Row of the first value that is in no encoding, or else (mixed encodings) the first outside
    the encoding of the first value that names one ("1" is in two)."""
    bad = ~text.isin(set().union(*ENCODINGS))
    if not bad.any():
        anchor = next(v for v in text if v != "1")
        bad = ~text.isin(next(set(m) for m in ENCODINGS if anchor in m))
    return int(np.flatnonzero(bad.to_numpy())[0])


def _as_text(column: pd.Series) -> pd.Series:
    """Cells as lower-case text, with whole floats written as integers (1.0 -> "1") and empty cells as ""."""
    if pd.api.types.is_bool_dtype(column):
        return column.map({True: "true", False: "false"}).astype(str)
    if pd.api.types.is_float_dtype(column):
        whole = column.notna() & (column == np.round(column))
        return column.where(~whole, column.round()).map(lambda v: "" if pd.isna(v) else f"{v:g}")
    return column.map(lambda v: "" if pd.isna(v) else str(v).strip().lower())


def binary_labels(table: pd.DataFrame, columns: list[str], *, table_path: str | os.PathLike) -> pd.DataFrame:
    """``columns`` of ``table`` as bool columns (same index), each in one of the accepted encodings.

    A column with an empty cell, a value outside every encoding, or values from two encodings
    (e.g. 0 and -1) raises :class:`TableError` naming the file, column, first bad row (1-based
    data row) and value.
    """
    out = {}
    for name in columns:
        text = _as_text(table[name])
        mapping = _encoding(text)
        if mapping is None:
            i = _first_bad_row(text)
            raise TableError(
                f"{table_path}: column {name!r}, row {i + 1}: value {table[name].tolist()[i]!r} is not binary; "
                "use one encoding per column: 0/1, true/false or -1/1 (no empty cells)"
            )
        out[name] = text.map(mapping).astype(bool).to_numpy()
    return pd.DataFrame(out, index=table.index)


def check_both_values(labels: pd.DataFrame, split, *, table_path: str | os.PathLike) -> None:
    """TableError naming the first label column that is all 0 or all 1 within a split.

    Every split needs both values of every attribute: train for the prevalences and the
    training signal, valid for the calibrated thresholds, test for ROC-AUC, BA and the
    criteria, all of which are undefined for a constant label.
    """
    groups = labels.astype(bool).groupby(np.asarray(split), sort=False)
    positives, total = groups.sum(), groups.count()
    for value, constant in (("positives", positives == 0), ("negatives", positives == total)):
        hits = constant.stack()
        if hits.any():
            split_name, attribute = hits[hits].index[0]
            raise TableError(
                f"{table_path}: attribute {attribute!r} has no {value} in split {split_name!r} "
                f"({int(total.loc[split_name, attribute])} rows); its ROC-AUC, BA and criteria would be undefined: "
                "relabel, move some rows to that split, or drop the column"
            )
