"""Figures of the study: metrics against sparsity, ΔBA heatmaps and fairness gaps.

Every figure function is a pure function from one of the aggregated tables (prunebias.analysis.aggregate) to a
matplotlib :class:`~matplotlib.figure.Figure`; :func:`save_figure` and :func:`make_all`
are the only functions that write files.

- Line plots read the per-model table ``results/tables/metrics.parquet`` (one value per
  model and seed), so the band around each line is the spread *over seeds* (seaborn's
  ``errorbar``: "sd" by default, or e.g. ``("ci", 95)``). A value averaged "over
  attributes" is averaged per model first, skipping undefined (NaN) values.
- The ΔBA heatmap reads the aggregated ``results/tables/summary.parquet`` (``delta_mean``).
- The dense model (method "dense", sparsity 0) is drawn as the first point of every
  method's curve, at the "dense" tick of the sparsity axis (:func:`format_sparsity_axis`).
- A table with several (dataset, task, arch) settings gets its own rows of panels per setting.

Figures are built with :class:`matplotlib.figure.Figure` directly, not pyplot, so no
display or GUI backend is ever involved (PNG goes through Agg).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import NullLocator

from prunebias.io import atomic_path
from prunebias.validation import require_columns
from prunebias.vocabulary import FIGURE_FORMATS, METHOD_LEGENDS, METRICS_COLUMNS, MODEL, SETTING, SUMMARY_COLUMNS

__all__ = [
    "FIGURES",
    "METHOD_COLORS",
    "accuracy_auc",
    "bias_amplification",
    "dba_heatmap",
    "format_sparsity_axis",
    "group_gaps",
    "make_all",
    "method_colors",
    "save_figure",
    "sparsity_label",
    "uncertainty_interdependence",
]

#: One colour per pruning method, used by every figure (seaborn's colour-blind palette).
METHOD_COLORS = {
    "dense": "#404040",
    "gmp": "#0173b2",
    "gmp_pt": "#de8f05",
    "oneshot": "#029e73",
    "acdc": "#cc78bc",
    "nm": "#ca9161",
    "channels": "#56b4e9",
    "int8": "#d55e00",
}
# Colours for methods added to the grid later, handed out in sorted name order.
_EXTRA_COLORS = ("#fbafe4", "#949494", "#ece133")

THRESHOLD_STYLES = {"default": "-", "calibrated": "--"}
THRESHOLD_LABELS = {"default": "default threshold (logit > 0)", "calibrated": "calibrated threshold"}
ERRORBAR_LABELS = {"sd": "band: ±1 SD over seeds", "se": "band: ±1 SE over seeds", "ci": "band: {}% CI over seeds"}


DENSE_LABEL = "dense"
DPI = 150
_PANEL = (3.4, 2.7)  # inches per line-plot panel
_UNDEFINED_COLOR = "0.85"


# ------------------------------------------------------------------ shared helpers
def sparsity_label(sparsity: float) -> str:
    """Tick label of a sparsity: "dense" for 0, else a percentage ("90%", "99.5%")."""
    return DENSE_LABEL if sparsity == 0 else f"{100 * sparsity:.4g}%"


def format_sparsity_axis(ax: Axes, sparsities: Sequence[float], label: bool = True) -> None:
    """Make the x axis of a plot whose x data are *remaining* weights (1 − sparsity) readable.

    Log scale, so that 90 → 95 → 99 → 99.5 % get equal room; inverted, so that sparsity
    grows to the right; ticks at the given sparsities only, labelled in % with the dense
    model (remaining weight 1) as "dense" on the left.
    """
    s = np.unique(np.asarray(sparsities, dtype=np.float64))
    if s.size == 0 or np.isnan(s).any() or (s < 0).any() or (s >= 1).any():
        raise ValueError(f"sparsities must be non-empty and in [0, 1), got {list(s)}")
    remaining = 1.0 - s
    ax.set_xscale("log")
    ax.set_xticks(remaining, [sparsity_label(v) for v in s])
    ax.xaxis.set_minor_locator(NullLocator())
    pad = 10**0.12  # a margin of 0.12 decades on each side
    ax.set_xlim(remaining.max() * pad, remaining.min() / pad)  # left > right: inverted
    ax.tick_params(axis="x", labelrotation=45)
    ax.set_xlabel("sparsity (share of weights removed)" if label else "")


def method_colors(methods: Sequence[str]) -> dict[str, str]:
    """Colour per method: :data:`METHOD_COLORS`, then extra colours for unknown methods."""
    unknown = sorted(set(methods) - set(METHOD_COLORS))
    extra = {m: _EXTRA_COLORS[i % len(_EXTRA_COLORS)] for i, m in enumerate(unknown)}
    return {m: METHOD_COLORS.get(m) or extra[m] for m in methods}


def _method_order(methods) -> list[str]:
    known = [m for m in METHOD_COLORS if m in set(methods)]
    return known + sorted(set(methods) - set(METHOD_COLORS))


def _check_table(frame, needed: list[str], name: str) -> None:
    """A table with the columns and at least one row."""
    require_columns(frame, needed, name)
    if frame.empty:
        raise ValueError(f"{name} has no rows")


def _check_choice(value, allowed, name: str) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {sorted(allowed)}, got {value!r}")


def _check_thresholds(thresholds) -> tuple[str, ...]:
    thresholds = (thresholds,) if isinstance(thresholds, str) else tuple(thresholds)
    if not thresholds:
        raise ValueError("thresholds must name at least one threshold kind")
    for t in thresholds:
        _check_choice(t, THRESHOLD_STYLES, "thresholds")
    return thresholds


def band_text(errorbar) -> str:
    """How a figure's error band is described in its title."""
    if errorbar is None:
        return "no band"
    kind, level = (errorbar, None) if isinstance(errorbar, str) else tuple(errorbar)
    if kind not in ERRORBAR_LABELS:
        raise ValueError(f"errorbar must be None, 'sd', 'se' or ('ci', level), got {errorbar!r}")
    return ERRORBAR_LABELS[kind].format(level)


