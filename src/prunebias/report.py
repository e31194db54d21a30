"""The audit report: one self-contained HTML file from the workflow's tables, figures and data.

Pure functions turn tables into report content: headline sentences generated from the
numbers (each tolerant of a missing table), the key table, criteria and countermeasure
tables, and gallery cards of the most susceptible samples. :func:`build_report` is the I/O
edge: it reads the inputs, renders the Jinja2 template ``prunebias/templates/audit_report.html.j2`` and
writes ``results/report.html`` atomically.

Everything the page needs is inside the file: figures as data URIs (SVG, else PNG),
thumbnails as PNG (small images) or JPEG (photographs) data URIs, CSS and a small table
sorter inline, and a Content-Security-Policy (``default-src 'none'``) so the browser makes
no request at all. The output holds no date or machine path: same inputs, same bytes.

Table conventions (:mod:`prunebias.analysis.metrics`): ``metrics`` is the per-model tidy table
(``results/tables/metrics.parquet``; means and stds over seeds are taken here, after
averaging over attributes per model); criteria tables are those of
:func:`prunebias.analysis.criteria.criteria_tables` with the setting columns ``dataset, task, arch``
in front.
"""

from __future__ import annotations

import base64
import html
import io
import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from prunebias.io import read_metadata, write_text
from prunebias.validation import require_columns
from prunebias.vocabulary import METHOD_LABELS, METHODS, MODEL, SETTING, STATISTIC_LABELS

__all__ = [
    "ACCURACY_TOLERANCE_POINTS",
    "BA_TOLERANCE",
    "FLAG_FRACTION",
    "MAX_REPORT_BYTES",
    "ROUTING_FRACTION",
    "Table",
    "accuracy_sentence",
    "build_report",
    "calibration_sentence",
    "change_sentence",
    "cie_sentence",
    "compute_table",
    "findings",
    "gallery",
    "key_table",
    "predictor_sentence",
    "render_report",
    "routing_sentence",
    "seed_curves",
    "thumbnail",
]

# ---------------------------------------------------------------- thresholds of the sentences
#: Accuracy counts as kept while it is at most this many points below the dense model.
ACCURACY_TOLERANCE_POINTS = 0.5
#: Changes of mean bias amplification smaller than this read as "flat".
BA_TOLERANCE = 0.01
#: Changes of the share of uncertain outputs smaller than this (1 point) read as "flat".
UNCERTAINTY_TOLERANCE = 0.01
#: Changes of interdependence (R²) smaller than this read as "flat".
INTERDEPENDENCE_TOLERANCE = 0.02
#: Share of (sample, attribute) pairs flagged in the CIE sentence (nearest available).
FLAG_FRACTION = 0.10
#: Share of samples routed to the dense model in the routing sentence (nearest available > 0).
ROUTING_FRACTION = 0.10

# ---------------------------------------------------------------- layout limits
#: The default run must stay below this (checked by the tests).
MAX_REPORT_BYTES = 20 * 2**20
#: Thumbnails are drawn at about this side in pixels (small images upscaled by an integer factor).
THUMB_SIZE = 96
#: JPEG quality of downscaled (photographic) thumbnails.
JPEG_QUALITY = 85
#: Past this many bytes of thumbnails the remaining gallery attributes are listed without images.
GALLERY_BUDGET_BYTES = 8 * 2**20
#: Gallery attributes shown open; the others are folded (one click opens them).
GALLERY_OPEN = 3
#: Rows of the group-gap table (largest absolute gaps first).
GROUP_GAP_ROWS = 15

#: The task of the main grid (prunebias.tasks.JOINT); findings and the key table are about it,
#: other tasks (controlled experiments) get their own table.
MAIN_TASK = "joint"
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
DASH = "–"


# ================================================================ formatting
def _finite(x) -> bool:
    return x is not None and isinstance(x, (int, float, np.integer, np.floating)) and math.isfinite(float(x))


def sparsity_text(sparsity: float) -> str:
    """'dense' for 0, else a percentage: 0.9 -> '90%', 0.995 -> '99.5%'."""
    return "dense" if sparsity == 0 else f"{100 * float(sparsity):.4g}%"


def method_text(method: str) -> str:
    return METHOD_LABELS.get(method, method)


def _fmt(x, spec: str = ".3f") -> str:
    return format(float(x), spec) if _finite(x) else DASH


def _pct(x, digits: int = 1) -> str:
    return f"{100 * float(x):.{digits}f}%" if _finite(x) else DASH


def _share(x) -> str:
    """A share as a whole percentage ('45%'), for sentences."""
    return f"{100 * float(x):.0f}%" if _finite(x) else DASH


# ================================================================ tables
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
                row.append((text, float(key) if _finite(key) else float("nan")))
            else:
                row.append((text, text))
        rows.append(row)
    return Table([c.label for c in columns.values()], [bool(c.numeric) for c in columns.values()], rows, note)


def _sparsity_col() -> Column:
    return Column("sparsity", sparsity_text)


def _method_col() -> Column:
    return Column("method", method_text, numeric=False)


def _setting_columns(frame: pd.DataFrame) -> dict[str, Column]:
    """Setting columns worth showing: those with more than one value."""
    return {c: Column(c) for c in SETTING if c in frame.columns and frame[c].nunique() > 1}


# ================================================================ curves over seeds
def seed_curves(
    metrics: pd.DataFrame, metric: str, threshold: str = "default", per_identity: bool = False
) -> pd.DataFrame:
    """Mean over attributes per model, then mean, std and count over seeds.

    Parameters
    ----------
    metrics : DataFrame
        Per-model tidy metrics (:func:`prunebias.analysis.metrics.model_metrics`).
    metric : str
        A metric name; attribute-level metrics use the rows with identity "all", and with
        ``per_identity`` the rows of each identity (e.g. bias amplification).
    threshold : {"default", "calibrated"}
    per_identity : bool

    Returns
    -------
    DataFrame
        ``dataset, task, arch, method, sparsity`` (+ ``identity``), ``mean, std, n_seeds``,
        sorted. Undefined (NaN) values are skipped; a model with none counts no seed.
    """
    need = MODEL + ["seed", "attribute", "identity", "group", "threshold", "metric", "value"]
    require_columns(metrics, need, "metrics")
    rows = metrics[(metrics["metric"] == metric) & (metrics["threshold"] == threshold) & (metrics["group"] == "all")]
    rows = rows[rows["identity"] != "all"] if per_identity else rows[rows["identity"] == "all"]
    keys = MODEL + (["identity"] if per_identity else [])
    per_model = rows.groupby(keys + ["seed"], sort=True)["value"].mean().reset_index()
    out = per_model.groupby(keys, sort=True)["value"].agg(mean="mean", std="std", n_seeds="count").reset_index()
    return out


def _split_curve(curve: pd.DataFrame, method: str) -> tuple[float, pd.Series]:
    """(dense mean, Series sparsity -> mean of ``method``, ascending) of one setting's curve."""
    dense = curve.loc[curve["method"] == "dense", "mean"]
    sparse = curve[curve["method"] == method].set_index("sparsity")["mean"].sort_index()
    return (float(dense.iloc[0]) if len(dense) else float("nan")), sparse


