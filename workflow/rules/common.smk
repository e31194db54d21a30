# Config validation and every helper the rules use (rule files hold rules only).
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import yaml
from snakemake.exceptions import WorkflowError
from snakemake.settings.types import DeploymentMethod

from prunebias.code_inputs import package_root, stage_files
from prunebias.config import (
    AUDIT_ONLY_SOURCES,
    POST_TRAINING_METHODS,
    ConfigError,
    analysis_settings,
    check_config,
    method_levels,
    schema_errors,
    sparsity_label,
    starts_from_dense,
    train_spec,
    unknown_keys,
)
from prunebias.data.synthetic import ATTRIBUTES as SYNTHETIC_ATTRIBUTES, CELEBA_ORDER
from prunebias.data.folder import read_folder_index, table_options
from prunebias.data.store import attribute_names
from prunebias.data.tables import check_both_values
from prunebias.data.user_predictions import check_prediction_columns, labels_index, read_manifest
from prunebias.report.render import DEFAULT_TEMPLATE
from prunebias.vocabulary import COST_FIGURES, CRITERIA_FIGURES, CRITERIA_TABLES, FIGURE_FORMATS, METRIC_FIGURES
from prunebias.tasks import (
    JOINT,
    check_experiments,
    parse_task,
    task_grid,
    task_spec,
    task_train_spec,
    tasks_from_config,
    triggered_path,
)

SCHEMA = workflow.source_path("../schemas/config.schema.yaml")
with open(SCHEMA) as _fh:
    _schema = yaml.safe_load(_fh)
# Unknown keys first (with the closest valid key), then types and ranges (as dotted keys),
# then defaults, then the cross-checks that need the whole config. All before any job runs.
for _check in (unknown_keys, schema_errors):
    if _check(config, _schema):
        raise WorkflowError("\n".join(["invalid config:", *_check(config, _schema)]))
validate(config, SCHEMA)
try:
    check_config(config, _schema)
except ConfigError as exc:
    raise WorkflowError(f"invalid config:\n{exc}") from None
_problems = check_experiments(config, {"synthetic": SYNTHETIC_ATTRIBUTES, "celeba": CELEBA_ORDER})
if _problems:
    raise WorkflowError("\n".join(["invalid config:", *_problems]))

# Audit-only data sets (source: predictions): their labels and manifest are read and checked
# now, before any job runs; their models are the manifest's rows.
AUDIT_DATASETS = [d for d in config["grid"]["datasets"] if config["datasets"][d]["source"] in AUDIT_ONLY_SOURCES]
try:
    MANIFESTS = {d: read_manifest(config["datasets"][d]["manifest"]) for d in AUDIT_DATASETS}
    LABEL_INDEXES = {
        d: labels_index(config["datasets"][d]["labels"], config["datasets"][d].get("categorical", ()))
        for d in AUDIT_DATASETS
    }
    LABEL_ATTRIBUTES = {d: attribute_names(index) for d, index in LABEL_INDEXES.items()}
    # Every attribute needs both values in every split, or its metrics are undefined.
    for _d, _index in LABEL_INDEXES.items():
        check_both_values(_index[LABEL_ATTRIBUTES[_d]], _index["split"], table_path=config["datasets"][_d]["labels"])
    # Each prediction file's columns from its header; ids and values when it is imported.
    for _d in AUDIT_DATASETS:
        for _path in [*MANIFESTS[_d]["valid"], *MANIFESTS[_d]["test"]]:
            check_prediction_columns(_path, LABEL_ATTRIBUTES[_d])
except ValueError as exc:
    raise WorkflowError(f"invalid audit data set:\n{exc}") from None
_problems = [
    f"identities: {sorted(set(config['identities']) - set(names))} are not columns of "
    f"datasets.{d}.labels ({config['datasets'][d]['labels']}; columns: {names})"
    for d, names in LABEL_ATTRIBUTES.items()
    if not set(config["identities"]) <= set(names)
]
# Folder data sets: the whole table (paths, containment, encodings, splits) is checked now.
try:
    FOLDER_INDEXES = {
        d: read_folder_index(ds["root"], ds["table"], **table_options(ds))[0]
        for d in config["grid"]["datasets"]
        for ds in [config["datasets"][d]]
        if ds["source"] == "folder"
    }
    FOLDER_ATTRIBUTES = {d: attribute_names(index) for d, index in FOLDER_INDEXES.items()}
    # Every attribute needs both values in every split, or its metrics are undefined.
    for _d, _index in FOLDER_INDEXES.items():
        check_both_values(_index[FOLDER_ATTRIBUTES[_d]], _index["split"], table_path=config["datasets"][_d]["table"])
