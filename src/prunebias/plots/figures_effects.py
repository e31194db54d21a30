"""The figure of :mod:`prunebias.analysis.effects`: changes against dense with their paired bootstrap CIs."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from prunebias.plots.figures import format_sparsity_axis, styled
from prunebias.validation import require_columns
from prunebias.vocabulary import METHOD_LEGENDS, SETTING, SHORTCUT_REFERENCES

#: Panels, left to right: statistic, y-axis label.
PANELS = (
    ("bias_amplification", "ΔBA (stable pairs)"),
    ("uncertainty", "Δ uncertainty"),
    ("interdependence", "Δ interdependence (R²)"),
    ("identity_dependence", "Δ identity dependence (R²)"),
)
_IDENTITY_MARKERS = ("o", "s", "^", "D", "v", "P")


def _errorbar(ax, x, frame: pd.DataFrame, **style) -> None:
    """Changes ``frame["delta"]`` at ``x`` with their 95 % CI bars (``ci_low``, ``ci_high``)."""
    y = frame["delta"].to_numpy()
    err = np.abs(np.stack([y - frame["ci_low"].to_numpy(), frame["ci_high"].to_numpy() - y]))
    ax.errorbar(x, y, yerr=err, capsize=3, **style)


@styled
def effects(table: pd.DataFrame, threshold: str = "default") -> Figure:
    """One row per (dataset, task, arch, method): the four statistics' change vs sparsity, 95 % CI bars.

    BA has one line per identity (legend: identity and its number of stable pairs at the
    curve's sparsities); the others are means over attributes.
    """
    require_columns(
        table,
        [*SETTING, "method", "sparsity", "statistic", "identity", "delta", "ci_low", "ci_high", "pairs", "threshold"],
        "effects table",
    )
    data = table[table["threshold"] == threshold]
    curves = list(data[["dataset", "task", "arch", "method"]].drop_duplicates().itertuples(index=False, name=None))
    fig = Figure(figsize=(3.4 * len(PANELS) + 1.6, 2.9 * max(1, len(curves)) + 0.6), layout="constrained")
    axes = fig.subplots(max(1, len(curves)), len(PANELS), squeeze=False)
    for row, curve in enumerate(curves):
        part = data[
            (
                data[["dataset", "task", "arch", "method"]]
                == pd.Series(curve, index=["dataset", "task", "arch", "method"])
            ).all(axis=1)
        ]
        sparsities = sorted(part["sparsity"].unique())
        for col, (statistic, ylabel) in enumerate(PANELS):
            ax = axes[row, col]
            rows = part[part["statistic"] == statistic]
            for i, (identity, line) in enumerate(rows.groupby("identity", sort=False)):
                line = line.sort_values("sparsity")
                label = (
                    f"{identity} ({int(line['pairs'].iloc[0])} pairs)" if statistic == "bias_amplification" else None
                )
                _errorbar(
                    ax,
                    1.0 - line["sparsity"].to_numpy(),
                    line,
                    marker=_IDENTITY_MARKERS[i % len(_IDENTITY_MARKERS)],
                    label=label,
                )
            ax.axhline(0.0, color="0.3", lw=0.8)
            format_sparsity_axis(ax, sparsities, label=row == len(curves) - 1)
            ax.set_ylabel(ylabel)
            dataset, task, arch, method = curve
            ax.set_title(f"{dataset} / {arch}\n{METHOD_LEGENDS.get(method, method)}", fontsize="small")
            if statistic == "bias_amplification" and len(rows):
                ax.legend(fontsize="x-small", loc="best")
    fig.suptitle(f"Change against dense, mean over seeds, 95 % paired bootstrap CI ({threshold} threshold)")
    return fig


#: How the shortcut control's references are drawn: colour, marker.
_REFERENCE_STYLE = {"identity": ("tab:red", "o"), "prior": ("0.45", "s")}


@styled
def shortcut_control(control: pd.DataFrame, effects_table: pd.DataFrame, convergence: pd.DataFrame) -> Figure:
    """ΔBA per identity and Δ identity dependence against the information a model kept: the
    shortcut control's mixtures (lines) and the pruned models of the same (dataset, task, arch)
    (points, labelled with their sparsity), one row per group and threshold, 95 % CI bars."""
    require_columns(
        control,
        [
            *SETTING,
            "reference",
            "weight",
            "information_kept",
            "threshold",
            "statistic",
            "identity",
            "delta",
            "ci_low",
            "ci_high",
        ],
        "shortcut control table",
    )
    kept = convergence.groupby([*SETTING, "method", "sparsity"], as_index=False)["information_kept"].mean()
    pruned = effects_table.merge(kept, on=[*SETTING, "method", "sparsity"], how="inner")
    identities = list(dict.fromkeys(control.loc[control["statistic"] == "bias_amplification", "identity"]))
    panels = [("bias_amplification", g, f"ΔBA w.r.t. {g}") for g in identities]
    panels.append(("identity_dependence", "all", "Δ identity dependence (R²)"))
    rows = list(control[[*SETTING, "threshold"]].drop_duplicates().itertuples(index=False, name=None))
    fig = Figure(figsize=(3.2 * len(panels) + 0.6, 2.9 * max(1, len(rows)) + 0.9), layout="constrained")
    axes = fig.subplots(max(1, len(rows)), len(panels), squeeze=False)
    for r, (dataset, task, arch, threshold) in enumerate(rows):
        key = {"dataset": dataset, "task": task, "arch": arch, "threshold": threshold}
        mine = control[(control[list(key)] == pd.Series(key)).all(axis=1)]
        theirs = pruned[(pruned[list(key)] == pd.Series(key)).all(axis=1)]
        for c, (statistic, identity, ylabel) in enumerate(panels):
            ax = axes[r, c]
            for reference, (color, marker) in _REFERENCE_STYLE.items():
                line = mine[
                    (mine["reference"] == reference) & (mine["statistic"] == statistic) & (mine["identity"] == identity)
                ]
                line = line.sort_values("weight")
                label = f"dense mixed with {SHORTCUT_REFERENCES[reference]}"
                _errorbar(ax, line["information_kept"], line, color=color, marker=marker, label=label)
            points = theirs[(theirs["statistic"] == statistic) & (theirs["identity"] == identity)]
            for i, (method, part) in enumerate(points.groupby("method", sort=False)):
                _errorbar(
                    ax,
                    part["information_kept"],
                    part,
                    color=f"C{i}",
                    marker="^",
                    ls="none",
                    ms=7,
                    label=f"pruned: {METHOD_LEGENDS.get(method, method)}",
                )
                for x, y, s in zip(part["information_kept"], part["delta"], part["sparsity"]):
                    ax.annotate(f"{s:.0%}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize="x-small")
            ax.axhline(0.0, color="0.3", lw=0.8)
            ax.invert_xaxis()  # left to right as the sparsity axes: from all the dense model knew to less
            ax.set_ylabel(ylabel)
            ax.set_title(f"{dataset} / {arch} ({threshold} threshold)", fontsize="small")
            if r == len(rows) - 1:
                ax.set_xlabel("information kept")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=min(4, len(labels)), fontsize="small")
    fig.suptitle(
        "Shortcut control: change against dense vs information kept, mean over seeds, 95 % paired bootstrap CI"
    )
    return fig
