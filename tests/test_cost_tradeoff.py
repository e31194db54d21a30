"""The equal-cost comparison (prunebias.analysis.cost_tradeoff): ratios and changes per seed against
that seed's dense model, then means over seeds; the matched-accuracy choice per method."""

import numpy as np
import pandas as pd
import pytest

from prunebias.analysis.cost_tradeoff import POINT_COLUMNS, cost_points, matched_accuracy
from prunebias.analysis.metrics import cost_rows
from prunebias.vocabulary import COST_METRICS

SETTING = {"dataset": "synth", "task": "joint", "arch": "small_cnn"}


def _model(method, sparsity, seed, cost, accuracy, ba):
    """Tidy metrics of one model: its cost rows, two attributes' accuracy, BA for two identities."""
    rows = cost_rows(cost)
    acc = pd.DataFrame(
        {
            "attribute": ["A", "B"],
            "identity": "all",
            "group": "all",
            "threshold": "default",
            "metric": "accuracy",
            "value": accuracy,
        }
    )
    bias = pd.DataFrame(
        {
            "attribute": ["A", "B", "A"],
            "identity": ["Male", "Male", "Young"],
            "group": "all",
            "threshold": "default",
            "metric": "bias_amplification",
            "value": ba,
        }
    )
    calibrated = acc.assign(threshold="calibrated", value=0.0)  # other thresholds are ignored
    frame = pd.concat([rows, acc, bias, calibrated], ignore_index=True)
    return frame.assign(**SETTING, method=method, sparsity=sparsity, seed=seed)


def _cost(latency, size, params=1000, flops=4000):
    return {
        "params": params,
        "flops": flops,
        "size_bytes": size,
        "latency_ms_b1": latency,
        "latency_ms_b64": latency / 2,
    }


@pytest.fixture
def metrics():
    frames = []
    for seed, dense_latency in ((1, 2.0), (2, 4.0)):
        frames.append(_model("dense", 0.0, seed, _cost(dense_latency, 400), [0.9, 0.8], [0.0, 0.1, 0.2]))
        frames.append(
            _model("int8", 0.0, seed, _cost(dense_latency / 4, 100), [0.89, 0.80], [0.01, 0.1, 0.2 + 0.03 * seed])
        )
        frames.append(
            _model("channels", 0.5, seed, _cost(dense_latency / 2, 200, 500, 2000), [0.85, 0.75], [0.1, 0.2, np.nan])
        )
    return pd.concat(frames, ignore_index=True)


def test_points_are_per_seed_ratios_and_changes_averaged_over_seeds(metrics):
    points = cost_points(metrics).set_index("method")
    assert list(cost_points(metrics).columns) == POINT_COLUMNS
    int8 = points.loc["int8"]
    assert int8["speedup_b1"] == pytest.approx(4.0) and int8["speedup_b64"] == pytest.approx(4.0)
    assert int8["size_ratio"] == pytest.approx(0.25) and int8["seeds"] == 2
    assert int8["delta_accuracy"] == pytest.approx(-0.5)  # points: (89 + 80) / 2 − (90 + 80) / 2
    # BA: mean over pairs per seed (0.01 + 0.1 + 0.2 + 0.03·seed) / 3 − 0.1, then over seeds
    assert int8["delta_ba"] == pytest.approx(np.mean([(0.31 + 0.03 * s) / 3 - 0.1 for s in (1, 2)]))
    channels = points.loc["channels"]
    assert channels["params_ratio"] == pytest.approx(0.5) and channels["flops_ratio"] == pytest.approx(0.5)
    assert channels["delta_ba"] == pytest.approx(0.15 - 0.1)  # the undefined pair is skipped
    assert channels["family"] == "channels" and "dense" not in points.index


def test_matched_accuracy_keeps_the_most_compressed_model_within_the_drop_least_bias_first(metrics):
    points = cost_points(metrics)
    best = matched_accuracy(points, max_drop=1.0)
    assert list(best["method"]) == ["int8"]  # channels lose 5 points
    both = matched_accuracy(points, max_drop=10.0)
    assert list(both["method"]) == list(both.sort_values("delta_ba")["method"])
    smaller = points[points["method"] == "int8"].assign(sparsity=0.1, flops_ratio=0.5, speedup_b64=0.5)
    assert matched_accuracy(pd.concat([points, smaller]), 1.0)["sparsity"].item() == 0.1  # FLOPs, not timing
    fewer = points[points["method"] == "int8"].assign(sparsity=0.2, params_ratio=0.1)
    assert matched_accuracy(pd.concat([points, fewer]), 1.0)["sparsity"].item() == 0.2


def test_no_cost_rows_give_no_points(metrics):
    assert cost_points(metrics[~metrics["metric"].isin(COST_METRICS)]).empty


def test_cost_rows_need_every_measurement():
    with pytest.raises(ValueError, match="latency_ms_b64"):
        cost_rows({"params": 1, "flops": 2, "size_bytes": 3, "latency_ms_b1": 4})


def test_figure_draws_one_line_per_method_in_every_panel(metrics):
    from prunebias.plots.figures_cost import cost_tradeoff

    fig = cost_tradeoff(metrics)
    axes = [ax for ax in fig.axes if ax.get_title()]
    assert len(axes) == 4
    for ax in axes:
        data_lines = [line for line in ax.get_lines() if line.get_gid() != "reference"]
        assert len(data_lines) == 2 + 1  # int8, channels, and the dense point


def test_figure_without_cost_measurements_says_so(metrics):
    from prunebias.plots.figures_cost import cost_tradeoff

    fig = cost_tradeoff(metrics[~metrics["metric"].isin(COST_METRICS)])
    assert "no cost measurements" in fig.axes[0].texts[0].get_text()


def test_report_tables_and_sentence(metrics):
    from prunebias.report.context import matched_sentence
    from prunebias.report.tables import cost_table, matched_table

    points = cost_points(metrics)
    assert len(cost_table(points).rows) == 2
    table = matched_table(points)
    assert [row[0][0] for row in table.rows] == ["int8"]
    assert table.rows[0][1][0] == "8-bit weights"
    sentence = matched_sentence(points)
    assert sentence.startswith("within 1 point of the dense accuracy, int8") and "4.00×" in sentence
    assert "No compressed model" in matched_sentence(points, max_drop=0.1)
