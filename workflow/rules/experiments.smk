# Controlled experiments (SPEC "Controlled experiments"): single-label vs joint training and
# backdoors. Their models run through the same rules as the joint grid (the task wildcard);
# here only their tables (from the models' predictions, with paired bootstrap intervals) and
# figures, made when the experiment is on (experiment_outputs()).


for _kind in ("single_vs_joint", "backdoor"):

    rule:
        name:
            f"experiment_{_kind}"
        input:
            **experiment_inputs(_kind),
            metrics=rules.aggregate.output.metrics,
            code=stage_code("experiment"),
        output:
            table=f"{RESULTS}/tables/{_kind}.parquet",
            png=report(
                f"{RESULTS}/figures/{_kind}.png",
                category="Controlled experiments",
                caption=f"../../reports/captions/{_kind}.rst",
            ),
            svg=f"{RESULTS}/figures/{_kind}.svg",
        log:
            f"{RESULTS}/logs/experiments/{_kind}.log",
        conda:
            CONDA_ENV
        params:
            kind=_kind,
            index=per_dataset("index", experiment_datasets(_kind)),
            settings=as_json(ANALYSIS),
            stem=figure_stem,
        shell:
            "python -m prunebias.cli experiment --kind {params.kind} --metrics {input.metrics} --index {params.index}"
            " --valid {input.valid} --test {input.test} --triggered {input.triggered} --settings {params.settings:q}"
            " --out-table {output.table} --out-figure {params.stem} > {log} 2>&1"
