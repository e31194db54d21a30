"""Checks of the tables and arrays the stages and the analysis take: one ValueError per fault.

Every message names the argument (or table) and what was expected, e.g. ``metrics is missing
columns ['seed']`` or ``labels must be 2-D (n_samples, n_columns), got shape (3,)``.

- Tables: :func:`require_columns`.
- Arrays: :func:`as_bool` and :func:`as_logits` return the checked array in its working form
  (bool; float logits without NaN); :func:`same_shape` and :func:`same_rows` check arrays
  against each other.
- Arguments: :func:`as_names` (distinct names), :func:`as_fractions` (values in [0, 1]),
  :func:`as_count` (an integer with a minimum).
- :func:`safe_divide`: the ratio convention of every rate (NaN for a zero denominator).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd

#: How the messages name the axes of an array of 1, 2 or 3 dimensions.
_AXES = {1: "(n_samples,)", 2: "(n_samples, n_columns)", 3: "(n_models, n_samples, n_columns)"}


def require_columns(frame, needed: Iterable[str], name: str) -> None:
    """Raise ValueError unless ``frame`` is a DataFrame holding every column in ``needed``.

    The message names the table and the missing columns, in the order of ``needed``:
    ``metrics is missing columns ['seed']``.
    """
    if not isinstance(frame, pd.DataFrame):
        raise ValueError(f"{name} must be a DataFrame, got {type(frame).__name__}")
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise ValueError(f"{name} is missing columns {missing}")


def _check_ndim(arr: np.ndarray, name: str, ndim: int) -> None:
    if arr.ndim != ndim:
        axes = f" {_AXES[ndim]}" if ndim in _AXES else ""
        raise ValueError(f"{name} must be {ndim}-D{axes}, got shape {arr.shape}")


def _check_size(arr: np.ndarray, name: str, rows: int | None, cols: int | None) -> None:
    if rows is not None and arr.shape[0] != rows:
        raise ValueError(f"{name} must have {rows} rows, got {arr.shape[0]}")
    if cols is not None and arr.shape[-1] != cols:
        raise ValueError(f"{name} must have {cols} columns, got {arr.shape[-1]}")


def as_bool(x, name: str, *, ndim: int = 2, rows: int | None = None, cols: int | None = None) -> np.ndarray:
    """``x`` as a bool array of ``ndim`` dimensions (0/1 numbers are accepted and converted).

    ``rows`` / ``cols``, when given, are the required sizes of the first and the last axis.
    A bool input is returned as is (no copy).
    """
    arr = np.asarray(x)
    _check_ndim(arr, name, ndim)
    if arr.dtype != bool:
        if not np.issubdtype(arr.dtype, np.number):
            raise ValueError(f"{name} must be boolean (or 0/1), got dtype {arr.dtype}")
        if not np.isin(arr, (0, 1)).all():
            raise ValueError(f"{name} must be boolean (or 0/1), got dtype {arr.dtype} with other values")
        arr = arr.astype(bool)
    _check_size(arr, name, rows, cols)
    return arr


def as_logits(x, name: str, *, ndim: int = 2, dtype=np.float64, nonempty: bool = False) -> np.ndarray:
    """``x`` as float logits of ``ndim`` dimensions without NaN (±inf are allowed).

    Integers become float64. ``dtype`` (default float64) is the dtype returned, without a copy
    when ``x`` has it already; ``None`` keeps a float input's own precision (float32 logits of
    a whole test split stay float32). ``nonempty`` refuses an array with a zero-length axis.
    """
    arr = np.asarray(x)
    _check_ndim(arr, name, ndim)
    if nonempty and 0 in arr.shape:
        raise ValueError(f"{name} is empty (shape {arr.shape})")
    if np.issubdtype(arr.dtype, np.integer):
        arr = arr.astype(np.float64)
    elif not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}")
    if dtype is not None:
        arr = arr.astype(dtype, copy=False)
    if np.isnan(arr).any():
        bad = np.flatnonzero(np.isnan(arr).any(axis=tuple(range(arr.ndim - 1)))).tolist()
        raise ValueError(f"{name} contains NaN (columns {bad})")
    return arr


def _listed(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + f" and {names[-1]}"


def same_shape(arrays: Mapping[str, np.ndarray], *, from_axis: int = 0) -> None:
    """Raise unless the named arrays (``{name: array}``) share one shape and have a row.

    ``from_axis`` compares the shapes from that axis on (1: leave out the models axis of
    stacked logits); the row is then an entry along that axis. A statistic over no sample is
    refused here, not returned as NaN.
    """
    named = list(arrays.items())
    shapes = [a.shape[from_axis:] for _, a in named]
    if len(set(shapes)) > 1:
        which = "shape" if from_axis == 0 else f"shape from axis {from_axis} on"
        got = _listed([str(s) for s in shapes])
        raise ValueError(f"{_listed([n for n, _ in named])} must have the same {which}, got {got}")
    name, first = named[0]
    if first.shape[from_axis] == 0:
        raise ValueError(f"{name} has no rows")


def same_rows(arrays: Mapping[str, np.ndarray]) -> None:
    """Raise unless the named arrays (``{name: array}``) have the same number of rows, at least one."""
    named = list(arrays.items())
    rows = [a.shape[0] for _, a in named]
    if len(set(rows)) > 1:
        got = _listed([str(r) for r in rows])
        raise ValueError(f"{_listed([n for n, _ in named])} must have the same number of rows, got {got}")
    if rows[0] == 0:
        raise ValueError(f"{named[0][0]} has no rows")


def as_names(values, name: str, *, size: int | None = None) -> list[str]:
    """``values`` as a list of distinct names (str), ``size`` of them when given; a lone string is refused."""
    if isinstance(values, str):
        raise ValueError(f"{name} must be a list of names, got the string {values!r}")
    out = [str(v) for v in values]
    if len(set(out)) != len(out):
        raise ValueError(f"{name} has duplicates: {out}")
    if size is not None and len(out) != size:
        raise ValueError(f"{name} must name {size} columns, got {len(out)}")
    return out


def as_fractions(values, name: str) -> np.ndarray:
    """``values`` as a non-empty flat float64 array of fractions in [0, 1]."""
    arr = np.asarray(values, dtype=np.float64).ravel()
    if arr.size == 0 or not np.all((arr >= 0) & (arr <= 1)):
        raise ValueError(f"{name} must be a non-empty list of fractions in [0, 1], got {values!r}")
    return arr


def as_count(value, name: str, *, minimum: int = 0) -> int:
    """``value`` as an int >= ``minimum`` (bool and float are refused)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def safe_divide(num, den) -> np.ndarray:
    """``num / den`` elementwise (broadcast) as float64, NaN where ``den == 0``.

    The convention of every rate here: a rate over an empty set is undefined, not 0 or inf.
    """
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    out = np.full(np.broadcast(num, den).shape, np.nan)
    np.divide(num, den, out=out, where=den != 0)
    return out
