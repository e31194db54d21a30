# Config validation and the path helpers every rule uses.
import json
import sys

import yaml
from snakemake.exceptions import WorkflowError
from snakemake.settings.types import DeploymentMethod

from prunebias.config import (
    ConfigError,
    check_config,
    schema_errors,
    sparsity_label,
    starts_from_dense,
    train_spec,
    unknown_keys,
)
from prunebias.data.synthetic import ATTRIBUTES as SYNTHETIC_ATTRIBUTES, CELEBA_ORDER
from prunebias.tasks import (
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
        raise WorkflowError("invalid config:\n" + "\n".join(_check(config, _schema)))
validate(config, SCHEMA)
try:
    check_config(config, _schema)
except ConfigError as exc:
    raise WorkflowError(f"invalid config:\n{exc}") from None
_problems = check_experiments(config, {"synthetic": SYNTHETIC_ATTRIBUTES, "celeba": CELEBA_ORDER})
if _problems:
    raise WorkflowError("invalid config:\n" + "\n".join(_problems))

RESULTS = config["results"]
# The package's command line: the installed entry point inside a conda env, else the
# interpreter running Snakemake (the project's venv), so no PATH set-up is needed.
if DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method:
    CLI = "prunebias"
else:
    CLI = f"{sys.executable} -m prunebias.cli"
# runtime.* switches go into the command line as a global, not into params: Snakemake reruns
# a job whose params change, but only checks a shell command's unformatted text.
TRAIN_FLAGS = "--compile" if config["runtime"]["compile"] else ""
GRID = config["grid"]
# joint, single-<attribute>, backdoor-<attribute>-<trigger>-<neg%>-<pos%> (prunebias.tasks)
TASKS = tasks_from_config(config)

wildcard_constraints:
    dataset=r"[A-Za-z0-9_\-]+",
    task=r"[A-Za-z0-9_\-]+",
    arch=r"[a-z0-9_]+",
    method=r"(?!dense)[a-z0-9_]+",
    sparsity=r"0\.[0-9]+",
    seed=r"\d+",
    split=r"valid|test",
    run=r"dense/seed\d+|[a-z0-9_]+/s0\.[0-9]+/seed\d+",


def data_dir(dataset):
    return f"{RESULTS}/data/{dataset}"


def data_files(wildcards):
    d = data_dir(wildcards.dataset)
    return {"index": f"{d}/index.parquet", "images": f"{d}/images.npy"}


def runs(grid=GRID):
    """Every model of a grid as its path fragment: dense/seed23, gmp_pt/s0.99/seed23, ..."""
    out = []
    for seed in grid["seeds"]:
        out.append(f"dense/seed{seed}")
        for method in grid["methods"]:
            for s in grid["sparsities"]:
                out.append(f"{method}/s{sparsity_label(s)}/seed{seed}")
    return out


EXPERIMENT_DATASETS = config["experiments"].get("datasets") or GRID["datasets"]


def model_dirs():
    """Every model of every task, each task with its own grid (experiments.*.grid); the
    experiments only on their data sets (experiments.datasets)."""
    return [
        f"{dataset}/{task}/{arch}/{run}"
        for dataset in GRID["datasets"]
        for task in TASKS
        if task == "joint" or dataset in EXPERIMENT_DATASETS
        for grid in [task_grid(config, task)]
        for arch in grid["archs"]
        for run in runs(grid)
    ]


BACKDOOR_CODE = workflow.source_path("../../src/prunebias/backdoor.py")


def task_inputs(w, code=False):
    """Extra inputs of a job of a backdoor task: its triggered ids (and, with ``code``, the metrics code)."""
    if parse_task(w.task).kind != "backdoor":
        return {}
    inputs = {"triggered": str(triggered_path(data_dir(w.dataset), w.task))}
    return inputs | ({"backdoor_code": BACKDOOR_CODE} if code else {})


def experiment_outputs():
    """Tables and figures of the controlled experiments that are on (workflow/rules/experiments.smk)."""
    kinds = {parse_task(t).kind for t in TASKS}
    names = (["single_vs_joint"] if {"single", "joint"} <= kinds else []) + (["backdoor"] if "backdoor" in kinds else [])
    return [f"{RESULTS}/{d}/{n}.{ext}" for n in names for d, ext in (("tables", "parquet"), ("figures", "png"), ("figures", "svg"))]


def as_json(obj):
    return json.dumps(obj, sort_keys=True)


ANALYSIS = {"identities": config["identities"], **config["analysis"]}


def predictions():
    return [f"{RESULTS}/predictions/{m}/{split}.parquet" for m in model_dirs() for split in ("valid", "test")]


def all_outputs():
    # Predictions are a product in their own right (and deleting one must rebuild it).
    return predictions() + [
        f"{RESULTS}/tables/summary.parquet",
        f"{RESULTS}/tables/group_gaps.tsv",
    ] + experiment_outputs()