# ================================================================ sentences
def accuracy_sentence(
    dense: float, sparse: pd.Series, method: str, tolerance: float = ACCURACY_TOLERANCE_POINTS
) -> str:
    """How far accuracy falls below the dense model as sparsity grows.

    Parameters
    ----------
    dense : float
        Dense accuracy (a fraction).
    sparse : Series
        Accuracy (fractions) of ``method`` indexed by sparsity.
    method : str
    tolerance : float
        Points below dense that still count as "kept".
    """
    sparse = sparse.dropna().sort_index()
    if not _finite(dense) or sparse.empty:
        return f"Accuracy of {method_text(method)} cannot be compared with dense: a value is missing."
    drop = 100 * (dense - sparse)  # points lost (negative: gained)
    kept = (drop.round(9) <= tolerance).to_numpy()  # round: 0.90 - 0.88 is 2.0000000000000018 points
    n_kept = len(kept) if kept.all() else int(np.argmin(kept))
    label = method_text(method)
    last_s, last_v = sparse.index[-1], sparse.iloc[-1]
    if n_kept == len(sparse):
        return (
            f"Accuracy stays within {tolerance:g} points of dense at every sparsity up to {sparsity_text(last_s)} "
            f"({label}): {_pct(dense)} dense, {_pct(last_v)} at {sparsity_text(last_s)}."
        )
    first_s = sparse.index[n_kept]
    text = (
        f"Accuracy stays within {tolerance:g} points of dense up to {sparsity_text(sparse.index[n_kept - 1])} sparsity "
        f"({label}); at {sparsity_text(first_s)} it drops by {drop.iloc[n_kept]:.1f} points"
        if n_kept
        else f"Accuracy drops by {drop.iloc[0]:.1f} points already at {sparsity_text(first_s)} sparsity ({label})"
    )
    text += f" ({_pct(dense)} → {_pct(sparse.iloc[n_kept])})"
    if last_s != first_s and kept[-1]:
        text += f", but is back within {tolerance:g} points at {sparsity_text(last_s)} ({_pct(last_v)})"
    elif last_s != first_s:
        text += f", and by {drop.iloc[-1]:.1f} points at {sparsity_text(last_s)}"
    return text + "."


def change_sentence(
    subject: str,
    dense: float,
    sparse: pd.Series,
    method: str,
    tolerance: float,
    fmt: Callable[[float], str] = lambda v: f"{v:.3f}",
) -> str:
    """Say whether ``subject`` rises, falls or stays flat from dense to the highest sparsity.

    "<subject> rises from <dense> (dense) to <value> at <sparsity> sparsity (<method>)". A
    change within ``tolerance`` reads as flat. When the largest change from dense happens at
    another sparsity and differs from the last value by more than ``tolerance``, the
    sentence says so.
    """
    sparse = sparse.dropna().sort_index()
    label = method_text(method)
    if not _finite(dense) or sparse.empty:
        return f"{subject} cannot be compared with dense for {label}: it is undefined."
    s_max, v_max = sparse.index[-1], float(sparse.iloc[-1])
    delta = v_max - dense
    where = f"at {sparsity_text(s_max)} sparsity ({label})"
    if abs(delta) <= tolerance:
        text = f"{subject} stays flat: {fmt(dense)} (dense) vs {fmt(v_max)} {where}"
    else:
        verb = "rises" if delta > 0 else "falls"
        text = f"{subject} {verb} from {fmt(dense)} (dense) to {fmt(v_max)} {where}"
    peak = (sparse - dense).abs().idxmax()
    if peak != s_max and abs(sparse[peak] - dense) > tolerance and abs(sparse[peak] - v_max) > tolerance:
        text += f"; the largest change is at {sparsity_text(peak)} ({fmt(sparse[peak])})"
    return text + "."


def ba_coverage_sentence(ba_rows: pd.DataFrame, method: str) -> str | None:
    """Warn when the BA means of ``method`` cover fewer (identity, attribute) pairs than dense.

    ``ba_rows``: one setting's per-model bias-amplification rows (identity != "all"). Test
    labels and training data are the same for every model, so a pair defined for the dense
    model but not for a sparse one means the sparse model predicts no positive of that
    attribute: the BA mean at that sparsity leaves those collapsed attributes out.
    None when no sparsity loses pairs.
    """
    rows = ba_rows[ba_rows["method"].isin(["dense", method])]
    per_model = rows.assign(defined=np.isfinite(rows["value"].to_numpy(dtype=float)))
    counts = per_model.groupby(["method", "sparsity", "seed"])["defined"].sum().groupby(["method", "sparsity"]).mean()
    if "dense" not in counts.index.get_level_values(0) or method not in counts.index.get_level_values(0):
        return None
    dense, sparse = float(counts.loc["dense"].iloc[0]), counts.loc[method]
    worst = sparse.idxmin()
    if sparse[worst] >= dense:
        return None
    return (
        f"Bias amplification is defined for {sparse[worst]:.3g} (identity, attribute) pairs at "
        f"{sparsity_text(worst)} sparsity ({method_text(method)}) against {dense:.3g} for dense "
        "(mean over seeds); a pair drops out when the model predicts no positive of its attribute, "
        'so the BA means above leave out the attributes that collapsed to "never".'
    )


def _at_top_sparsity(frame: pd.DataFrame) -> tuple[float, pd.DataFrame]:
    top = float(frame["sparsity"].max())
    return top, frame[frame["sparsity"] == top]


def _nearest(frame: pd.DataFrame, column: str, target: float) -> pd.DataFrame:
    """Rows whose ``column`` is the available value nearest to ``target``."""
    values = frame[column].dropna().unique()
    if len(values) == 0:
        return frame.iloc[:0]
    best = values[np.argmin(np.abs(values - target))]
    return frame[frame[column] == best]


def calibration_sentence(countermeasures: pd.DataFrame, method: str, tolerance: float = BA_TOLERANCE) -> str:
    """What calibrated thresholds do to the BA change at the highest sparsity of ``method``.

    ``countermeasures``: rows of one setting (criteria table ``countermeasures``).
    """
    label = method_text(method)
    rows = countermeasures[
        (countermeasures["method"] == method)
        & (countermeasures["countermeasure"] == "calibrated_threshold")
        & (countermeasures["identity"] == "all")
    ]
    ba = rows[rows["metric"] == "bias_amplification"]
    if ba.empty:
        return f"No calibrated-threshold result for {label}."
    s, ba = _at_top_sparsity(ba)
    r = ba.iloc[0]
    where = f"at {sparsity_text(s)} ({label})"
    values = (
        f"mean BA {_fmt(r['dense'])} dense, {_fmt(r['sparse'])} pruned, "
        f"{_fmt(r['countered'])} with calibrated thresholds"
    )
    change = r["sparse"] - r["dense"]
    if not _finite(change):
        text = f"The effect of calibrated thresholds {where} is undefined ({values})"
    elif change > tolerance:
        text = f"Calibrated thresholds remove {_share(r['recovered'])} of the BA increase {where}: {values}"
    elif change < -tolerance:
        text = f"Pruning lowers BA {where}, so there is no increase for calibrated thresholds to remove: {values}"
    else:
        text = f"Pruning leaves BA about unchanged {where}, so calibrated thresholds have little to remove: {values}"
    acc = rows[(rows["metric"] == "accuracy") & (rows["sparsity"] == s)]
    if len(acc):
        a = acc.iloc[0]
        text += f"; accuracy {_pct(a['sparse'])} → {_pct(a['countered'])}"
    return text + "."


