"""The headline findings: sentences generated from the numbers, per setting and pruned method,
and the thresholds below which a change reads as "flat".

Each sentence function reads one table (a curve over seeds, or one criteria table of one
setting) and is tolerant of a missing table or value: it then says what is missing instead.
:func:`findings` puts them together in the order the report shows them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd

from prunebias.report.curves import seed_curves, split_curve
from prunebias.report.format import (
    interval_text,
    is_finite,
    method_text,
    number_text,
    percent_text,
    share_text,
    sparsity_text,
)
from prunebias.report.grid import in_setting, ordered_methods, settings_of
from prunebias.vocabulary import SHORTCUT_REFERENCES, STATISTIC_LABELS

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
    if not is_finite(dense) or sparse.empty:
        return f"Accuracy of {method_text(method)} cannot be compared with dense: a value is missing."
    drop = 100 * (dense - sparse)  # points lost (negative: gained)
    kept = (drop.round(9) <= tolerance).to_numpy()  # round: 0.90 - 0.88 is 2.0000000000000018 points
    n_kept = len(kept) if kept.all() else int(np.argmin(kept))
    label = method_text(method)
    last_s, last_v = sparse.index[-1], sparse.iloc[-1]
    if n_kept == len(sparse):
        return (
            f"Accuracy stays within {tolerance:g} points of dense at every sparsity up to {sparsity_text(last_s)} "
            f"({label}): {percent_text(dense)} dense, {percent_text(last_v)} at {sparsity_text(last_s)}."
        )
    first_s = sparse.index[n_kept]
    text = (
        f"Accuracy stays within {tolerance:g} points of dense up to {sparsity_text(sparse.index[n_kept - 1])} sparsity "
        f"({label}); at {sparsity_text(first_s)} it drops by {drop.iloc[n_kept]:.1f} points"
        if n_kept
        else f"Accuracy drops by {drop.iloc[0]:.1f} points already at {sparsity_text(first_s)} sparsity ({label})"
    )
    text += f" ({percent_text(dense)} → {percent_text(sparse.iloc[n_kept])})"
    if last_s != first_s and kept[-1]:
        text += f", but is back within {tolerance:g} points at {sparsity_text(last_s)} ({percent_text(last_v)})"
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
    if not is_finite(dense) or sparse.empty:
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


def _plain_mean_sentences(
    curves: Mapping[str, pd.DataFrame], ba_rows: pd.DataFrame, method: str, effects: pd.DataFrame | None
) -> list[str]:
    """The study's plain means against sparsity (each model averaged over what it defines): BA per
    identity, how many pairs that was, uncertainty and interdependence. Uncertainty is a mean over
    every attribute, so it is left out where ``effects`` already quote it for ``method``."""
    quoted = effects is not None and bool(
        ((effects["statistic"] == "uncertainty") & (effects["method"] == method)).any()
    )
    ba = curves["bias_amplification"]
    out = []
    for identity in sorted(set(ba["identity"])):
        subject = f"Bias amplification w.r.t. {identity} (the study's plain mean, over the pairs each model defines)"
        out.append(change_sentence(subject, *split_curve(ba[ba["identity"] == identity], method), method, BA_TOLERANCE))
    coverage = ba_coverage_sentence(ba_rows, method)
    if coverage:
        out.append(coverage)
    if not quoted:
        out.append(
            change_sentence(
                effect_name("uncertainty", "all"),
                *split_curve(curves["uncertainty"], method),
                method,
                UNCERTAINTY_TOLERANCE,
                percent_text,
            )
        )
    out.append(
        change_sentence(
            f"{EFFECT_NAMES['interdependence']} ({EFFECT_GLOSSES['interdependence']}; "
            "the study's plain mean, over the attributes each model predicts)",
            *split_curve(curves["interdependence"], method),
            method,
            INTERDEPENDENCE_TOLERANCE,
            lambda v: f"{v:.2f}",
        )
    )
    return out


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
        'so the BA means above leave out the attributes that collapsed to "never"; the changes with '
        "intervals use only the pairs defined, and attributes predicted, at every sparsity."
    )


def _matching(table: pd.DataFrame, **values) -> pd.DataFrame:
    """The rows of ``table`` whose columns equal ``values`` (column=value)."""
    mask = np.ones(len(table), dtype=bool)
    for column, value in values.items():
        mask &= (table[column] == value).to_numpy()
    return table[mask]


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
    rows = _matching(countermeasures, method=method, countermeasure="calibrated_threshold", identity="all")
    ba = rows[rows["metric"] == "bias_amplification"]
    if ba.empty:
        return f"No calibrated-threshold result for {label}."
    s, ba = _at_top_sparsity(ba)
    r = ba.iloc[0]
    where = f"at {sparsity_text(s)} ({label})"
    values = (
        f"mean BA {number_text(r['dense'])} dense, {number_text(r['sparse'])} pruned, "
        f"{number_text(r['countered'])} with calibrated thresholds"
    )
    change = r["sparse"] - r["dense"]
    if not is_finite(change):
        text = f"The effect of calibrated thresholds {where} is undefined ({values})"
    elif change > tolerance:
        text = f"Calibrated thresholds remove {share_text(r['recovered'])} of the BA increase {where}: {values}"
    elif change < -tolerance:
        text = f"Pruning lowers BA {where}, so there is no increase for calibrated thresholds to remove: {values}"
    else:
        text = f"Pruning leaves BA about unchanged {where}, so calibrated thresholds have little to remove: {values}"
    acc = rows[(rows["metric"] == "accuracy") & (rows["sparsity"] == s)]
    if len(acc):
        a = acc.iloc[0]
        text += f"; accuracy {percent_text(a['sparse'])} → {percent_text(a['countered'])}"
    return text + "."


def cie_sentence(headline: pd.DataFrame, method: str, fraction: float = FLAG_FRACTION) -> str:
    """How well dense uncertainty finds the CIEs of the highest sparsity of ``method``.

    ``headline``: rows of one setting (criteria table ``headline``).
    """
    label = method_text(method)
    rows = _matching(headline, method=method, target="cie", score="uncertainty", selection="top")
    if rows.empty:
        return f"No CIE evaluation for {label}."
    s, rows = _at_top_sparsity(rows)
    r = _nearest(rows, "fraction", fraction).iloc[0]
    where = f"At {sparsity_text(s)} ({label})"
    if not is_finite(r["auc"]):
        return f"{where} the sparse and dense majority votes never disagree, or always do: no CIE to find."
    return (
        f"{where} dense uncertainty identifies compression-identified exemplars (CIEs) with ROC-AUC "
        f"{number_text(r['auc'], '.2f')} [{number_text(r['auc_low'], '.2f')}, {number_text(r['auc_high'], '.2f')}]; flagging "
        f"{share_text(r['fraction'])} of (sample, attribute) pairs catches {share_text(r['captured'])} of the "
        f"{int(r['n_targets'])} CIEs (chance: {share_text(r['chance'])})."
    )


def routing_sentence(routing_curve: pd.DataFrame, method: str, fraction: float = ROUTING_FRACTION) -> str:
    """BA recovered by routing the most uncertain samples to the dense model, vs random routing.

    ``routing_curve``: rows of one setting (criteria table ``routing_curve``).
    """
    label = method_text(method)
    rows = _matching(routing_curve, method=method, identity="all", metric="bias_amplification")
    rows = rows[rows["fraction"] > 0]
    if rows.empty:
        return f"No routing result for {label}."
    s, rows = _at_top_sparsity(rows)
    rows = _nearest(rows, "fraction", fraction)
    by = rows.set_index("routing")
    if "susceptible" not in by.index:
        return f"No routing result for {label}."
    r = by.loc["susceptible"]
    k = share_text(r["fraction"])
    where = f"at {sparsity_text(s)} ({label})"
    if not is_finite(r["recovered"]):
        return (
            f"Pruning barely changes mean BA {where} ({number_text(r['dense'])} dense, {number_text(r['sparse'])} pruned): "
            f"nothing for routing to recover."
        )
    kind = "increase" if r["sparse"] > r["dense"] else "change"
    if r["recovered"] < 0:
        text = (
            f"Routing the {k} most uncertain samples to the dense model moves BA further from dense {where} "
            f"({share_text(r['recovered'])} of the BA {kind} recovered)"
        )
    else:
        text = (
            f"Routing the {k} most uncertain samples to the dense model recovers "
            f"{share_text(r['recovered'])} of the BA {kind} {where}"
        )
    if "random" in by.index:
        text += f", vs {share_text(by.loc['random', 'recovered'])} for {k} routed at random"
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
        f"(Spearman ρ = {number_text(r['spearman'], '+.2f')} [{number_text(r['spearman_low'], '.2f')}, "
        f"{number_text(r['spearman_high'], '.2f')}] over {int(r['n_attributes'])} attributes"
    )
    low, high = r["spearman_low"], r["spearman_high"]
    if is_finite(low) and is_finite(high) and low <= 0 <= high:
        text += "; the interval includes 0, so this is not a reliable ranking"
    return text + ")."


def findings(metrics: pd.DataFrame, criteria: Mapping[str, pd.DataFrame]) -> list[dict]:
    """Headline findings as sentences, per setting and pruned method.

    In order: accuracy; the changes on a support fixed along the curve, with their intervals
    (``effects``) and the shortcut control beside them; the study's plain means; the criteria.

    Parameters
    ----------
    metrics : DataFrame
        Per-model tidy metrics.
    criteria : mapping of table name -> DataFrame
        Criteria tables present in this run (any subset of :data:`prunebias.report.tables.CRITERIA_TABLES`,
        and ``effects``).

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
    for setting in settings_of(metrics):
        here = {k: in_setting(v, setting) for k, v in curves.items()}
        tables = {k: in_setting(v, setting) for k, v in criteria.items()}
        ba_rows = in_setting(per_identity_ba, setting)
        methods = [m for m in ordered_methods(here["accuracy"]["method"]) if m != "dense"]
        if not methods:
            out.append(
                {
                    "setting": " / ".join(setting),
                    "method": "dense",
                    "sentences": ["Only dense models were trained: there is no pruned model to compare."],
                }
            )
        for method in methods:
            sentences = [accuracy_sentence(*split_curve(here["accuracy"], method), method)]
            # The changes on a fixed support, with intervals, lead; the study's plain means, whose
            # support shrinks as attributes collapse (and can flip a mean's sign), follow them.
            if "effects" in tables:
                sentences += effect_sentences(tables["effects"], method)
            if "shortcut_control" in tables:
                sentences += shortcut_control_sentences(
                    tables["shortcut_control"], method_information_kept(tables.get("convergence"), method)
                )
            sentences += _plain_mean_sentences(here, ba_rows, method, tables.get("effects"))
            sentences += _criteria_sentences(tables, method)
            out.append({"setting": " / ".join(setting), "method": method_text(method), "sentences": sentences})
    return out


