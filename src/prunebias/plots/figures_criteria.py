"""Figures of the dense-model criteria and the countermeasures (README, "What is measured").

Every figure function is a pure function from tables of :func:`prunebias.analysis.criteria.criteria_tables`
(columns :data:`prunebias.analysis.criteria.TABLE_COLUMNS`) to a matplotlib
:class:`~matplotlib.figure.Figure`; :func:`make_all` is the only function that writes files.
The tables may carry the setting columns ``dataset, task, arch`` (the workflow's
``results/tables/criteria/<table>.parquet`` concatenate settings) or not (one setting).
Each (setting, method) gets one row of panels, in the method colours of
:mod:`prunebias.plots.figures`. A missing or empty table gives a figure that says why it is
empty (no pruned model, no matched seeds) instead of an error.

Figures (:data:`FIGURES`; their input tables in :data:`FIGURE_TABLES`):

- ``pr_curves``: precision–recall of a dense score for CIEs and for pruned-model errors,
  one line per sparsity, with the chance level of each.
- ``dba_vs_uncertainty``: ΔBA at the highest sparsity against the dense uncertainty of each
  attribute, with the Spearman correlation and its bootstrap interval.
- ``routing_curve``: BA and accuracy against the share of samples routed to the dense
  model, routing the most uncertain samples vs random ones.
- ``cie_groups``: CIE rate per identity group and its over-representation, vs sparsity.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import PercentFormatter

from prunebias.plots.figures import (
    METHOD_COLORS,
    format_sparsity_axis,
    method_colors,
    save_figure,
    sparsity_label,
    styled,
)
from prunebias.validation import require_columns
from prunebias.vocabulary import CRITERIA_FIGURES as FIGURE_TABLES
from prunebias.vocabulary import METHOD_LEGENDS, SETTING, STATISTIC_LABELS

__all__ = [
    "FIGURES",
    "FIGURE_TABLES",
    "TABLES",
    "cie_groups",
    "dba_vs_uncertainty",
    "make_all",
    "pr_curves",
    "routing_curve",
]

TARGET_LABELS = {  # target -> (panel title, what recall counts)
    "cie": ("CIEs (pruned vote ≠ dense vote)", "CIEs"),
    "sparse_error": ("Errors of the pruned models (vote ≠ label)", "errors"),
}
SCORE_LABELS = {
    "uncertainty": "dense uncertainty 0.5 − |p − 0.5|",
    "prob_std": "spread of p over dense seeds",
    "disagreement": "disagreement of dense seeds",
    "flag": "dense uncertainty-band flag",
}
#: Axis labels that say more than the statistic's name.
AXIS_LABELS = {"uncertainty": "dense uncertainty\n(share of test outputs in the uncertainty band)"}
RANDOM_COLOR = "0.45"  # random-routing control: neutral, never a method colour
DENSE_COLOR = "0.15"
_PANEL = (3.6, 2.9)  # inches per panel
_LABEL_SIZE = 6.5  # attribute names on the scatter
_WRAP = 3  # scatter panels per row


# ------------------------------------------------------------------ helpers


def _table(frame, needed: Sequence[str], name: str) -> pd.DataFrame | None:
    """``frame`` if it has rows; None when it is None or empty; ValueError when it breaks the contract."""
    if frame is None:
        return None
    require_columns(frame, needed, name)
    return frame if len(frame) else None


def _empty_figure(title: str, text: str) -> Figure:
    fig = Figure(figsize=(6.5, 2.5), layout="constrained")
    ax = fig.subplots()
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color="0.4", wrap=True)
    ax.set_axis_off()
    fig.suptitle(title)
    return fig


def _method_order(methods) -> list[str]:
    present = set(methods)
    return [m for m in METHOD_COLORS if m in present] + sorted(present - set(METHOD_COLORS))


def _rows(frame: pd.DataFrame) -> list[tuple[str, str, pd.DataFrame]]:
    """(method, row label, rows) per (setting, method): settings sorted, methods in palette order."""
    setting = [c for c in SETTING if c in frame.columns]
    groups = frame.groupby(setting, sort=True) if setting else [((), frame)]
    n_settings = frame[setting].drop_duplicates().shape[0] if setting else 1
    out = []
    for key, rows in groups:
        prefix = " / ".join(map(str, key if isinstance(key, tuple) else (key,))) + "\n" if n_settings > 1 else ""
        for method in _method_order(rows["method"]):
            out.append((method, prefix + METHOD_LEGENDS.get(method, method), rows[rows["method"] == method]))
    return out


def _shade(color, amount: float) -> tuple[float, float, float]:
    """Mix ``color`` with white (amount > 0) or black (amount < 0)."""
    rgb = np.array(to_rgb(color))
    end = 1.0 if amount > 0 else 0.0
    return tuple(rgb + (end - rgb) * abs(amount))


def _ramp(color, n: int) -> list:
    """n shades of a method colour, light to dark (low to high sparsity)."""
    if n == 1:
        return [to_rgb(color)]
    return sns.blend_palette([_shade(color, 0.65), color, _shade(color, -0.5)], n_colors=n)


def _reference(ax: Axes, y: float, **kwargs) -> None:
    # gid marks reference lines so that counting data lines (tests) can skip them
    ax.axhline(y, zorder=1, gid="reference", **({"color": "0.5", "linewidth": 0.8} | kwargs))


def _grid(n_rows: int, n_cols: int, panel=_PANEL, **kwargs) -> tuple[Figure, np.ndarray]:
    """Panels of ``panel`` inches, with room for the titles and a legend below."""
    fig = Figure(figsize=(panel[0] * n_cols + 0.4, panel[1] * n_rows + 1.2), layout="constrained")
    return fig, fig.subplots(n_rows, n_cols, squeeze=False, **kwargs)


def _no_data(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color="0.4")
    ax.set_xticks([])
    ax.set_yticks([])


def _pick_sparsity(rows: pd.DataFrame, sparsity: float | None) -> float | None:
    """``sparsity`` if given (None when the rows lack it), else the highest of ``rows``."""
    available = rows["sparsity"].unique()
    if sparsity is None:
        return float(available.max())
    return float(sparsity) if np.isclose(available, sparsity).any() else None


def _at(rows: pd.DataFrame, sparsity: float) -> pd.DataFrame:
    return rows[np.isclose(rows["sparsity"], sparsity)]


def _label_points(ax: Axes, x: np.ndarray, y: np.ndarray, names: Sequence[str]) -> None:
    """Name each point; each label takes the first of a few offsets that stays inside the axes
    and overlaps no earlier label (the first offset when none does).

    Needs the final axes layout (run the layout engine first); labels stay out of the layout.
    """
    renderer = ax.figure.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    offsets = [(3, 2, "left", "bottom"), (3, -2, "left", "top"), (-3, 2, "right", "bottom"),
               (-3, -2, "right", "top"), (0, 5, "center", "bottom"), (0, -5, "center", "top"),
               (4, 9, "left", "bottom"), (4, -9, "left", "top"), (-4, 9, "right", "bottom"),
               (-4, -9, "right", "top")]  # fmt: skip

    def place(i, dx, dy, ha, va):
        label = ax.annotate(names[i], (x[i], y[i]), xytext=(dx, dy), textcoords="offset points", ha=ha, va=va,
                            fontsize=_LABEL_SIZE, color="0.25", in_layout=False)  # fmt: skip
        return label, label.get_window_extent(renderer)

    taken = []
    for i in np.lexsort((x, -y)):  # top to bottom, so crowded clusters fill downwards
        for offset in offsets:
            label, box = place(i, *offset)
            inside = frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1
            if inside and not any(box.overlaps(t) for t in taken):
                break
            label.remove()
        else:  # every offset collides: keep the first one
            label, box = place(i, *offsets[0])
        taken.append(box)


# ------------------------------------------------------------------ figures
@styled
def pr_curves(
    pr_curve: pd.DataFrame | None,
    headline: pd.DataFrame | None = None,
    score: str = "uncertainty",
    fractions: Sequence[float] = (0.05, 0.1, 0.2),
) -> Figure:
    """Precision–recall of a dense score as a detector of CIEs and of pruned-model errors.

    One row of panels per (setting, method), one column per target ("cie", "sparse_error");
    one line per sparsity, coloured from light (low) to dark (high sparsity) in the method's
    colour, and a dashed line of the same colour at that sparsity's chance level (the
    precision of flagging every pair = the target rate). Markers show flagging the top
    ``fractions`` of pairs (read off the curve). With ``headline`` the legend gives each
    curve's ROC-AUC and its 95% interval.

    Parameters
    ----------
    pr_curve : DataFrame or None
        Criteria table ``pr_curve``.
    headline : DataFrame, optional
        Criteria table ``headline`` (its ``auc, auc_low, auc_high``).
    score : str, default "uncertainty"
        Which dense score to draw (a ``score`` of the table).
    fractions : sequence of float, default (0.05, 0.1, 0.2)
        Shares of pairs flagged that get a marker (empty: none).
    """
    title = (f"Finding what pruning changes with the {SCORE_LABELS.get(score, score)}\n"
             "(precision–recall over all (sample, attribute) pairs)")  # fmt: skip
    table = _table(pr_curve, ["method", "sparsity", "target", "score", "share_flagged", "recall", "precision"],
                   "pr_curve")  # fmt: skip
    if table is None:
        return _empty_figure(title, "no pruned models: precision–recall curves need pruned models\nand dense models")
    if score not in set(table["score"]):
        raise ValueError(f"score must be one of {sorted(set(table['score']))}, got {score!r}")
    fractions = [float(f) for f in fractions]
    if any(not 0 < f <= 1 for f in fractions):
        raise ValueError(f"fractions must lie in (0, 1], got {fractions}")
    table = table[table["score"] == score]
    aucs = _table(headline, ["method", "sparsity", "target", "score", "auc", "auc_low", "auc_high"], "headline")
    if aucs is not None:
        keys = [c for c in SETTING if c in aucs.columns and c in table.columns] + ["method", "sparsity", "target"]
        aucs = aucs[aucs["score"] == score].groupby(keys)[["auc", "auc_low", "auc_high"]].first()
    present = set(table["target"])
    targets = [t for t in TARGET_LABELS if t in present] + sorted(present - set(TARGET_LABELS))
    markers = dict(zip(fractions, "osD^v"))
    rows = _rows(table)
    fig, axes = _grid(len(rows), len(targets), sharex=True, sharey=True)
    for ax_row, (method, row_label, here) in zip(axes, rows):
        sparsities = sorted(here["sparsity"].unique())
        colors = dict(zip(sparsities, _ramp(method_colors([method])[method], len(sparsities))))
        for ax, target in zip(ax_row, targets):
            for s in sparsities:
                curve = _at(here[here["target"] == target], s).sort_values(["share_flagged", "recall"])
                if curve.empty:
                    continue
                label = sparsity_label(s)
                if aucs is not None:
                    key = tuple(curve.iloc[0][list(aucs.index.names)])
                    if key in aucs.index and np.isfinite(aucs.loc[key, "auc"]):
                        a = aucs.loc[key]
                        label += f"  AUC {a['auc']:.2f} [{a['auc_low']:.2f}, {a['auc_high']:.2f}]"
                ax.plot(curve["recall"], curve["precision"], color=colors[s], linewidth=1.4, label=label)
                chance = curve["precision"].iloc[-1]  # the last point flags every pair
                _reference(ax, chance, color=colors[s], linewidth=0.8, linestyle=(0, (3, 2)))
                share = curve["share_flagged"].to_numpy()
                for f, marker in markers.items():
                    if share[0] <= f:  # the curve reaches f: read recall and precision off it
                        ax.plot(np.interp(f, share, curve["recall"]), np.interp(f, share, curve["precision"]),
                                marker=marker, color=colors[s], markersize=4.5, markeredgecolor="white",
                                markeredgewidth=0.5, linestyle="none", gid="marker")  # fmt: skip
            ax.set_xlim(0, 1)
            ax.set_ylim(0, 1.02)
            ax.set_title(TARGET_LABELS.get(target, (target,))[0])
            ax.set_xlabel(f"recall: share of {TARGET_LABELS.get(target, (None, target))[1]} flagged")
            if ax.lines:
                ax.legend(title="sparsity", fontsize="x-small", title_fontsize="x-small", loc="upper right",
                          frameon=True, framealpha=0.85)  # fmt: skip
            else:
                _no_data(ax, "no curve")
        ax_row[0].set_ylabel(f"{row_label}\nprecision (flagged that are targets)")
    handles = [Line2D([], [], color="0.4", linewidth=0.8, linestyle=(0, (3, 2)))]
    labels = ["chance level (flag at random)"]
    handles += [Line2D([], [], color="0.4", marker=m, linestyle="none") for m in markers.values()]
    labels += [f"top {100 * f:g}% of pairs flagged" for f in markers]
    fig.legend(handles, labels, loc="outside lower center", ncols=2, frameon=False, fontsize="small")
    fig.suptitle(title)
    return fig


@styled
def dba_vs_uncertainty(
    attribute_ranking: pd.DataFrame | None,
    attribute_criterion: pd.DataFrame | None = None,
    statistic: str = "uncertainty",
    sparsity: float | None = None,
) -> Figure:
    """ΔBA after pruning against a dense statistic, one point per attribute, with Spearman's ρ.

    One block of panels per (setting, method) at ``sparsity`` (default: the method's
    highest), one panel per identity, three per row: pooled ("all": ΔBA averaged over the
    identities where it is defined) first, then each identity. Each point is named by its
    attribute. With ``attribute_criterion`` each panel title gives ρ, its 95% bootstrap
    interval and the number of attributes.

    Parameters
    ----------
    attribute_ranking : DataFrame or None
        Criteria table ``attribute_ranking`` (``value`` = the statistic, ``delta_ba``).
    attribute_criterion : DataFrame, optional
        Criteria table ``attribute_criterion`` (``spearman, spearman_low, spearman_high, n_attributes``).
    statistic : str, default "uncertainty"
    sparsity : float, optional
        Sparsity to show; rows of methods without it say so.
    """
    title = "Change in bias amplification after pruning vs what the dense model shows, per attribute"
    ranking = _table(attribute_ranking, ["method", "sparsity", "identity", "statistic", "attribute", "value",
                                         "delta_ba"], "attribute_ranking")  # fmt: skip
    if ranking is None:
        return _empty_figure(title, "no pruned models: ΔBA needs a pruned model and its dense model")
    if statistic not in set(ranking["statistic"]):
        raise ValueError(f"statistic must be one of {sorted(set(ranking['statistic']))}, got {statistic!r}")
    ranking = ranking[ranking["statistic"] == statistic]
    rho = _table(attribute_criterion, ["method", "sparsity", "identity", "statistic", "n_attributes", "spearman",
                                       "spearman_low", "spearman_high"], "attribute_criterion")  # fmt: skip
    if rho is not None:
        keys = [c for c in SETTING if c in rho.columns and c in ranking.columns] + ["method", "sparsity", "identity"]
        rho = rho[rho["statistic"] == statistic].groupby(keys).first()
    identities = ["all"] + sorted(set(ranking["identity"]) - {"all"})
    n_cols = min(_WRAP, len(identities))
    block = -(-len(identities) // n_cols)  # panel rows per method
    rows = _rows(ranking)
    fig, grid = _grid(block * len(rows), n_cols, sharex=True, sharey=True)
    FigureCanvasAgg(fig)  # a renderer to measure the attribute labels
    points = []
    for i, (method, row_label, here) in enumerate(rows):
        panels = grid[i * block : (i + 1) * block].ravel()
        for ax in panels[len(identities) :]:
            ax.set_axis_off()
        s = _pick_sparsity(here, sparsity)
        for ax, identity in zip(panels, identities):
            ax.tick_params(axis="x", labelbottom=True)  # also above a switched-off panel
            ax.set_title("pooled over identities" if identity == "all" else f"by {identity}")
            _reference(ax, 0.0)
            if s is None:
                _no_data(ax, f"no model at {sparsity_label(sparsity)}")
                continue
            cell = _at(here, s)
            cell = cell[(cell["identity"] == identity) & np.isfinite(cell["value"]) & np.isfinite(cell["delta_ba"])]
            if cell.empty:
                ax.text(0.5, 0.5, "ΔBA undefined", transform=ax.transAxes, ha="center", va="center", color="0.4")
                continue
            x, y = cell["value"].to_numpy(dtype=float), cell["delta_ba"].to_numpy(dtype=float)
            ax.scatter(x, y, s=18, color=method_colors([method])[method], edgecolor="white", linewidth=0.4, zorder=3)
            ax.margins(x=0.18, y=0.15)
            points.append((ax, x, y, cell["attribute"].astype(str).tolist()))
            if rho is not None:
                key = tuple(cell.iloc[0][list(rho.index.names)])
                if key in rho.index and np.isfinite(rho.loc[key, "spearman"]):
                    c = rho.loc[key]
                    ci = (
                        f" [{c['spearman_low']:.2f}, {c['spearman_high']:.2f}]"
                        if np.isfinite(c["spearman_low"])
                        else ""
                    )
                    ax.set_title(
                        f"{ax.get_title()}\nSpearman ρ = {c['spearman']:.2f}{ci}, n = {int(c['n_attributes'])}"
                    )
                else:
                    ax.set_title(f"{ax.get_title()}\nSpearman ρ undefined (too few attributes)")
        label = f"{row_label}, {sparsity_label(s)} sparsity" if s is not None else row_label
        for ax in panels[::n_cols]:
            ax.set_ylabel("ΔBA = BA(pruned) − BA(dense)")
        panels[0].set_ylabel(f"{label}\n{panels[0].get_ylabel()}")
    fig.supxlabel(AXIS_LABELS.get(statistic, STATISTIC_LABELS.get(statistic, statistic)))
    fig.suptitle(f"{title}\n(95% bootstrap interval over attributes; ΔBA > 0: pruning added bias)")
    fig.get_layout_engine().execute(fig)  # labels are placed on the final axes geometry
    for ax, x, y, names in points:
        _label_points(ax, x, y, names)
    return fig


@styled
def routing_curve(routing: pd.DataFrame | None, sparsity: float | None = None) -> Figure:
    """BA and accuracy vs the share of samples routed to the dense model, susceptible vs random.

    One row per (setting, method) at ``sparsity`` (default: the method's highest); columns:
    bias amplification (identity "all": mean over the identities and attributes where it is
    defined) and accuracy (mean over attributes). Solid: route the samples the dense model
    is least sure about; dashed grey: route random samples (the control); bands ±1 SD over
    seed pairs; horizontal lines: the dense model and the pruned model without routing. The
    text gives the share of the pruning-induced change recovered at 10% routed (or the
    nearest routed share).

    Parameters
    ----------
    routing : DataFrame or None
        Criteria table ``routing_curve``.
    sparsity : float, optional
    """
    title = "Routing uncertain samples to the dense model"
    table = _table(routing, ["method", "sparsity", "routing", "fraction", "identity", "metric", "value", "std",
                             "dense", "sparse", "recovered"], "routing_curve")  # fmt: skip
    if table is None:
        return _empty_figure(title, "no routing curve: routing needs pruned models whose dense model\n"
                             "(same seed) was trained too")  # fmt: skip
    table = table[table["identity"] == "all"]
    panels = {"bias_amplification": "Bias amplification (mean over identities × attributes)",
              "accuracy": "Accuracy (mean over attributes)"}  # fmt: skip
    styles = {"susceptible": ("-", "route the most uncertain (dense criterion)"),
              "random": ((0, (4, 2)), "route at random (control)")}  # fmt: skip
    rows = _rows(table)
    fig, axes = _grid(len(rows), len(panels), panel=(4.8, 3.1), sharex=True)
    for ax_row, (method, row_label, here) in zip(axes, rows):
        color = method_colors([method])[method]
        s = _pick_sparsity(here, sparsity)
        for ax, (metric, panel_title) in zip(ax_row, panels.items()):
            ax.set_title(panel_title)
            cell = _at(here, s) if s is not None else here.iloc[:0]
            cell = cell[cell["metric"] == metric]
            if cell.empty or not np.isfinite(cell["value"]).any():
                _no_data(ax, "undefined" if s is not None else f"no model at {sparsity_label(sparsity)}")
                continue
            for kind, (style, _) in styles.items():
                curve = cell[cell["routing"] == kind].sort_values("fraction")
                x, v, sd = 100 * curve["fraction"], curve["value"], curve["std"].fillna(0.0)
                line_color = color if kind == "susceptible" else RANDOM_COLOR
                ax.plot(x, v, color=line_color, linestyle=style, marker="o", markersize=3.5, linewidth=1.5)
                ax.fill_between(x, v - sd, v + sd, color=line_color, alpha=0.15, linewidth=0)
            _reference(ax, cell["dense"].iloc[0], color=DENSE_COLOR, linestyle=":", linewidth=1.1)
            _reference(ax, cell["sparse"].iloc[0], color=color, linestyle="-.", linewidth=0.9)
            ax.set_title(f"{panel_title}\n{_recovered_text(cell)}")
            ax.xaxis.set_major_formatter(PercentFormatter(100, decimals=0))
        label = f"{row_label}, {sparsity_label(s)} sparsity" if s is not None else row_label
        ax_row[0].set_ylabel(label)
    handles = [
        Line2D([], [], color="0.3", linestyle=styles["susceptible"][0], marker="o", markersize=3.5),
        Line2D([], [], color=RANDOM_COLOR, linestyle=styles["random"][0], marker="o", markersize=3.5),
        Line2D([], [], color=DENSE_COLOR, linestyle=":"),
        Line2D([], [], color="0.3", linestyle="-."),
    ]
    for ax in axes[-1]:
        ax.set_xlabel("test samples routed to the dense model")
    labels = [styles["susceptible"][1], styles["random"][1], "dense model", "pruned model (nothing routed)"]
    fig.legend(handles, labels, loc="outside lower center", ncols=2, frameon=False, fontsize="small")
    fig.suptitle(f"{title}\n(line colour: method; bands: ±1 SD over seed pairs)")
    return fig


def _recovered_text(cell: pd.DataFrame, fraction: float = 0.1) -> str:
    """'10% routed recovers 45% of the change (random: 9%)' at the routed share nearest ``fraction``."""
    routed = cell[cell["fraction"] > 0]
    if routed.empty:
        return "nothing routed"
    k = routed["fraction"].iloc[np.argmin(np.abs(routed["fraction"].to_numpy() - fraction))]
    at = routed[np.isclose(routed["fraction"], k)].set_index("routing")["recovered"]
    if not np.isfinite(at.get("susceptible", np.nan)):
        return f"{100 * k:g}% routed: pruning changed too little to recover"
    text = f"{100 * k:g}% routed recovers {100 * at['susceptible']:.0f}% of the change"
    if np.isfinite(at.get("random", np.nan)):
        text += f" (random: {100 * at['random']:.0f}%)"
    return text


@styled
def cie_groups(cie_table: pd.DataFrame | None, kind: str = "cie") -> Figure:
    """CIE rate per identity group and the groups' over-representation among CIEs, vs sparsity.

    Per (setting, method) two rows of panels, one column per identity: bars of the rate of
    CIEs (all attributes pooled) in group 0 (light) and group 1 (the method colour), side by
    side on the sparsity axis of :func:`prunebias.plots.figures.format_sparsity_axis`, with a
    dark tick at the rate over all samples; then each group's over-representation = its
    share of the CIEs / its share of the test samples, with a line at 1 (no
    over-representation).

    Parameters
    ----------
    cie_table : DataFrame or None
        Criteria table ``cie_groups``.
    kind : {"cie", "flip"}, default "cie"
        Majority-vote CIEs, or per-model flips (sparse vs dense model of the same seed).
    """
    what = {"cie": "CIE", "flip": "flip"}
    if kind not in what:
        raise ValueError(f"kind must be one of {sorted(what)}, got {kind!r}")
    title = f"{what[kind]} rate per identity group vs sparsity (all attributes pooled)"
    table = _table(cie_table, ["method", "sparsity", "kind", "attribute", "identity", "group", "rate",
                               "over_representation"], "cie_groups")  # fmt: skip
    if table is not None:
        table = table[(table["kind"] == kind) & (table["attribute"] == "all")]
    if table is None or table.empty:
        return _empty_figure(title, f"no pruned models: {what[kind]}s need pruned models and their dense models")
    identities = sorted(set(table["identity"]) - {"all"})
    if not identities:
        return _empty_figure(title, "no identity groups in the table")
    sparsities = np.sort(table["sparsity"].unique())
    half = _bar_width(sparsities)
    rows = _rows(table)
    fig, axes = _grid(2 * len(rows), len(identities), sharex=True, sharey="row")
    for r, (method, row_label, here) in enumerate(rows):
        color = method_colors([method])[method]
        shades = {"0": _shade(color, 0.55), "1": color}
        rate_row, over_row = axes[2 * r], axes[2 * r + 1]
        overall = here[here["identity"] == "all"].groupby("sparsity")["rate"].first()
        for ax_rate, ax_over, identity in zip(rate_row, over_row, identities):
            cells = here[here["identity"] == identity]
            for group, sign in (("0", 1), ("1", -1)):
                g = cells[cells["group"] == group].sort_values("sparsity")
                remaining = 1.0 - g["sparsity"].to_numpy()
                edge = remaining * 10 ** (sign * half)  # inverted log axis: group 0 left of the tick, 1 right
                ax_rate.bar(np.minimum(remaining, edge), g["rate"], width=np.abs(edge - remaining), align="edge",
                            color=shades[group], edgecolor="white", linewidth=0.4)  # fmt: skip
                ax_over.plot(remaining, g["over_representation"], color=shades[group], marker="o", markersize=4,
                             linewidth=1.5)  # fmt: skip
            if len(overall):
                rem = 1.0 - overall.index.to_numpy()
                ax_rate.hlines(overall.to_numpy(), rem * 10**-half, rem * 10**half, color=DENSE_COLOR, linewidth=1.6,
                               gid="reference")  # fmt: skip
            _reference(ax_over, 1.0, color=DENSE_COLOR, linestyle=":", linewidth=1.0)
            ax_rate.set_title(f"by {identity}")
            ax_rate.yaxis.set_major_formatter(PercentFormatter(1.0))
            format_sparsity_axis(ax_over, sparsities, label=r == len(rows) - 1)
            format_sparsity_axis(ax_rate, sparsities, label=False)
            ax_over.tick_params(axis="x", labelbottom=True)  # every method block shows its sparsities
        rate_row[0].set_ylabel(f"{row_label}\n{what[kind]} rate\n(share of (sample, attribute) pairs)")
        over_row[0].set_ylabel(f"{row_label}\nover-representation\n(share of {what[kind]}s / share of samples)")
    handles = [Patch(color=_shade("0.3", 0.55)), Patch(color="0.3"), Line2D([], [], color=DENSE_COLOR, linewidth=1.6)]
    labels = ["light: group 0 (identity false)", "dark: group 1 (identity true)", "all samples"]
    fig.legend(handles, labels, loc="outside lower center", ncols=3, frameon=False, fontsize="small")
    fig.suptitle(f"{title}\n(over-representation > 1: the group carries more than its share)")
    return fig


def _bar_width(sparsities: np.ndarray) -> float:
    """Width in decades of one group's bar on the log remaining-weight axis (two bars share a tick)."""
    gaps = np.diff(np.log10(1.0 - sparsities))
    gap = np.abs(gaps).min() if gaps.size else 0.6
    return min(0.1, 0.35 * gap)


# ------------------------------------------------------------------ writing
#: Figure file stem -> figure function; :func:`make_all` writes them all.
FIGURES: dict[str, Callable[..., Figure]] = {
    "pr_curves": pr_curves,
    "dba_vs_uncertainty": dba_vs_uncertainty,
    "routing_curve": routing_curve,
    "cie_groups": cie_groups,
}
TABLES: tuple[str, ...] = tuple(sorted({t for names in FIGURE_TABLES.values() for t in names}))


def make_all(tables: Mapping[str, pd.DataFrame], out_dir: str | os.PathLike) -> list[Path]:
    """Write every figure of :data:`FIGURES` as ``out_dir/<name>.png`` and ``.svg``; return the paths.

    ``tables`` maps criteria table names to DataFrames (other tables are ignored); a
    figure whose table is missing says so.
    """
    out_dir = Path(out_dir)
    paths = []
    for name, draw in FIGURES.items():
        paths += save_figure(draw(*(tables.get(t) for t in FIGURE_TABLES[name])), out_dir / name)
    return paths