def cie_sentence(headline: pd.DataFrame, method: str, fraction: float = FLAG_FRACTION) -> str:
    """How well dense uncertainty finds the CIEs of the highest sparsity of ``method``.

    ``headline``: rows of one setting (criteria table ``headline``).
    """
    label = method_text(method)
    rows = headline[
        (headline["method"] == method)
        & (headline["target"] == "cie")
        & (headline["score"] == "uncertainty")
        & (headline["selection"] == "top")
    ]
    if rows.empty:
        return f"No CIE evaluation for {label}."
    s, rows = _at_top_sparsity(rows)
    r = _nearest(rows, "fraction", fraction).iloc[0]
    where = f"At {sparsity_text(s)} ({label})"
    if not _finite(r["auc"]):
        return f"{where} the sparse and dense majority votes never disagree, or always do: no CIE to find."
    return (
        f"{where} dense uncertainty identifies compression-identified exemplars (CIEs) with ROC-AUC "
        f"{_fmt(r['auc'], '.2f')} [{_fmt(r['auc_low'], '.2f')}, {_fmt(r['auc_high'], '.2f')}]; flagging "
        f"{_share(r['fraction'])} of (sample, attribute) pairs catches {_share(r['captured'])} of the "
        f"{int(r['n_targets'])} CIEs (chance: {_share(r['chance'])})."
    )


def routing_sentence(routing_curve: pd.DataFrame, method: str, fraction: float = ROUTING_FRACTION) -> str:
    """BA recovered by routing the most uncertain samples to the dense model, vs random routing.

    ``routing_curve``: rows of one setting (criteria table ``routing_curve``).
    """
    label = method_text(method)
    rows = routing_curve[
        (routing_curve["method"] == method)
        & (routing_curve["identity"] == "all")
        & (routing_curve["metric"] == "bias_amplification")
        & (routing_curve["fraction"] > 0)
    ]
    if rows.empty:
        return f"No routing result for {label}."
    s, rows = _at_top_sparsity(rows)
    rows = _nearest(rows, "fraction", fraction)
    by = rows.set_index("routing")
    if "susceptible" not in by.index:
        return f"No routing result for {label}."
    r = by.loc["susceptible"]
    k = _share(r["fraction"])
    where = f"at {sparsity_text(s)} ({label})"
    if not _finite(r["recovered"]):
        return (
            f"Pruning barely changes mean BA {where} ({_fmt(r['dense'])} dense, {_fmt(r['sparse'])} pruned): "
            f"nothing for routing to recover."
        )
    kind = "increase" if r["sparse"] > r["dense"] else "change"
    if r["recovered"] < 0:
        text = (
            f"Routing the {k} most uncertain samples to the dense model moves BA further from dense {where} "
            f"({_share(r['recovered'])} of the BA {kind} recovered)"
        )
    else:
        text = (
            f"Routing the {k} most uncertain samples to the dense model recovers "
            f"{_share(r['recovered'])} of the BA {kind} {where}"
        )
    if "random" in by.index:
        text += f", vs {_share(by.loc['random', 'recovered'])} for {k} routed at random"
    return text + "."


def predictor_sentence(attribute_criterion: pd.DataFrame, method: str) -> str:
    """Which dense statistic best predicts ΔBA across attributes at the highest sparsity.

    ``attribute_criterion``: rows of one setting (criteria table ``attribute_criterion``);
    the pooled identity "all" is used when present.
    """
    label = method_text(method)
    rows = attribute_criterion[(attribute_criterion["method"] == method) & attribute_criterion["spearman"].notna()]
    if "all" in set(rows["identity"]):
        rows = rows[rows["identity"] == "all"]
    if rows.empty:
        return f"No attribute criterion for {label}: ΔBA is undefined for too many attributes."
    s, rows = _at_top_sparsity(rows)
    r = rows.sort_values(["rank", "statistic"]).iloc[0]
    name = STATISTIC_LABELS.get(r["statistic"], r["statistic"])
    text = (
        f"The dense statistic that best predicts ΔBA at {sparsity_text(s)} ({label}) is {name} "
        f"(Spearman ρ = {_fmt(r['spearman'], '+.2f')} [{_fmt(r['spearman_low'], '.2f')}, "
        f"{_fmt(r['spearman_high'], '.2f')}] over {int(r['n_attributes'])} attributes"
    )
    low, high = r["spearman_low"], r["spearman_high"]
    if _finite(low) and _finite(high) and low <= 0 <= high:
        text += "; the interval includes 0, so this is not a reliable ranking"
    return text + ")."


def findings(metrics: pd.DataFrame, criteria: Mapping[str, pd.DataFrame]) -> list[dict]:
    """Headline findings as sentences, per setting and pruned method.

    Parameters
    ----------
    metrics : DataFrame
        Per-model tidy metrics.
    criteria : mapping of table name -> DataFrame
        Criteria tables present in this run (any subset of :data:`CRITERIA_TABLES`).

    Returns
    -------
    list of dict
        ``{"setting": "dataset / task / arch", "method": label, "sentences": [str, ...]}``.
    """
    curves = {
        "accuracy": seed_curves(metrics, "accuracy"),
        "uncertainty": seed_curves(metrics, "uncertainty"),
        "interdependence": seed_curves(metrics, "interdependence"),
        "bias_amplification": seed_curves(metrics, "bias_amplification", per_identity=True),
    }
    per_identity_ba = metrics[
        (metrics["metric"] == "bias_amplification")
        & (metrics["threshold"] == "default")
        & (metrics["group"] == "all")
        & (metrics["identity"] != "all")
    ]
    out = []
    for setting in _settings(metrics):
        here = {k: _in_setting(v, setting) for k, v in curves.items()}
        tables = {k: _in_setting(v, setting) for k, v in criteria.items()}
        ba_rows = _in_setting(per_identity_ba, setting)
        methods = [m for m in _methods(here["accuracy"]["method"]) if m != "dense"]
        if not methods:
            out.append(
                {
                    "setting": " / ".join(setting),
                    "method": "dense",
                    "sentences": ["Only dense models were trained: there is no pruned model to compare."],
                }
            )
        for method in methods:
            sentences = [accuracy_sentence(*_split_curve(here["accuracy"], method), method)]
            ba = here["bias_amplification"]
            for identity in sorted(set(ba["identity"])):
                subject = f"Bias amplification w.r.t. {identity} (mean over attributes)"
                dense, sparse = _split_curve(ba[ba["identity"] == identity], method)
                sentences.append(change_sentence(subject, dense, sparse, method, BA_TOLERANCE))
            coverage = ba_coverage_sentence(ba_rows, method)
            if coverage:
                sentences.append(coverage)
            sentences.append(
                change_sentence(
                    "Uncertainty (share of outputs inside the uncertainty band)",
                    *_split_curve(here["uncertainty"], method),
                    method,
                    UNCERTAINTY_TOLERANCE,
                    _pct,
                )
            )
            sentences.append(
                change_sentence(
                    "Interdependence (R² of each prediction on the others)",
                    *_split_curve(here["interdependence"], method),
                    method,
                    INTERDEPENDENCE_TOLERANCE,
                    lambda v: f"{v:.2f}",
                )
            )
            if "effects" in tables:
                sentences += effect_sentences(tables["effects"], method)
            sentences += _criteria_sentences(tables, method)
            out.append({"setting": " / ".join(setting), "method": method_text(method), "sentences": sentences})
    return out


