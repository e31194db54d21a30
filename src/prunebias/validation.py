"""Checks of the tables the stages hand each other: one ValueError per fault, naming the table."""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd


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
