"""The report's tables: the sortable table model (:class:`Table`, built from a DataFrame through
:class:`Column` specs), the key table of means ± stds over seeds, the largest group gaps, and
the criteria and countermeasure tables.

Criteria tables are those of :func:`prunebias.analysis.criteria.criteria_tables`, with the
setting columns ``dataset, task, arch`` in front; a setting column is shown only where it varies.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import pandas as pd

from prunebias.analysis.cost_tradeoff import MATCHED_DROP, matched_accuracy
from prunebias.report.curves import seed_curves
from prunebias.report.format import (
    DASH,
    count_text,
    interval_text,
    is_finite,
    level_text,
    method_text,
    number_text,
    percent_text,
    share_text,
    sparsity_text,
)
from prunebias.report.grid import method_rank
from prunebias.validation import require_columns
from prunebias.vocabulary import MODEL, SETTING, SHORTCUT_REFERENCES, STATISTIC_LABELS

#: The criteria tables the report knows, in the order it names the missing ones.
CRITERIA_TABLES = (
    "headline",
    "sample_criterion",
    "attribute_criterion",
    "attribute_ranking",
    "countermeasures",
    "routing_curve",
    "cie_groups",
    "susceptible_samples",
)
#: Metrics of the key table: metric -> (column label, formatter of a value).
KEY_METRICS = {
    "accuracy": ("accuracy", lambda v: f"{100 * v:.1f}%"),
    "auc": ("ROC-AUC", lambda v: f"{v:.3f}"),
    "uncertainty": ("uncertainty", lambda v: f"{100 * v:.1f}%"),
    "interdependence": ("interdep. R²", lambda v: f"{v:.3f}"),
}
#: Rows of the group-gap table (largest absolute gaps first).
GROUP_GAP_ROWS = 15


# ---------------------------------------------------------------- the table model
@dataclass
class Table:
    """A sortable HTML table: header labels, which columns sort numerically, and rows of cells.

    A cell is ``(text, sort_key)``; ``sort_key`` is a float (NaN sorts last) for numeric
    columns and the text otherwise.
    """

    columns: list[str]
    numeric: list[bool]
    rows: list[list[tuple[str, float | str]]]
    note: str = ""

    def __post_init__(self):
        if len(self.columns) != len(self.numeric):
            raise ValueError("columns and numeric must have the same length")
        for row in self.rows:
            if len(row) != len(self.columns):
                raise ValueError(f"a row has {len(row)} cells for {len(self.columns)} columns")


@dataclass
class Column:
    """How one DataFrame column appears in a :class:`Table`.

    ``format`` turns a value into its text (None: ``str``); the column sorts by value when
    ``numeric`` (default: when it has a formatter), else by text; ``sort`` names another
    column whose (numeric) value is the sort key instead.
    """

    label: str
    format: Callable[[object], str] | None = None
    numeric: bool | None = None
    sort: str | None = None

    def __post_init__(self):
        if self.numeric is None:
            self.numeric = self.format is not None or self.sort is not None


def frame_table(frame: pd.DataFrame, columns: Mapping[str, Column], note: str = "") -> Table:
    """A :class:`Table` of the named ``columns`` of ``frame``; numeric columns sort by value."""
    keys = {c.sort for c in columns.values() if c.sort}
    require_columns(frame, [*columns, *keys], "frame")
    rows = []
    for record in frame.to_dict("records"):
        row = []
        for name, col in columns.items():
            value = record[name]
            text = str(value) if col.format is None else col.format(value)
            if col.numeric:
                key = record[col.sort] if col.sort else value
                row.append((text, float(key) if is_finite(key) else float("nan")))
            else:
                row.append((text, text))
        rows.append(row)
    return Table([c.label for c in columns.values()], [bool(c.numeric) for c in columns.values()], rows, note)


def sparsity_column() -> Column:
    """A sparsity column: 'dense' or a percentage, sorted by value."""
    return Column("sparsity", sparsity_text)


def method_column() -> Column:
    """A method column: its label, sorted as text."""
    return Column("method", method_text, numeric=False)


def setting_columns(frame: pd.DataFrame) -> dict[str, Column]:
    """Setting columns worth showing: those with more than one value."""
    return {c: Column(c) for c in SETTING if c in frame.columns and frame[c].nunique() > 1}


def model_columns(frame: pd.DataFrame, sparsity: Mapping[str, Column] | None = None) -> dict[str, Column]:
    """The columns naming a model: varying settings, method and sparsity (``sparsity``: another
    sparsity column, {name: Column}, instead of ``sparsity``)."""
    return setting_columns(frame) | {"method": method_column()} | (sparsity or {"sparsity": sparsity_column()})


# ---------------------------------------------------------------- the key table
def key_table(metrics: pd.DataFrame, threshold: str = "default") -> Table:
    """Accuracy, AUC, BA per identity, uncertainty and interdependence per method × sparsity.

    Each cell is the mean over attributes per model, then mean ± std over seeds; sorting
    uses the mean.
    """
    frames = []
    for metric in KEY_METRICS:
        frames.append(seed_curves(metrics, metric, threshold).assign(column=metric))
    ba = seed_curves(metrics, "bias_amplification", threshold, per_identity=True)
    frames.append(ba.assign(column="BA " + ba["identity"]).drop(columns="identity"))
    long = pd.concat(frames, ignore_index=True)
    identities = sorted(set(ba["identity"]))
    order = list(KEY_METRICS) + [f"BA {g}" for g in identities]
    labels = [KEY_METRICS[m][0] if m in KEY_METRICS else m for m in order]
    formats = {m: KEY_METRICS[m][1] if m in KEY_METRICS else (lambda v: f"{v:+.3f}") for m in order}
    settings = setting_columns(long)
    models = long[MODEL].drop_duplicates()
    models = models.assign(_m=method_rank(models["method"]))
    models = models.sort_values(SETTING + ["_m", "sparsity"]).drop(columns="_m")
    cells = long.set_index(MODEL + ["column"])
    rows = []
    for model in models.itertuples(index=False, name=None):
        row = [(str(v), str(v)) for c, v in zip(MODEL[:3], model[:3]) if c in settings]
        row += [(method_text(model[3]), method_text(model[3])), (level_text(model[3], model[4]), float(model[4]))]
        for col in order:
            key = (*model, col)
            if key in cells.index:
                r = cells.loc[key]
                mean, std = float(r["mean"]), float(r["std"])
                text = formats[col](mean) if is_finite(mean) else DASH
                if is_finite(mean) and is_finite(std):
                    text += f" ± {formats[col](std).lstrip('+')}"
                row.append((text, mean if is_finite(mean) else float("nan")))
            else:
                row.append((DASH, float("nan")))
        rows.append(row)
    columns = list(settings) + ["method", "sparsity"] + labels
    numeric = [False] * len(settings) + [False, True] + [True] * len(labels)
    return Table(
        columns,
        numeric,
        rows,
        note=f"{threshold} threshold; mean over attributes per model, then mean ± std over seeds; "
        "BA: bias amplification w.r.t. each identity, mean over the attributes where it is defined.",
    )


def group_gap_table(groups: pd.DataFrame, n: int = GROUP_GAP_ROWS) -> Table:
    """The largest accuracy gaps between identity groups, dense and at the highest sparsity."""
    need = MODEL + ["attribute", "identity", "group_0", "group_1", "gap_points"]
    require_columns(groups, need, "group gaps table")
    top = groups.groupby(SETTING + ["method"])["sparsity"].transform("max")
    # an identity against itself has accuracy 100 / 0 % by construction: not a gap
    rows = groups[
        (groups["sparsity"] == top) & groups["gap_points"].notna() & (groups["attribute"] != groups["identity"])
    ]
    rows = rows.assign(_abs=rows["gap_points"].abs()).sort_values("_abs", ascending=False, kind="stable").head(n)
    columns = model_columns(groups) | {
        "attribute": Column("attribute"),
        "identity": Column("identity"),
        "group_0": Column("accuracy, identity = 0", percent_text),
        "group_1": Column("accuracy, identity = 1", percent_text),
        "gap_points": Column("gap (points)", lambda v: number_text(v, "+.1f")),
    }
    return frame_table(rows, columns, note="Dense models and each method's highest sparsity; default threshold.")


# ---------------------------------------------------------------- criteria tables
def _with_ci(value: pd.Series, low: pd.Series, high: pd.Series, spec: str) -> list[str]:
    """'value [low, high]' per row: the estimate in ``spec``, its interval to two decimals."""
    return [
        f"{number_text(v, spec)} [{number_text(lo, '.2f')}, {number_text(hi, '.2f')}]"
        for v, lo, hi in zip(value, low, high)
    ]


def _section(name: str, title: str, frame: pd.DataFrame, columns: Mapping[str, Column]) -> dict:
    """One entry of :func:`criteria_section`."""
    return {"name": name, "title": title, "table": frame_table(frame, columns)}


def criteria_section(criteria: Mapping[str, pd.DataFrame]) -> list[dict]:
    """The criteria and countermeasure tables shown in the report, each {"name", "title", "table"}."""
    out = []
    f2, f3 = (lambda v: number_text(v, ".2f")), (lambda v: number_text(v, ".3f"))
    if "headline" in criteria:
        h = criteria["headline"]
        h = h[h["score"].isin(["uncertainty", "flag"])]
        h = h.assign(auc_ci=_with_ci(h["auc"], h["auc_low"], h["auc_high"], ".2f"))
        cols = model_columns(h) | {
            "target": Column("target"),
            "score": Column("score"),
            "share_flagged": Column("flagged", share_text),
            "captured": Column("captured", share_text),
            "chance": Column("chance", share_text),
            "lift": Column("lift", f2),
            "auc_ci": Column("ROC-AUC [95% CI]", sort="auc"),
        }
        out.append(_section("headline", "Does dense uncertainty find what pruning changes?", h, cols))
    if "attribute_criterion" in criteria:
        a = criteria["attribute_criterion"]
        a = a.assign(
            statistic=a["statistic"].map(lambda s: STATISTIC_LABELS.get(s, s)),
            rho_ci=_with_ci(a["spearman"], a["spearman_low"], a["spearman_high"], "+.2f"),
        )
        cols = model_columns(a) | {
            "identity": Column("identity"),
            "statistic": Column("dense statistic"),
            "n_attributes": Column("attributes", count_text),
            "rho_ci": Column("Spearman ρ with ΔBA [95% CI]", sort="spearman"),
            "p_value": Column("p", lambda v: number_text(v, ".2g")),
            "rank": Column("rank", lambda v: number_text(v, ".0f")),
            "top_k_overlap": Column("top-k overlap", share_text),
            "top_k_chance": Column("chance", share_text),
        }
        out.append(_section("attribute_criterion", "Which dense statistic predicts where BA grows?", a, cols))
    if "countermeasures" in criteria:
        c = criteria["countermeasures"]
        cols = model_columns(c) | {
            "countermeasure": Column("countermeasure"),
            "fraction": Column("routed", share_text),
            "identity": Column("identity"),
            "metric": Column("metric"),
            "dense": Column("dense", f3),
            "sparse": Column("pruned", f3),
            "countered": Column("with countermeasure", f3),
            "recovered": Column("recovered", share_text),
        }
        out.append(_section("countermeasures", "Countermeasures: bias and accuracy recovered", c, cols))
    if "cie_groups" in criteria:
        g = criteria["cie_groups"]
        g = g[(g["attribute"] == "all") & (g["identity"] != "all")]
        cols = model_columns(g) | {
            "kind": Column("kind"),
            "identity": Column("identity"),
            "group": Column("group"),
            "rate": Column("rate", lambda v: percent_text(v, 2)),
            "event_share": Column("share of events", share_text),
            "sample_share": Column("share of samples", share_text),
            "over_representation": Column("over-representation", f2),
        }
        out.append(_section("cie_groups", "Are CIEs concentrated in an identity group?", g, cols))
    return out


# ---------------------------------------------------------------- equal cost
#: Columns of the equal-cost tables (prunebias.analysis.cost_tradeoff).
COST_COLUMNS = {
    "family": Column("family"),
    "speedup_b1": Column("speed-up, batch 1", lambda v: number_text(v, ".2f") + "×"),
    "speedup_b64": Column("speed-up, batch 64", lambda v: number_text(v, ".2f") + "×"),
    "size_ratio": Column("size (× dense)", lambda v: number_text(v, ".3f")),
    "params_ratio": Column("parameters kept", percent_text),
    "flops_ratio": Column("FLOPs (× dense)", lambda v: number_text(v, ".3f")),
    "delta_accuracy": Column("Δaccuracy (points)", lambda v: number_text(v, "+.2f")),
    "delta_ba": Column("ΔBA", lambda v: number_text(v, "+.4f")),
    "seeds": Column("seeds", count_text),
}


def _level_column(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(level=[level_text(m, s) for m, s in zip(frame["method"], frame["sparsity"])])


def cost_table(points: pd.DataFrame) -> Table:
    """Every compressed model's measured cost and change against dense (mean over seeds)."""
    columns = model_columns(points, {"level": Column("level", sort="sparsity")}) | COST_COLUMNS
    ordered = points.assign(_m=method_rank(points["method"])).sort_values([*SETTING, "_m", "sparsity"])
    return frame_table(
        _level_column(ordered),
        columns,
        note="Ratios and changes per seed against that seed's dense model, then mean over seeds; "
        "latency measured per image on the CPU; ΔBA: mean over the defined (identity, attribute) pairs, default threshold.",
    )


