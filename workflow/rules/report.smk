# Stage 7: the audit report, results/report.html, one self-contained HTML file
# (prunebias.report); include after criteria.smk and experiments.smk. Its inputs are everything it shows plus the report module, template
# and captions, so editing any of them reruns this rule only. Snakemake's own provenance
# report, results/workflow_report.html, is rebuilt after every successful run (onsuccess).
import os as _os
import subprocess as _subprocess
import sys
from pathlib import Path as _Path

REPORT_CODE = workflow.source_path("../../src/prunebias/report.py")
REPORT_TEMPLATE = workflow.source_path("../../reports/audit_report.html.j2")
CAPTION_DIR = _Path(workflow.basedir) / "reports" / "captions"


def report_figures():
    """Figures shown in the audit report, in order: the study's (prunebias.figures), then the experiments'."""
    from prunebias.figures import FIGURES

    main = [f"{RESULTS}/figures/{name}.svg" for name in FIGURES]
    main += [f"{RESULTS}/figures/effects.svg"] if effects_outputs() else []
    main += [f for f in criteria_figure_files() if f.endswith(".svg")]
    return main + [f for f in experiment_outputs() if f.startswith(f"{RESULTS}/figures/") and f.endswith(".svg")]


def benchmark_files():
    """The benchmark file of every expensive job of the grid (the report sums their times).

    Passed as params, not inputs: a missing benchmark file must never make Snakemake rerun a
    training job just to write one.
    """
    files = [f"{RESULTS}/benchmarks/prepare/{d}.tsv" for d in GRID["datasets"]]
    for model in model_dirs():
        dataset, task, arch, run = model.split("/", 3)
        if run.startswith("dense/"):
            files.append(f"{RESULTS}/benchmarks/train_dense/{dataset}/{task}/{arch}/{run.removeprefix('dense/')}.tsv")
        else:
            files.append(f"{RESULTS}/benchmarks/prune/{model}.tsv")
        files.append(f"{RESULTS}/benchmarks/predict/{model}.tsv")
    return files


rule audit_report:
    input:
        metrics=f"{RESULTS}/tables/metrics.parquet",
        groups=f"{RESULTS}/tables/group_gaps.tsv",
        criteria=criteria_outputs() + effects_outputs(),  # none without pruned models: the report then says so
        design=design_outputs(),
        figures=report_figures(),
        predictions=[f"{RESULTS}/predictions/{m}/test.parquet" for m in model_dirs()],
        index=expand(f"{RESULTS}/data/{{dataset}}/index.parquet", dataset=GRID["datasets"]),
        images=expand(f"{RESULTS}/data/{{dataset}}/images.npy", dataset=GRID["datasets"]),
        code=REPORT_CODE,
        template=REPORT_TEMPLATE,
        captions=sorted(str(p) for p in CAPTION_DIR.rglob("*.rst")),
    output:
        report(
            f"{RESULTS}/report.html",
            category="Audit report",
            labels={"file": "report.html", "content": "findings, key table, figures, criteria, gallery"},
            caption="../../reports/captions/audit_report.rst",
        ),
    params:
        settings=as_json(config["report"]),
        data=[data_dir(d) for d in GRID["datasets"]],
        benchmarks=benchmark_files(),
        captions=str(CAPTION_DIR),
    log:
        f"{RESULTS}/logs/audit_report.log",
    shell:
        "{CLI} report --out {output} --metrics {input.metrics} --groups {input.groups}"
        " --criteria {input.criteria} --figures {input.figures} --predictions {input.predictions}"
        " --data {params.data} --benchmarks {params.benchmarks} --captions {params.captions:q}"
        " --template {input.template:q} --settings {params.settings:q} --design {input.design} > {log} 2>&1"


# Snakemake's provenance report after every successful run that did something. Not through
# `report-after-run` in the profile: that option also fires after dry runs and --until runs,
# and fails them whenever a file flagged for the report does not exist yet (a fresh clone).
WORKFLOW_REPORT = f"{RESULTS}/workflow_report.html"


def workflow_report_command():
    """`snakemake --report` for this workflow, config and working directory (lock-free: this run holds the lock)."""
    settings = workflow.config_settings
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", workflow.main_snakefile, "--directory", _os.getcwd(),
           "--report", WORKFLOW_REPORT, "--nolock", "--quiet", "all"]
    if settings.configfiles:
        cmd += ["--configfiles", *map(str, settings.configfiles)]
    if settings.config_args:
        cmd += ["--config", *settings.config_args]
    if settings.replace_workflow_config:
        cmd.append("--replace-workflow-config")
    return cmd


onsuccess:
    if not _os.path.exists(f"{RESULTS}/report.html"):
        # a partial run (--until, a target short of the report): nothing complete to report yet
        print(f"Snakemake report not built: {RESULTS}/report.html does not exist yet.", file=sys.stderr)
    else:
        proc = _subprocess.run(workflow_report_command(), capture_output=True, text=True)
        if proc.returncode == 0:
            print(f"Snakemake report: {WORKFLOW_REPORT}; audit report: {RESULTS}/report.html", file=sys.stderr)
        else:
            print(f"Snakemake report not built (`snakemake --report {WORKFLOW_REPORT}` failed):\n"
                  + proc.stderr[-3000:], file=sys.stderr)