#: Subjects of the effect sentences, by statistic of :mod:`prunebias.analysis.effects`.
EFFECT_SUBJECTS = {
    "bias_amplification": "BA w.r.t. {identity} on the {pairs} pairs defined at every sparsity ({collapsed} collapsed)",
    "uncertainty": "Uncertainty",
    "interdependence": "Interdependence",
    "identity_dependence": "Identity dependence (R² of each predicted target on the true identities)",
}


def effect_sentences(effects: pd.DataFrame, method: str, threshold: str = "default") -> list[str]:
    """The change at the highest sparsity of ``method``, with its 95 % paired bootstrap CI, per statistic.

    "<subject> rises by 0.040 at 99 % sparsity, 95 % CI [0.020, 0.060]": rises/falls when the
    interval excludes 0, else "does not change detectably".
    """
    rows = effects[(effects["method"] == method) & (effects["threshold"] == threshold)]
    if rows.empty:
        return []
    top = rows["sparsity"].max()
    out = []
    for _, r in rows[rows["sparsity"] == top].iterrows():
        subject = EFFECT_SUBJECTS[r["statistic"]].format(
            identity=r["identity"], pairs=int(r["pairs"]), collapsed=int(r["collapsed"])
        )
        ci = f"95 % CI [{r['ci_low']:+.3f}, {r['ci_high']:+.3f}]"
        where = f"at {sparsity_text(top)} sparsity vs dense ({r['dense']:.3f} → {r['value']:.3f}; {int(r['seeds'])} seed(s))"
        if not (_finite(r["ci_low"]) and _finite(r["ci_high"])):
            out.append(f"{subject}: undefined {where}.")
        elif r["ci_low"] > 0 or r["ci_high"] < 0:
            verb = "rises" if r["delta"] > 0 else "falls"
            out.append(f"{subject} {verb} by {abs(r['delta']):.3f} {where}, {ci}.")
        else:
            out.append(f"{subject} does not change detectably ({r['delta']:+.3f}) {where}, {ci}.")
    return out


def convergence_table(convergence: pd.DataFrame) -> Table:
    """How much of the dense model's information each setting keeps, and whether its loss still fell."""
    g = (
        convergence.groupby(SETTING + ["method", "sparsity"], sort=True)
        .agg(
            seeds=("seed", "nunique"),
            kept=("information_kept", "mean"),
            val_bce=("val_bce", "mean"),
            prior_bce=("prior_bce", "mean"),
            falling=("still_falling", "sum"),
            drop=("loss_drop_last_epochs", "mean"),
        )
        .reset_index()
    )
    columns = _setting_columns(g) | {
        "method": _method_col(),
        "sparsity": _sparsity_col(),
        "seeds": Column("models", lambda v: str(int(v))),
        "kept": Column("information kept", lambda v: _pct(v, 0)),
        "val_bce": Column("valid BCE", lambda v: f"{v:.3f}"),
        "prior_bce": Column("prior BCE", lambda v: f"{v:.3f}"),
        "drop": Column("train-loss drop, last 2 epochs", lambda v: _pct(v, 1)),
        "falling": Column("still falling (models)", lambda v: str(int(v))),
    }
    return frame_table(
        g,
        columns,
        note="Information kept = (BCE_prior − BCE_model) / (BCE_prior − BCE_dense) on the validation split, the prior "
        "predicting each attribute's training prevalence: 100 % = all the dense model learned, 0 % = a prevalence predictor. "
        "A model whose training loss fell by more than 1 % over its last two epochs was still converging.",
    )


def design_table(design: Mapping[str, pd.DataFrame], identities: Sequence[str]) -> list[dict]:
    """Per synthetic data set, its measured design: prevalence per identity group and cue strength per attribute."""
    out = []
    for name, frame in design.items():
        columns = {
            "attribute": Column("attribute", str),
            "identity": Column("identity", lambda v: "yes" if v else ""),
            "identity_coupled": Column("coupled to identity", lambda v: "yes" if v else "no"),
            "prevalence": Column("prevalence", lambda v: _pct(v, 1)),
        }
        for g in identities:
            for value in (0, 1):
                col = f"prevalence_{g}={value}"
                if col in frame.columns:
                    columns[col] = Column(f"{g}={value}", lambda v: _pct(v, 1))
        columns |= {
            "cue_delta": Column("cue: mean Σ|Δpixel| when it alone flips", lambda v: f"{v:.1f}"),
            "probe_auc": Column("linear probe AUC (pixels)", lambda v: f"{v:.2f}"),
        }
        out.append(
            {
                "name": name,
                "table": frame_table(
                    frame,
                    columns,
                    note=(
                        "Prevalence on the training split, overall and per identity group. Cue: how much the image changes when "
                        "this attribute alone is flipped (same face otherwise, mean over 500 faces). Probe: test ROC-AUC of a linear "
                        "(ridge) probe on "
                        "the raw pixels, which also sees correlated cues (identity included)."
                    ),
                ),
            }
        )
    return out


def _criteria_sentences(tables: Mapping[str, pd.DataFrame], method: str) -> list[str]:
    tables = {k: v for k, v in tables.items() if k not in ("effects", "convergence")}
    parts = [
        ("countermeasures", calibration_sentence),
        ("headline", cie_sentence),
        ("routing_curve", routing_sentence),
        ("attribute_criterion", predictor_sentence),
    ]
    sentences = [fn(tables[name], method) for name, fn in parts if name in tables]
    absent = [name for name, _ in parts if name not in tables]
    if absent:
        sentences.append(
            "Not computed in this run, so not summarised here: "
            + ", ".join(f"criteria table {name!r}" for name in absent)
            + "."
        )
    return sentences


# ================================================================ settings helpers
def _settings(frame: pd.DataFrame) -> list[tuple[str, ...]]:
    return [tuple(map(str, s)) for s in frame[SETTING].drop_duplicates().sort_values(SETTING).itertuples(index=False)]


