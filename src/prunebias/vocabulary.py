"""The project's names, stated once: splits, key columns, methods and their labels, statistic
labels, and the figures and tables each stage writes.

Pure data (and one key function), no imports: the workflow reads it while it parses (rule outputs are named from it),
and every module that shows or checks one of these names imports it from here.
"""

#: Data splits, in the order of the index and of seeded draws.
SPLITS = ("train", "valid", "test")
#: The splits a model predicts and the analyses read.
EVALUATION_SPLITS = ("valid", "test")

#: What identifies a curve: one data set, task and architecture.
SETTING = ["dataset", "task", "arch"]
#: What identifies a point of a curve, over seeds.
MODEL = SETTING + ["method", "sparsity"]
#: What a row of the tidy metrics is about, within one model.
ROW = ["attribute", "identity", "group", "threshold", "metric"]
#: Columns of the per-model metrics table (one row per model, seed and ROW).
METRICS_COLUMNS = MODEL + ROW + ["seed", "value"]
#: Columns of the summary over seeds, with the change against the dense model.
SUMMARY_COLUMNS = MODEL + ROW + ["mean", "std", "count", "delta_mean", "delta_std"]


def model_columns(meta: dict) -> dict:
    """The MODEL columns and the seed of one model, from the run metadata its files carry."""
    return {
        "dataset": meta["dataset"],
        "task": meta["task"],
        "arch": meta["arch"],
        "method": meta["method"],
        "sparsity": float(meta["target_sparsity"]),
        "seed": int(meta["seed"]),
    }


#: Compression methods, in the order of legends and tables.
METHODS = ("dense", "gmp", "gmp_pt", "oneshot", "acdc", "nm", "channels", "int8")
#: Their names in tables and sentences (a method not listed is shown by its own name).
METHOD_LABELS = {
    "dense": "dense",
    "gmp": "GMP",
    "gmp_pt": "GMP-PT",
    "oneshot": "one-shot",
    "acdc": "AC/DC",
    "nm": "N:M",
    "channels": "channel pruning",
    "int8": "int8",
}
#: Their names in figure legends and panel titles: the label and how the method starts.
METHOD_LEGENDS = {
    method: METHOD_LABELS[method] + detail
    for method, detail in {
        "dense": "",
        "gmp": " (from scratch)",
        "gmp_pt": " (post-training)",
        "oneshot": " + fine-tune",
        "acdc": "",
        "nm": " semi-structured",
        "channels": " (structured)",
        "int8": " quantized (static PTQ)",
    }.items()
}
#: The shortcut control's reference predictors (prunebias.analysis.shortcut_control), in
#: order, and their names in tables, sentences and legends.
SHORTCUT_REFERENCES = {"identity": "identity-only predictor (known positive)", "prior": "prevalences (known null)"}
#: Compression families: what a method removes, and so what can make it faster.
FAMILIES = {
    "dense": "dense",
    "gmp": "unstructured",
    "gmp_pt": "unstructured",
    "oneshot": "unstructured",
    "acdc": "unstructured",
    "nm": "N:M",
    "channels": "channels",
    "int8": "int8",
}
#: Methods whose level (the ``sparsity`` of paths and tables) is the share of weights set to
#: zero by a mask; for ``channels`` it is the share of FLOPs removed, for ``int8`` 0 (nothing removed).
MASK_METHODS = ("gmp", "gmp_pt", "oneshot", "acdc", "nm")
#: Per-model cost measurements (metric names of the tidy metrics, attribute/identity/group "all"):
#: parameters and FLOPs (analytic, 2 per multiply-accumulate), bytes of the saved weights, and
#: CPU latency per image (median of repeats) at batch 1 and 64.
COST_METRICS = ("params", "flops", "size_bytes", "latency_ms_b1", "latency_ms_b64")

#: Dense-model statistics of the attribute criterion, as figures and the report name them.
STATISTIC_LABELS = {
    "uncertainty": "dense uncertainty",
    "interdependence": "dense interdependence (R²)",
    "auc": "dense ROC-AUC",
    "train_prevalence": "training prevalence",
    "train_rarity": "training rarity (min(π, 1 − π))",
    "group_gap": "training group-prevalence gap",
}

#: Figures of the metrics against sparsity (prunebias.plots.figures), one file stem each.
METRIC_FIGURES = ("accuracy_auc", "bias_amplification", "uncertainty_interdependence", "dba_heatmap", "group_gaps")
#: The equal-cost figure of the compression families (prunebias.plots.figures_cost), drawn by the same job.
COST_FIGURES = ("cost_tradeoff",)
#: Figures of the criteria and countermeasures (prunebias.plots.figures_criteria) -> the criteria
#: tables each is drawn from, in the order of its arguments.
CRITERIA_FIGURES = {
    "pr_curves": ("pr_curve", "headline"),
    "dba_vs_uncertainty": ("attribute_ranking", "attribute_criterion"),
    "routing_curve": ("routing_curve",),
    "cie_groups": ("cie_groups",),
}
#: The tables of the criteria stage (prunebias.analysis.criteria), per (dataset, task, arch) and concatenated.
CRITERIA_TABLES = (
    "cie_groups",
    "sample_criterion",
    "headline",
    "attribute_criterion",
    "attribute_ranking",
    "countermeasures",
    "routing_curve",
    "susceptible_samples",
    "pr_curve",
)
#: Figure formats: PNG for quick viewing, SVG for the report (sharp at any size).
FIGURE_FORMATS = ("png", "svg")
