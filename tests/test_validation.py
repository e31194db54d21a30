"""prunebias.validation: one clear error for a table that breaks its contract."""

import pandas as pd
import pytest

from prunebias.validation import require_columns


def test_a_complete_table_passes():
    require_columns(pd.DataFrame({"a": [1], "b": [2]}), ["b", "a"], "t")


def test_missing_columns_are_named_in_the_order_asked():
    with pytest.raises(ValueError, match=r"^metrics is missing columns \['seed', 'value'\]$"):
        require_columns(pd.DataFrame({"a": [1]}), ["seed", "a", "value"], "metrics")


def test_not_a_frame():
    with pytest.raises(ValueError, match="^index must be a DataFrame, got dict$"):
        require_columns({"id": [1]}, ["id"], "index")
