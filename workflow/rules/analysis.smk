# Stages 5-6: metrics per model and their aggregation. Each analysis rule takes the package
# files its stage runs as inputs (stage_code), so an edit reruns exactly the rules that run
# the edited code; predictions are never redone.


rule metrics:
    input:
        unpack(index_only),
        unpack(task_inputs),
        unpack(cost_input),
        valid=f"{RESULTS}/predictions/{{dataset}}/{{task}}/{{arch}}/{{run}}/valid.parquet",
        test=f"{RESULTS}/predictions/{{dataset}}/{{task}}/{{arch}}/{{run}}/test.parquet",
        code=stage_code("metrics"),
    output:
        f"{RESULTS}/metrics/{{dataset}}/{{task}}/{{arch}}/{{run}}.parquet",
    log:
        f"{RESULTS}/logs/metrics/{{dataset}}/{{task}}/{{arch}}/{{run}}.log",
    conda:
        CONDA_ENV
    params:
        settings=as_json(ANALYSIS),
        triggered=optional_input("triggered"),
        cost=optional_input("cost"),
    shell:
        "python -m prunebias.cli metrics --index {input.index} {params.triggered} {params.cost} --valid {input.valid} --test {input.test}"
        " --out {output} --settings {params.settings:q} > {log} 2>&1"


rule aggregate:
    input:
        metrics=expand(f"{RESULTS}/metrics/{{model}}.parquet", model=model_dirs()),
        code=stage_code("aggregate"),
    output:
        metrics=f"{RESULTS}/tables/metrics.parquet",
        summary=f"{RESULTS}/tables/summary.parquet",
        groups=f"{RESULTS}/tables/group_gaps.tsv",
    log:
        f"{RESULTS}/logs/aggregate.log",
    conda:
        CONDA_ENV
    shell:
        "python -m prunebias.cli aggregate --inputs {input.metrics} --out-metrics {output.metrics}"
        " --out-summary {output.summary} --out-groups {output.groups} > {log} 2>&1"


rule figures:
    input:
        summary=rules.aggregate.output.summary,
        metrics=rules.aggregate.output.metrics,
        code=stage_code("figures"),
    output:
        **figure_outputs(),
    log:
        f"{RESULTS}/logs/figures.log",
    conda:
        CONDA_ENV
    params:
        out_dir=out_dir,
    shell:
        "python -m prunebias.cli figures --summary {input.summary} --metrics {input.metrics}"
        " --out-dir {params.out_dir} > {log} 2>&1"
