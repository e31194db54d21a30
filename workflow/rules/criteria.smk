# Stage 6b: dense-model criteria, compression-identified exemplars and countermeasures, per
# (dataset, task, arch) with pruned models, from the Parquet predictions alone; then the
# support-stable effects with CIs, and the synthetic benchmark's design table.


rule criteria:
    input:
        unpack(index_only),
        tests=lambda w: [
            f"{RESULTS}/predictions/{w.dataset}/{w.task}/{w.arch}/{r}/test.parquet" for r in criteria_runs(w)
        ],
        metrics=lambda w: [f"{RESULTS}/metrics/{w.dataset}/{w.task}/{w.arch}/{r}.parquet" for r in criteria_runs(w)],
        code=stage_code("criteria"),
    output:
        **{t: f"{RESULTS}/criteria/{{dataset}}/{{task}}/{{arch}}/{t}.parquet" for t in CRITERIA_TABLES},
    log:
        f"{RESULTS}/logs/criteria/{{dataset}}/{{task}}/{{arch}}.log",
    conda:
        CONDA_ENV
    params:
        settings=as_json(ANALYSIS),
        out=criteria_out,
    shell:
        "python -m prunebias.cli criteria --index {input.index} --tests {input.tests} --metrics {input.metrics}"
        " --out {params.out} --settings {params.settings:q} > {log} 2>&1"


# A concatenation of small tables: on a cluster it runs where Snakemake runs, not as a job.
localrules:
    criteria_table,


rule criteria_table:
    input:
        tables=lambda w: [f"{RESULTS}/criteria/{g}/{w.table}.parquet" for g in criteria_groups()],
        code=stage_code("concat"),
    output:
        f"{RESULTS}/tables/criteria/{{table}}.parquet",
    log:
        f"{RESULTS}/logs/criteria_table/{{table}}.log",
    conda:
        CONDA_ENV
    shell:
        "python -m prunebias.cli concat --inputs {input.tables} --out {output} > {log} 2>&1"


rule criteria_figures:
    input:
        tables=criteria_figure_tables(),
        code=stage_code("criteria-figures"),
    output:
        **criteria_figure_outputs(),
    log:
        f"{RESULTS}/logs/criteria_figures.log",
    conda:
        CONDA_ENV
    params:
        out_dir=out_dir,
    shell:
        "python -m prunebias.cli criteria-figures --tables {input.tables} --out-dir {params.out_dir} > {log} 2>&1"


rule effects:
    input:
        index=expand(f"{RESULTS}/data/{{dataset}}/index.parquet", dataset=GRID["datasets"]),
        valid=[f"{RESULTS}/predictions/{m}/valid.parquet" for m in effects_models()],
        test=[f"{RESULTS}/predictions/{m}/test.parquet" for m in effects_models()],
        logs=[train_log(m) for m in model_dirs() if is_trained(m)],
        code=stage_code("effects"),
    output:
        effects=f"{RESULTS}/tables/effects.parquet",
        convergence=f"{RESULTS}/tables/convergence.parquet",
        png=report(
            f"{RESULTS}/figures/effects.png",
            category="Metrics vs sparsity",
            caption="../../reports/captions/effects.rst",
        ),
        svg=f"{RESULTS}/figures/effects.svg",
    log:
        f"{RESULTS}/logs/effects.log",
    conda:
        CONDA_ENV
    params:
        settings=as_json(ANALYSIS),
        index=per_dataset("index"),
        stem=figure_stem,
    shell:
        "python -m prunebias.cli effects --index {params.index} --valid {input.valid} --test {input.test}"
        " --logs {input.logs} --settings {params.settings:q} --out-effects {output.effects}"
        " --out-convergence {output.convergence} --out-figure {params.stem} > {log} 2>&1"


# A known positive and a known null for the effects: the dense models mixed with the training
# set's identity-only predictor and with its prevalences (prunebias.analysis.shortcut_control).
rule shortcut_control:
    input:
        index=expand(f"{RESULTS}/data/{{dataset}}/index.parquet", dataset=GRID["datasets"]),
        valid=[f"{RESULTS}/predictions/{m}/valid.parquet" for m in effects_models() if is_dense(m)],
        test=[f"{RESULTS}/predictions/{m}/test.parquet" for m in effects_models() if is_dense(m)],
        effects=rules.effects.output.effects,
        convergence=rules.effects.output.convergence,
        code=stage_code("shortcut-control"),
    output:
        table=f"{RESULTS}/tables/shortcut_control.parquet",
        png=report(
            f"{RESULTS}/figures/shortcut_control.png",
            category="Metrics vs sparsity",
            caption="../../reports/captions/shortcut_control.rst",
        ),
        svg=f"{RESULTS}/figures/shortcut_control.svg",
    log:
        f"{RESULTS}/logs/shortcut_control.log",
    conda:
        CONDA_ENV
    params:
        settings=as_json(ANALYSIS),
        index=per_dataset("index"),
        stem=figure_stem,
    shell:
        "python -m prunebias.cli shortcut-control --index {params.index} --valid {input.valid} --test {input.test}"
        " --effects {input.effects} --convergence {input.convergence} --settings {params.settings:q}"
        " --out {output.table} --out-figure {params.stem} > {log} 2>&1"


# The synthetic benchmark's design as measured numbers (prevalence per group, cue strength).
rule design:
    input:
        unpack(data_files),
        code=stage_code("design"),
    output:
        f"{RESULTS}/tables/design/{{dataset}}.parquet",
    log:
        f"{RESULTS}/logs/design/{{dataset}}.log",
    conda:
        CONDA_ENV
    params:
        config=lambda w: as_json(config["datasets"][w.dataset]),
    shell:
        "python -m prunebias.cli design --index {input.index} --images {input.images} --config {params.config:q} --out {output} > {log} 2>&1"