#: Names of the effects, by statistic of :mod:`prunebias.analysis.effects`.
EFFECT_NAMES = {
    "bias_amplification": "BA w.r.t. {identity}",
    "uncertainty": "Uncertainty",
    "interdependence": "Interdependence",
    "identity_dependence": "Identity dependence",
}
#: What an effect's name means, said where the effect is first reported.
EFFECT_GLOSSES = {
    "uncertainty": "share of outputs inside the uncertainty band",
    "interdependence": "R² of each prediction on the others",
    "identity_dependence": "R² of each predicted target on the true identities",
}
#: What one unit of an effect's support is, by statistic.
SUPPORT_NOUNS = {
    "bias_amplification": "pair",
    "uncertainty": "attribute",
    "interdependence": "attribute",
    "identity_dependence": "target",
}
#: What every model of a curve must do for a unit to count; uncertainty covers every attribute.
SUPPORT_RULES = {
    "bias_amplification": "defined",
    "interdependence": "predicted",
    "identity_dependence": "predicted",
}


def effect_name(statistic: str, identity: str, glossed: bool = True) -> str:
    """An effect's name ("BA w.r.t. Male"), followed by its gloss where it has one and ``glossed``."""
    name = EFFECT_NAMES[statistic].format(identity=identity)
    gloss = EFFECT_GLOSSES.get(statistic) if glossed else None
    return f"{name} ({gloss})" if gloss else name


