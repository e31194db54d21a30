"""Numbers and names as the report writes them: sparsities, method labels, fixed-point numbers,
percentages, shares, counts and durations, with a dash for an undefined value.

Every table, sentence and the template's filters format through these, so one value reads
the same wherever it appears.
"""

from __future__ import annotations

import math

import numpy as np

from prunebias.vocabulary import METHOD_LABELS

#: What an undefined (missing or non-finite) value reads as.
DASH = "–"


def is_finite(x) -> bool:
    """True for a finite real number (numpy scalars included); False for None, NaN, text."""
    return x is not None and isinstance(x, (int, float, np.integer, np.floating)) and math.isfinite(float(x))


def sparsity_text(sparsity: float) -> str:
    """'dense' for 0, else a percentage: 0.9 -> '90%', 0.995 -> '99.5%'."""
    return "dense" if sparsity == 0 else f"{100 * float(sparsity):.4g}%"


def level_text(method: str, level: float) -> str:
    """A model's level in words: its sparsity for mask methods and dense, the share of FLOPs removed
    for channel pruning, nothing removed for int8 (:data:`prunebias.vocabulary.MASK_METHODS`)."""
    if method == "channels":
        return f"{100 * float(level):.4g}% of FLOPs"
    if method == "int8":
        return "8-bit weights"
    return sparsity_text(level)


def method_text(method: str) -> str:
    """The method's label (:data:`prunebias.vocabulary.METHOD_LABELS`), else its own name."""
    return METHOD_LABELS.get(method, method)


def number_text(x, spec: str = ".3f") -> str:
    """``x`` in the format ``spec``: 0.1234 -> '0.123'."""
    return format(float(x), spec) if is_finite(x) else DASH


def interval_text(value, low, high) -> str:
    """A change and its interval: '+0.089 [+0.077, +0.101]' (a dash for what is undefined)."""
    return f"{number_text(value, '+.3f')} [{number_text(low, '+.3f')}, {number_text(high, '+.3f')}]"


def percent_text(x, digits: int = 1) -> str:
    """A fraction as a percentage: 0.1234 -> '12.3%'."""
    return f"{100 * float(x):.{digits}f}%" if is_finite(x) else DASH


def share_text(x) -> str:
    """A share as a whole percentage ('45%'), for sentences."""
    return f"{100 * float(x):.0f}%" if is_finite(x) else DASH


def count_text(x) -> str:
    """A count stored as a float (an aggregate) as a whole number: 3.0 -> '3'."""
    return str(int(x))


def duration_text(seconds) -> str:
    """Seconds as '12.5 s' below a minute, else 'h:mm:ss'."""
    if not is_finite(seconds):
        return DASH
    seconds = float(seconds)
    if seconds < 60:
        return f"{seconds:.1f} s"
    h, rest = divmod(round(seconds), 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}"
