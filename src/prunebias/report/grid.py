"""The grid as the report walks it: the settings (dataset, task, arch) a table holds, the rows
of one setting, and methods in the order the report shows them.

Findings, tables and the gallery all go setting by setting and list methods in this one order.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from prunebias.vocabulary import METHODS, SETTING


def settings_of(frame: pd.DataFrame) -> list[tuple[str, ...]]:
    """The settings in ``frame``, sorted, each a tuple of strings."""
    return [tuple(map(str, s)) for s in frame[SETTING].drop_duplicates().sort_values(SETTING).itertuples(index=False)]


def in_setting(frame: pd.DataFrame, setting: Sequence[str]) -> pd.DataFrame:
    """The rows of ``frame`` in ``setting`` (compared as text)."""
    if not set(SETTING) <= set(frame.columns):
        return frame  # a table of one setting written without its setting columns
    mask = np.ones(len(frame), dtype=bool)
    for col, value in zip(SETTING, setting):
        mask &= frame[col].astype(str).to_numpy() == value
    return frame[mask]


def ordered_methods(methods: Iterable[str]) -> list[str]:
    """The distinct ``methods``: known ones in :data:`prunebias.vocabulary.METHODS` order, then others by name."""
    present = set(methods)
    known = [m for m in METHODS if m in present]
    return known + sorted(present - set(METHODS))


def method_rank(methods: pd.Series) -> pd.Series:
    """Each method's position in :func:`ordered_methods` of ``methods``, a sort key."""
    return methods.map({m: i for i, m in enumerate(ordered_methods(methods))})