def effect_subject(row: pd.Series) -> str:
    """The subject of an effect sentence: its name and, where it has one, its support
    ("BA w.r.t. Male on the 11 pairs defined at every sparsity (4 collapsed)")."""
    statistic = row["statistic"]
    name = effect_name(statistic, row["identity"])
    if statistic not in SUPPORT_RULES:
        return name
    return (
        f"{name} on the {support_text(row, statistic)} {SUPPORT_RULES[statistic]} at every sparsity "
        f"({int(row['collapsed'])} collapsed)"
    )


def support_text(row: pd.Series, statistic: str) -> str:
    """The size of an effect's support in words: "1 pair", "13 attributes"."""
    n = int(row["pairs"])
    return f"{n} {SUPPORT_NOUNS[statistic]}{'' if n == 1 else 's'}"


def effect_sentences(effects: pd.DataFrame, method: str, threshold: str = "default") -> list[str]:
    """The change at the highest sparsity of ``method``, with its 95 % paired bootstrap CI, per statistic.

    "<subject> rises by 0.040 at 99 % sparsity, 95 % CI [0.020, 0.060]": rises/falls when the
    interval excludes 0, else "does not change detectably". At the default threshold the BA and
    R² sentences add the change at calibrated thresholds (:func:`calibrated_clause`).
    """
    rows = effects[(effects["method"] == method) & (effects["threshold"] == threshold)]
    if rows.empty:
        return []
    top = rows["sparsity"].max()
    calibrated = effects[
        (effects["method"] == method) & (effects["threshold"] == "calibrated") & (effects["sparsity"] == top)
    ].set_index(["statistic", "identity"])
    out = []
    for _, r in rows[rows["sparsity"] == top].iterrows():
        if r["pairs"] == 0:
            sentence = no_support_sentence(r, top)
        else:
            subject = effect_subject(r)
            where = f"at {sparsity_text(top)} sparsity vs dense ({r['dense']:.3f} → {r['value']:.3f}; {seeds_text(r)})"
            sentence = interval_sentence(subject, r["delta"], r["ci_low"], r["ci_high"], where)
        if r["statistic"] == "bias_amplification" and 0 < r["pairs"] <= FEW_PAIRS:
            sentence += f" {FEW_PAIRS_CAUTION}"
        key = (r["statistic"], r["identity"])
        # Probabilities do not depend on the threshold: uncertainty is the same at both.
        if threshold == "default" and r["statistic"] != "uncertainty" and key in calibrated.index:
            sentence += " " + calibrated_clause(calibrated.loc[key], r["statistic"])
        out.append(sentence)
    return out


