"""The equal-cost figure: ΔBA and Δaccuracy of every compressed model against its measured
speed-up and size (:mod:`prunebias.analysis.cost_tradeoff`), one line per method, so families
are compared at what they cost rather than at their nominal sparsity."""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from prunebias.analysis.cost_tradeoff import cost_points
from prunebias.plots.figures import (
    _check_table,
    _grid,
    _in_setting,
    _legend,
    _mark_undefined,
    _method_order,
    _reference,
    _setting_title,
    _settings,
    method_colors,
    styled,
)
from prunebias.vocabulary import METRICS_COLUMNS

#: x (column, axis label) and y (column, axis label) of the four panels of a setting.
X_AXES = {"speedup_b64": "speed-up on the CPU (batch 64, × dense)", "size_ratio": "size on disk (× dense)"}
Y_AXES = {"delta_ba": "ΔBA vs dense (mean over pairs)", "delta_accuracy": "Δaccuracy vs dense (points)"}
X_TITLES = {"speedup_b64": "speed-up", "size_ratio": "size"}
Y_TITLES = {"delta_ba": "ΔBA", "delta_accuracy": "Δaccuracy"}


@styled
def cost_tradeoff(metrics: pd.DataFrame) -> Figure:
    """ΔBA (top) and Δaccuracy (bottom) against speed-up (left) and size (right), one row pair per
    setting; the dense model is the reference point (1, 0) of every panel. Without cost
    measurements (audit-only data sets) the one panel says so."""
    _check_table(metrics, METRICS_COLUMNS, "metrics")
    points = cost_points(metrics)
    if points.empty:
        fig, axes = _grid(1, 1, sharey=False)
        _mark_undefined(axes[0, 0], "no cost measurements (imported predictions, or made by an older version)")
        return fig
    methods = _method_order(points["method"])
    colors = method_colors(methods)
    settings = _settings(points)
    fig, axes = _grid(2 * len(settings), 2, sharey="row")
    for i, setting in enumerate(settings):
        here = _in_setting(points, setting)
        for r, (y, ylabel) in enumerate(Y_AXES.items()):
            for c, (x, xlabel) in enumerate(X_AXES.items()):
                ax = axes[2 * i + r, c]
                for method in methods:  # a method's levels in order: its curve as it compresses more
                    line = here[here["method"] == method].sort_values("sparsity")
                    ax.plot(line[x], line[y], marker="o", markersize=4, color=colors[method])
                ax.plot([1.0], [0.0], marker="s", color=colors.get("dense", "0.25"), linestyle="none")
                _reference(ax, 0.0)
                ax.set_xscale("log")
                ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
                ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}×"))
                ax.xaxis.set_minor_formatter(NullFormatter())
                ax.set_title(_setting_title(setting, len(settings), f"{Y_TITLES[y]} against {X_TITLES[x]}"))
                ax.set_xlabel(xlabel)
                ax.set_ylabel(ylabel if c == 0 else "")
    fig.suptitle("Compression families at equal cost (mean over seeds; square: dense)")
    _legend(fig, methods)
    return fig