except ValueError as exc:
    raise WorkflowError(f"invalid folder data set:\n{exc}") from None
_problems += [
    f"identities: {sorted(set(config['identities']) - set(names))} are not attributes of datasets.{d} "
    f"(table {config['datasets'][d]['table']}; attributes: {names})"
    for d, names in FOLDER_ATTRIBUTES.items()
    if not set(config["identities"]) <= set(names)
]
# Users' dense models: one per grid arch, a file per grid seed, present now.
for _d in config["grid"]["datasets"]:
    _models = config["datasets"][_d].get("dense_models") or {}
    if not _models:
        continue
    _problems += [
        f"datasets.{_d}.dense_models: no model for grid arch {a!r}; add one, or drop the arch from grid.archs"
        for a in config["grid"]["archs"]
        if a not in _models
    ]
    _problems += [
        f"datasets.{_d}.dense_models.{a}.file: {path} does not exist (seed {s})"
        for a, m in _models.items()
        for s in config["grid"]["seeds"]
        for path in [m["file"].replace("{seed}", str(s))]
        if not os.path.isfile(path)
    ]
    _scratch = sorted(set(config["grid"]["methods"]) - set(POST_TRAINING_METHODS))
    if _scratch:
        _problems.append(
            f"datasets.{_d}.dense_models: grid.methods {_scratch} train from scratch and would not start "
            f"from your dense model; use the post-training methods {', '.join(POST_TRAINING_METHODS)}"
        )
if set(AUDIT_DATASETS) & set(config["experiments"].get("datasets") or []):
    _problems.append(
        f"experiments.datasets: {sorted(set(AUDIT_DATASETS) & set(config['experiments']['datasets']))} "
        "are audit-only (source predictions): no model can be trained on them"
    )
if _problems:
    raise WorkflowError("\n".join(["invalid config:", *_problems]))

