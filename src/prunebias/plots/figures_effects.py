"""The figure of :mod:`prunebias.analysis.effects`: changes against dense with their paired bootstrap CIs."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from prunebias.plots.figures import format_sparsity_axis, styled
from prunebias.validation import require_columns
from prunebias.vocabulary import METHOD_LEGENDS, SETTING

#: Panels, left to right: statistic, y-axis label.
PANELS = (
    ("bias_amplification", "ΔBA (stable pairs)"),
    ("uncertainty", "Δ uncertainty"),
    ("interdependence", "Δ interdependence (R²)"),
    ("identity_dependence", "Δ identity dependence (R²)"),
)
_IDENTITY_MARKERS = ("o", "s", "^", "D", "v", "P")


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
                x = 1.0 - line["sparsity"].to_numpy()
                y = line["delta"].to_numpy()
                err = np.abs(np.stack([y - line["ci_low"].to_numpy(), line["ci_high"].to_numpy() - y]))
                label = (
                    f"{identity} ({int(line['pairs'].iloc[0])} pairs)" if statistic == "bias_amplification" else None
                )
                ax.errorbar(
                    x, y, yerr=err, marker=_IDENTITY_MARKERS[i % len(_IDENTITY_MARKERS)], capsize=3, label=label
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
