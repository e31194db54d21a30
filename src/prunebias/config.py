"""Config checks the JSON schema cannot express, and the per-job settings derived from the config.

The Snakefile validates the config with the schema (types, ranges, enums, defaults), then
calls :func:`check_config` for what needs the whole config: unknown keys with the closest
valid key, cross-references (grid names that must exist), and per-source requirements.
Every message names the key and says how to fix it.
"""

from __future__ import annotations

import difflib
import math
from typing import Any


class ConfigError(ValueError):
    """A config mistake the user can fix; the message names the key."""


def unknown_keys(config: Any, schema: dict, path: str = "") -> list[str]:
    """Messages for every key not allowed by ``schema`` (following $ref), with the closest valid key."""
    schema = _resolve(schema, schema)
    return _unknown(config, schema, schema, path)


def _resolve(node: dict, root: dict) -> dict:
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"].lstrip("#/").split("/")
        target = root
        for part in ref:
            target = target[part]
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def _unknown(value: Any, node: dict, root: dict, path: str) -> list[str]:
    node = _resolve(node, root)
    if not isinstance(value, dict):
        return []
    props = node.get("properties", {})
    extra = node.get("additionalProperties", True)
    messages = []
    for key, sub in value.items():
        where = f"{path}.{key}" if path else str(key)
        if key in props:
            messages += _unknown(sub, props[key], root, where)
        elif isinstance(extra, dict):
            messages += _unknown(sub, extra, root, where)
        elif extra is False:
            close = difflib.get_close_matches(str(key), list(props), n=1, cutoff=0.5)
            hint = f"; did you mean {'.'.join(where.split('.')[:-1] + [close[0]])!r}?" if close else ""
            valid = ", ".join(sorted(props))
            messages.append(f"unknown config key {where!r}{hint} (valid keys here: {valid})")
    return messages


def schema_errors(config: Any, schema: dict) -> list[str]:
    """Schema violations as ``dotted.key: problem`` lines (types, ranges, enums, duplicates, empty lists, NaN/inf)."""
    from jsonschema import Draft202012Validator

    errors = sorted(Draft202012Validator(schema).iter_errors(config), key=lambda e: [str(p) for p in e.absolute_path])
    messages = [f"{'.'.join(str(p) for p in e.absolute_path) or '<config>'}: {e.message}" for e in errors]
    # JSON Schema ranges let NaN through (every comparison with NaN is false): refuse .nan/.inf anywhere.
    return messages + [f"{where}: {value} is not a finite number" for where, value in _non_finite(config, "")]


def _non_finite(value: Any, path: str) -> list[tuple[str, float]]:
    if isinstance(value, float) and not math.isfinite(value):
        return [(path or "<config>", value)]
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return []
    return [hit for key, sub in items for hit in _non_finite(sub, f"{path}.{key}" if path else str(key))]


# The keys each data source needs beyond `source`.
SOURCE_KEYS = {
    "synthetic": ("resolution", "sizes"),
    "celeba": ("resolution", "root"),
    "folder": ("resolution", "root", "table"),
    "predictions": ("labels", "manifest"),
}
SOURCE_KEY_HELP = {
    "resolution": "the side in pixels of the stored images",
    "sizes": "train/valid/test counts",
    "root": "the directory of the images",
    "table": "the table of image paths and labels",
    "labels": "the labels table",
    "manifest": "the table of models and their prediction files",
}
#: Sources whose data sets have no images: nothing is trained or predicted on them.
AUDIT_ONLY_SOURCES = ("predictions",)