def no_support_sentence(row: pd.Series, sparsity: float) -> str:
    """An effect whose support is empty: every candidate collapsed in some model of the curve, so
    there is no value to compare (rather than a sentence of undefined numbers)."""
    name = effect_name(row["statistic"], row["identity"])
    return f"{name} cannot be compared at {sparsity_text(sparsity)} sparsity: {_empty_support(row['statistic'], row['collapsed'])}."


def _empty_support(statistic: str, collapsed: int) -> str:
    return f"no {SUPPORT_NOUNS[statistic]} is defined, and predicted, by every model of the curve ({int(collapsed)} collapsed)"


def calibrated_clause(row: pd.Series, statistic: str) -> str:
    """The same change at validation-calibrated thresholds. They predict each attribute at its
    validation rate, so a sparse model's attributes rarely collapse there; at the default
    threshold a pooled change can rest on attributes a sparse model predicts for a handful of
    samples, which leave the support as soon as one more seed's model drops below
    ``ba_min_positives`` (README, "Does it measure what the study measured?")."""
    if row["pairs"] == 0:
        return f"At validation-calibrated thresholds {_empty_support(statistic, row['collapsed'])}."
    return interval_sentence(
        "At validation-calibrated thresholds (each attribute predicted at its validation rate) it",
        row["delta"],
        row["ci_low"],
        row["ci_high"],
        f"on {support_text(row, statistic)} ({int(row['collapsed'])} collapsed; {seeds_text(row)})",
    )


