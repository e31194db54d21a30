# Stage 6b: dense-model criteria, compression-identified exemplars and countermeasures, per
# (dataset, task, arch) with pruned models, from the Parquet predictions alone.

CRITERIA_TABLES = [
    "cie_groups",
    "sample_criterion",
    "headline",
    "attribute_criterion",
    "attribute_ranking",
    "countermeasures",
    "routing_curve",
    "susceptible_samples",
    "pr_curve",
]


def criteria_groups():
    """The (dataset, task, arch) paths the criteria run on: the joint task, when it has pruned models."""
    if "joint" not in TASKS or not (GRID["methods"] and GRID["sparsities"]):
        return []
    return [f"{d}/joint/{a}" for d in GRID["datasets"] for a in GRID["archs"]]


def criteria_runs(w):
    prefix = f"{w.dataset}/{w.task}/{w.arch}/"
    return [m[len(prefix) :] for m in model_dirs() if m.startswith(prefix)]


rule criteria:
    input:
        unpack(data_files),
        tests=lambda w: [
            f"{RESULTS}/predictions/{w.dataset}/{w.task}/{w.arch}/{r}/test.parquet" for r in criteria_runs(w)
        ],
        metrics=lambda w: [f"{RESULTS}/metrics/{w.dataset}/{w.task}/{w.arch}/{r}.parquet" for r in criteria_runs(w)],
        code=module("criteria"),
    output:
        **{t: f"{RESULTS}/criteria/{{dataset}}/{{task}}/{{arch}}/{t}.parquet" for t in CRITERIA_TABLES},
    params:
        settings=as_json(ANALYSIS),
        data=lambda w: data_dir(w.dataset),
        out=lambda w, output: " ".join(f"{t}={output[t]}" for t in CRITERIA_TABLES),
    log:
        f"{RESULTS}/logs/criteria/{{dataset}}/{{task}}/{{arch}}.log",
    shell:
        "{CLI} criteria --data {params.data} --tests {input.tests} --metrics {input.metrics}"
        " --out {params.out} --settings {params.settings:q} > {log} 2>&1"


# A concatenation of small tables: on a cluster it runs where Snakemake runs, not as a job.
localrules:
    criteria_table,


rule criteria_table:
    input:
        lambda w: [f"{RESULTS}/criteria/{g}/{w.table}.parquet" for g in criteria_groups()],
    output:
        f"{RESULTS}/tables/criteria/{{table}}.parquet",
    log:
        f"{RESULTS}/logs/criteria_table/{{table}}.log",
    shell:
        "{CLI} concat --inputs {input} --out {output} > {log} 2>&1"


def criteria_outputs():
    return [f"{RESULTS}/tables/criteria/{t}.parquet" for t in CRITERIA_TABLES] if criteria_groups() else []


# Figures of the criteria and countermeasures (prunebias.figures_criteria), from the
# concatenated criteria tables; the figure module names the tables it reads.
def criteria_figure_tables():
    from prunebias.figures_criteria import TABLES

    return [f"{RESULTS}/tables/criteria/{t}.parquet" for t in TABLES]


def criteria_figure_outputs():
    """PNG + SVG per figure, flagged for the Snakemake report."""
    from prunebias.figures_criteria import FIGURES

    return {
        f"{name}_{ext}": report(
            f"{RESULTS}/figures/{name}.{ext}",
            category="Criteria and countermeasures",
            subcategory=ext.upper(),
            labels={"figure": name, "format": ext},
            caption=f"../../reports/captions/{name}.rst",
        )
        for name in FIGURES
        for ext in ("png", "svg")
    }


rule criteria_figures:
    input:
        tables=criteria_figure_tables(),
        code=[module("figures_criteria"), module("figures")],
    output:
        **criteria_figure_outputs(),
    params:
        out_dir=f"{RESULTS}/figures",
    log:
        f"{RESULTS}/logs/criteria_figures.log",
    shell:
        "{CLI} criteria-figures --tables {input.tables} --out-dir {params.out_dir} > {log} 2>&1"


def criteria_figure_files():
    """The criteria figures (PNG + SVG); none without pruned models, like criteria_outputs()."""
    from prunebias.figures_criteria import FIGURES

    if not criteria_groups():
        return []
    return [f"{RESULTS}/figures/{name}.{ext}" for name in FIGURES for ext in ("png", "svg")]


# Support-stable changes vs dense with paired bootstrap CIs, and how converged each model is
# (prunebias.effects), over the (dataset, task, arch) groups that have pruned models.
def effects_models():
    return [m for m in model_dirs() if any(m.startswith(f"{g}/") for g in criteria_groups())]


def train_log(model):
    return f"{RESULTS}/models/{model}/train_log.parquet"


rule effects:
    input:
        index=expand(f"{RESULTS}/data/{{dataset}}/index.parquet", dataset=GRID["datasets"]),
        valid=[f"{RESULTS}/predictions/{m}/valid.parquet" for m in effects_models()],
        test=[f"{RESULTS}/predictions/{m}/test.parquet" for m in effects_models()],
        logs=[train_log(m) for m in effects_models()],
        code=[module("effects"), module("figures_effects"), module("metrics"), module("figures")],
    output:
        effects=f"{RESULTS}/tables/effects.parquet",
        convergence=f"{RESULTS}/tables/convergence.parquet",
        png=report(f"{RESULTS}/figures/effects.png", category="Metrics vs sparsity", caption="../../reports/captions/effects.rst"),
        svg=f"{RESULTS}/figures/effects.svg",
    params:
        settings=as_json(ANALYSIS),
        index=[f"{d}={RESULTS}/data/{d}/index.parquet" for d in GRID["datasets"]],
        stem=f"{RESULTS}/figures/effects",
    log:
        f"{RESULTS}/logs/effects.log",
    shell:
        "{CLI} effects --index {params.index} --valid {input.valid} --test {input.test} --logs {input.logs}"
        " --settings {params.settings:q} --out-effects {output.effects} --out-convergence {output.convergence}"
        " --out-figure {params.stem} > {log} 2>&1"


def synthetic_datasets():
    return [d for d in GRID["datasets"] if config["datasets"][d]["source"] == "synthetic"]


# The synthetic benchmark's design as measured numbers (prevalence per group, cue strength).
rule design:
    input:
        unpack(data_files),
        code=[workflow.source_path("../../src/prunebias/data/synthetic_design.py"),
              workflow.source_path("../../src/prunebias/data/synthetic.py")],
    output:
        f"{RESULTS}/tables/design/{{dataset}}.parquet",
    params:
        config=lambda w: as_json(config["datasets"][w.dataset]),
        data=lambda w: data_dir(w.dataset),
    log:
        f"{RESULTS}/logs/design/{{dataset}}.log",
    shell:
        "{CLI} design --data {params.data} --config {params.config:q} --out {output} > {log} 2>&1"


def effects_outputs():
    if not effects_models():
        return []
    return [f"{RESULTS}/tables/effects.parquet", f"{RESULTS}/tables/convergence.parquet"]


def design_outputs():
    return [f"{RESULTS}/tables/design/{d}.parquet" for d in synthetic_datasets()]
