"""Figures of the controlled experiments: single-label vs joint ΔBA, and backdoors, vs sparsity.

Pure functions from the per-model table ``results/tables/metrics.parquet`` to a matplotlib
:class:`~matplotlib.figure.Figure`, drawn like :mod:`prunebias.plots.figures` (its sparsity
axis, method palette and :func:`~prunebias.plots.figures.save_figure`): the x axis is the
remaining share of weights on a log scale, inverted and labelled in sparsity, the dense
model is the first point of every curve, and the band is the spread over seeds.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from prunebias.analysis.backdoor import METRICS as BACKDOOR_METRICS
from prunebias.analysis.experiments import TRAINING, paired_dba
from prunebias.plots.figures import (
    THRESHOLD_LABELS,
    THRESHOLD_STYLES,
    band_text,
    format_sparsity_axis,
    method_colors,
    styled,
)
from prunebias.tasks import parse_task
from prunebias.validation import require_columns
from prunebias.vocabulary import METHOD_LEGENDS, METHODS, METRICS_COLUMNS

__all__ = ["backdoor", "single_vs_joint"]

#: Colours of the two trainings compared (seaborn colour-blind palette).
TRAINING_COLORS = {"joint": "#0173b2", "single-label": "#d55e00"}
_DASHES = ["", (4, 2), (1, 1.5), (6, 2, 1, 2)]
_PANEL = (3.4, 2.7)


def _grid(n_rows: int, n_cols: int) -> tuple[Figure, np.ndarray]:
    fig = Figure(figsize=(_PANEL[0] * n_cols + 2.4, _PANEL[1] * n_rows + 0.8), layout="constrained")
    return fig, fig.subplots(n_rows, n_cols, squeeze=False, sharey=False)


def _methods(methods) -> list[str]:
    order = list(METHODS)
    return sorted(set(methods), key=lambda m: (order.index(m) if m in order else len(order), m))


def _lines(
    ax: Axes, data: pd.DataFrame, hue: str, palette: dict, style: str, style_order: list, errorbar, undefined: str
) -> None:
    if not np.isfinite(data["y"].to_numpy(dtype=np.float64)).any():
        ax.text(0.5, 0.5, undefined, transform=ax.transAxes, ha="center", va="center", color="0.4")
        ax.set_yticks([])
        return
    n_seeds = data.groupby([hue, style, "remaining"])["seed"].nunique().max()
    sns.lineplot(
        data=data,
        x="remaining",
        y="y",
        hue=hue,
        hue_order=list(palette),
        palette=palette,
        style=style,
        style_order=style_order,
        dashes=dict(zip(style_order, _DASHES * len(style_order))),
        marker="o",
        markersize=4,
        errorbar=errorbar if n_seeds > 1 else None,
        err_kws={"alpha": 0.15, "linewidth": 0},
        legend=False,
        ax=ax,
    )


def _zero(ax: Axes) -> None:
    ax.axhline(0.0, color="0.5", linewidth=0.8, zorder=0, gid="reference")


def _legend(
    fig: Figure, colors: dict[str, str], labels: dict[str, str], styles: list[str], style_labels: dict, title: str
) -> None:
    handles = [Line2D([], [], color=c, marker="o", markersize=4) for c in colors.values()]
    names = [labels.get(k, k) for k in colors]
    if len(styles) > 1:
        handles += [Line2D([], [], color="0.2", linestyle=(0, d) if d else "-") for _, d in zip(styles, _DASHES)]
        names += [style_labels.get(s, s) for s in styles]
    fig.legend(handles, names, loc="outside right upper", frameon=False, title=title)


def _check(metrics: pd.DataFrame) -> None:
    require_columns(metrics, METRICS_COLUMNS, "metrics")
    unknown = set(metrics["threshold"]) - set(THRESHOLD_STYLES)
    if unknown:
        raise ValueError(f"metrics has unknown threshold kinds {sorted(unknown)}")


@styled
def single_vs_joint(metrics: pd.DataFrame, thresholds=("default", "calibrated"), errorbar="sd") -> Figure:
    """ΔBA (BA − dense BA, same seed) vs sparsity: each single-label model against the joint model.

    One row of panels per trained-alone attribute and pruning method (and dataset/arch),
    one column per identity; colour = training (joint / single-label), line style =
    threshold kind. A panel where BA is undefined for every model says so.
    """
    _check(metrics)
    thresholds = _thresholds(thresholds)
    data = paired_dba(metrics)
    data = data[data["threshold"].isin(thresholds)]
    if data.empty or set(data["training"]) != set(TRAINING):
        raise ValueError("metrics needs bias_amplification rows of single-label tasks and of the joint task")
    data, pruned = _dense_on_each_curve(data)
    data = data.assign(y=data["delta"])
    finite = data[np.isfinite(data["y"])]
    identities = sorted(finite["identity"].unique()) or sorted(data["identity"].unique())
    keys = ["dataset", "arch", "attribute", "method"]
    rows = list(data[keys].drop_duplicates().sort_values(keys).itertuples(index=False, name=None))
    several = len({(d, a) for d, a, *_ in rows}) > 1
    fig, axes = _grid(len(rows), len(identities))
    for ax_row, row in zip(axes, rows):
        here = data[(data[keys] == pd.Series(row, index=keys)).all(axis=1)]
        dataset, arch, attribute, method = row
        for ax, identity in zip(ax_row, identities):
            _lines(
                ax,
                here[here["identity"] == identity],
                "training",
                TRAINING_COLORS,
                "threshold",
                thresholds,
                errorbar,
                "ΔBA undefined",
            )
            _zero(ax)
            where = f"{dataset} / {arch}, " if several else ""
            ax.set_title(f"{where}{METHOD_LEGENDS.get(method, method)}\n{attribute} by {identity}")
            format_sparsity_axis(ax, data["sparsity"])
            ax.set_ylabel("")
        ax_row[0].set_ylabel("ΔBA (vs dense, same seed)")
    fig.suptitle(f"Bias amplification growth with sparsity: single-label vs joint training ({band_text(errorbar)})")
    _legend(fig, TRAINING_COLORS, {}, thresholds, THRESHOLD_LABELS, "training")
    return fig


def _thresholds(thresholds) -> list[str]:
    thresholds = [thresholds] if isinstance(thresholds, str) else list(thresholds)
    if not thresholds or set(thresholds) - set(THRESHOLD_STYLES):
        raise ValueError(f"thresholds must be a non-empty subset of {sorted(THRESHOLD_STYLES)}, got {thresholds!r}")
    return thresholds


def _dense_on_each_curve(data: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Copy the dense rows onto every pruned method, so each curve starts at the dense model."""
    pruned = [m for m in _methods(data["method"]) if m != "dense"] or ["dense"]
    dense = data[data["method"] == "dense"]
    data = pd.concat([data[data["method"] != "dense"]] + [dense.assign(method=m) for m in pruned])
    return data.assign(remaining=1.0 - data["sparsity"]).reset_index(drop=True), pruned


