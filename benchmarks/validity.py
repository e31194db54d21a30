"""Does a finished run show the study's shape? One line per check, from a results directory's tables.

Reads ``tables/metrics.parquet``, ``tables/effects.parquet``, ``tables/convergence.parquet`` and
``tables/criteria/headline.parquet`` of each results directory given and prints, per data set
of the joint task (default threshold, the method's highest sparsity unless stated):

- mean accuracy (over attributes and seeds) of dense and each sparsity, and the drop in points;
- information kept by the highest-sparsity models;
- ΔBA per identity on the stable pairs with its 95 % paired bootstrap CI (pairs, collapsed);
- Δ uncertainty, Δ interdependence, Δ identity dependence at each sparsity, with CIs;
- ROC-AUC of dense uncertainty for the CIEs at the highest sparsity;
- ΔBA per identity at calibrated thresholds;
- the rare-value ratio of dense and sparse models;
- the attribute criterion: per identity, the dense statistic whose Spearman correlation with
  ΔBA is largest in magnitude, with its bootstrap CI;
- the controlled experiments: single-label minus joint ΔBA, and the backdoor BA, dense and
  sparse, with their paired bootstrap intervals;
- the shortcut control: the dense models mixed with the identity-only predictor (known
  positive) and with the prevalences (known null), per weight and threshold;
- over every run given, how often the decoupled twin's BA intervals exclude 0 (its known
  answer is no change: about 5 % of 95 % intervals should).
- over the runs given (generator seeds), each change at the highest sparsity as a mean over
  runs with a 95 % t-interval over runs: the replicate that also redraws the training split.

    .venv/bin/python benchmarks/validity.py results [results/generator-seed1 ...]

Nothing here is a test: it reports what came out, matching the study or not.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats


def accuracy_lines(metrics: pd.DataFrame) -> list[str]:
    acc = metrics[
        (metrics["metric"] == "accuracy") & (metrics["threshold"] == "default") & (metrics["task"] == "joint")
    ]
    per_model = acc.groupby(["dataset", "method", "sparsity", "seed"])["value"].mean()
    curve = per_model.groupby(["dataset", "method", "sparsity"]).mean()
    lines = []
    for dataset in curve.index.get_level_values(0).unique():
        part = curve.loc[dataset]
        dense = part.loc[("dense", 0.0)]
        steps = ", ".join(
            f"{100 * s:g} %: {100 * v:.1f} ({100 * (v - dense):+.1f})" for (m, s), v in part.items() if m != "dense"
        )
        lines.append(f"{dataset}: accuracy dense {100 * dense:.1f} %; {steps}")
    return lines


def effect_lines(effects: pd.DataFrame, threshold: str = "default") -> list[str]:
    rows = effects[(effects["threshold"] == threshold) & (effects["task"] == "joint")]
    lines = []
    for (dataset, method), part in rows.groupby(["dataset", "method"]):
        top = part["sparsity"].max()
        for _, r in part[(part["statistic"] == "bias_amplification") & (part["sparsity"] == top)].iterrows():
            if r["pairs"] == 0:
                lines.append(
                    f"{dataset} {method} {100 * top:g} % ({threshold}): dBA[{r['identity']}] not comparable: "
                    f"no stable pair ({r['collapsed']} collapsed)"
                )
                continue
            lines.append(
                f"{dataset} {method} {100 * top:g} % ({threshold}): dBA[{r['identity']}] {r['delta']:+.4f} "
                f"CI [{r['ci_low']:+.4f}, {r['ci_high']:+.4f}] ({r['pairs']} stable pairs, {r['collapsed']} collapsed; "
                f"{r['seeds']} seeds, own changes {r['seed_delta_min']:+.4f} to {r['seed_delta_max']:+.4f})"
            )
        for statistic in ("uncertainty", "interdependence", "identity_dependence"):
            cells = [
                f"{100 * r['sparsity']:g} %: {r['delta']:+.3f} [{r['ci_low']:+.3f}, {r['ci_high']:+.3f}]"
                + (f" on {r['pairs']} ({r['collapsed']} collapsed)" if statistic != "uncertainty" else "")
                for _, r in part[part["statistic"] == statistic].sort_values("sparsity").iterrows()
            ]
            dense = part.loc[part["statistic"] == statistic, "dense"].iloc[0]
            lines.append(f"{dataset} {method} ({threshold}): d{statistic} (dense {dense:.3f}) " + "; ".join(cells))
    return lines


def rare_value_lines(summary: pd.DataFrame) -> list[str]:
    rows = summary[
        (summary["metric"] == "rare_value_ratio") & (summary["threshold"] == "default") & (summary["task"] == "joint")
    ]
    curve = rows.groupby(["dataset", "method", "sparsity"])["mean"].mean()
    return [f"{d} {m} {100 * s:g} %: rare-value ratio {v:.2f} (mean over attributes)" for (d, m, s), v in curve.items()]


def attribute_criterion_lines(criterion: pd.DataFrame) -> list[str]:
    rows = criterion[(criterion["task"] == "joint") & criterion["spearman"].notna()]
    rows = rows[rows["sparsity"] == rows.groupby(["dataset", "method"])["sparsity"].transform("max")]
    best = rows.loc[rows.groupby(["dataset", "method", "identity"])["spearman"].apply(lambda r: r.abs().idxmax())]
    return [
        f"{r['dataset']} {r['method']} {100 * r['sparsity']:g} %: dBA[{r['identity']}] best predicted by dense {r['statistic']}: "
        f"Spearman {r['spearman']:+.2f} [{r['spearman_low']:+.2f}, {r['spearman_high']:+.2f}] "
        f"over {r['n_attributes']} attributes"
        for _, r in best.iterrows()
    ]


def experiment_lines(tables: Path) -> list[str]:
    lines = []
    if (tables / "single_vs_joint.parquet").exists():
        rows = pd.read_parquet(tables / "single_vs_joint.parquet").dropna(subset=["dba_diff"])
        for _, r in rows[rows["threshold"] == "default"].iterrows():
            lines.append(
                f"{r['dataset']} single-label {r['attribute']} {100 * r['sparsity']:g} %: dBA[{r['identity']}] "
                f"single {_ci(r, 'dba_single')}, joint {_ci(r, 'dba_joint')}, single - joint {_ci(r, 'dba_diff')} "
                f"({r['seeds']} seed(s))"
            )
    if (tables / "backdoor.parquet").exists():
        rows = pd.read_parquet(tables / "backdoor.parquet")
        rows = rows[(rows["metric"] == "backdoor_bias_amplification") & (rows["threshold"] == "default")]
        for _, r in rows.iterrows():
            change = "" if r["method"] == "dense" else f", change {_ci(r, 'delta')}"
            lines.append(
                f"{r['dataset']} {r['task']} {r['method']} {100 * r['sparsity']:g} %: backdoor BA "
                f"{r['value']:.4f} [{r['ci_low']:.4f}, {r['ci_high']:.4f}]{change} ({r['seeds']} seed(s))"
            )
    return lines


def _ci(row, name: str) -> str:
    return f"{row[name]:+.4f} [{row[f'{name}_ci_low']:+.4f}, {row[f'{name}_ci_high']:+.4f}]"


def convergence_lines(convergence: pd.DataFrame) -> list[str]:
    conv = convergence[(convergence["task"] == "joint") & (convergence["method"] != "dense")]
    g = conv.groupby(["dataset", "method", "sparsity"]).agg(
        kept=("information_kept", "mean"),
        falling=("still_falling", "sum"),
        drop=("loss_drop_last_epochs", "mean"),
        val_drop=("val_loss_drop_last_epochs", "mean"),
    )
    return [
        f"{d} {m} {100 * s:g} %: information kept {100 * r['kept']:.0f} %, still falling in {int(r['falling'])} model(s) "
        f"(last 2 epochs: train loss {-100 * r['drop']:+.1f} %, valid loss {-100 * r['val_drop']:+.1f} %)"
        for (d, m, s), r in g.iterrows()
    ] + [
        f"{r['dataset']} {r['task']} {r['method']} {100 * r['sparsity']:g} % seed {r['seed']}: last 2 epochs train loss "
        f"{-100 * r['loss_drop_last_epochs']:+.1f} %, valid loss {-100 * r['val_loss_drop_last_epochs']:+.1f} %"
        + (" (still falling)" if r["still_falling"] else "")
        for _, r in convergence[convergence["task"] != "joint"].iterrows()
    ]


def shortcut_control_lines(control: pd.DataFrame) -> list[str]:
    """The known positive and the known null (prunebias.analysis.shortcut_control) at each weight:
    information kept, ΔBA per identity and Δ identity dependence with their CIs, both thresholds."""
    lines = []
    for (dataset, reference, weight, threshold), part in control[control["task"] == "joint"].groupby(
        ["dataset", "reference", "weight", "threshold"]
    ):
        cells = ", ".join(
            f"{'dBA[' + r['identity'] + ']' if r['statistic'] == 'bias_amplification' else 'identity dependence'} "
            f"{r['delta']:+.3f} [{r['ci_low']:+.3f}, {r['ci_high']:+.3f}] ({r['pairs']})"
            for _, r in part.iterrows()
        )
        lines.append(
            f"{dataset} mixed with {reference} at {weight:g} (kept {100 * part['information_kept'].iloc[0]:.0f} %), "
            f"{threshold}: {cells}"
        )
    return lines


def cie_lines(headline: pd.DataFrame) -> list[str]:
    rows = headline[(headline["target"] == "cie") & (headline["score"] == "uncertainty")]
    rows = rows.drop_duplicates(["dataset", "method", "sparsity"])
    return [
        f"{r['dataset']} {r['method']} {100 * r['sparsity']:g} %: dense uncertainty finds CIEs with ROC-AUC {r['auc']:.3f} "
        f"[{r['auc_low']:.3f}, {r['auc_high']:.3f}]"
        for _, r in rows.sort_values(["dataset", "method", "sparsity"]).iterrows()
    ]


#: The decoupled twin's data set name in config.yaml: its BA has a known answer, no change.
TWIN = "synth_decoupled"


def twin_lines(effects: pd.DataFrame) -> list[str]:
    """How often the twin's BA intervals exclude 0, over every run given, per sparsity: under the
    null a 95 % interval should do so about 5 % of the time."""
    rows = effects[(effects["dataset"] == TWIN) & (effects["statistic"] == "bias_amplification")]
    rows = rows.dropna(subset=["ci_low", "ci_high"])
    if rows.empty:
        return []
    excludes = (rows["ci_low"] > 0) | (rows["ci_high"] < 0)
    cells = [f"{100 * s:g} %: {int(e.sum())} of {len(e)}" for s, e in excludes.groupby(rows["sparsity"])]
    named = rows[excludes].apply(
        lambda r: (
            f"{r['run']} {r['threshold']} {100 * r['sparsity']:g} % {r['identity']} {r['delta']:+.3f} "
            f"[{r['ci_low']:+.3f}, {r['ci_high']:+.3f}] ({r['pairs']} pairs)"
        ),
        axis=1,
    )
    return [
        f"{TWIN} over {rows['run'].nunique()} run(s): {int(excludes.sum())} of {len(rows)} BA intervals exclude 0 "
        f"({100 * excludes.mean():.0f} %; nominal 5 %); by sparsity " + "; ".join(cells),
        *(f"  excludes 0: {line}" for line in named),
    ]


def over_runs_lines(effects: pd.DataFrame) -> list[str]:
    """Each data set's changes at its highest sparsity, replicated over the runs given (generator
    seeds: each run draws its own training split, test split and models): the mean over runs with
    a 95 % t-interval over runs. Unlike a run's bootstrap interval, it covers the training draw."""
    top = effects[(effects["task"] == "joint") & (effects["sparsity"] == effects["sparsity"].max())]
    lines = []
    keys = ["dataset", "method", "threshold", "statistic", "identity"]
    for (dataset, method, threshold, statistic, identity), part in top.groupby(keys, sort=True):
        values = part["delta"].dropna().to_numpy()
        if len(values) < 2:
            continue
        mean, half = values.mean(), stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values))
        name = statistic if identity == "all" else f"dBA[{identity}]"
        lines.append(
            f"{dataset} {method} {threshold}: {name} {mean:+.4f} [{mean - half:+.4f}, {mean + half:+.4f}] "
            f"over {len(values)} runs (" + ", ".join(f"{v:+.3f}" for v in values) + ")"
        )
    return lines


