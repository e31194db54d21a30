"""What was run: the grid of settings, methods, sparsities and seeds; the prepared data sets;
measured against target sparsity; how converged each model is; the measured design of the
synthetic data sets; and the compute time per stage.

Each function turns a table already in memory (metrics, prediction metadata, benchmarks,
convergence, design) into a :class:`~prunebias.report.tables.Table`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from prunebias.report.format import (
    DASH,
    count_text,
    duration_text,
    is_finite,
    method_text,
    number_text,
    percent_text,
    share_text,
    sparsity_text,
)
from prunebias.report.grid import in_setting, ordered_methods, settings_of
from prunebias.report.tables import Column, Table, frame_table, model_columns
from prunebias.vocabulary import MODEL, SETTING


def grid_table(metrics: pd.DataFrame) -> Table:
    """One row per setting: methods, sparsities, seeds and the number of models."""
    rows = []
    for setting in settings_of(metrics):
        here = in_setting(metrics, setting)
        models = here[MODEL + ["seed"]].drop_duplicates()
        sparsities = sorted(set(models.loc[models["method"] != "dense", "sparsity"]))
        texts = list(setting) + [
            ", ".join(method_text(m) for m in ordered_methods(models["method"])),
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
            f"{g} {share_text(test[g].mean())}" for g in d["identities"] if g in test.columns and len(test)
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


def _over_seeds(frame: pd.DataFrame, sparsity: str, **aggregates) -> pd.DataFrame:
    """One row per setting, method and ``sparsity`` value: ``seeds`` (the models) and ``aggregates``."""
    return (
        frame.groupby(SETTING + ["method", sparsity], sort=True)
        .agg(seeds=("seed", "nunique"), **aggregates)
        .reset_index()
    )


#: The column counting the models of a row of :func:`_over_seeds`.
_MODELS_COLUMN = {"seeds": Column("models", count_text)}


def sparsity_table(runs: pd.DataFrame) -> Table:
    """Measured vs target sparsity per setting, method and target (over seeds).

    ``runs``: one row per model with ``dataset, task, arch, method, target_sparsity,
    measured_sparsity, seed`` (the predictions' metadata).
    """
    # channels and int8 zero no weights (their cost is in the equal-cost tables); users' own methods stay
    pruned = runs[~runs["method"].isin(("dense", "channels", "int8"))]
    if pruned.empty:
        return Table(["method"], [False], [], note="No pruned model in this run.")
    g = pruned.assign(error=(pruned["measured_sparsity"] - pruned["target_sparsity"]).abs())
    g = _over_seeds(
        g,
        "target_sparsity",
        measured=("measured_sparsity", "mean"),
        lowest=("measured_sparsity", "min"),
        highest=("measured_sparsity", "max"),
        error=("error", "max"),
    )
    target = {"target_sparsity": Column("target", lambda v: f"{100 * v:.2f}%")}
    columns = (
        model_columns(g, target)
        | _MODELS_COLUMN
        | {
            "measured": Column("measured (mean)", lambda v: f"{100 * v:.3f}%"),
            "lowest": Column("lowest", lambda v: f"{100 * v:.3f}%"),
            "highest": Column("highest", lambda v: f"{100 * v:.3f}%"),
            "error": Column("largest |measured − target|", lambda v: f"{100 * v:.4f} points"),
        }
    )
    return frame_table(
        g,
        columns,
        note=(
            "Measured over the pruned tensors (every conv weight and the final linear weight); for models "
            "audited from their prediction files (source predictions), the sparsity their manifest declares. "
            "N:M models stay below 1 − N/M: tensors whose input size is no multiple of M (the RGB stem, "
            "depthwise convs) stay dense."
        ),
    )


def convergence_table(convergence: pd.DataFrame) -> Table:
    """How much of the dense model's information each setting keeps, and whether its loss still fell."""
    g = _over_seeds(
        convergence,
        "sparsity",
        kept=("information_kept", "mean"),
        val_bce=("val_bce", "mean"),
        prior_bce=("prior_bce", "mean"),
        falling=("still_falling", "sum"),
        drop=("loss_drop_last_epochs", "mean"),
        val_drop=("val_loss_drop_last_epochs", "mean"),
    )
    columns = (
        model_columns(g)
        | _MODELS_COLUMN
        | {
            "kept": Column("information kept", lambda v: percent_text(v, 0)),
            "val_bce": Column("valid BCE", number_text),
            "prior_bce": Column("prior BCE", number_text),
            "drop": Column("train-loss drop, last 2 epochs", lambda v: percent_text(v, 1)),
            "falling": Column("still falling (models)", count_text),
            "val_drop": Column("valid-loss drop, last 2 epochs", lambda v: percent_text(v, 1)),
        }
    )
    return frame_table(
        g,
        columns,
        note="Information kept = (BCE_prior − BCE_model) / (BCE_prior − BCE_dense) on the validation split, the prior "
        "predicting each attribute's training prevalence: 100 % = all the dense model learned, 0 % = a prevalence predictor. "
        "A model whose training loss fell by more than 1 % over its last two epochs was still converging. The "
        "controlled experiments' models (their own tasks) show their loss trend only.",
    )


def design_table(design: Mapping[str, pd.DataFrame], identities: Sequence[str]) -> list[dict]:
    """Per synthetic data set, its measured design: prevalence per identity group and cue strength per attribute."""
    out = []
    for name, frame in design.items():
        columns = {
            "attribute": Column("attribute", str),
            "identity": Column("identity", lambda v: "yes" if v else ""),
            "identity_coupled": Column("coupled to identity", lambda v: "yes" if v else "no"),
            "prevalence": Column("prevalence", lambda v: percent_text(v, 1)),
        }
        for g in identities:
            for value in (0, 1):
                col = f"prevalence_{g}={value}"
                if col in frame.columns:
                    columns[col] = Column(f"{g}={value}", lambda v: percent_text(v, 1))
        columns |= {
            "cue_delta": Column("cue: mean Σ|Δpixel| when it alone flips", lambda v: f"{v:.1f}"),
            "probe_auc": Column("linear probe AUC (pixels)", lambda v: f"{v:.2f}"),
            "probe_auc_within": Column("probe AUC within Male groups", lambda v: f"{v:.2f}"),
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
                        "the raw pixels, which also sees correlated cues (identity included); within Male groups: the same "
                        "probe's AUC among women and among men, averaged (for Male itself: among young and old), i.e. the "
                        "attribute's visibility apart from that identity."
                    ),
                ),
            }
        )
    return out


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
        "jobs": Column("jobs", count_text),
        "total": Column("total time", duration_text),
        "mean": Column("per job", duration_text),
    }
    if "rss" in g.columns:
        columns["rss"] = Column("peak memory", lambda v: f"{float(v):,.0f} MB" if is_finite(v) else DASH)
    note = f"Wall-clock time summed over jobs: {duration_text(total)} in all (jobs may run in parallel).{absent}"
    return frame_table(g, columns, note=note)