def check_config(config: dict, schema: dict) -> None:
    """Raise :class:`ConfigError` listing every problem found (unknown keys first)."""
    problems = unknown_keys(config, schema)
    if problems:
        raise ConfigError("\n".join(problems))
    grid = config["grid"]
    for name in grid["datasets"]:
        if name not in config["datasets"]:
            problems.append(
                f"grid.datasets: {name!r} is not defined under datasets (defined: {sorted(config['datasets'])})"
            )
    for name, ds in config["datasets"].items():
        for key in SOURCE_KEYS[ds["source"]]:
            if key not in ds:
                problems.append(f"datasets.{name}.{key}: required for source {ds['source']} ({SOURCE_KEY_HELP[key]})")
    recipes = config.get("prune", {}).get("methods", {})
    for method in grid.get("methods", []):
        if method not in recipes:
            problems.append(f"grid.methods: {method!r} has no recipe; add prune.methods.{method}")
    problems += [
        f"prune.methods.{method}.{key}: only used by method {owner}; remove it"
        for method, recipe in recipes.items()
        for key, owner in METHOD_ONLY_KEYS.items()
        if key in recipe and method != owner
    ]
    nm = recipes.get("nm", {}).get("n_m")
    if nm is not None and not nm[0] < nm[1]:
        problems.append(f"prune.methods.nm.n_m: {nm} keeps N of every M weights and needs N < M (e.g. [2, 4])")
    if grid.get("methods") and not grid.get("sparsities"):
        problems.append("grid.sparsities: empty, but grid.methods lists pruning methods; add target sparsities")
    crop = config["train"].get("crop_size")
    for name in grid["datasets"]:
        res = config["datasets"].get(name, {}).get("resolution")
        if crop and res and crop > res:
            problems.append(f"train.crop_size: {crop} is larger than datasets.{name}.resolution ({res})")
    if problems:
        raise ConfigError("\n".join(problems))


def sparsity_label(sparsity: float) -> str:
    """How a target sparsity is written in paths: 0.99 -> '0.99', 0.8 -> '0.8'."""
    return f"{float(sparsity):g}"


SHARED_TRAIN_KEYS = (
    "batch_size",
    "eval_batch_size",
    "crop_size",
    "augment",
    "max_nonfinite_retries",
    "retry_lr_factor",
)


def train_spec(config: dict, method: str) -> dict:
    """Settings that determine one training run of ``method`` ("dense" or a pruning method).

    Exactly these (and the run identity) go into the training rules' params, so that no
    analysis or report setting can rerun training.
    """
    train = config["train"]
    shared = {k: train[k] for k in SHARED_TRAIN_KEYS if k in train}
    if method == "dense":
        recipe = {k: train[k] for k in ("epochs", "optimizer", "lr_schedule") if k in train}
        return {**shared, **recipe, "schedule": {}, "scope": "global"}
    recipe = config["prune"]["methods"][method]
    compression = {k: recipe.get(k, default) for k, default in COMPRESSION_KEYS.get(method, {}).items()}
    return {
        **shared,
        "epochs": recipe["epochs"],
        "optimizer": recipe["optimizer"],
        "lr_schedule": recipe.get("lr_schedule", {}),
        "schedule": recipe.get("schedule", {}),
        "scope": config["prune"]["scope"],
        # Only where there is some: the other methods' params (and so their models) stay as they were.
        **({"compression": compression} if compression else {}),
    }


#: Recipe keys beyond the schedule that change what a method trains (TrainSpec.compression), with defaults.
COMPRESSION_KEYS = {"nm": {"n_m": None}, "channels": {"importance": "l1"}}
#: Recipe keys that belong to one method only.
METHOD_ONLY_KEYS = {"n_m": "nm", "importance": "channels", "sparsities": "channels"}


def method_levels(config: dict, method: str, sparsities: list[float]) -> list[float]:
    """The levels (path and table ``sparsity``) a grid runs ``method`` at: nm at its pattern's
    1 − N/M, int8 at 0, channels at its own ``sparsities`` (shares of FLOPs removed) when given,
    every other method at the grid's ``sparsities``."""
    recipe = config["prune"]["methods"].get(method, {})
    if method == "nm":
        n, m = recipe["n_m"]
        return [1.0 - n / m]
    if method == "int8":
        return [0.0]
    return list(recipe.get("sparsities", sparsities))


def analysis_settings(config: dict) -> dict:
    """The settings of the analysis jobs (JSON form of :class:`prunebias.settings.AnalysisSettings`):
    the ``analysis`` block and the identities. Only these go into the analysis rules' params."""
    return {"identities": config["identities"], **config["analysis"]}


POST_TRAINING_METHODS = ("gmp_pt", "oneshot", "nm", "channels", "int8")


def starts_from_dense(method: str) -> bool:
    """Post-training methods start from the dense checkpoint of the same seed; the others from scratch."""
    return method in POST_TRAINING_METHODS
