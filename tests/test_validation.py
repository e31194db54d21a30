"""prunebias.validation: one clear error for a table or an array that breaks its contract."""

import numpy as np
import pandas as pd
import pytest

from prunebias.validation import (
    as_bool,
    as_count,
    as_fractions,
    as_logits,
    as_names,
    require_columns,
    safe_divide,
    same_rows,
    same_shape,
)


def test_a_complete_table_passes():
    require_columns(pd.DataFrame({"a": [1], "b": [2]}), ["b", "a"], "t")


def test_missing_columns_are_named_in_the_order_asked():
    with pytest.raises(ValueError, match=r"^metrics is missing columns \['seed', 'value'\]$"):
        require_columns(pd.DataFrame({"a": [1]}), ["seed", "a", "value"], "metrics")


def test_not_a_frame():
    with pytest.raises(ValueError, match="^index must be a DataFrame, got dict$"):
        require_columns({"id": [1]}, ["id"], "index")


# ------------------------------------------------------------------------------ arrays
def test_as_bool_accepts_bool_and_0_1_and_checks_sizes():
    flags = np.array([[True, False]])
    assert as_bool(flags, "x") is flags  # no copy
    np.testing.assert_array_equal(as_bool([1, 0, 1], "x", ndim=1), [True, False, True])
    assert as_bool(np.zeros((3, 2)), "x", rows=3, cols=2).dtype == bool


@pytest.mark.parametrize(
    "kwargs, value, match",
    [
        ({}, [True, False], r"^labels must be 2-D \(n_samples, n_columns\), got shape \(2,\)$"),
        ({"ndim": 1}, [[True]], r"^labels must be 1-D \(n_samples,\), got shape \(1, 1\)$"),
        ({}, [[0, 2]], r"^labels must be boolean \(or 0/1\), got dtype int64 with other values$"),
        ({}, [["a"]], r"^labels must be boolean \(or 0/1\), got dtype <U1$"),
        ({"rows": 2}, [[True]], r"^labels must have 2 rows, got 1$"),
        ({"cols": 3}, [[True]], r"^labels must have 3 columns, got 1$"),
    ],
)
def test_as_bool_names_the_argument_and_what_was_expected(kwargs, value, match):
    with pytest.raises(ValueError, match=match):
        as_bool(value, "labels", **kwargs)


def test_as_logits_casts_to_float64_or_keeps_the_float_precision():
    z32 = np.zeros((2, 3), dtype=np.float32)
    assert as_logits(z32, "z").dtype == np.float64
    assert as_logits(z32, "z", dtype=None) is z32
    assert as_logits(np.ones((1, 2, 2), dtype=np.int8), "z", ndim=3, dtype=None).dtype == np.float64
    assert np.isinf(as_logits([[np.inf, -np.inf]], "z")).all()  # infinite logits are certain, not missing
    assert as_logits(np.zeros((0, 2)), "z").shape == (0, 2)  # empty unless nonempty=True


@pytest.mark.parametrize(
    "kwargs, value, match",
    [
        ({"ndim": 3}, np.zeros((2, 2)), r"^z must be 3-D \(n_models, n_samples, n_columns\), got shape \(2, 2\)$"),
        ({"ndim": 3, "nonempty": True}, np.zeros((2, 0, 1)), r"^z is empty \(shape \(2, 0, 1\)\)$"),
        ({}, np.array([[True]]), r"^z must be numeric, got dtype bool$"),
        ({}, [[0.0, np.nan, 1.0, np.nan]], r"^z contains NaN \(columns \[1, 3\]\)$"),
        ({"ndim": 3, "dtype": None}, np.full((2, 1, 2), [0.0, np.nan], dtype=np.float32), r"\(columns \[1\]\)$"),
    ],
)
def test_as_logits_names_the_argument_and_what_was_expected(kwargs, value, match):
    with pytest.raises(ValueError, match=match):
        as_logits(value, "z", **kwargs)


def test_same_shape_and_same_rows():
    a, b, c = np.zeros((3, 2)), np.zeros((3, 2)), np.zeros((3, 5))
    same_shape({"a": a, "b": b})
    same_rows({"a": a, "c": c})
    same_shape({"d": np.zeros((2, 3, 2)), "s": np.zeros((4, 3, 2))}, from_axis=1)  # models may differ
    with pytest.raises(ValueError, match=r"^a and c must have the same shape, got \(3, 2\) and \(3, 5\)$"):
        same_shape({"a": a, "c": c})
    with pytest.raises(ValueError, match=r"^p, q and r must have the same shape, got \(2,\), \(3,\) and \(2,\)$"):
        same_shape({"p": np.zeros(2), "q": np.zeros(3), "r": np.zeros(2)})
    with pytest.raises(
        ValueError, match=r"^d and s must have the same shape from axis 1 on, got \(3, 2\) and \(4, 2\)$"
    ):
        same_shape({"d": np.zeros((2, 3, 2)), "s": np.zeros((2, 4, 2))}, from_axis=1)
    with pytest.raises(ValueError, match=r"^a and g must have the same number of rows, got 3 and 4$"):
        same_rows({"a": a, "g": np.zeros((4, 1))})
    for check in (same_shape, same_rows):  # a statistic over no sample is refused
        with pytest.raises(ValueError, match=r"^e has no rows$"):
            check({"e": np.zeros((0, 2)), "f": np.zeros((0, 2))})


# --------------------------------------------------------------------------- arguments
def test_as_names():
    assert as_names(("a", 1), "attributes", size=2) == ["a", "1"]
    with pytest.raises(ValueError, match="^identities must be a list of names, got the string 'Male'$"):
        as_names("Male", "identities")
    with pytest.raises(ValueError, match=r"^identities has duplicates: \['g', 'g'\]$"):
        as_names(["g", "g"], "identities")
    with pytest.raises(ValueError, match="^attributes must name 3 columns, got 2$"):
        as_names(["a", "b"], "attributes", size=3)


def test_as_fractions():
    np.testing.assert_array_equal(as_fractions((0, 0.5, 1), "fractions"), [0.0, 0.5, 1.0])
    for bad in ([], [0.5, 1.5], [-0.1], [np.nan]):
        with pytest.raises(ValueError, match=r"^fractions must be a non-empty list of fractions in \[0, 1\], got "):
            as_fractions(bad, "fractions")


def test_as_count():
    assert as_count(np.int64(3), "n") == 3 and type(as_count(np.int64(3), "n")) is int
    assert as_count(1, "n", minimum=1) == 1
    for bad in (True, 2.0, "2", -1):
        with pytest.raises(ValueError, match="^bootstrap must be an integer >= 0, got "):
            as_count(bad, "bootstrap")
    with pytest.raises(ValueError, match="^top_k must be an integer >= 1, got 0$"):
        as_count(0, "top_k", minimum=1)


def test_safe_divide_is_nan_for_a_zero_denominator():
    got = safe_divide([1, 0, 3], np.array([2, 0, 0]))
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, [0.5, np.nan, np.nan])
    assert safe_divide(np.ones((2, 1)), [1, 2]).shape == (2, 2)  # broadcast