def main(dirs: list[str]) -> None:
    every_effects = []
    for d in map(Path, dirs):
        t = d / "tables"
        effects = pd.read_parquet(t / "effects.parquet")
        every_effects.append(effects.assign(run=str(d)))
        print(f"== {d}")
        for line in (
            accuracy_lines(pd.read_parquet(t / "metrics.parquet"))
            + convergence_lines(pd.read_parquet(t / "convergence.parquet"))
            + effect_lines(effects)
            + cie_lines(pd.read_parquet(t / "criteria" / "headline.parquet"))
            + effect_lines(effects, "calibrated")
            + rare_value_lines(pd.read_parquet(t / "summary.parquet"))
            + attribute_criterion_lines(pd.read_parquet(t / "criteria" / "attribute_criterion.parquet"))
            + experiment_lines(t)
            + (
                shortcut_control_lines(pd.read_parquet(control))
                if (control := t / "shortcut_control.parquet").exists()
                else []
            )
        ):
            print("  " + line)
    every = pd.concat(every_effects, ignore_index=True)
    for title, lines in (
        ("the decoupled twin's null, every run", twin_lines(every)),
        ("the changes at the highest sparsity, replicated over the runs", over_runs_lines(every)),
    ):
        if lines:
            print(f"== {title}")
            print("\n".join("  " + line for line in lines))


if __name__ == "__main__":
    main(sys.argv[1:] or ["results"])