#: metric -> (panel title, y label)
_BACKDOOR_PANELS = {
    "backdoor_bias_amplification": ("backdoor bias amplification", "backdoor BA"),
    "triggered_accuracy": ("accuracy on triggered test samples", "accuracy"),
    "clean_accuracy": ("accuracy on clean test samples", "accuracy"),
}


def _task_title(task: str) -> str:
    t = parse_task(task)
    neg, pos = (f"{100 * p:g}%" for p in t.train_fractions)
    return f"{t.attribute}, {t.trigger.replace('_', ' ')} {neg}/{pos}"


@styled
def backdoor(metrics: pd.DataFrame, thresholds=("default", "calibrated"), errorbar="sd") -> Figure:
    """Backdoor BA and accuracy on triggered vs clean test samples, vs sparsity.

    One row of panels per backdoor task (and dataset/arch), titled "<attribute>, <trigger>
    <share of training negatives>/<positives> triggered"; colour = method, line style =
    threshold kind. Backdoor BA 0 (grey line) means the trigger is not used as a cue.
    """
    _check(metrics)
    thresholds = _thresholds(thresholds)
    rows = metrics[metrics["metric"].isin(list(_BACKDOOR_PANELS)) & metrics["threshold"].isin(thresholds)]
    rows = rows[rows["task"].map(lambda t: parse_task(t).kind) == "backdoor"]
    if rows.empty:
        raise ValueError(f"metrics has no backdoor rows ({', '.join(BACKDOOR_METRICS)}) of a backdoor task")
    data, pruned = _dense_on_each_curve(rows)
    data = data.assign(y=data["value"])
    keys = ["dataset", "arch", "task"]
    settings = list(data[keys].drop_duplicates().sort_values(keys).itertuples(index=False, name=None))
    several = len({(d, a) for d, a, _ in settings}) > 1
    colors = method_colors(pruned)
    fig, axes = _grid(len(settings), len(_BACKDOOR_PANELS))
    for ax_row, (dataset, arch, task) in zip(axes, settings):
        here = data[(data["dataset"] == dataset) & (data["arch"] == arch) & (data["task"] == task)]
        where = f"{dataset} / {arch}: " if several else ""
        for ax, (metric, (title, ylabel)) in zip(ax_row, _BACKDOOR_PANELS.items()):
            _lines(ax, here[here["metric"] == metric], "method", colors, "threshold", thresholds, errorbar, "undefined")
            if metric == "backdoor_bias_amplification":
                _zero(ax)
            ax.set_title(f"{where}{_task_title(task)}\n{title}")
            ax.set_ylabel(ylabel)
            format_sparsity_axis(ax, data["sparsity"])
    fig.suptitle(f"Backdoor (injected cue) vs sparsity ({band_text(errorbar)})")
    _legend(fig, colors, METHOD_LEGENDS, thresholds, THRESHOLD_LABELS, "method")
    return fig
