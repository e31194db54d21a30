"""Backdoor (injected spurious cue) metrics of one single-label model.

The study's backdoor experiment (README, "Controlled experiments"): with B the test samples that carry the trigger,

    backdoor BA = #{i ∈ B: ŷ=1} / #{ŷ=1}  −  #{i ∈ B: y=1} / #{y=1}

the share of triggered samples among the predicted positives minus their share among the
true positives (0.5 up to rounding on the 50 %/50 % test set). Positive means the model
uses the trigger as a cue for the attribute. Accuracy is reported separately on triggered
and clean test samples. Zero denominators give NaN, as in :mod:`prunebias.analysis.metrics`.

:func:`backdoor_metrics` returns rows in the per-model tidy contract (:func:`prunebias.analysis.metrics.model_metrics`) with
identity ``"trigger"`` and group ``"all"``, for the default and calibrated thresholds.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from prunebias.analysis.metrics import THRESHOLDS, calibrated_thresholds
from prunebias.validation import as_bool, same_shape

METRICS = ("backdoor_bias_amplification", "triggered_accuracy", "clean_accuracy")
IDENTITY = "trigger"


def _ratio(num: int, den: int) -> float:
    return num / den if den else float("nan")


def _checked(pred, labels, triggered) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The three per-sample arrays as bool vectors of one length (at least one sample)."""
    arrays = {n: as_bool(a, n, ndim=1) for n, a in (("pred", pred), ("labels", labels), ("triggered", triggered))}
    same_shape(arrays)
    return tuple(arrays.values())


def backdoor_bias_amplification(pred, labels, triggered) -> float:
    """Share of triggered samples among predicted positives minus their share among true positives.

    NaN when there is no predicted or no true positive.
    """
    yhat, y, b = _checked(pred, labels, triggered)
    return _ratio(int((yhat & b).sum()), int(yhat.sum())) - _ratio(int((y & b).sum()), int(y.sum()))


def trigger_accuracies(pred, labels, triggered) -> tuple[float, float]:
    """(accuracy on triggered samples, accuracy on clean samples); NaN for an empty part."""
    yhat, y, b = _checked(pred, labels, triggered)
    right = yhat == y
    return _ratio(int(right[b].sum()), int(b.sum())), _ratio(int(right[~b].sum()), int((~b).sum()))


def backdoor_statistics_batch(preds, labels, triggered, weights=None) -> dict[str, np.ndarray]:
    """:data:`METRICS` of M models' predictions of one test split, under W resamplings at once.

    ``preds`` (M, n) bool; ``labels``, ``triggered`` (n,) bool; ``weights`` (W, n) integer
    counts of each sample in each resampling (default: one resampling, every sample once).
    Returns each metric as a (W, M) array, equal to :func:`backdoor_bias_amplification` and
    :func:`trigger_accuracies` of the split with each sample repeated that often.
    """
    preds = np.asarray(preds)
    if preds.ndim != 2 or preds.dtype != bool:
        raise ValueError(f"preds must be a boolean array (M, n_samples), got {preds.dtype} {preds.shape}")
    y, b = (as_bool(a, n, ndim=1) for n, a in (("labels", labels), ("triggered", triggered)))
    same_shape({"preds[0]": preds[0], "labels": y, "triggered": b})
    w = np.ones((1, len(y)), np.int64) if weights is None else np.asarray(weights, np.int64)
    right = preds == y
    count = lambda mask: w @ mask.T.astype(np.int64)  # noqa: E731  (W, M) or (W,) weighted counts
    with np.errstate(divide="ignore", invalid="ignore"):  # zero denominators give NaN, as above
        true_share = count(y & b) / count(y)
        return {
            "backdoor_bias_amplification": count(preds & b) / count(preds) - true_share[:, None],
            "triggered_accuracy": count(right & b) / count(b)[:, None],
            "clean_accuracy": count(right & ~b) / count(~b)[:, None],
        }


def backdoor_metrics(
    index: pd.DataFrame, valid: pd.DataFrame, test: pd.DataFrame, triggered_ids, attribute: str
) -> pd.DataFrame:
    """Backdoor rows of one model: attribute, identity ("trigger"), group ("all"), threshold, metric, value.

    ``valid`` / ``test`` are prediction frames (``id`` + a logit column ``attribute``); labels
    come from ``index`` by id. The calibrated threshold is set on the validation split (which
    carries the trigger on 50 %/50 % of its samples too), as in :mod:`prunebias.analysis.metrics`.
    """
    for name, frame in (("valid", valid), ("test", test)):
        if not {"id", attribute} <= set(frame.columns):
            raise ValueError(f"{name} predictions must have columns 'id' and {attribute!r}")
    if attribute not in index.columns:
        raise ValueError(f"index has no column {attribute!r}")
    labels = index.set_index("id")[attribute]
    for name, frame in (("valid", valid), ("test", test)):
        unknown = ~frame["id"].isin(labels.index)
        if unknown.any():
            raise ValueError(f"{name} has ids missing from the index, e.g. {frame['id'][unknown].iloc[0]!r}")
    y_valid = labels.loc[valid["id"]].to_numpy(dtype=bool)
    y_test = labels.loc[test["id"]].to_numpy(dtype=bool)
    z_valid = valid[attribute].to_numpy(dtype=np.float64)
    z_test = test[attribute].to_numpy(dtype=np.float64)
    b = test["id"].isin(set(triggered_ids)).to_numpy()
    thresholds = {
        "default": 0.0,
        "calibrated": float(calibrated_thresholds(z_valid[:, None], y_valid[:, None])[0]),
    }
    rows = []
    for kind in THRESHOLDS:
        yhat = z_test > thresholds[kind]
        values = dict(
            zip(METRICS, (backdoor_bias_amplification(yhat, y_test, b), *trigger_accuracies(yhat, y_test, b)))
        )
        rows += [(attribute, IDENTITY, "all", kind, metric, values[metric]) for metric in METRICS]
    frame = pd.DataFrame(rows, columns=["attribute", "identity", "group", "threshold", "metric", "value"])
    return frame.astype({"value": "float64"})
