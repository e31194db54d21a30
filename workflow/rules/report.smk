# Stage 7: the audit report, results/report.html, one self-contained HTML file
# (prunebias.report). Its inputs are everything it shows plus the code, template and
# captions, so editing any of them reruns this rule only. Snakemake's own provenance
# report, results/workflow_report.html, is rebuilt after every successful run (onsuccess).


rule audit_report:
    input:
        metrics=rules.aggregate.output.metrics,
        groups=rules.aggregate.output.groups,
        # None without pruned models (the report then says so); the experiments' tables when they are on.
        criteria=criteria_outputs() + effects_outputs() + [p for p in experiment_outputs() if p.endswith(".parquet")],
        design=design_outputs(),
        figures=report_figures(),
        predictions=[f"{RESULTS}/predictions/{m}/test.parquet" for m in model_dirs()],
        index=expand(f"{RESULTS}/data/{{dataset}}/index.parquet", dataset=GRID["datasets"]),
        images=expand(f"{RESULTS}/data/{{dataset}}/images.npy", dataset=GRID_IMAGE_DATASETS),
        code=stage_code("report"),
        template=REPORT_TEMPLATE,
        captions=CAPTIONS,
    output:
        report(
            f"{RESULTS}/report.html",
            category="Audit report",
            labels={"file": "report.html", "content": "findings, key table, figures, criteria, gallery"},
            caption="../../reports/captions/audit_report.rst",
        ),
    log:
        f"{RESULTS}/logs/audit_report.log",
    conda:
        CONDA_ENV
    params:
        settings=as_json(config["report"]),
        index=per_dataset("index"),
        images=per_dataset("images", GRID_IMAGE_DATASETS),
        benchmarks=benchmark_files(),
        captions=caption_dir,
    shell:
        "python -m prunebias.cli report --out {output} --metrics {input.metrics} --groups {input.groups}"
        " --criteria {input.criteria} --figures {input.figures} --predictions {input.predictions}"
        " --index {params.index} --images {params.images} --benchmarks {params.benchmarks} --captions {params.captions:q}"
        " --template {input.template:q} --settings {params.settings:q} --design {input.design} > {log} 2>&1"


onsuccess:
    build_workflow_report()
