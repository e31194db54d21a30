"""Property tests (hypothesis) that tests/test_metrics.py and tests/test_pruning.py leave out:
every array metric is invariant to the order of the samples, calibrated thresholds give the
validation positive count per attribute (with ties: at most that count, exactly it when the
boundary is not tied), and masks applied to a model give exactly the target sparsity.
"""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from torch import nn

from prunebias.analysis import dependence
from prunebias.analysis import metrics as m
from prunebias.training.pruning import MaskSet, measured_sparsity


def same(a, b):
    np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12, equal_nan=True)


@st.composite
def samples(draw):
    """A test split (logits, labels, identity groups) and a training split, with a few attributes."""
    n, n_train = draw(st.integers(1, 40)), draw(st.integers(1, 40))
    n_attr, n_ident = draw(st.integers(1, 4)), draw(st.integers(1, 2))
    # Logits from a small set (ties) or continuous.
    values = st.sampled_from([-2.0, -0.5, 0.0, 0.5, 2.0]) | st.floats(-30, 30)
    return {
        "z": draw(arrays(np.float64, (n, n_attr), elements=values)),
        "y": draw(arrays(bool, (n, n_attr))),
        "g": draw(arrays(bool, (n, n_ident))),
        "y_train": draw(arrays(bool, (n_train, n_attr))),
        "g_train": draw(arrays(bool, (n_train, n_ident))),
        "perm": np.asarray(draw(st.permutations(range(n)))),
        "perm_train": np.asarray(draw(st.permutations(range(n_train)))),
    }


def all_metrics(d):
    """Every array metric of one model (default threshold and calibrated on the same split)."""
    z, y, g = d["z"], d["y"], d["g"]
    pred = m.predict(z, 0.0)
    names = dict(attributes=[f"a{j}" for j in range(z.shape[1])], identities=[f"g{j}" for j in range(g.shape[1])])
    return {
        "thresholds": m.calibrated_thresholds(z, y),
        "accuracy": m.accuracy(pred, y),
        "positive_rate": m.positive_rate(pred),
        "auc": m.auc(z, y),
        "uncertainty": m.uncertainty(z),
        "ece": m.ece(z, y, 5),
        "interdependence": dependence.interdependence(pred),
        "rare_value_ratio": m.rare_value_ratio(pred, y, d["y_train"]),
        "bias_amplification": m.bias_amplification(
            pred, y, g, d["y_train"], d["g_train"], **names, min_positives=1, min_relative_gap=0.0
        ),
        **m.group_rates(pred, y, g),
        **m.fairness_gaps(pred, y, g),
    }


@settings(max_examples=80, deadline=None)
@given(samples())
def test_every_array_metric_is_invariant_to_sample_order(d):
    expected = all_metrics(d)
    p, q = d["perm"], d["perm_train"]
    shuffled = {
        **d,
        "z": d["z"][p],
        "y": d["y"][p],
        "g": d["g"][p],
        "y_train": d["y_train"][q],
        "g_train": d["g_train"][q],
    }
    got = all_metrics(shuffled)
    for name in expected:
        same(got[name], expected[name])


@settings(max_examples=120, deadline=None)
@given(samples())
def test_calibrated_thresholds_give_the_validation_positive_count_per_attribute(d):
    z, y = d["z"], d["y"]
    positives = m.predict(z, m.calibrated_thresholds(z, y)).sum(axis=0)
    k = y.sum(axis=0)
    desc = -np.sort(-z, axis=0)
    for j in range(z.shape[1]):
        # Exactly k unless the k-th and (k+1)-th largest logits tie; then fewer, never more.
        boundary_tied = 0 < k[j] < len(z) and desc[k[j] - 1, j] == desc[k[j], j]
        assert positives[j] <= k[j]
        assert positives[j] == k[j] or boundary_tied


layers = st.lists(
    st.tuples(st.sampled_from(["linear", "conv"]), st.integers(1, 6), st.integers(1, 6), st.sampled_from([1, 3])),
    min_size=1,
    max_size=4,
)


@settings(max_examples=60, deadline=None)
@given(
    layers=layers,
    s=st.floats(0.0, 1.0, exclude_max=True),
    scope=st.sampled_from(["global", "layerwise"]),
    seed=st.integers(0, 2**16),
)
def test_masks_applied_to_a_model_give_exactly_the_target_sparsity(layers, s, scope, seed):
    torch.manual_seed(seed)
    model = nn.Sequential(*[nn.Linear(i, o) if kind == "linear" else nn.Conv2d(i, o, k) for kind, i, o, k in layers])
    weights = [mod.weight for mod in model]
    masks = MaskSet.from_model(model, s, scope)
    masks.apply()
    zeros = [int((w == 0).sum()) for w in weights]
    if scope == "layerwise":
        assert zeros == [round(s * w.numel()) for w in weights]
    total = sum(w.numel() for w in weights)
    assert sum(zeros) == (round(s * total) if scope == "global" else sum(round(s * w.numel()) for w in weights))
    assert measured_sparsity(model)["global"] == pytest.approx(sum(zeros) / total, abs=0)
    assert masks.sparsity() == pytest.approx(sum(zeros) / total, abs=0)