def seeds_text(row: pd.Series) -> str:
    """How many seeds a change pools and, where the table has them, the smallest and largest of the
    seeds' own changes: where the seeds disagree, the interval (which redraws them) is wide for
    that reason."""
    seeds = int(row["seeds"])
    if seeds == 1:
        return "1 seed"
    if "seed_delta_min" not in row:
        return f"{seeds} seeds"
    return f"{seeds} seeds, each seed's own change {row['seed_delta_min']:+.3f} to {row['seed_delta_max']:+.3f}"


#: A mean BA over this many stable pairs or fewer gets :data:`FEW_PAIRS_CAUTION`: it rests on one or
#: two attributes' training gaps, chance ones included. On the decoupled twin (README, "Does it
#: measure what the study measured?") Young's one-pair mean at 98 % was +0.055 [−0.153, +0.200], an
#: interval several times as wide as those over more pairs.
FEW_PAIRS = 2
FEW_PAIRS_CAUTION = (
    "Read with care: so few pairs make the mean depend on the chance gaps of this training split, "
    "which the interval (over test samples and seeds) does not cover."
)


#: How :func:`interval_sentence` reads a change: (above 0, below 0, interval includes 0).
CHANGE_WORDS = ("rises by", "falls by", "does not change detectably")


def interval_sentence(
    subject: str, delta: float, low: float, high: float, where: str, words: tuple[str, str, str] = CHANGE_WORDS
) -> str:
    """The change and its 95 % interval in words: "<subject> rises by 0.040 <where>, 95 % CI
    [+0.020, +0.060]." when the interval excludes 0, else "does not change detectably (+0.010)";
    "undefined" without an interval."""
    ci = f"95 % CI [{low:+.3f}, {high:+.3f}]"
    if not (is_finite(low) and is_finite(high)):
        return f"{subject}: undefined {where}."
    if low > 0 or high < 0:
        return f"{subject} {words[0] if delta > 0 else words[1]} {abs(delta):.3f} {where}, {ci}."
    return f"{subject} {words[2]} ({delta:+.3f}) {where}, {ci}."


def experiment_findings(
    single_vs_joint: pd.DataFrame | None, backdoor: pd.DataFrame | None, threshold: str = "default"
) -> list[dict]:
    """Findings of the controlled experiments (tables of :mod:`prunebias.analysis.experiments`), in
    the format of :func:`findings`: per experiment and pruned method, the change at its highest
    sparsity with its 95 % interval, against what the study found."""
    out = []
    if backdoor is not None and not backdoor.empty:
        rows = backdoor[(backdoor["threshold"] == threshold) & (backdoor["metric"] == "backdoor_bias_amplification")]
        for (dataset, task, arch, method), part in rows[rows["method"] != "dense"].groupby(
            ["dataset", "task", "arch", "method"], sort=True
        ):
            r = part.loc[part["sparsity"].idxmax()]
            dense = rows[(rows["dataset"] == dataset) & (rows["task"] == task) & (rows["arch"] == arch)]
            dense = dense.loc[dense["method"] == "dense", "value"].iloc[0]
            subject = (
                f"Backdoor BA ({r['trigger']} on {share_text(r['train_negatives'])} of the training negatives and "
                f"{share_text(r['train_positives'])} of the positives of {r['attribute']})"
            )
            where = (
                f"at {sparsity_text(r['sparsity'])} sparsity vs dense ({dense:.3f} → {r['value']:.3f}; {seeds_text(r)})"
            )
            sentences = [interval_sentence(subject, r["delta"], r["delta_ci_low"], r["delta_ci_high"], where)]
            sentences.append("The study found sparse models relying more on the trigger (a rise).")
            out.append(
                {"setting": f"{dataset} / {task} / {arch}", "method": method_text(method), "sentences": sentences}
            )
    if single_vs_joint is not None and not single_vs_joint.empty:
        rows = single_vs_joint[single_vs_joint["threshold"] == threshold]
        for (dataset, arch, attribute, method), part in rows.groupby(
            ["dataset", "arch", "attribute", "method"], sort=True
        ):
            part = part[part["sparsity"] == part["sparsity"].max()]
            sentences = []
            words = ("is larger trained alone than jointly by", "is smaller trained alone than jointly by")
            words += ("does not differ detectably between training alone and jointly",)
            for _, r in part.iterrows():
                subject = f"The growth of BA w.r.t. {r['identity']} with pruning (ΔBA) of {attribute}"
                if not is_finite(r["dba_diff"]):
                    sentences.append(f"{subject}: undefined (BA is not defined for this pair).")
                    continue
                where = (
                    f"at {sparsity_text(r['sparsity'])} sparsity (alone {r['dba_single']:+.3f}, jointly "
                    f"{r['dba_joint']:+.3f}; {seeds_text(r)})"
                )
                sentences.append(
                    interval_sentence(subject, r["dba_diff"], r["dba_diff_ci_low"], r["dba_diff_ci_high"], where, words)
                )
            sentences.append("The study found models trained on one attribute more bias-prone (a positive difference).")
            setting = f"{dataset} / single-{attribute} vs joint / {arch}"
            out.append({"setting": setting, "method": method_text(method), "sentences": sentences})
    return out


