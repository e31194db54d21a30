"""Users' tables: reading by suffix and the binary label encodings."""

import numpy as np
import pandas as pd
import pytest

from prunebias.data.tables import (
    TableError,
    binary_labels,
    check_both_values,
    first_duplicate,
    read_table,
    table_columns,
)


@pytest.mark.parametrize(
    "values, expected",
    [
        ([0, 1, 1], [False, True, True]),
        ([0.0, 1.0, 0.0], [False, True, False]),
        ([-1, 1, -1], [False, True, False]),
        (["True", "false", "TRUE"], [True, False, True]),
        ([True, False, True], [True, False, True]),
        ([1, 1, 1], [True, True, True]),  # one value only is allowed: the analysis decides what it needs
        ([-1, -1, -1], [False, False, False]),
    ],
)
def test_encodings_map_to_bool(values, expected):
    out = binary_labels(pd.DataFrame({"a": values}), ["a"], table_path="t.csv")
    assert out["a"].dtype == bool and list(out["a"]) == expected


@pytest.mark.parametrize(
    "values, row, value",
    [
        ([0, 1, 2], 3, "2"),
        (["yes", "no", "yes"], 1, "'yes'"),
        ([0, -1, 1], 2, "-1"),  # 0/1 and -1/1 mixed: the first value outside 0/1
        ([1, -1, 0], 3, "0"),  # "1" fits both; -1 decides the encoding
        ([0.0, np.nan, 1.0], 2, "nan"),
        ([0.5, 1, 0], 1, "0.5"),
    ],
)
def test_non_binary_columns_are_refused_with_row_and_value(values, row, value):
    with pytest.raises(TableError, match=rf"t.csv: column 'a', row {row}: value {value} is not binary"):
        binary_labels(pd.DataFrame({"a": values}), ["a"], table_path="t.csv")


def test_read_table_by_suffix_keeps_id_text(tmp_path):
    (tmp_path / "t.csv").write_text("id,a\n000123,1\n000124,0\n")
    table = read_table(tmp_path / "t.csv")
    assert list(table["id"]) == ["000123", "000124"] and table["a"].dtype.kind == "i"
    (tmp_path / "t.tsv").write_text("id\ta\nx\t-1\n")
    assert read_table(tmp_path / "t.tsv")["a"].tolist() == [-1]
    pd.DataFrame({"id": ["x"], "a": [True]}).to_parquet(tmp_path / "t.parquet")
    assert read_table(tmp_path / "t.parquet")["a"].tolist() == [True]


def test_read_table_refuses_other_suffixes_missing_and_damaged_files(tmp_path):
    with pytest.raises(TableError, match=r"t.xlsx: a table must be .csv, .tsv, .parquet, .pq"):
        read_table(tmp_path / "t.xlsx")
    with pytest.raises(TableError, match="no such file"):
        read_table(tmp_path / "absent.csv")
    (tmp_path / "bad.parquet").write_bytes(b"not parquet")
    with pytest.raises(TableError, match="bad.parquet: not a readable table"):
        read_table(tmp_path / "bad.parquet")


def test_first_duplicate_names_the_earliest_repeat_and_its_first_occurrence():
    assert first_duplicate(pd.Series(["a", "b", "c"])) is None
    assert first_duplicate(pd.Series(["a", "b", "b", "a"])) == (1, 2)
    assert first_duplicate(pd.Series(["x", "a", "y", "a", "a"])) == (1, 3)


def test_table_columns_reads_the_header_only(tmp_path):
    (tmp_path / "t.csv").write_text("id,a,b\n1,2,3\n")
    assert table_columns(tmp_path / "t.csv") == ["id", "a", "b"]
    pd.DataFrame({"id": ["x"], "c": [1.0]}).to_parquet(tmp_path / "t.parquet")
    assert table_columns(tmp_path / "t.parquet") == ["id", "c"]
    with pytest.raises(TableError, match="t.xlsx: a table must be"):
        table_columns(tmp_path / "t.xlsx")


def test_every_attribute_needs_both_values_in_every_split():
    split = ["train", "train", "test", "test"]
    good = pd.DataFrame({"Smiling": [True, False, True, False], "Male": [False, True, True, False]})
    check_both_values(good, split, table_path="t.csv")
    always = good.assign(Smiling=[True, False, True, True])
    with pytest.raises(TableError, match=r"t.csv: attribute 'Smiling' has no negatives in split 'test' \(2 rows\)"):
        check_both_values(always, split, table_path="t.csv")
    never = good.assign(Male=[False, True, False, False])
    with pytest.raises(TableError, match=r"attribute 'Male' has no positives in split 'test'"):
        check_both_values(never, split, table_path="t.csv")