def _in_setting(frame: pd.DataFrame, setting: Sequence[str]) -> pd.DataFrame:
    if not set(SETTING) <= set(frame.columns):
        return frame  # a table of one setting written without its setting columns
    mask = np.ones(len(frame), dtype=bool)
    for col, value in zip(SETTING, setting):
        mask &= frame[col].astype(str).to_numpy() == value
    return frame[mask]


def _methods(methods: Iterable[str]) -> list[str]:
    present = set(methods)
    known = [m for m in METHODS if m in present]
    return known + sorted(present - set(METHODS))


# ================================================================ the key table
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
    settings = _setting_columns(long)
    models = long[MODEL].drop_duplicates()
    models = models.assign(_m=models["method"].map({m: i for i, m in enumerate(_methods(models["method"]))}))
    models = models.sort_values(SETTING + ["_m", "sparsity"]).drop(columns="_m")
    cells = long.set_index(MODEL + ["column"])
    rows = []
    for model in models.itertuples(index=False, name=None):
        row = [(str(v), str(v)) for c, v in zip(MODEL[:3], model[:3]) if c in settings]
        row += [(method_text(model[3]), method_text(model[3])), (sparsity_text(model[4]), float(model[4]))]
        for col in order:
            key = (*model, col)
            if key in cells.index:
                r = cells.loc[key]
                mean, std = float(r["mean"]), float(r["std"])
                text = formats[col](mean) if _finite(mean) else DASH
                if _finite(mean) and _finite(std):
                    text += f" ± {formats[col](std).lstrip('+')}"
                row.append((text, mean if _finite(mean) else float("nan")))
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
    columns = _setting_columns(groups) | {
        "method": _method_col(),
        "sparsity": _sparsity_col(),
        "attribute": Column("attribute"),
        "identity": Column("identity"),
        "group_0": Column("accuracy, identity = 0", _pct),
        "group_1": Column("accuracy, identity = 1", _pct),
        "gap_points": Column("gap (points)", lambda v: _fmt(v, "+.1f")),
    }
    return frame_table(rows, columns, note="Dense models and each method's highest sparsity; default threshold.")


# ================================================================ what was run
def grid_table(metrics: pd.DataFrame) -> Table:
    """One row per setting: methods, sparsities, seeds and the number of models."""
    rows = []
    for setting in _settings(metrics):
        here = _in_setting(metrics, setting)
        models = here[MODEL + ["seed"]].drop_duplicates()
        sparsities = sorted(set(models.loc[models["method"] != "dense", "sparsity"]))
        texts = list(setting) + [
            ", ".join(method_text(m) for m in _methods(models["method"])),
            ", ".join(sparsity_text(s) for s in sparsities) or DASH,
            ", ".join(str(s) for s in sorted(set(models["seed"]))),
        ]
        rows.append([(t, t) for t in texts] + [(str(len(models)), float(len(models)))])
    return Table(SETTING + ["methods", "sparsities", "seeds", "models"], [False] * 6 + [True], rows)


def data_table(datasets: Mapping[str, dict]) -> Table:
    """One row per data set: source, resolution, split sizes, attributes, identity prevalence.

    ``datasets``: name -> {"info": index metadata, "index": DataFrame, "shape": image array
    shape, "identities": list of identity names}.
    """
    rows = []
    for name, d in sorted(datasets.items()):
        index, info = d["index"], d["info"]
        counts = index["split"].value_counts()
        test = index[index["split"] == "test"]
        prevalence = ", ".join(
            f"{g} {_share(test[g].mean())}" for g in d["identities"] if g in test.columns and len(test)
        )
        shape = d["shape"]
        rows.append(
            [
                (name, name),
                (str(info.get("source", DASH)), str(info.get("source", DASH))),
                (f"{shape[1]}×{shape[2]} px" if shape else DASH, float(shape[1]) if shape else float("nan")),
            ]
            + [(f"{int(counts.get(s, 0)):,}", float(counts.get(s, 0))) for s in ("train", "valid", "test")]
            + [(str(len(info.get("attributes", []))), float(len(info.get("attributes", [])))), (prevalence, prevalence)]
        )
    return Table(
        ["data set", "source", "resolution", "train", "valid", "test", "attributes", "identity prevalence (test)"],
        [False, False, True, True, True, True, True, False],
        rows,
    )


def sparsity_table(runs: pd.DataFrame) -> Table:
    """Measured vs target sparsity per setting, method and target (over seeds).

    ``runs``: one row per model with ``dataset, task, arch, method, target_sparsity,
    measured_sparsity, seed`` (the predictions' metadata).
    """
    pruned = runs[runs["method"] != "dense"]
    if pruned.empty:
        return Table(["method"], [False], [], note="No pruned model in this run.")
    g = pruned.assign(error=(pruned["measured_sparsity"] - pruned["target_sparsity"]).abs())
    g = (
        g.groupby(SETTING + ["method", "target_sparsity"], sort=True)
        .agg(
            seeds=("seed", "nunique"),
            measured=("measured_sparsity", "mean"),
            lowest=("measured_sparsity", "min"),
            highest=("measured_sparsity", "max"),
            error=("error", "max"),
        )
        .reset_index()
    )
    columns = _setting_columns(g) | {
        "method": _method_col(),
        "target_sparsity": Column("target", lambda v: f"{100 * v:.2f}%"),
        "seeds": Column("models", lambda v: str(int(v))),
        "measured": Column("measured (mean)", lambda v: f"{100 * v:.3f}%"),
        "lowest": Column("lowest", lambda v: f"{100 * v:.3f}%"),
        "highest": Column("highest", lambda v: f"{100 * v:.3f}%"),
        "error": Column("largest |measured − target|", lambda v: f"{100 * v:.4f} points"),
    }
    return frame_table(
        g, columns, note="Measured over the pruned tensors (every conv weight and the final linear weight)."
    )


def compute_table(benchmarks: pd.DataFrame, missing: int = 0) -> Table:
    """Compute time per stage from Snakemake benchmark rows (``stage``, ``s``, ``max_rss``).

    ``missing``: jobs whose benchmark file is absent (said in the note, not counted).
    """
    absent = f" {missing} job(s) without a benchmark file are not counted." if missing else ""
    if benchmarks.empty:
        return Table(["stage"], [False], [], note="No benchmark files: compute time unknown." + absent)
    agg = {"jobs": ("s", "size"), "total": ("s", "sum"), "mean": ("s", "mean")}
    if "max_rss" in benchmarks.columns:
        agg["rss"] = ("max_rss", "max")
    g = benchmarks.groupby("stage", sort=False).agg(**agg).reset_index().sort_values("total", ascending=False)
    total = g["total"].sum()
    columns = {
        "stage": Column("stage (rule)"),
        "jobs": Column("jobs", lambda v: str(int(v))),
        "total": Column("total time", _duration),
        "mean": Column("per job", _duration),
    }
    if "rss" in g.columns:
        columns["rss"] = Column("peak memory", lambda v: f"{float(v):,.0f} MB" if _finite(v) else DASH)
    note = f"Wall-clock time summed over jobs: {_duration(total)} in all (jobs may run in parallel).{absent}"
    return frame_table(g, columns, note=note)


