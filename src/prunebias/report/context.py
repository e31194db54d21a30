"""What the template shows: :func:`report_context` gathers findings, tables, figures, criteria
and galleries from tables already in memory into the one mapping the template renders.

Pure: the inputs were read by the I/O edge (:mod:`prunebias.report.render`). The findings and
key tables are about the main grid's task; the controlled experiments' tasks get a key table
of their own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from prunebias.analysis.cost_tradeoff import MATCHED_DROP, cost_points, matched_accuracy
from prunebias.report.captions import table_caption_html
from prunebias.report.format import level_text, method_text
from prunebias.report.gallery import GALLERY_OPEN, setting_galleries
from prunebias.report.grid import settings_of
from prunebias.report.runs import (
    compute_table,
    convergence_table,
    data_table,
    design_table,
    grid_table,
    sparsity_table,
)
from prunebias.report.sentences import experiment_findings, findings
from prunebias.report.tables import (
    CRITERIA_TABLES,
    cost_table,
    criteria_section,
    group_gap_table,
    key_table,
    matched_table,
    shortcut_control_table,
)
from prunebias.vocabulary import MODEL, SETTING

#: The task of the main grid (prunebias.tasks.JOINT); findings and the key table are about it,
#: other tasks (controlled experiments) get their own table.
MAIN_TASK = "joint"


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
    table_captions: Mapping[str, str] | None = None,
    design: Mapping[str, pd.DataFrame] | None = None,
) -> dict:
    """Everything the template shows, from tables already in memory.

    ``figures``: entries of :func:`prunebias.report.captions.figure_entry`. ``images``:
    dataset -> (image array, {id: row}) for the gallery thumbnails. ``table_captions``: table
    name -> its caption's rst text. Missing optional inputs (None) turn into a sentence saying
    what is absent.
    """
    criteria = dict(criteria or {})
    is_main = (metrics["task"] == MAIN_TASK).to_numpy()
    main, experiments = (metrics[is_main], metrics[~is_main]) if is_main.any() else (metrics, metrics.iloc[:0])
    # The identity attributes of the study (backdoor tasks add a "trigger" pseudo-identity).
    identities = sorted(set(main["identity"]) - {"all"})
    galleries = []
    if "susceptible_samples" in criteria:
        galleries = setting_galleries(criteria["susceptible_samples"], settings_of(main), identities, images)
    captions = {name: table_caption_html(text) for name, text in (table_captions or {}).items()}
    # Shown in their own sections and read by the findings, not criteria tables.
    effect_tables = {
        name: criteria.pop(name) for name in ("effects", "convergence", "shortcut_control") if name in criteria
    }
    convergence, control = effect_tables.get("convergence"), effect_tables.get("shortcut_control")
    experiment_tables = [criteria.pop(name, None) for name in ("single_vs_joint", "backdoor")]
    points = cost_points(main)
    criteria_tables = criteria_section(criteria)
    for entry in criteria_tables:
        entry["caption"] = captions.get(entry["name"], "")
    return {
        "title": title,
        "findings": findings(main, criteria | effect_tables),
        "experiment_findings": experiment_findings(*experiment_tables),
        "convergence": convergence_table(convergence) if convergence is not None else None,
        "shortcut_control": shortcut_control_table(control) if control is not None else None,
        "shortcut_control_caption": captions.get("shortcut_control", ""),
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
        "groups_caption": captions.get("group_gaps", ""),
        "cost": cost_table(points) if len(points) else None,
        "cost_matched": matched_table(points) if len(points) else None,
        "cost_sentence": matched_sentence(points) if len(points) else "",
        "figures": list(figures),
        "criteria": criteria_tables,
        "criteria_missing": [n for n in CRITERIA_TABLES if n not in criteria],
        "galleries": galleries,
        "gallery_open": GALLERY_OPEN,
        "n_models": len(metrics[MODEL + ["seed"]].drop_duplicates()),
    }


def matched_sentence(points: pd.DataFrame, max_drop: float = MATCHED_DROP) -> str:
    """Which method adds the least bias among those within ``max_drop`` points of dense accuracy
    (per setting when there are several), with its cost; or that none stays that close."""
    best = matched_accuracy(points, max_drop)
    if best.empty:
        return f"No compressed model stays within {max_drop:g} point of the dense model's mean accuracy."
    out = []
    for _, rows in best.groupby(SETTING, sort=True):
        top = rows.iloc[0]
        where = " / ".join(str(top[c]) for c in SETTING) + ": " if best[SETTING].drop_duplicates().shape[0] > 1 else ""
        others = ", ".join(
            f"{method_text(m)} {d:+.4f}" for m, d in zip(rows["method"].iloc[1:], rows["delta_ba"].iloc[1:])
        )
        out.append(
            f"{where}within {max_drop:g} point of the dense accuracy, {method_text(top['method'])} "
            f"({level_text(top['method'], top['sparsity'])}) adds the least bias: ΔBA {top['delta_ba']:+.4f} "
            f"at {top['speedup_b64']:.2f}× the dense speed (batch 64) and {top['size_ratio']:.2f}× its size"
            + (f" (others: {others})." if others else ".")
        )
    return " ".join(out)
