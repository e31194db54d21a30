"""Tests of prunebias.analysis.cies on constructed predictions whose CIEs and flips are known."""

import numpy as np
import pytest

from criteria_inputs import confident
from prunebias.analysis import cies


def test_majority_vote_breaks_ties_by_mean_probability():
    z = np.array([[2.0, 2.0, 1.0, 1.0], [1.0, -1.0, -2.0, -1.0]])[:, :, None]  # 2 seeds, 4 samples
    # both positive; tie with mean p 0.575; tie with mean p 0.425; tie with mean p exactly 0.5
    assert cies.majority_vote(z)[:, 0].tolist() == [True, True, False, False]
    z3 = np.array([[1.0], [-1.0], [-5.0]])[:, :, None]
    assert not cies.majority_vote(z3)[0, 0]


def test_cies_placed_on_purpose_are_found_and_nothing_else():
    rng = np.random.default_rng(0)
    n, n_attr = 300, 5
    base = rng.random((n, n_attr)) < 0.4
    dense = np.stack([confident(base, rng) for _ in range(3)])
    sparse = dense.copy()
    dense[0, :20, 0] *= -1  # one dense seed disagrees: the dense vote does not change
    cells = rng.choice(n * n_attr, size=40, replace=False)
    cie_cells, decoys = cells[:25], cells[25:]
    cie_rows, cie_cols = np.unravel_index(cie_cells, (n, n_attr))
    sparse[1:, cie_rows, cie_cols] *= -1  # 2 of 3 sparse seeds flip: the sparse vote flips
    dec_rows, dec_cols = np.unravel_index(decoys, (n, n_attr))
    sparse[2, dec_rows, dec_cols] *= -1  # 1 of 3 flips: a flip, but no CIE
    sparse[0, 20:40, 1] *= 0.5  # smaller margins, same sign: nothing
    expected = np.zeros((n, n_attr), dtype=bool)
    expected[cie_rows, cie_cols] = True

    cie = cies.compression_identified_exemplars(dense, sparse)
    np.testing.assert_array_equal(cie, expected)

    flips = cies.prediction_flips(dense, sparse)
    assert flips.shape == (3, n, n_attr)
    assert flips[1].sum() == 25 and flips[2].sum() == 40
    # seed 0: its dense parent disagreed with the other dense seeds on 20 pairs
    assert flips[0].sum() == 20 and flips[0, :20, 0].all()


def test_flips_match_seeds_by_value():
    rng = np.random.default_rng(1)
    dense = confident(rng.random((3, 50, 2)) < 0.5, rng)
    sparse = dense[[1, 0]].copy()  # seeds 24, 23 of dense seeds 23, 24, 25
    sparse[0, :7, 0] *= -1
    flips = cies.prediction_flips(dense, sparse, dense_seeds=[23, 24, 25], sparse_seeds=[24, 23])
    assert flips.shape == (2, 50, 2)
    assert flips[0].sum() == 7 and flips[1].sum() == 0
    with pytest.raises(ValueError, match="dense_seeds and sparse_seeds"):
        cies.prediction_flips(dense, sparse)  # 3 vs 2 models, no seeds to match them
    with pytest.raises(ValueError, match="no seed in common"):
        cies.align_seeds([23, 24], [7])


def test_over_representation_is_one_for_uniform_cies_and_inverse_share_when_concentrated():
    n, n_attr = 1000, 3
    idx = np.arange(n)
    cie = np.zeros((n, n_attr), dtype=bool)
    cie[idx % 5 == 0] = True  # 1 in 5 of every group of the first identity
    groups = np.stack([(idx // 5) % 2 == 0, idx % 5 == 0], axis=1)
    table = cies.cie_group_table(cie, None, groups, ["a", "b", "c"], ["g", "h"])
    g = table[table["identity"] == "g"]
    np.testing.assert_allclose(g["over_representation"], 1.0)
    np.testing.assert_allclose(g["rate"], 0.2)
    h = table[(table["identity"] == "h") & (table["attribute"] == "a")].set_index("group")
    assert h.loc["1", "over_representation"] == pytest.approx(5.0)  # every CIE in 20% of samples
    assert h.loc["0", "over_representation"] == 0.0
    pooled = table[(table["attribute"] == "all") & (table["identity"] == "all")].iloc[0]
    assert pooled["n_pairs"] == n * n_attr and pooled["n_events"] == 600


def test_cie_group_table_averages_flips_over_seeds_and_leaves_no_event_undefined():
    n = 100
    cie = np.zeros((n, 1), dtype=bool)
    flips = np.zeros((2, n, 1), dtype=bool)
    flips[0, :10] = True  # 10 flips in one model, 0 in the other: 5 per model
    groups = (np.arange(n) < 50)[:, None]
    table = cies.cie_group_table(cie, flips, groups, ["a"], ["g"])
    flip = table[(table["kind"] == "flip") & (table["attribute"] == "a")].set_index(["identity", "group"])
    assert flip.loc[("all", "all"), "n_events"] == 5.0
    assert flip.loc[("g", "1"), "over_representation"] == pytest.approx(2.0)
    assert table[table["kind"] == "cie"]["over_representation"].isna().all()