def _duration(seconds) -> str:
    if not _finite(seconds):
        return DASH
    seconds = float(seconds)
    if seconds < 60:
        return f"{seconds:.1f} s"
    h, rest = divmod(round(seconds), 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}"


# ================================================================ criteria tables
def criteria_section(criteria: Mapping[str, pd.DataFrame]) -> list[dict]:
    """The criteria and countermeasure tables shown in the report, each {"name", "title", "table"}."""
    out = []
    f2, f3 = (lambda v: _fmt(v, ".2f")), (lambda v: _fmt(v, ".3f"))
    if "headline" in criteria:
        h = criteria["headline"]
        h = h[h["score"].isin(["uncertainty", "flag"])]
        h = h.assign(
            auc_ci=[
                f"{_fmt(a, '.2f')} [{_fmt(lo, '.2f')}, {_fmt(hi, '.2f')}]"
                for a, lo, hi in zip(h["auc"], h["auc_low"], h["auc_high"])
            ]
        )
        cols = _setting_columns(h) | {
            "method": _method_col(),
            "sparsity": _sparsity_col(),
            "target": Column("target"),
            "score": Column("score"),
            "share_flagged": Column("flagged", _share),
            "captured": Column("captured", _share),
            "chance": Column("chance", _share),
            "lift": Column("lift", f2),
            "auc_ci": Column("ROC-AUC [95% CI]", sort="auc"),
        }
        out.append(
            {
                "name": "headline",
                "title": "Does dense uncertainty find what pruning changes?",
                "table": frame_table(h, cols),
            }
        )
    if "attribute_criterion" in criteria:
        a = criteria["attribute_criterion"]
        a = a.assign(
            statistic=a["statistic"].map(lambda s: STATISTIC_LABELS.get(s, s)),
            rho_ci=[
                f"{_fmt(r, '+.2f')} [{_fmt(lo, '.2f')}, {_fmt(hi, '.2f')}]"
                for r, lo, hi in zip(a["spearman"], a["spearman_low"], a["spearman_high"])
            ],
        )
        cols = _setting_columns(a) | {
            "method": _method_col(),
            "sparsity": _sparsity_col(),
            "identity": Column("identity"),
            "statistic": Column("dense statistic"),
            "n_attributes": Column("attributes", lambda v: str(int(v))),
            "rho_ci": Column("Spearman ρ with ΔBA [95% CI]", sort="spearman"),
            "p_value": Column("p", lambda v: _fmt(v, ".2g")),
            "rank": Column("rank", lambda v: _fmt(v, ".0f")),
            "top_k_overlap": Column("top-k overlap", _share),
            "top_k_chance": Column("chance", _share),
        }
        out.append(
            {
                "name": "attribute_criterion",
                "title": "Which dense statistic predicts where BA grows?",
                "table": frame_table(a, cols),
            }
        )
    if "countermeasures" in criteria:
        c = criteria["countermeasures"]
        cols = _setting_columns(c) | {
            "method": _method_col(),
            "sparsity": _sparsity_col(),
            "countermeasure": Column("countermeasure"),
            "fraction": Column("routed", _share),
            "identity": Column("identity"),
            "metric": Column("metric"),
            "dense": Column("dense", f3),
            "sparse": Column("pruned", f3),
            "countered": Column("with countermeasure", f3),
            "recovered": Column("recovered", _share),
        }
        out.append(
            {
                "name": "countermeasures",
                "title": "Countermeasures: bias and accuracy recovered",
                "table": frame_table(c, cols),
            }
        )
    if "cie_groups" in criteria:
        g = criteria["cie_groups"]
        g = g[(g["attribute"] == "all") & (g["identity"] != "all")]
        cols = _setting_columns(g) | {
            "method": _method_col(),
            "sparsity": _sparsity_col(),
            "kind": Column("kind"),
            "identity": Column("identity"),
            "group": Column("group"),
            "rate": Column("rate", lambda v: _pct(v, 2)),
            "event_share": Column("share of events", _share),
            "sample_share": Column("share of samples", _share),
            "over_representation": Column("over-representation", f2),
        }
        out.append(
            {
                "name": "cie_groups",
                "title": "Are CIEs concentrated in an identity group?",
                "table": frame_table(g, cols),
            }
        )
    return out


# ================================================================ gallery
def gallery(samples: pd.DataFrame, identities: Sequence[str]) -> list[dict]:
    """Cards of the most susceptible samples, per attribute (attributes with most CIEs first).

    Parameters
    ----------
    samples : DataFrame
        Criteria table ``susceptible_samples`` of one setting.
    identities : sequence of str
        Identity columns of ``samples`` to show on each card.

    Returns
    -------
    list of dict
        ``{"attribute", "n_cie", "cards"}``; a card is ``{"id", "rank", "label", "groups"
        [(identity, bool)], "dense" {"p", "pred"}, "methods" [(method label, [{"method", "sparsity",
        "p", "pred", "cie"}, ...])] (every pruned setting, by method then ascending sparsity),
        "cie_at" [labels of the settings where it is a CIE]}``.
    """
    need = ["attribute", "rank", "id", "label", "method", "sparsity", "probability", "prediction", "cie"]
    require_columns(samples, need, "susceptible_samples")
    identities = [g for g in identities if g in samples.columns]
    out = []
    for attribute, rows in samples.groupby("attribute", sort=True):
        dense = rows[rows["method"] == "dense"].sort_values("rank")
        pruned = rows[rows["method"] != "dense"]
        pruned = pruned.assign(_m=pruned["method"].map({m: i for i, m in enumerate(_methods(pruned["method"]))}))
        pruned = pruned.sort_values(["_m", "sparsity"])
        cards = []
        for r in dense.itertuples(index=False):
            mine = pruned[pruned["id"] == r.id]
            models = [
                {
                    "method": method_text(m.method),
                    "sparsity": sparsity_text(m.sparsity),
                    "p": float(m.probability),
                    "pred": bool(m.prediction),
                    "cie": bool(m.cie),
                }
                for m in mine.itertuples(index=False)
            ]
            by_method = {}
            for m in models:
                by_method.setdefault(m["method"], []).append(m)
            cards.append(
                {
                    "id": str(r.id),
                    "rank": int(r.rank),
                    "label": bool(r.label),
                    "groups": [(g, bool(getattr(r, g))) for g in identities],
                    "dense": {"p": float(r.probability), "pred": bool(r.prediction)},
                    "methods": list(by_method.items()),
                    "cie_at": [f"{m['method']} {m['sparsity']}" for m in models if m["cie"]],
                }
            )
        out.append({"attribute": str(attribute), "n_cie": sum(bool(c["cie_at"]) for c in cards), "cards": cards})
    out.sort(key=lambda a: (-a["n_cie"], a["attribute"]))
    return out