def styled(fn: Callable[..., Figure]) -> Callable[..., Figure]:
    """Build the figure under one seaborn style without touching global rcParams."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with sns.axes_style("whitegrid"), sns.plotting_context("paper", font_scale=1.15):
            return fn(*args, **kwargs)

    return wrapper


def _settings(frame: pd.DataFrame) -> list[tuple]:
    return list(frame[SETTING].drop_duplicates().sort_values(SETTING).itertuples(index=False, name=None))


def _setting_title(setting: tuple, n_settings: int, title: str) -> str:
    return f"{' / '.join(map(str, setting))}\n{title}" if n_settings > 1 else title


def _in_setting(frame: pd.DataFrame, setting: tuple) -> pd.DataFrame:
    return frame[(frame[SETTING] == pd.Series(setting, index=SETTING)).all(axis=1)]


def _grid(n_rows: int, n_cols: int, sharey, panel=_PANEL) -> tuple[Figure, np.ndarray]:
    fig = Figure(figsize=(panel[0] * n_cols + 2.4, panel[1] * n_rows + 0.8), layout="constrained")
    return fig, fig.subplots(n_rows, n_cols, squeeze=False, sharey=sharey)


def _per_model(metrics: pd.DataFrame, names: Sequence[str], thresholds, by: Sequence[str] = ()) -> pd.DataFrame:
    """Mean over attributes of each model's values (NaN skipped), one row per model × metric × threshold × by.

    The dense rows are copied onto every pruned method, so each method's curve starts at
    the dense model; columns ``remaining`` (= 1 − sparsity) is the x of every line plot.
    """
    rows = metrics[metrics["metric"].isin(names) & metrics["threshold"].isin(thresholds)]
    keys = MODEL + ["seed", "threshold", "metric", *by]
    means = rows.groupby(keys, sort=True, dropna=False)["value"].mean().reset_index()
    return _dense_on_each_curve(means, metrics["method"].unique())


def _dense_on_each_curve(frame: pd.DataFrame, methods) -> pd.DataFrame:
    pruned = [m for m in _method_order(methods) if m != "dense"]
    if pruned:
        dense = frame[frame["method"] == "dense"]
        frame = pd.concat([frame[frame["method"] != "dense"]] + [dense.assign(method=m) for m in pruned])
    return frame.assign(remaining=1.0 - frame["sparsity"]).reset_index(drop=True)


def _lines(ax: Axes, data: pd.DataFrame, methods: list[str], errorbar, undefined: str = "undefined") -> None:
    """Mean line per method (colour) and threshold (line style) with a band over seeds.

    A panel without any finite value gets the text ``undefined`` instead.
    """
    if not np.isfinite(data["value"].to_numpy(dtype=np.float64)).any():
        _mark_undefined(ax, undefined)
        return
    n_seeds = data.groupby(["method", "sparsity", "threshold"])["seed"].nunique().max()
    thresholds = [t for t in THRESHOLD_STYLES if t in set(data["threshold"])]
    sns.lineplot(
        data=data,
        x="remaining",
        y="value",
        hue="method",
        hue_order=methods,
        palette=method_colors(methods),
        style="threshold",
        style_order=thresholds,
        dashes={t: "" if THRESHOLD_STYLES[t] == "-" else (4, 2) for t in thresholds},
        marker="o",
        markersize=4,
        errorbar=errorbar if n_seeds > 1 else None,  # one seed: no spread to show
        err_kws={"alpha": 0.15, "linewidth": 0},
        legend=False,
        ax=ax,
    )


def _mark_undefined(ax: Axes, text: str) -> None:
    # Ticks stay: panels share y (and heatmaps the attribute labels) with their row.
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color="0.4")


def _reference(ax: Axes, y: float) -> None:
    # gid marks reference lines so that counting data lines (tests) can skip them
    ax.axhline(y, color="0.5", linewidth=0.8, zorder=0, gid="reference")


def _legend(fig: Figure, methods: list[str], thresholds: Sequence[str] = ()) -> None:
    colors = method_colors(methods)
    handles = [Line2D([], [], color=colors[m], marker="o", markersize=4) for m in methods]
    labels = [METHOD_LEGENDS.get(m, m) for m in methods]
    if len(thresholds) > 1:
        handles += [Line2D([], [], color="0.2", linestyle=THRESHOLD_STYLES[t]) for t in thresholds]
        labels += [THRESHOLD_LABELS[t] for t in thresholds]
    fig.legend(handles, labels, loc="outside right center", frameon=False)


def _identities(frame: pd.DataFrame) -> list[str]:
    return sorted(set(frame["identity"]) - {"all"})


# ------------------------------------------------------------------ figures
@styled
def accuracy_auc(metrics: pd.DataFrame, threshold: str = "default", errorbar="sd") -> Figure:
    """Accuracy and ROC-AUC against sparsity, mean over attributes per model, one panel each.

    Parameters
    ----------
    metrics : DataFrame
        Per-model tidy metrics (``results/tables/metrics.parquet``).
    threshold : {"default", "calibrated"}
        Threshold kind of the accuracy (AUC does not depend on it).
    errorbar : seaborn errorbar spec over seeds ("sd", "se", ("ci", 95)) or None.
    """
    _check_table(metrics, METRICS_COLUMNS, "metrics")
    _check_choice(threshold, THRESHOLD_STYLES, "threshold")
    panels = {
        "accuracy": ("Accuracy", "accuracy\n(mean over attributes)"),
        "auc": ("ROC-AUC (threshold-free)", "ROC-AUC\n(mean over attributes)"),
    }
    data = _per_model(metrics, list(panels), [threshold])
    return _metric_panels(data, panels, {}, errorbar, f"Accuracy and AUC vs sparsity\n({band_text(errorbar)})")


@styled
def uncertainty_interdependence(
    metrics: pd.DataFrame, thresholds: Sequence[str] = ("default", "calibrated"), errorbar="sd"
) -> Figure:
    """Uncertainty, interdependence, ECE and rare-value ratio against sparsity (4 panels).

    Mean over attributes per model. Threshold-dependent panels (interdependence,
    rare-value ratio) draw one line style per threshold kind; the threshold-free ones
    (uncertainty, ECE) one line per method.
    """
    _check_table(metrics, METRICS_COLUMNS, "metrics")
    thresholds = _check_thresholds(thresholds)
    panels = {
        "uncertainty": ("Uncertainty", "share of outputs\nwith 0.1 < p < 0.9"),
        "interdependence": ("Interdependence", "R² of a prediction\non the others"),
        "ece": ("Calibration error (ECE)", "expected calibration error"),
        "rare_value_ratio": ("Rare-value ratio", "predicted / true rare-value rate\n(< 1: under-predicted)"),
    }
    free = {"uncertainty", "ece"}
    data = _per_model(metrics, list(panels), thresholds)
    data = data[~data["metric"].isin(free) | (data["threshold"] == thresholds[0])]
    title = f"Uncertainty, interdependence and calibration vs sparsity\n(mean over attributes; {band_text(errorbar)})"
    return _metric_panels(data, panels, {"rare_value_ratio": 1.0}, errorbar, title, thresholds)


def _metric_panels(
    data, panels: dict[str, tuple[str, str]], references: dict[str, float], errorbar, title, thresholds=()
) -> Figure:
    """Panels two abreast, in rows of one setting after another; ``panels``: metric -> (title, y label).

    ``panels`` has an even number of entries, so every setting fills whole rows.
    """
    methods = _method_order(data["method"])
    settings = _settings(data)
    rows_per_setting = len(panels) // 2
    fig, axes = _grid(len(settings) * rows_per_setting, 2, sharey=False)
    for i, setting in enumerate(settings):
        here = _in_setting(data, setting)
        block = axes[i * rows_per_setting : (i + 1) * rows_per_setting].ravel()
        for k, (ax, (metric, (panel_title, ylabel))) in enumerate(zip(block, panels.items())):
            _lines(ax, here[here["metric"] == metric], methods, errorbar)
            if metric in references:
                _reference(ax, references[metric])
            ax.set_title(_setting_title(setting, len(settings), panel_title))
            ax.set_ylabel(ylabel)
            bottom = i == len(settings) - 1 and k >= len(panels) - 2
            format_sparsity_axis(ax, data["sparsity"], label=bottom)
    fig.suptitle(title)
    _legend(fig, methods, thresholds)
    return fig


@styled
def bias_amplification(
    metrics: pd.DataFrame,
    attributes: Sequence[str] | None = None,
    thresholds: Sequence[str] = ("default", "calibrated"),
    errorbar="sd",
) -> Figure:
    """Bias amplification against sparsity, one panel per identity attribute.

    Line colour = method, line style = threshold kind. By default each panel shows the
    mean over the attributes whose BA is defined (per model); with ``attributes`` there
    is one row of panels per listed attribute instead. A panel without any defined BA
    says "undefined".
    """
    _check_table(metrics, METRICS_COLUMNS, "metrics")
    thresholds = _check_thresholds(thresholds)
    ba = metrics[metrics["metric"] == "bias_amplification"]
    if ba.empty:
        raise ValueError("metrics has no bias_amplification rows")
    if attributes is not None:
        attributes = [attributes] if isinstance(attributes, str) else list(attributes)
        unknown = sorted(set(attributes) - set(ba["attribute"]))
        if not attributes or unknown:
            raise ValueError(f"attributes must be a non-empty list of attributes in metrics; unknown: {unknown}")
        ba = ba[ba["attribute"].isin(attributes)]
    by = ["identity"] if attributes is None else ["identity", "attribute"]
    data = _per_model(ba, ["bias_amplification"], thresholds, by)
    methods = _method_order(data["method"])
    identities = _identities(data)
    settings = _settings(data)
    rows = [(s, a) for s in settings for a in (attributes or [None])]
    fig, axes = _grid(len(rows), len(identities), sharey="row")
    for r, (ax_row, (setting, attribute)) in enumerate(zip(axes, rows)):
        here = _in_setting(data, setting)
        if attribute is not None:
            here = here[here["attribute"] == attribute]
        for ax, identity in zip(ax_row, identities):
            undefined = "BA undefined" + ("" if attribute else "\nfor every attribute")
            _lines(ax, here[here["identity"] == identity], methods, errorbar, undefined)
            _reference(ax, 0.0)
            what = f"{attribute} by {identity}" if attribute else f"by {identity}"
            ax.set_title(_setting_title(setting, len(settings), what))
            format_sparsity_axis(ax, data["sparsity"], label=r == len(rows) - 1)
        scope = attribute if attribute else "mean over attributes"
        ax_row[0].set_ylabel(f"bias amplification\n({scope})")
    fig.suptitle(f"Bias amplification vs sparsity, per identity attribute\n({band_text(errorbar)})")
    _legend(fig, methods, thresholds)
    return fig


@styled
def group_gaps(metrics: pd.DataFrame, threshold: str = "default", errorbar="sd") -> Figure:
    """Gaps in false-negative and false-positive rate between the two groups of each identity.

    Per model and attribute the gap is |rate(identity = 1) − rate(identity = 0)|
    (the FNR gap equals ``equal_opportunity_diff``), then averaged over attributes.
    Rows: FNR gap, FPR gap; columns: identities.
    """
    _check_table(metrics, METRICS_COLUMNS, "metrics")
    _check_choice(threshold, THRESHOLD_STYLES, "threshold")
    rates = {"group_fnr": "false-negative rate", "group_fpr": "false-positive rate"}
    rows = metrics[
        metrics["metric"].isin(list(rates)) & (metrics["threshold"] == threshold) & metrics["group"].isin(["0", "1"])
    ]
    if rows.empty:
        raise ValueError(f"metrics has no group_fnr / group_fpr rows for groups 0 and 1 at threshold {threshold!r}")
    keys = [c for c in METRICS_COLUMNS if c not in ("group", "value")]
    wide = rows.set_index(keys + ["group"])["value"].unstack("group")
    gaps = (wide["1"] - wide["0"]).abs().rename("value").reset_index()
    data = _per_model(gaps, list(rates), [threshold], ["identity"])
    methods = _method_order(data["method"])
    identities = _identities(data)
    settings = _settings(data)
    panel_rows = [(s, m) for s in settings for m in rates]
    fig, axes = _grid(len(panel_rows), len(identities), sharey="row")
    for r, (ax_row, (setting, metric)) in enumerate(zip(axes, panel_rows)):
        here = _in_setting(data, setting)
        for ax, identity in zip(ax_row, identities):
            _lines(ax, here[(here["metric"] == metric) & (here["identity"] == identity)], methods, errorbar)
            ax.set_title(_setting_title(setting, len(settings), f"{identity} vs not {identity}"))
            format_sparsity_axis(ax, data["sparsity"], label=r == len(panel_rows) - 1)
        ax_row[0].set_ylabel(f"gap in {rates[metric]}\n(mean over attributes)")
    fig.suptitle(f"Group gaps in error rates vs sparsity, {threshold} threshold\n({band_text(errorbar)})")
    _legend(fig, methods)
    return fig


@styled
def dba_heatmap(summary: pd.DataFrame, threshold: str = "default") -> Figure:
    """Heatmap of ΔBA (BA − dense BA, mean over seeds) per attribute × sparsity.

    Columns: identities; rows: pruned methods (per setting). One colour scale for all
    panels, diverging and centred at 0 (red: more bias than the dense model); grey cells
    are undefined BA.
    """
    _check_table(summary, SUMMARY_COLUMNS, "summary")
    _check_choice(threshold, THRESHOLD_STYLES, "threshold")
    ba = summary[
        (summary["metric"] == "bias_amplification")
        & (summary["threshold"] == threshold)
        & (summary["method"] != "dense")
    ]
    if ba.empty:
        fig = Figure(figsize=(6, 2.5), layout="constrained")
        ax = fig.subplots()
        ax.set_axis_off()
        _mark_undefined(ax, "no pruned models: ΔBA needs a pruned model and its dense parent")
        fig.suptitle("Change in bias amplification (ΔBA) after pruning")
        return fig
    attributes = sorted(set(ba["attribute"]))
    sparsities = sorted(set(ba["sparsity"]))
    identities = _identities(ba)
    settings = _settings(ba)
    rows = [(s, m) for s in settings for m in _method_order(_in_setting(ba, s)["method"])]
    limit = np.nanmax(np.abs(ba["delta_mean"].to_numpy(dtype=np.float64)), initial=0.0)
    limit = limit if limit > 0 else 1.0  # all-zero or all-NaN: any symmetric scale will do
    panel = (0.42 * len(sparsities) + 0.9, 0.2 * len(attributes) + 0.9)
    fig = Figure(figsize=(panel[0] * len(identities) + 2.5, panel[1] * len(rows) + 1.0), layout="constrained")
    axes = fig.subplots(len(rows), len(identities), squeeze=False, sharex=True, sharey=True)
    for i, (ax_row, (setting, method)) in enumerate(zip(axes, rows)):
        here = _in_setting(ba, setting)
        here = here[here["method"] == method]
        for j, (ax, identity) in enumerate(zip(ax_row, identities)):
            grid = (
                here[here["identity"] == identity]
                .pivot(index="attribute", columns="sparsity", values="delta_mean")
                .reindex(index=attributes, columns=sparsities)
            )
            ax.set_facecolor(_UNDEFINED_COLOR)  # NaN cells are masked, so the face shows through
            sns.heatmap(
                grid,
                ax=ax,
                cmap="RdBu_r",
                vmin=-limit,  # symmetric limits centre the diverging map at 0
                vmax=limit,
                cbar=False,
                linewidths=0.3,
                linecolor="white",
                xticklabels=[sparsity_label(s) for s in sparsities],
                yticklabels=attributes,
            )
            if grid.isna().all().all():
                _mark_undefined(ax, "BA undefined")
            if i == 0 or rows[i - 1][0] != setting:  # identity titles once per setting
                ax.set_title(_setting_title(setting, len(settings), f"by {identity}"))
            ax.grid(False)  # the style's grid would show through undefined (masked) cells
            ax.set_xlabel("sparsity" if i == len(rows) - 1 else "")
            ax.set_ylabel(f"{METHOD_LEGENDS.get(method, method)}\nattribute" if j == 0 else "")
            ax.tick_params(axis="x", labelrotation=45)
            ax.tick_params(axis="y", labelrotation=0)
    mappable = matplotlib.cm.ScalarMappable(
        norm=matplotlib.colors.Normalize(-limit, limit), cmap=matplotlib.colormaps["RdBu_r"]
    )
    bar = fig.colorbar(mappable, ax=axes, shrink=min(1.0, 4.0 / (panel[1] * len(rows))), pad=0.02)
    bar.set_label(f"ΔBA vs dense, {threshold} threshold\n(red: more bias; grey: undefined)")
    fig.suptitle("Change in bias amplification after pruning (mean over seeds)")
    return fig


# ------------------------------------------------------------------ writing
#: Figure file stem -> (input table, figure function); :func:`make_all` writes them all.
FIGURES: dict[str, tuple[str, Callable[[pd.DataFrame], Figure]]] = {
    "accuracy_auc": ("metrics", accuracy_auc),
    "bias_amplification": ("metrics", bias_amplification),
    "uncertainty_interdependence": ("metrics", uncertainty_interdependence),
    "dba_heatmap": ("summary", dba_heatmap),
    "group_gaps": ("metrics", group_gaps),
}


def save_figure(fig: Figure, stem: str | os.PathLike) -> list[Path]:
    """Write ``stem.png`` (150 dpi) and ``stem.svg`` atomically, close ``fig``, return the paths.

    Output bytes depend only on the figure: no dates in the files, fixed SVG ids.
    """
    stem = Path(stem)
    paths = []
    try:
        with matplotlib.rc_context({"svg.hashsalt": "prunebias"}):
            for fmt in FIGURE_FORMATS:
                path = stem.with_name(f"{stem.name}.{fmt}")
                with atomic_path(path) as tmp:
                    metadata = {"Date": None} if fmt == "svg" else None
                    fig.savefig(tmp, format=fmt, dpi=DPI, metadata=metadata)
                paths.append(path)
    finally:
        plt.close(fig)  # a no-op for figures pyplot does not manage
    return paths


def make_all(summary: pd.DataFrame, metrics: pd.DataFrame, out_dir: str | os.PathLike) -> list[Path]:
    """Write every figure of :data:`FIGURES` as ``out_dir/<name>.png`` and ``.svg``; return the paths."""
    tables = {"summary": summary, "metrics": metrics}
    out_dir = Path(out_dir)
    paths = []
    for name, (table, draw) in FIGURES.items():
        paths += save_figure(draw(tables[table]), out_dir / name)
    return paths
