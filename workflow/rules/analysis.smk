# Stages 5-6: metrics per model and their aggregation. Analysis rules take the package module
# they run as an input, so editing it reruns them (and only them); predictions are never redone.


def module(name):
    return workflow.source_path(f"../../src/prunebias/{name}.py")


rule metrics:
    input:
        unpack(data_files),
        unpack(lambda w: task_inputs(w, code=True)),
        valid=f"{RESULTS}/predictions/{{dataset}}/{{task}}/{{arch}}/{{run}}/valid.parquet",
        test=f"{RESULTS}/predictions/{{dataset}}/{{task}}/{{arch}}/{{run}}/test.parquet",
        code=module("metrics"),
    output:
        f"{RESULTS}/metrics/{{dataset}}/{{task}}/{{arch}}/{{run}}.parquet",
    params:
        settings=as_json(ANALYSIS),
        data=lambda w: data_dir(w.dataset),
    log:
        f"{RESULTS}/logs/metrics/{{dataset}}/{{task}}/{{arch}}/{{run}}.log",
    shell:
        "{CLI} metrics --data {params.data} --valid {input.valid} --test {input.test}"
        " --out {output} --settings {params.settings:q} > {log} 2>&1"


rule aggregate:
    input:
        metrics=expand(f"{RESULTS}/metrics/{{model}}.parquet", model=model_dirs()),
        code=module("aggregate"),
    output:
        metrics=f"{RESULTS}/tables/metrics.parquet",
        summary=f"{RESULTS}/tables/summary.parquet",
        groups=f"{RESULTS}/tables/group_gaps.tsv",
    log:
        f"{RESULTS}/logs/aggregate.log",
    shell:
        "{CLI} aggregate --inputs {input.metrics} --out-metrics {output.metrics}"
        " --out-summary {output.summary} --out-groups {output.groups} > {log} 2>&1"


def figure_outputs():
    from prunebias.figures import FIGURES

    return {
        f"{name}_{ext}": report(
            f"{RESULTS}/figures/{name}.{ext}",
            category="Metrics vs sparsity",
            subcategory=ext.upper(),
            labels={"figure": name, "format": ext},
            caption=f"../../reports/captions/{name}.rst",
        )
        for name in FIGURES
        for ext in ("png", "svg")
    }


rule figures:
    input:
        summary=f"{RESULTS}/tables/summary.parquet",
        metrics=f"{RESULTS}/tables/metrics.parquet",
        code=module("figures"),
    output:
        **figure_outputs(),
    params:
        out_dir=f"{RESULTS}/figures",
    log:
        f"{RESULTS}/logs/figures.log",
    shell:
        "{CLI} figures --summary {input.summary} --metrics {input.metrics} --out-dir {params.out_dir} > {log} 2>&1"