def thumbnail(image: np.ndarray, size: int = THUMB_SIZE) -> str:
    """A data URI of one uint8 RGB image, about ``size`` pixels on its longer side.

    Small images are upscaled by an integer factor with nearest neighbour, so their pixels
    stay crisp, and stored as PNG (lossless; repeated pixels compress well). Large ones
    (photographs) are downscaled with a Lanczos filter and stored as JPEG, several times
    smaller than PNG at no visible loss at this size.
    """
    from PIL import Image

    arr = np.asarray(image)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"image must be uint8 of shape (H, W, 3), got {arr.dtype} {arr.shape}")
    h, w = arr.shape[:2]
    factor = size // max(h, w)
    if factor >= 2:
        arr = arr.repeat(factor, axis=0).repeat(factor, axis=1)
    img = Image.fromarray(arr)
    buf = io.BytesIO()
    if max(h, w) > size:
        img.thumbnail((size, size), Image.Resampling.LANCZOS)
        img.save(buf, format="JPEG", quality=JPEG_QUALITY)
        kind = "jpeg"
    else:
        img.save(buf, format="PNG", optimize=True)
        kind = "png"
    return f"data:image/{kind};base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def attach_thumbnails(
    sections: list[dict], images: np.ndarray, row_of: Mapping[str, int], budget: int = GALLERY_BUDGET_BYTES
) -> None:
    """Add ``card["src"]`` (a data URI, encoded once per sample) in place, within ``budget`` bytes.

    Every card counts against the budget (a sample shown under several attributes is
    embedded each time); attributes reached past the budget keep their cards without images
    (``section["no_images"]``).
    """
    cache: dict[str, str] = {}
    used = 0
    for section in sections:
        section["no_images"] = used > budget
        for card in section["cards"]:
            row = row_of.get(card["id"])
            if section["no_images"] or row is None:
                card["src"] = None
                continue
            if card["id"] not in cache:
                cache[card["id"]] = thumbnail(np.asarray(images[row]))
            card["src"] = cache[card["id"]]
            used += len(card["src"])


# ================================================================ captions and figures
def caption_html(text: str) -> str:
    """Render a caption written in reStructuredText to an HTML fragment (docutils, no messages)."""
    from docutils.core import publish_parts

    parts = publish_parts(
        text,
        writer="html5",
        settings_overrides={
            "report_level": 5,
            "halt_level": 5,
            "embed_stylesheet": False,
            "raw_enabled": False,
            "file_insertion_enabled": False,
            "syntax_highlight": "none",
        },
    )
    return parts["body"]


def _caption_title(text: str) -> tuple[str | None, str]:
    """Split a caption's first line off when it is followed by an rst underline (a title)."""
    lines = text.strip("\n").splitlines()
    if (
        len(lines) >= 2
        and lines[1]
        and set(lines[1].strip()) <= set("=-~^*#")
        and len(lines[1].strip()) >= len(lines[0].strip())
    ):
        return lines[0].strip(), "\n".join(lines[2:])
    return None, text


def figure_entries(paths: Sequence[str | os.PathLike], captions: str | os.PathLike | None) -> list[dict]:
    """One entry per figure name (file stem), in the order of ``paths``: {"name", "title", "caption", "src"}.

    SVG is preferred over PNG (sharp at any size). The caption is ``<captions>/<name>.rst``
    (missing: a note saying so); a first line underlined in rst style is the title.
    """
    by_name: dict[str, dict[str, Path]] = {}
    for p in map(Path, paths):
        by_name.setdefault(p.stem, {})[p.suffix.lower().lstrip(".")] = p
    out = []
    for name in by_name:
        files = by_name[name]
        if "svg" in files:
            src = "data:image/svg+xml;base64," + base64.b64encode(files["svg"].read_bytes()).decode("ascii")
        elif "png" in files:
            src = "data:image/png;base64," + base64.b64encode(files["png"].read_bytes()).decode("ascii")
        else:
            continue
        title, caption = None, ""
        rst = Path(captions) / f"{name}.rst" if captions else None
        if rst is not None and rst.exists():
            title, body = _caption_title(rst.read_text())
            caption = caption_html(body)
        else:
            caption = f"<p><em>No caption: add reports/captions/{html.escape(name)}.rst.</em></p>"
        out.append(
            {"name": name, "title": title or name.replace("_", " ").capitalize(), "caption": caption, "src": src}
        )
    return out


# ================================================================ rendering
# Package data: found in a source checkout and in an installed wheel alike.
DEFAULT_TEMPLATE = Path(__file__).resolve().parent / "templates" / "audit_report.html.j2"


def _template(path: str | os.PathLike | None):
    import jinja2

    path = Path(path) if path else DEFAULT_TEMPLATE
    if not path.exists():
        raise FileNotFoundError(f"report template {path} not found (pass --template)")
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(path.parent),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["sparsity"] = sparsity_text
    env.filters["prob"] = lambda p: _fmt(p, ".2f")
    return env.get_template(path.name)


def render_report(context: Mapping, template: str | os.PathLike | None = None) -> str:
    """Render the report template with ``context`` (see :func:`report_context`)."""
    return _template(template).render(**context)


def report_context(
    *,
    title: str,
    metrics: pd.DataFrame,
    criteria: Mapping[str, pd.DataFrame] | None = None,
    groups: pd.DataFrame | None = None,
    figures: Sequence[dict] = (),
    datasets: Mapping[str, dict] | None = None,
    runs: pd.DataFrame | None = None,
    benchmarks: pd.DataFrame | None = None,
    missing_benchmarks: int = 0,
    images: Mapping[str, tuple[np.ndarray, Mapping[str, int]]] | None = None,
    caption_dir: str | os.PathLike | None = None,
    design: Mapping[str, pd.DataFrame] | None = None,
) -> dict:
    """Everything the template shows, from tables already in memory.

    ``images``: dataset -> (image array, {id: row}) for the gallery thumbnails.
    Missing optional inputs (None) turn into a sentence saying what is absent.
    """
    criteria = dict(criteria or {})
    is_main = (metrics["task"] == MAIN_TASK).to_numpy()
    main, experiments = (metrics[is_main], metrics[~is_main]) if is_main.any() else (metrics, metrics.iloc[:0])
    # The identity attributes of the study (backdoor tasks add a "trigger" pseudo-identity).
    identities = sorted(set(main["identity"]) - {"all"})
    settings = _settings(main)
    galleries = []
    if "susceptible_samples" in criteria:
        for setting in settings:
            rows = _in_setting(criteria["susceptible_samples"], setting)
            if rows.empty:
                continue
            sections = gallery(rows, identities)
            if images and setting[0] in images:
                attach_thumbnails(sections, *images[setting[0]])
            else:
                for s in sections:
                    s["no_images"] = True
                    for c in s["cards"]:
                        c["src"] = None
            galleries.append({"setting": " / ".join(setting), "sections": sections})
    table_captions = {}
    if caption_dir is not None:
        for name in ("summary", "group_gaps", "metrics", *CRITERIA_TABLES):
            rst = Path(caption_dir) / "tables" / f"{name}.rst"
            if rst.exists():
                table_captions[name] = caption_html(_caption_title(rst.read_text())[1])
    convergence = criteria.pop("convergence", None)
    effects = criteria.pop("effects", None)
    criteria_tables = criteria_section(criteria)
    for entry in criteria_tables:
        entry["caption"] = table_captions.get(entry["name"], "")
    return {
        "title": title,
        "findings": findings(main, criteria | ({"effects": effects} if effects is not None else {})),
        "convergence": convergence_table(convergence) if convergence is not None else None,
        "design": design_table(design, identities) if design else [],
        "grid": grid_table(metrics),
        "identities": identities,
        "data": data_table(datasets) if datasets else None,
        "sparsity": sparsity_table(runs) if runs is not None and not runs.empty else None,
        "compute": compute_table(benchmarks, missing_benchmarks) if benchmarks is not None else None,
        "key": key_table(main),
        "key_calibrated": key_table(main, "calibrated"),
        "key_experiments": key_table(experiments) if len(experiments) else None,
        "groups": group_gap_table(groups) if groups is not None and not groups.empty else None,
        "groups_caption": table_captions.get("group_gaps", ""),
        "figures": list(figures),
        "criteria": criteria_tables,
        "criteria_missing": [n for n in CRITERIA_TABLES if n not in criteria],
        "galleries": galleries,
        "gallery_open": GALLERY_OPEN,
        "n_models": len(metrics[MODEL + ["seed"]].drop_duplicates()),
    }


