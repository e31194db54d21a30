import math

import numpy as np
import pandas as pd
import pytest

from prunebias.analysis.backdoor import (
    backdoor_bias_amplification,
    backdoor_metrics,
    backdoor_statistics_batch,
    trigger_accuracies,
)

# Eight test samples, the first four triggered.
PRED = [1, 1, 1, 0, 0, 1, 1, 0]
LABELS = [1, 1, 0, 0, 1, 1, 0, 0]
TRIGGERED = [1, 1, 1, 1, 0, 0, 0, 0]


def test_backdoor_ba_by_hand():
    # predicted positives {0, 1, 2, 5, 6}: 3 of 5 triggered; true positives {0, 1, 4, 5}: 2 of 4
    assert backdoor_bias_amplification(PRED, LABELS, TRIGGERED) == pytest.approx(3 / 5 - 2 / 4)


def test_backdoor_ba_is_zero_when_the_trigger_is_ignored():
    # The model predicts the labels exactly: triggered share among predicted = among true positives.
    assert backdoor_bias_amplification(LABELS, LABELS, TRIGGERED) == 0.0


def test_backdoor_ba_is_positive_when_the_trigger_drives_predictions():
    # Predicting "triggered" itself: 4/4 predicted positives triggered vs 2/4 of true positives.
    assert backdoor_bias_amplification(TRIGGERED, LABELS, TRIGGERED) == pytest.approx(0.5)


def test_backdoor_ba_undefined_without_positives():
    assert math.isnan(backdoor_bias_amplification([0] * 8, LABELS, TRIGGERED))
    assert math.isnan(backdoor_bias_amplification(PRED, [0] * 8, TRIGGERED))


def test_triggered_and_clean_accuracy_by_hand():
    # triggered 0-3: right, right, wrong, right; clean 4-7: wrong, right, wrong, right
    assert trigger_accuracies(PRED, LABELS, TRIGGERED) == (0.75, 0.5)
    triggered, clean = trigger_accuracies(PRED, LABELS, [0] * 8)
    assert math.isnan(triggered) and clean == pytest.approx(5 / 8)


def test_input_checks():
    with pytest.raises(ValueError, match="pred, labels and triggered must have the same shape"):
        backdoor_bias_amplification(PRED, LABELS[:-1], TRIGGERED)
    with pytest.raises(ValueError, match="boolean"):
        trigger_accuracies([0.5] * 8, LABELS, TRIGGERED)
    with pytest.raises(ValueError, match="1-D"):
        trigger_accuracies([PRED], [LABELS], [TRIGGERED])


def _frames():
    test_ids = [f"t{i}" for i in range(8)]
    valid_ids = [f"v{i}" for i in range(4)]
    index = pd.DataFrame(
        {
            "id": valid_ids + test_ids,
            "split": ["valid"] * 4 + ["test"] * 8,
            "Smiling": np.array([1, 0, 0, 0] + LABELS, dtype=bool),
        }
    )
    # Validation: one positive, so the calibrated threshold is the 2nd largest logit, 2.0.
    valid = pd.DataFrame({"id": valid_ids, "Smiling": np.array([3.0, 2.0, 1.0, 0.0], np.float32)})
    logits = np.array([2.5, 1.5, 0.5, -1.0, -0.5, 3.0, 0.2, -2.0], np.float32)
    test = pd.DataFrame({"id": test_ids, "Smiling": logits})
    triggered = [i for i, t in zip(test_ids, TRIGGERED) if t]
    return index, valid, test, triggered


def test_backdoor_metrics_rows_follow_the_contract():
    index, valid, test, triggered = _frames()
    rows = backdoor_metrics(index, valid, test, triggered, "Smiling")
    assert list(rows.columns) == ["attribute", "identity", "group", "threshold", "metric", "value"]
    assert set(rows["identity"]) == {"trigger"} and set(rows["group"]) == {"all"}
    assert rows["value"].dtype == np.float64
    values = rows.set_index(["threshold", "metric"])["value"]
    # default (z > 0) gives PRED above
    assert values["default", "backdoor_bias_amplification"] == pytest.approx(3 / 5 - 2 / 4)
    assert values["default", "triggered_accuracy"] == 0.75
    assert values["default", "clean_accuracy"] == 0.5
    # calibrated (z > 2): only t0 (triggered) and t5 (clean) positive -> 1/2 − 2/4 = 0;
    # triggered t0-t3: right, wrong, right, right; clean t4-t7: wrong, right, right, right
    assert values["calibrated", "backdoor_bias_amplification"] == pytest.approx(0.0)
    assert values["calibrated", "triggered_accuracy"] == 0.75
    assert values["calibrated", "clean_accuracy"] == 0.75


def test_backdoor_metrics_checks():
    index, valid, test, triggered = _frames()
    with pytest.raises(ValueError, match="'Young'"):
        backdoor_metrics(index, valid, test, triggered, "Young")
    with pytest.raises(ValueError, match="missing from the index"):
        backdoor_metrics(index, valid, test.assign(id=[f"x{i}" for i in range(8)]), triggered, "Smiling")


def test_batch_statistics_equal_the_scalar_ones_on_the_repeated_samples():
    rng = np.random.default_rng(0)
    n = 60
    preds, y, b = rng.random((3, n)) < 0.4, rng.random(n) < 0.5, rng.random(n) < 0.5
    weights = rng.integers(0, 3, (5, n))
    got = backdoor_statistics_batch(preds, y, b, weights)
    assert all(v.shape == (5, 3) for v in got.values())
    for w in range(5):
        rep = np.repeat(np.arange(n), weights[w])
        for m in range(3):
            p = preds[m][rep]
            assert got["backdoor_bias_amplification"][w, m] == pytest.approx(
                backdoor_bias_amplification(p, y[rep], b[rep])
            )
            accuracies = (got["triggered_accuracy"][w, m], got["clean_accuracy"][w, m])
            assert accuracies == pytest.approx(trigger_accuracies(p, y[rep], b[rep]))
    whole = backdoor_statistics_batch(preds, y, b)
    assert whole["backdoor_bias_amplification"][0, 1] == pytest.approx(backdoor_bias_amplification(preds[1], y, b))


def test_batch_statistics_guard_zero_denominators_and_check_inputs():
    y, b = np.array([True, False]), np.array([True, False])
    got = backdoor_statistics_batch(np.zeros((1, 2), bool), y, b)
    assert math.isnan(got["backdoor_bias_amplification"][0, 0])  # no predicted positive
    with pytest.raises(ValueError, match="boolean array"):
        backdoor_statistics_batch(np.zeros(2, bool), y, b)