def _criteria_sentences(tables: Mapping[str, pd.DataFrame], method: str) -> list[str]:
    """The sentences of the criteria tables present, then one naming those absent from this run."""
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


def method_information_kept(convergence: pd.DataFrame | None, method: str) -> float | None:
    """Mean information kept by ``method``'s models at its highest sparsity (None without a convergence table)."""
    if convergence is None:
        return None
    rows = convergence[convergence["method"] == method]
    if rows.empty:
        return None
    _, top = _at_top_sparsity(rows)
    kept = float(top["information_kept"].mean())
    return kept if is_finite(kept) else None


THRESHOLD_WORDS = {"default": "at the default threshold", "calibrated": "at calibrated thresholds"}


def shortcut_control_sentences(control: pd.DataFrame, kept: float | None) -> list[str]:
    """The known positive and the known null beside a method: per reference, the mixture whose
    information kept is nearest ``kept`` (the method's, at its highest sparsity; the largest
    weight without it), its change per statistic and identity at both thresholds."""
    chosen = {}
    for reference in SHORTCUT_REFERENCES:
        rows = control[control["reference"] == reference]
        if rows.empty:
            continue
        chosen[reference] = (
            _nearest(rows, "information_kept", kept)
            if kept is not None
            else rows[rows["weight"] == rows["weight"].max()]
        )
    if not chosen:
        return []
    mixtures = " and ".join(
        f"with the {SHORTCUT_REFERENCES[ref]} at weight {rows['weight'].iloc[0]:g} keep {percent_text(rows['information_kept'].iloc[0], 0)}"
        for ref, rows in chosen.items()
    )
    matched = f" (the pruned models at the highest sparsity keep {percent_text(kept, 0)})" if kept is not None else ""
    out = [
        f"Shortcut control: the dense models mixed {mixtures} of the dense model's information{matched}. "
        "Changes against dense, 95 % CI, with each:"
    ]
    first = next(iter(chosen.values()))
    for (statistic, identity), _ in first.groupby(["statistic", "identity"], sort=False):
        parts = []
        for threshold in ("default", "calibrated"):
            cells = []
            for ref, rows in chosen.items():
                row = rows[
                    (rows["statistic"] == statistic) & (rows["identity"] == identity) & (rows["threshold"] == threshold)
                ]
                if len(row):
                    r = row.iloc[0]
                    cells.append(f"{interval_text(r['delta'], r['ci_low'], r['ci_high'])} ({ref})")
            parts.append(f"{', '.join(cells)} {THRESHOLD_WORDS[threshold]}")
        # The effect sentences above have glossed the names already.
        out.append(f"{effect_name(statistic, identity, glossed=False)}: {'; '.join(parts)}.")
    return out