# ================================================================ I/O edge
def read_benchmarks(paths: Sequence[str | os.PathLike]) -> pd.DataFrame:
    """Rows of Snakemake benchmark TSVs with ``stage``: the directory after ``benchmarks/`` (the rule)."""
    frames = []
    for p in map(Path, paths):
        parts = p.parts
        stage = parts[parts.index("benchmarks") + 1] if "benchmarks" in parts[:-1] else p.parent.name
        frame = pd.read_csv(p, sep="\t")
        if "s" not in frame.columns:
            raise ValueError(f"benchmark file {p} has no 's' column (not a Snakemake benchmark?)")
        frames.append(frame.assign(stage=stage))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["stage", "s"])


def read_runs(paths: Sequence[str | os.PathLike]) -> pd.DataFrame:
    """Identity and measured sparsity of each model, from its predictions' metadata."""
    keys = SETTING + ["method", "target_sparsity", "measured_sparsity", "seed"]
    rows = []
    for p in paths:
        meta = read_metadata(p)
        missing = [k for k in keys if k not in meta]
        if missing:
            raise ValueError(f"predictions {p} lack metadata keys {missing}")
        rows.append({k: meta[k] for k in keys})
    return pd.DataFrame(rows, columns=keys)


def read_criteria(paths: Sequence[str | os.PathLike]) -> dict[str, pd.DataFrame]:
    """Criteria tables by name (file stem); files of the same name are concatenated."""
    by_name: dict[str, list[pd.DataFrame]] = {}
    for p in map(Path, paths):
        by_name.setdefault(p.stem, []).append(pd.read_parquet(p))
    return {name: pd.concat(frames, ignore_index=True) for name, frames in by_name.items()}


def read_dataset(
    index_path: str | os.PathLike, images_path: str | os.PathLike, identities: Sequence[str]
) -> tuple[dict, np.ndarray]:
    """(the data set's summary for :func:`data_table`, its memory-mapped image array)."""
    from prunebias.data import store

    index = store.load_index(index_path)
    images = store.load_images(images_path)
    info = store.index_info(index_path)
    return {"index": index, "info": info, "shape": images.shape, "identities": list(identities)}, images


def build_report(
    out: str | os.PathLike,
    *,
    metrics: str | os.PathLike,
    groups: str | os.PathLike | None = None,
    criteria: Sequence[str | os.PathLike] = (),
    figures: Sequence[str | os.PathLike] = (),
    benchmarks: Sequence[str | os.PathLike] = (),
    data: Mapping[str, tuple[str | os.PathLike, str | os.PathLike]] | None = None,
    predictions: Sequence[str | os.PathLike] = (),
    captions: str | os.PathLike | None = None,
    template: str | os.PathLike | None = None,
    settings: Mapping | None = None,
    design: Sequence[str | os.PathLike] = (),
) -> int:
    """Read the workflow's outputs, render the audit report and write it atomically to ``out``.

    Parameters
    ----------
    out : path
        The HTML file to write.
    metrics : path
        ``results/tables/metrics.parquet`` (per-model tidy metrics).
    groups : path, optional
        ``results/tables/group_gaps.tsv``.
    criteria : paths
        Criteria tables (``<name>.parquet``); absent ones are reported as absent.
    figures : paths
        Figure files (``<name>.svg`` / ``.png``), in the order the report shows them.
    benchmarks : paths
        Snakemake benchmark TSVs under ``.../benchmarks/<rule>/``; absent ones are counted
        and skipped (a job restored from elsewhere may have none).
    data : mapping, optional
        Data set name -> (index file, image array file) of each prepared data set.
    predictions : paths
        Test predictions of every model (their metadata holds the measured sparsity).
    captions : path, optional
        ``reports/captions`` (figure captions ``<name>.rst``, table captions ``tables/<name>.rst``).
    template : path, optional
        The Jinja2 template (default: :data:`DEFAULT_TEMPLATE`, shipped in the package).
    settings : mapping, optional
        The config's ``report`` block (``title``).
    design : paths
        Design tables of the synthetic data sets (``tables/design/<dataset>.parquet``).

    Returns
    -------
    int
        Size of the written file in bytes.
    """
    metrics_frame = pd.read_parquet(metrics)
    present = [p for p in benchmarks if Path(p).exists()]
    identities = sorted(set(metrics_frame["identity"]) - {"all"})
    datasets, images = {}, {}
    for name, (index_path, images_path) in (data or {}).items():
        datasets[name], array = read_dataset(index_path, images_path, identities)
        ids = datasets[name]["index"]["id"].astype(str)
        images[name] = (array, dict(zip(ids, range(len(ids)))))
    context = report_context(
        title=(settings or {}).get("title", "Pruning bias audit"),
        metrics=metrics_frame,
        criteria=read_criteria(criteria),
        groups=pd.read_csv(groups, sep="\t", dtype={"group_0": float, "group_1": float}) if groups else None,
        figures=figure_entries(figures, captions),
        datasets=datasets or None,
        runs=read_runs(predictions) if predictions else None,
        benchmarks=read_benchmarks(present) if benchmarks else None,
        missing_benchmarks=len(benchmarks) - len(present),
        images=images,
        caption_dir=captions,
        design={Path(p).stem: pd.read_parquet(p) for p in design},
    )
    text = render_report(context, template)
    write_text(text, out)
    return len(text.encode("utf-8"))
