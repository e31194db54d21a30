import numpy as np
import pandas as pd
import pytest

from workflow_utils import benchmark_script

support_pairs = benchmark_script("support_pairs")

N_TEST = 1000


def _metrics(ba: dict, positives: dict) -> pd.DataFrame:
    """Per-model metric rows for Male over attributes A, B, C; ``ba`` and ``positives`` map
    (sparsity, seed) to three values each."""
    rows = []
    for (sparsity, seed), values in ba.items():
        method = "dense" if sparsity == 0 else "gmp"
        base = dict(dataset="d", task="joint", arch="a", method=method, sparsity=sparsity, seed=seed, group="all")
        for attribute, value, count in zip("ABC", values, positives[sparsity, seed]):
            rows.append(
                {
                    **base,
                    "attribute": attribute,
                    "identity": "Male",
                    "threshold": "default",
                    "metric": "bias_amplification",
                    "value": value,
                }
            )
            rows.append(
                {
                    **base,
                    "attribute": attribute,
                    "identity": "all",
                    "threshold": "default",
                    "metric": "positive_rate",
                    "value": count / N_TEST,
                }
            )
    return pd.DataFrame(rows)


def test_support_drops_undefined_and_near_collapsed_pairs_and_means_the_rest():
    nan = np.nan
    ba = {
        (0.0, 1): [0.10, 0.20, 0.30],
        (0.0, 2): [0.12, nan, 0.28],  # B undefined for a dense model: not even listed
        (0.9, 1): [0.15, 0.25, 0.60],
        (0.9, 2): [0.11, 0.30, 0.90],
    }
    positives = {
        (0.0, 1): [400, 300, 200],
        (0.0, 2): [410, 290, 210],
        (0.9, 1): [390, 280, 50],
        (0.9, 2): [405, 310, 5],  # C predicted for 5 samples: below 10, it leaves the support
    }
    table = support_pairs.pair_table(_metrics(ba, positives), N_TEST, min_positives=10).set_index("attribute")
    assert list(table.index) == ["A", "C"]
    assert table.loc["C", "fewest_predicted"] == 5 and not table.loc["C", "in_support"]
    assert table.loc["A", "in_support"]
    assert table.loc["C", ["seed 1", "seed 2"]].tolist() == pytest.approx([0.30, 0.62])
    means = support_pairs.support_means(table.reset_index().assign(dataset="d", arch="a"))
    assert means["pairs"].tolist() == [1]
    assert means["delta"].iloc[0] == pytest.approx(np.mean([0.15 - 0.10, 0.11 - 0.12]))
    # With a looser rule C stays in and the mean covers both pairs.
    loose = support_pairs.pair_table(_metrics(ba, positives), N_TEST, min_positives=5)
    means = support_pairs.support_means(loose.assign(dataset="d", arch="a"))
    assert means["pairs"].iloc[0] == 2
    assert means["delta"].iloc[0] == pytest.approx(np.mean([(0.05 + 0.30) / 2, (-0.01 + 0.62) / 2]))
    assert support_pairs.support_lines(loose.assign(dataset="d", arch="a"), ["Male"], "default")