RESULTS = config["results"]
# Jobs run `python -m prunebias.cli`: the interpreter running Snakemake comes first on PATH,
# so the project's venv needs no activation. With --sdm conda the rule's environment is
# put before it, and its python finds this package on PYTHONPATH. Every Snakemake process
# (also a cluster job's) sets this when it parses the workflow: nothing to pass on (envvars).
_search_path = {"PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}
if DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method:
    _search_path["PYTHONPATH"] = os.pathsep.join([str(package_root()), os.environ.get("PYTHONPATH", "")])
os.environ.update(_search_path)
CONDA_ENV = "../../envs/prunebias.yaml"  # relative to the rule files
# runtime.compile reaches the training command as a resource: Snakemake reruns a job whose
# params change, never one whose resources change, and compiling does not change what is trained.
TORCH_COMPILE = int(config["runtime"]["compile"])
GRID = config["grid"]
# joint, single-<attribute>, backdoor-<attribute>-<trigger>-<neg%>-<pos%> (prunebias.tasks)
TASKS = tasks_from_config(config)


wildcard_constraints:
    dataset=r"[A-Za-z0-9_\-]+",
    task=r"[A-Za-z0-9_\-]+",
    arch=r"[a-z0-9_]+",
    method=r"(?!dense)[a-z0-9_]+",
    sparsity=r"0(\.[0-9]+)?",
    seed=r"\d+",
    split=r"valid|test",
    run=r"dense/seed\d+|[a-z0-9_]+/s0(\.[0-9]+)?/seed\d+",


def data_dir(dataset):
    return f"{RESULTS}/data/{dataset}"


def one_of(names):
    """A wildcard constraint matching exactly ``names`` (nothing when empty)."""
    return "|".join(re.escape(n) for n in names) or "(?!)"


# Data sets with images (prepare, train_dense, prune, predict) and audit-only ones
# (prepare_labels, import_predictions): disjoint constraints keep the two kinds' rules apart.
IMAGE_DATASETS = [d for d in config["datasets"] if config["datasets"][d]["source"] not in AUDIT_ONLY_SOURCES]


def data_files(wildcards):
    d = data_dir(wildcards.dataset)
    return {"index": f"{d}/index.parquet", "images": f"{d}/images.npy"}


def runs(grid=GRID):
    """Every model of a grid as its path fragment: dense/seed23, gmp_pt/s0.99/seed23, ..."""
    out = []
    for seed in grid["seeds"]:
        out.append(f"dense/seed{seed}")
        for method in grid["methods"]:
            for s in method_levels(config, method, grid["sparsities"]):
                out.append(f"{method}/s{sparsity_label(s)}/seed{seed}")
    return out


EXPERIMENT_DATASETS = config["experiments"].get("datasets") or [d for d in GRID["datasets"] if d in IMAGE_DATASETS]


def model_dirs():
    """Every model of every task, each task with its own grid (experiments.*.grid); the
    experiments only on their data sets (experiments.datasets); an audit-only data set's
    models are its manifest's, all of the joint task."""
    return [
        f"{dataset}/{task}/{arch}/{run}"
        for dataset in GRID["datasets"]
        if dataset in IMAGE_DATASETS
        for task in TASKS
        if task == JOINT or dataset in EXPERIMENT_DATASETS
        for grid in [task_grid(config, task)]
        for arch in grid["archs"]
        for run in runs(grid)
    ] + [f"{dataset}/{JOINT}/{run}" for dataset in AUDIT_DATASETS for run in MANIFESTS[dataset]["run"]]


def manifest_row(w):
    """The manifest row of an audit-only model (wildcards dataset, arch, run)."""
    m = MANIFESTS[w.dataset]
    return m[m["run"] == f"{w.arch}/{w.run}"].iloc[0]


def user_prediction_files(w):
    row = manifest_row(w)
    return {"valid_file": row["valid"], "test_file": row["test"]}


def audit_run(w):
    row = manifest_row(w)
    return as_json(
        {
            "dataset": w.dataset,
            "task": w.task,
            "arch": w.arch,
            "method": row["method"],
            "target_sparsity": float(row["sparsity"]),
            "seed": int(row["seed"]),
        }
    )


# Data sets whose joint-task dense models are the user's own (datasets.<name>.dense_models).
USER_DENSE_DATASETS = [d for d in IMAGE_DATASETS if config["datasets"][d].get("dense_models")]


def user_dense_file(w):
    return config["datasets"][w.dataset]["dense_models"][w.arch]["file"].replace("{seed}", w.seed)


def is_dense(model):
    """Whether ``model`` (a model path) is a dense model."""
    *_, run = model.split("/", 3)
    return run.startswith("dense/")


def is_trained(model):
    """Whether prunebias trained ``model`` (a model path), as opposed to importing it or its predictions,
    or quantizing it (int8: calibrated, no training log)."""
    dataset, task, _, run = model.split("/", 3)
    imported_dense = dataset in USER_DENSE_DATASETS and task == JOINT and run.startswith("dense/")
    return dataset not in AUDIT_DATASETS and not imported_dense and not run.startswith("int8/")


def task_inputs(w):
    """Extra inputs of a job of a backdoor task: its triggered ids."""
    if parse_task(w.task).kind != "backdoor":
        return {}
    return {"triggered": str(triggered_path(data_dir(w.dataset), w.task))}


def cost_input(w):
    """The cost measurements of a model predict made (none for imported predictions)."""
    if w.dataset in AUDIT_DATASETS:
        return {}
    return {"cost": f"{RESULTS}/predictions/{w.dataset}/{w.task}/{w.arch}/{w.run}/cost.json"}


def stage_code(command):
    """The package files that `prunebias <command>` runs (prunebias.code_inputs, from the import
    graph): inputs of an analysis rule, so that editing one of them reruns exactly the rules
    whose stage runs it. Training, pruning and prediction rules take none: editing code never
    retrains."""
    entry = f"prunebias.cli:cmd_{command.replace('-', '_')}"
    return [str(f) for f in stage_files("prunebias.cli:main", entry)]


def out_dir(w, output):
    return os.path.dirname(output[0])


def figure_stem(w, output):
    """`<stem>` of the rule's `<stem>.png` / `<stem>.svg` outputs (prunebias.plots.figures.save_figure)."""
    return os.path.splitext(output.png)[0]


def optional_input(name):
    """`--<name> <file>` for a job that has that input (a backdoor task's triggered ids, the
    parent of a post-training method), else nothing."""
    return lambda w, input: f"--{name} {input[name]}" if name in input.keys() else ""


def index_only(w):
    return {"index": data_files(w)["index"]}


def per_dataset(key, datasets=GRID["datasets"]):
    """`dataset=file` for each of ``datasets``' files among the rule's declared inputs ``key``."""
    return lambda w, input: [f"{d}={path}" for d, path in zip(datasets, input[key])]


GRID_IMAGE_DATASETS = [d for d in GRID["datasets"] if d in IMAGE_DATASETS]


def experiment_outputs():
    """Tables and figures of the controlled experiments that are on (workflow/rules/experiments.smk)."""
    # An experiment needs a data set it can train on (experiments.datasets; audit-only ones are not).
    on_some = any(d in EXPERIMENT_DATASETS for d in GRID["datasets"])
    kinds = {parse_task(t).kind for t in TASKS if t == JOINT or on_some}
    names = [
        name
        for name, on in (("single_vs_joint", {"single", "joint"} <= kinds), ("backdoor", "backdoor" in kinds))
        if on
    ]
    return [
        f"{RESULTS}/{d}/{n}.{ext}"
        for n in names
        for d, ext in (("tables", "parquet"), ("figures", "png"), ("figures", "svg"))
    ]


def experiment_models(kind):
    """The models behind an experiment's table: the single-label tasks' models and the joint
    models of their (dataset, arch), or the backdoor tasks' models."""
    # A model's path: dataset/task/arch/run...
    parts = [(m, Path(m).parts) for m in model_dirs() if Path(m).parts[0] in EXPERIMENT_DATASETS]
    kinds = {m: parse_task(p[1]).kind for m, p in parts}
    if kind == "backdoor":
        return [m for m, _ in parts if kinds[m] == "backdoor"]
    singles = {(p[0], p[2]) for m, p in parts if kinds[m] == "single"}
    return [m for m, p in parts if kinds[m] == "single" or (kinds[m] == "joint" and (p[0], p[2]) in singles)]


def experiment_datasets(kind):
    return list(dict.fromkeys(Path(m).parts[0] for m in experiment_models(kind)))


def experiment_inputs(kind):
    """Index, predictions and (backdoor) triggered ids of an experiment's models."""
    models = experiment_models(kind)
    backdoors = dict.fromkeys(Path(m).parts[:2] for m in models if kind == "backdoor")
    return {
        "index": [f"{data_dir(d)}/index.parquet" for d in experiment_datasets(kind)],
        "valid": [f"{RESULTS}/predictions/{m}/valid.parquet" for m in models],
        "test": [f"{RESULTS}/predictions/{m}/test.parquet" for m in models],
        "triggered": [str(triggered_path(data_dir(d), t)) for d, t in backdoors],
    }


def as_json(obj):
    return json.dumps(obj, sort_keys=True)


ANALYSIS = analysis_settings(config)


def predictions():
    return [f"{RESULTS}/predictions/{m}/{split}.parquet" for m in model_dirs() for split in ("valid", "test")]


def all_outputs():
    # Predictions are a product in their own right (and deleting one must rebuild it).
    return [
        *predictions(),
        f"{RESULTS}/tables/summary.parquet",
        f"{RESULTS}/tables/group_gaps.tsv",
        *experiment_outputs(),
    ]


# ---------------------------------------------------------------- training (train.smk)
MODELS = f"{RESULTS}/models/{{dataset}}/{{task}}/{{arch}}"


def run_identity(w, method, sparsity):
    return as_json(
        {
            "dataset": w.dataset,
            "task": w.task,
            "arch": w.arch,
            "method": method,
            "target_sparsity": sparsity,
            "seed": int(w.seed),
        }
    )


def training_priority(w):
    """Training before analysis, and the grid's models first: each grid dense model feeds every
    pruned model of its seed (started later, the grid's long runs would leave one core idle at
    the end), then the controlled experiments' short runs, whose chain to the report is the run's
    tail (left at the analysis jobs' priority, the scheduler ran predictions and tables first and
    started their last training job ~25 s late)."""
    return 2 if w.task == JOINT else 1


def quantize_settings(dataset):
    """What an int8 model depends on besides its dense parent: the calibration and the input size."""
    return {
        "calibration_samples": config["prune"]["methods"].get("int8", {}).get("calibration_samples", 512),
        "crop_size": config["train"].get("crop_size") or config["datasets"][dataset]["resolution"],
    }


def prune_inputs(w):
    inputs = data_files(w)
    if starts_from_dense(w.method):
        inputs["parent"] = f"{RESULTS}/models/{w.dataset}/{w.task}/{w.arch}/dense/seed{w.seed}/model.pt"
    return inputs


# ---------------------------------------------------------------- figures (analysis.smk)
def report_figures_of(names, category):
    """PNG + SVG per figure name, flagged for the Snakemake report with its caption."""
    return {
        f"{name}_{ext}": report(
            f"{RESULTS}/figures/{name}.{ext}",
            category=category,
            subcategory=ext.upper(),
            labels={"figure": name, "format": ext},
            caption=f"../../reports/captions/{name}.rst",
        )
        for name in names
        for ext in FIGURE_FORMATS
    }


def figure_outputs():
    return report_figures_of(METRIC_FIGURES, "Metrics vs sparsity") | report_figures_of(
        COST_FIGURES, "Compression at equal cost"
    )


# ---------------------------------------------------------------- criteria (criteria.smk)
def criteria_groups():
    """The (dataset, task, arch) paths the criteria run on: the joint task, when it has pruned models."""
    trained = []
    if JOINT in TASKS and GRID["methods"] and GRID["sparsities"]:
        trained = [f"{d}/{JOINT}/{a}" for d in GRID["datasets"] if d in IMAGE_DATASETS for a in GRID["archs"]]
    audited = [
        f"{d}/{JOINT}/{a}"
        for d in AUDIT_DATASETS
        for a in dict.fromkeys(MANIFESTS[d].loc[MANIFESTS[d]["method"] != "dense", "arch"])
    ]
    return trained + audited


def criteria_runs(w):
    prefix = f"{w.dataset}/{w.task}/{w.arch}/"
    return [m[len(prefix) :] for m in model_dirs() if m.startswith(prefix)]


def criteria_out(w, output):
    return " ".join(f"{t}={output[t]}" for t in CRITERIA_TABLES)


def criteria_outputs():
    return [f"{RESULTS}/tables/criteria/{t}.parquet" for t in CRITERIA_TABLES] if criteria_groups() else []


def criteria_figure_tables():
    """The concatenated criteria tables the criteria figures read."""
    tables = sorted({t for names in CRITERIA_FIGURES.values() for t in names})
    return [f"{RESULTS}/tables/criteria/{t}.parquet" for t in tables]


def criteria_figure_outputs():
    return report_figures_of(CRITERIA_FIGURES, "Criteria and countermeasures")


def criteria_figure_files():
    """The criteria figures (PNG + SVG); none without pruned models, like criteria_outputs()."""
    if not criteria_groups():
        return []
    return [f"{RESULTS}/figures/{name}.{ext}" for name in CRITERIA_FIGURES for ext in FIGURE_FORMATS]


def effects_models():
    """The models of the (dataset, task, arch) groups that have pruned models."""
    return [m for m in model_dirs() if any(m.startswith(f"{g}/") for g in criteria_groups())]


def train_log(model):
    return f"{RESULTS}/models/{model}/train_log.parquet"


def effects_outputs():
    """The tables of the effects and of their shortcut control, where there are pruned models."""
    if not effects_models():
        return []
    return [f"{RESULTS}/tables/{name}.parquet" for name in ("effects", "convergence", "shortcut_control")]


def synthetic_datasets():
    return [d for d in GRID["datasets"] if config["datasets"][d]["source"] == "synthetic"]


def design_outputs():
    return [f"{RESULTS}/tables/design/{d}.parquet" for d in synthetic_datasets()]


# ---------------------------------------------------------------- report (report.smk)
REPORT_TEMPLATE = str(DEFAULT_TEMPLATE)
CAPTIONS = sorted(str(p) for p in (Path(workflow.basedir) / "reports" / "captions").rglob("*.rst"))


def report_figures():
    """Figures shown in the audit report, in order: the study's (prunebias.plots.figures), then the experiments'."""
    main = [f"{RESULTS}/figures/{name}.svg" for name in METRIC_FIGURES + COST_FIGURES]
    main += [f"{RESULTS}/figures/{name}.svg" for name in ("effects", "shortcut_control")] if effects_outputs() else []
    main += [f for f in criteria_figure_files() if f.endswith(".svg")]
    return main + [f for f in experiment_outputs() if f.startswith(f"{RESULTS}/figures/") and f.endswith(".svg")]


def benchmark_files():
    """The benchmark file of every expensive job of the grid (the report sums their times),
    from the benchmark patterns of the prepare, train_dense/import_dense, prune, quantize and predict rules.

    Passed as params, not inputs: a missing benchmark file must never make Snakemake rerun a
    training job just to write one.
    """
    files = [
        str((rules.prepare if d in IMAGE_DATASETS else rules.prepare_labels).benchmark).format(dataset=d)
        for d in GRID["datasets"]
    ]
    for model in model_dirs():
        dataset, task, arch, run = model.split("/", 3)
        names = {"dataset": dataset, "task": task, "arch": arch}
        if dataset in AUDIT_DATASETS:
            files.append(str(rules.import_predictions.benchmark).format(**names, run=run))
            continue
        method, *level, seed = run.split("/")
        seed = seed.removeprefix("seed")
        if method == "dense":
            dense_rule = rules.train_dense if is_trained(model) else rules.import_dense
            files.append(str(dense_rule.benchmark).format(**names, seed=seed))
        elif method == "int8":
            files.append(str(rules.quantize.benchmark).format(**names, seed=seed))
        else:
            sparsity = level[0].removeprefix("s")
            files.append(str(rules.prune.benchmark).format(**names, method=method, sparsity=sparsity, seed=seed))
        files.append(str(rules.predict.benchmark).format(**names, run=run))
    return files


def caption_dir(w, input):
    """reports/captions: figure captions <name>.rst, table captions tables/<name>.rst."""
    return os.path.commonpath(input.captions)


# Snakemake's provenance report after every successful run that did something. Not through
# `report-after-run` in the profile: that option also fires after dry runs and --until runs,
# and fails them whenever a file flagged for the report does not exist yet (a fresh clone).
WORKFLOW_REPORT = f"{RESULTS}/workflow_report.html"


def workflow_report_command():
    """`snakemake --report` for this workflow, config and working directory (lock-free: this run holds the lock)."""
    settings = workflow.config_settings
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        workflow.main_snakefile,
        "--directory",
        os.getcwd(),
        "--report",
        WORKFLOW_REPORT,
        "--nolock",
        "--quiet",
        "all",
    ]
    if settings.configfiles:
        cmd += ["--configfiles", *map(str, settings.configfiles)]
    if settings.config_args:
        cmd += ["--config", *settings.config_args]
    if settings.replace_workflow_config:
        cmd.append("--replace-workflow-config")
    return cmd


def build_workflow_report():
    if not os.path.exists(f"{RESULTS}/report.html"):
        # a partial run (--until, a target short of the report): nothing complete to report yet
        print(f"Snakemake report not built: {RESULTS}/report.html does not exist yet.", file=sys.stderr)
        return
    proc = subprocess.run(workflow_report_command(), capture_output=True, text=True)
    if proc.returncode == 0:
        print(f"Snakemake report: {WORKFLOW_REPORT}; audit report: {RESULTS}/report.html", file=sys.stderr)
    else:
        failure = f"Snakemake report not built (`snakemake --report {WORKFLOW_REPORT}` failed):"
        print(failure, proc.stderr[-3000:], sep="\n", file=sys.stderr)