def matched_table(points: pd.DataFrame, max_drop: float = MATCHED_DROP) -> Table:
    """Per method, its most compressed model within ``max_drop`` points of the dense accuracy, least ΔBA first."""
    best = matched_accuracy(points, max_drop)
    columns = model_columns(best, {"level": Column("level", sort="sparsity")}) | COST_COLUMNS
    return frame_table(
        _level_column(best),
        columns,
        note=f"Each method's most compressed model (least FLOPs, then size, then parameters kept) losing at most "
        f"{max_drop:g} point of mean accuracy; "
        "methods with none are left out. Sorted by ΔBA: the first row adds the least bias at that accuracy. "
        "Plain means over seeds; the support-stable changes with bootstrap intervals, per method, are in the effects table.",
    )


# ---------------------------------------------------------------- the shortcut control
def shortcut_control_table(control: pd.DataFrame) -> Table:
    """Every change of the shortcut control: per reference, weight, threshold, statistic and identity."""
    rows = control.assign(
        change=[interval_text(*r) for r in zip(control["delta"], control["ci_low"], control["ci_high"])],
        statistic_label=control["statistic"].map(
            {"bias_amplification": "ΔBA", "identity_dependence": "Δ identity dependence"}
        ),
    ).sort_values([*SETTING, "threshold", "statistic", "identity", "reference", "weight"])
    columns = setting_columns(rows) | {
        "reference": Column("mixed with", SHORTCUT_REFERENCES.get, numeric=False),
        "weight": Column("weight", lambda v: number_text(v, ".1f")),
        "information_kept": Column("information kept", lambda v: percent_text(v, 0)),
        "threshold": Column("threshold"),
        "statistic_label": Column("statistic"),
        "identity": Column("identity"),
        "pairs": Column("support", count_text),
        "change": Column("change [95 % CI]", numeric=True, sort="delta"),
    }
    return frame_table(rows, columns)
