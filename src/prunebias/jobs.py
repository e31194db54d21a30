"""One function per workflow stage: read inputs, call the pure code, write outputs atomically.

These are the I/O edges the Snakemake rules call (through :mod:`prunebias.cli`); each runs
and tests without Snakemake.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from prunebias import tasks
from prunebias.data import store
from prunebias.io import file_digest, read_metadata, save_array, save_torch, write_parquet, write_text
from prunebias.settings import AnalysisSettings, TrainSpec
from prunebias.vocabulary import MASK_METHODS, model_columns

# The training and prediction stages import torch inside their functions: the analysis
# stages below never pay its import (~4-6 s per job on a small CPU).


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def prepare(cfg: dict, index_path: str | os.PathLike, images_path: str | os.PathLike, workers: int = 1) -> None:
    """Build the index file and the image array file of one data set config (synthetic, CelebA or folder).

    The images are written first; if the index then fails its checks, they are removed, so a
    failed prepare leaves no half of a data set behind.
    """
    images_path = Path(images_path)
    info = {"source": cfg["source"], "resolution": cfg["resolution"]}
    try:
        if cfg["source"] == "synthetic":
            from prunebias.data import synthetic

            log(f"generating synthetic faces: {cfg['sizes']} at {cfg['resolution']} px")
            index, images = synthetic.generate(
                cfg["sizes"],
                cfg["resolution"],
                cfg["seed"],
                cfg.get("label_noise_scale", 1.0),
                decoupled=cfg.get("decoupled", False),
            )
            save_array(images, images_path)
        elif cfg["source"] == "celeba":
            from prunebias.data import celeba

            index = celeba.prepare(
                cfg["root"],
                images_path,
                cfg["resolution"],
                workers=workers,
                skip_bad_images=cfg.get("skip_bad_images", False),
                limit=cfg.get("limit"),
                allow_upscale=cfg.get("allow_upscale", False),
            )
        elif cfg["source"] == "folder":
            from prunebias.data import folder

            index = folder.prepare(
                cfg["root"],
                cfg["table"],
                images_path,
                cfg["resolution"],
                workers=workers,
                skip_bad_images=cfg.get("skip_bad_images", False),
                **folder.table_options(cfg),
            )
        else:
            raise ValueError(
                f"datasets.<name>.source: unknown source {cfg['source']!r} here; use synthetic, celeba or folder"
            )
        store.write_index(index, index_path, info)
    except BaseException:
        images_path.unlink(missing_ok=True)
        raise
    counts = index["split"].value_counts().to_dict()
    log(
        f"wrote {len(index)} images {counts} with {len(store.attribute_names(index))} attributes to {index_path}, {images_path}"
    )


def prepare_labels(cfg: dict, index_path: str | os.PathLike) -> None:
    """The index of an audit-only data set (``source: predictions``) from its labels table; no images."""
    from prunebias.data import user_predictions

    index = user_predictions.labels_index(cfg["labels"], cfg.get("categorical", ()))
    store.write_index(index, index_path, {"source": cfg["source"], "labels": str(cfg["labels"])})
    log(f"wrote {len(index)} labels {index['split'].value_counts().to_dict()} to {index_path}")


def import_predictions(
    index_path: str | os.PathLike,
    files: dict[str, str | os.PathLike],
    run: dict,
    scores: str,
    outputs: dict[str, str | os.PathLike],
) -> None:
    """Check a user's prediction files ({split: path}) against the labels and write them in the
    prediction contract ({split: path}), with ``run`` (dataset, task, arch, method, target_sparsity,
    seed) as their metadata. Nothing is written unless every split passes."""
    from prunebias.data import user_predictions
    from prunebias.data.tables import read_table

    index = store.load_index(index_path)
    attributes = store.attribute_names(index)
    frames = {}
    for split, path in files.items():
        ids = index.loc[index["split"] == split, "id"]
        frames[split] = user_predictions.prediction_frame(read_table(path), ids, attributes, scores, path=path)
    meta = {
        **run,
        "selected_epoch": None,
        "measured_sparsity": run["target_sparsity"],  # as declared in the manifest
        "attributes": attributes,
    }
    for split, frame in frames.items():
        write_parquet(frame, outputs[split], metadata={**meta, "split": split, "source": str(files[split])})
        log(f"{split}: {len(frame)} predictions from {files[split]} -> {outputs[split]}")


def _split(
    index: pd.DataFrame,
    images: np.ndarray,
    split: str,
    attributes: list[str],
    device,
    trigger: tuple[str, np.ndarray] | None = None,
):
    """A split's images and labels; ``trigger`` = (trigger name, ids) marks those ids' samples.

    Grayscale is applied to the stored images (before resize and crop, as in the study); the
    yellow square is drawn on the model input after the crop (:meth:`TensorData.mark`).
    """
    from prunebias.training.train import TensorData

    rows = np.flatnonzero(index["split"].to_numpy() == split)
    labels = index.loc[rows, attributes].to_numpy(dtype=bool)
    split_images = images[rows]
    square = None
    if trigger is not None:
        hit = np.isin(index["id"].to_numpy()[rows], trigger[1])
        if trigger[0] == "yellow_square":
            square = hit
        else:
            split_images[hit] = tasks.apply_trigger(split_images[hit], trigger[0])
    return TensorData.from_arrays(split_images, labels, device, square=square), labels


def _trigger(path: str | os.PathLike | None, spec: dict | None) -> tuple[str, np.ndarray] | None:
    """(trigger, triggered ids) of a backdoor task from its triggered-ids file; None for other tasks."""
    if spec is None or spec.get("kind") != "backdoor":
        return None
    if path is None:
        raise ValueError("a backdoor task needs the file of its triggered ids (--triggered)")
    if read_metadata(path) != spec:
        raise ValueError(f"{path}: made for other backdoor settings than {spec}; delete it and rerun")
    return spec["trigger"], pd.read_parquet(path, columns=["id"])["id"].to_numpy()


def train(
    index_path: str | os.PathLike,
    images_path: str | os.PathLike,
    model_out: str | os.PathLike,
    log_out: str | os.PathLike,
    spec: TrainSpec,
    run: dict,
    parent: str | os.PathLike | None = None,
    device: str = "auto",
    compile_step: bool = False,
    triggered: str | os.PathLike | None = None,
) -> None:
    """Train one model (dense or pruned) and write its checkpoint and per-epoch log.

    ``run`` identifies the model: dataset, task, arch, method, target_sparsity, seed.
    ``triggered``: the triggered-ids file of a backdoor task (``triggered_ids`` stage).
    Post-training methods start from the ``parent`` dense checkpoint of the same seed.
    ``compile_step`` runs the training step through ``torch.compile`` (``runtime.compile``).
    A resume state beside ``model_out`` (``.resume.pt``) lets a killed job continue.
    """
    import torch

    from prunebias.training import channels
    from prunebias.training.checkpoint import CHECKPOINT_FORMAT, load_checkpoint
    from prunebias.training.cost import static_cost
    from prunebias.training.devices import select_device
    from prunebias.training.models import build_model
    from prunebias.training.pruning import measured_sparsity
    from prunebias.training.schedules import describe_plan, mask_target, method_plan
    from prunebias.training.train import configure_backend, fit, model_to

    dev = select_device(device)
    configure_backend(dev)
    index = store.load_index(index_path)
    attributes = tasks.task_attributes(spec.task, store.attribute_names(index))
    trigger = _trigger(triggered, spec.task)
    images = store.load_images(images_path)
    spec = dataclasses.replace(spec, crop_size=spec.crop_size or images.shape[1])
    train_data, _ = _split(index, images, "train", attributes, dev, trigger)
    valid_data, valid_labels = _split(index, images, "valid", attributes, dev, trigger)

    torch.manual_seed(run["seed"])
    model = build_model(run["arch"], len(attributes), spec.crop_size)
    if parent is not None:
        model.load_state_dict(load_checkpoint(parent, run["arch"], store.attribute_names(index))["state_dict"])
    compression, structure = dict(spec.compression or {}), None
    if run["method"] == "channels":
        compression |= channels.prune_channels(model, spec.crop_size, run["target_sparsity"], compression["importance"])
        structure = channels.structure(model)
        log(f"channels: {compression['flops_share_removed']:.3f} of the FLOPs removed ({compression})")
    model = model_to(model, dev)
    plan = method_plan(run["method"], spec.epochs, run["target_sparsity"], spec.schedule)
    log(
        f"training {run} on {dev}{' (compiled step)' if compile_step else ''}"
        f" ({len(train_data)} train / {len(valid_data)} valid images)"
    )
    resume = Path(model_out).parent / ".resume.pt"
    # What the result depends on: a resume state left by other settings or inputs is not resumed.
    fingerprint = {
        "spec": spec.to_json(),
        "run": run,
        "index": file_digest(index_path),
        "parent": file_digest(parent) if parent is not None else None,
    }
    result = fit(
        model,
        train_data,
        valid_data,
        valid_labels,
        spec,
        plan,
        run["seed"],
        mask_target(run["method"], run["target_sparsity"]),
        resume_path=resume,
        log=log,
        fingerprint=fingerprint,
        compile_step=compile_step,
    )

    model.load_state_dict(result["state_dict"])
    model = model.cpu()
    if compression.get("n_m"):
        compression["tensors"] = _check_pattern(model, result["masks"], compression["n_m"])
    sparsity = measured_sparsity(model)
    history = result["history"].assign(**{k: v for k, v in run.items() if k != "target_sparsity"})
    checkpoint = {
        "format_version": CHECKPOINT_FORMAT,
        **run,
        "attributes": attributes,
        "task_spec": spec.task,
        "image_size": spec.crop_size,
        "state_dict": {k: v.cpu() for k, v in result["state_dict"].items()},
        "masks": result["masks"],
        "measured_sparsity": sparsity,
        "plan": describe_plan(plan),
        "selected_epoch": result["selected_epoch"],
        "spec": spec.to_json(),
        "parent": str(parent) if parent else None,
        "compression": compression or None,
        "structure": structure,
        "cost": static_cost(model, spec.crop_size),
    }
    write_parquet(history, log_out, metadata={**run, "selected_epoch": result["selected_epoch"]})
    save_torch(checkpoint, model_out)
    resume.unlink(missing_ok=True)
    log(
        f"selected epoch {result['selected_epoch']}; measured sparsity {sparsity['global']:.5f}; cost {checkpoint['cost']}"
    )


def _check_pattern(model, masks: dict, pattern: list[int]) -> list[str]:
    """The names of the tensors holding the N:M ``pattern`` (ValueError if one breaks it)."""
    from prunebias.training import nm

    weights = dict(model.named_parameters())
    held = [name for name in masks if nm.nm_eligible(weights[name].shape, pattern[1])]
    broken = nm.broken_tensors(weights, held, *pattern)
    if broken:
        raise ValueError(f"N:M training left {broken} (groups per tensor) off the {pattern[0]}:{pattern[1]} pattern")
    return held


def quantize(
    index_path: str | os.PathLike,
    images_path: str | os.PathLike,
    parent: str | os.PathLike,
    model_out: str | os.PathLike,
    run: dict,
    settings: dict,
    triggered: str | os.PathLike | None = None,
) -> None:
    """The int8 version of the ``parent`` dense model, calibrated on ``settings["calibration_samples"]``
    training images (a draw seeded by the run's seed), as a checkpoint: the float weights, the
    calibration and the int8 model's cost. predict rebuilds the int8 model from them."""
    import torch

    from prunebias.training import augment
    from prunebias.training.checkpoint import CHECKPOINT_FORMAT, checkpoint_model, load_checkpoint
    from prunebias.training.cost import static_cost
    from prunebias.training.quantize import quantize_int8
    from prunebias.training.train import epoch_generator

    index = store.load_index(index_path)
    ckpt = load_checkpoint(parent, run["arch"], store.attribute_names(index))
    trigger = _trigger(triggered, ckpt.get("task_spec"))
    images = store.load_images(images_path)
    crop = settings["crop_size"]
    train_data, _ = _split(index, images, "train", list(ckpt["attributes"]), torch.device("cpu"), trigger)
    n = min(settings["calibration_samples"], len(train_data))
    chosen = torch.randperm(len(train_data), generator=epoch_generator(run["seed"], 0, 3))[:n]
    batches = [
        augment.to_float(train_data.mark(augment.center_crop(train_data.batch(idx)[0], crop), idx))
        for idx in torch.split(chosen, 256)
    ]
    model = checkpoint_model(ckpt, parent)
    int8, calibration = quantize_int8(model, batches)
    checkpoint = {
        **{k: ckpt[k] for k in ("attributes", "task_spec", "image_size", "state_dict", "measured_sparsity")},
        "format_version": CHECKPOINT_FORMAT,
        **run,
        "masks": None,
        "calibration": calibration,
        "calibration_samples": n,
        "parent": str(parent),
        "selected_epoch": ckpt["selected_epoch"],
        "compression": {"dtype": "int8", "scheme": "static, per-channel weights, FX graph mode"},
        "cost": static_cost(model, crop, deployed=int8),
    }
    save_torch(checkpoint, model_out)
    log(f"int8 model of {parent} calibrated on {n} training images -> {model_out}; cost {checkpoint['cost']}")


def import_dense(
    index_path: str | os.PathLike,
    user_file: str | os.PathLike,
    model_out: str | os.PathLike,
    run: dict,
    outputs: list[str],
    image_size: int,
) -> None:
    """A user's dense model (a state dict file, :mod:`prunebias.training.user_model`) as the dense
    checkpoint of ``run``, its outputs mapped by name to the data set's attributes."""
    from prunebias.training import user_model

    index = store.load_index(index_path)
    user_model.import_dense(
        user_file,
        model_out,
        arch=run["arch"],
        outputs=outputs,
        attributes=store.attribute_names(index),
        image_size=image_size,
        run=run,
    )
    log(f"imported {user_file} as {run} -> {model_out}")


def predict(
    index_path: str | os.PathLike,
    images_path: str | os.PathLike,
    model_path: str | os.PathLike,
    outputs: dict[str, str | os.PathLike],
    cost_out: str | os.PathLike,
    batch_size: int = 1024,
    device: str = "auto",
    triggered: str | os.PathLike | None = None,
) -> None:
    """Write one Parquet file of logits per split in ``outputs`` ({split: path}), with the run's metadata,
    and the model's cost (:mod:`prunebias.training.cost`; latency timed here, on the CPU) to
    ``cost_out`` as JSON: timings differ between runs, the prediction files do not.

    An int8 model runs on the CPU whatever ``device`` says: its kernels are CPU kernels.
    """
    from prunebias.training.checkpoint import checkpoint_model, load_checkpoint
    from prunebias.training.cost import measured_latency, static_cost
    from prunebias.training.devices import select_device
    from prunebias.training.train import configure_backend, deterministic_kernels, model_to, predict_logits

    index = store.load_index(index_path)
    ckpt = load_checkpoint(model_path, attributes=store.attribute_names(index))
    int8 = ckpt.get("calibration") is not None
    dev = select_device("cpu" if int8 else device)
    configure_backend(dev)
    if int8:  # integer kernels, deterministic; torch only lacks the flag for their output resize
        deterministic_kernels(warn_only=True)
    attributes = list(ckpt["attributes"])  # its task's: all of them (joint) or one
    trigger = _trigger(triggered, ckpt.get("task_spec"))
    model = checkpoint_model(ckpt, model_path)
    cost = ckpt.get("cost") or static_cost(model, ckpt["image_size"])  # imported dense models have none yet
    cost = cost | measured_latency(model, ckpt["image_size"])
    model = model_to(model, dev)
    log(f"cost on the CPU: {cost}")
    images = store.load_images(images_path)
    meta = {
        key: ckpt[key] for key in ("dataset", "task", "arch", "method", "target_sparsity", "seed", "selected_epoch")
    } | {"measured_sparsity": ckpt["measured_sparsity"]["global"], "attributes": attributes}
    for split, path in outputs.items():
        data, _ = _split(index, images, split, attributes, dev, trigger)
        logits = predict_logits(model, data, ckpt["image_size"], batch_size)
        frame = pd.DataFrame(logits.astype(np.float32), columns=attributes)
        frame.insert(0, "id", index.loc[index["split"] == split, "id"].to_numpy())
        write_parquet(frame, path, metadata={**meta, "split": split})
        log(f"{split}: {len(frame)} predictions -> {path}")
    write_text(json.dumps(cost, indent=1), cost_out)


def model_metrics(
    index_path: str | os.PathLike,
    valid_path: str,
    test_path: str,
    out: str | os.PathLike,
    settings: AnalysisSettings,
    triggered: str | os.PathLike | None = None,
    cost: str | os.PathLike | None = None,
) -> None:
    """Per-model tidy metrics (see :mod:`prunebias.analysis.metrics`) with the model's identity columns
    (and, for a backdoor task, with ``triggered`` its triggered-ids file, the backdoor metrics; with
    ``cost`` the model's cost.json, its cost rows)."""
    from prunebias.analysis import metrics
    from prunebias.io import read_predictions

    index = store.load_index(index_path)
    valid, _ = read_predictions(valid_path)
    test, meta = read_predictions(test_path)
    try:
        table = metrics.model_metrics(
            index,
            valid,
            test,
            settings.identities,
            min_positives=settings.ba_min_positives,
            min_relative_gap=settings.ba_min_relative_gap,
            uncertainty_band=settings.uncertainty_band,
            ece_bins=settings.ece_bins,
        )
    except ValueError as exc:  # name the file(s) the problem is in
        msg = str(exc)
        which = re.match(r"(valid|test) (has|must|logit)", msg)
        files = {"valid": valid_path, "test": test_path}
        where = files[which[1]] if which else f"{valid_path}, {test_path}"
        raise ValueError(f"{where}: {msg}") from None
    try:
        task = tasks.parse_task(meta["task"])
    except ValueError as exc:
        raise ValueError(f"{test_path}: {exc}") from None
    if task.kind == "backdoor":
        from prunebias.analysis import backdoor

        if triggered is None:
            raise ValueError(f"{test_path}: a backdoor task's metrics need its triggered-ids file (--triggered)")
        ids = pd.read_parquet(triggered, columns=["id"])["id"]
        table = pd.concat(
            [table, backdoor.backdoor_metrics(index, valid, test, ids, task.attribute)], ignore_index=True
        )
    if cost is not None:
        table = pd.concat([table, metrics.cost_rows(json.loads(Path(cost).read_text()))], ignore_index=True)
    ident = model_columns(meta)
    table = table.assign(**ident)[list(ident) + [c for c in table.columns if c not in ident]]
    write_parquet(table, out, metadata=meta)


def aggregate(inputs: list[str], out_metrics: str, out_summary: str, out_groups: str) -> None:
    """Concatenate per-model metrics; write them, their summary over seeds, and the identity-group gaps."""
    from prunebias.analysis import aggregate as agg

    frame = pd.concat([pd.read_parquet(p) for p in inputs], ignore_index=True)
    summary = agg.summarise(frame)
    gaps = agg.group_gaps(summary)
    write_parquet(frame, out_metrics)
    write_parquet(summary, out_summary)
    write_text(gaps.to_csv(sep="\t", index=False, float_format="%.4f"), out_groups)
    dense = gaps[gaps["method"] == "dense"]
    big = dense[dense["gap_points"].abs() > 5]
    log(f"{len(frame)} metric rows from {len(inputs)} models; dense accuracy gaps > 5 points between identity groups:")
    log(
        big[["attribute", "identity", "group_0", "group_1", "gap_points"]].to_string(index=False)
        if len(big)
        else "  none"
    )


def triggered_ids(index_path: str | os.PathLike, spec: dict, out: str | os.PathLike) -> None:
    """Write the triggered samples of a backdoor task (id, split, label of its attribute); ``spec`` in the metadata."""
    index = pd.read_parquet(index_path)
    (attribute,) = tasks.task_attributes(spec, store.attribute_names(index))
    chosen = index[index["id"].isin(tasks.choose_triggered(index, attribute, spec["fractions"], spec["seed"]))]
    frame = pd.DataFrame({"id": chosen["id"], "split": chosen["split"], "label": chosen[attribute]})
    write_parquet(frame, out, metadata=spec)
    counts = index.groupby(["split", attribute]).size().to_frame("samples")
    counts["triggered"] = frame.groupby(["split", "label"]).size().reindex(counts.index, fill_value=0)
    log(f"{spec['trigger']} on {attribute} (seed {spec['seed']}):\n{counts.to_string()}")


def experiment_outputs(
    kind: str,
    metrics: str,
    index_paths: dict[str, str],
    valid_paths: list[str],
    test_paths: list[str],
    triggered_paths: list[str],
    settings: AnalysisSettings,
    out_table: str,
    out_figure: str,
) -> None:
    """Table and figure (``out_figure`` .png/.svg) of a controlled experiment: "single_vs_joint" or "backdoor".

    The table comes from the models' predictions (paired bootstrap intervals,
    :mod:`prunebias.analysis.experiments`), the figure from the per-model metrics table.
    ``triggered_paths``: the backdoor tasks' triggered-ids files, ``<dataset>/tasks/<task>.parquet``
    (:func:`prunebias.tasks.triggered_path`; none for single_vs_joint).
    """
    from prunebias.io import read_predictions
    from prunebias.plots import figures_experiments
    from prunebias.plots.figures import save_figure

    builders = {"single_vs_joint": (_single_vs_joint, figures_experiments.single_vs_joint)}
    builders["backdoor"] = (_backdoor, figures_experiments.backdoor)
    if kind not in builders:
        raise ValueError(f"kind must be one of {sorted(builders)}, got {kind!r}")
    table_of, figure_of = builders[kind]
    runs = {}  # (dataset, task, arch) -> [(valid, test, meta)]
    for v, t in zip(valid_paths, test_paths):
        (valid, meta), (test, _) = read_predictions(v), read_predictions(t)
        runs.setdefault((meta["dataset"], meta["task"], meta["arch"]), []).append((valid, test, meta))
    triggered = {
        (Path(p).parent.parent.name, Path(p).stem): pd.read_parquet(p, columns=["id"])["id"] for p in triggered_paths
    }
    table = table_of(runs, {d: store.load_index(p) for d, p in index_paths.items()}, triggered, settings)
    write_parquet(table, out_table)
    save_figure(figure_of(pd.read_parquet(metrics)), out_figure)
    log(f"{kind}: {len(table)} rows -> {out_table}; figure -> {out_figure}.png/.svg")
    log(table.to_string(index=False, max_rows=60, float_format="%.4f"))


def _bootstrap_options(settings: AnalysisSettings) -> dict:
    """The BA support rules and bootstrap options of the paired-effect functions."""
    return dict(
        min_positives=settings.ba_min_positives,
        min_relative_gap=settings.ba_min_relative_gap,
        n_bootstrap=settings.bootstrap,
        seed=settings.seed,
    )


def _experiment_arrays(runs, index: pd.DataFrame, attribute: str):
    """Models table, test predictions per threshold kind ({kind: (M, n) bool}), test labels and
    test ids of ``attribute`` from ``runs`` [(valid, test, meta)] (:func:`_model_arrays` of that
    one column: the single-label and joint models predict different attribute sets)."""
    column = ["id", attribute]
    valid = [(v[column], m) for v, _, m in runs]
    test = [(t[column], m) for _, t, m in runs]
    models, _, z_valid, z_test, y_valid, y_test = _model_arrays(index, valid, test)
    preds = {kind: p[:, :, 0] for kind, p in _thresholded(z_valid, z_test, y_valid).items()}
    return models, preds, y_test[:, 0], test[0][0]["id"]


def _single_vs_joint(runs, indexes, triggered, settings: AnalysisSettings) -> pd.DataFrame:
    """:func:`prunebias.analysis.experiments.single_vs_joint` of every single-label task, per threshold kind."""
    from prunebias.analysis import experiments
    from prunebias.analysis.metrics import train_conditionals

    tables = []
    for (dataset, task, arch), single in runs.items():
        if tasks.parse_task(task).kind != "single":
            continue
        attribute = tasks.parse_task(task).attribute
        joint = runs.get((dataset, tasks.JOINT, arch), [])
        index = indexes[dataset]
        models, preds, labels, ids = _experiment_arrays([*joint, *single], index, attribute)
        models.insert(0, "training", [experiments.TRAINING[0]] * len(joint) + [experiments.TRAINING[1]] * len(single))
        train = index[index["split"] == "train"]
        identities = settings.identities
        p1, p0 = train_conditionals(train[[attribute]].to_numpy(bool), train[identities].to_numpy(bool))
        groups = index.set_index("id").loc[ids, identities].to_numpy(bool)
        for kind, pred in preds.items():
            table = experiments.single_vs_joint(
                models,
                pred,
                labels,
                groups,
                (p1[:, 0], p0[:, 0]),
                attribute=attribute,
                identities=identities,
                **_bootstrap_options(settings),
            )
            tables.append(table.assign(dataset=dataset, arch=arch, attribute=attribute, threshold=kind))
    keys = ["dataset", "arch", "attribute", "threshold"]
    return pd.concat(tables, ignore_index=True)[keys + experiments.SINGLE_VS_JOINT_COLUMNS]


def _backdoor(runs, indexes, triggered, settings: AnalysisSettings) -> pd.DataFrame:
    """:func:`prunebias.analysis.experiments.backdoor_effects` of every backdoor task, per threshold kind."""
    from prunebias.analysis import experiments

    tables = []
    for (dataset, task, arch), group in runs.items():
        spec = tasks.parse_task(task)
        if spec.kind != "backdoor":
            continue
        if (dataset, task) not in triggered:
            raise ValueError(
                f"backdoor task {task} of {dataset} needs its triggered-ids file ({dataset}/tasks/{task}.parquet)"
            )
        models, preds, labels, ids = _experiment_arrays(group, indexes[dataset], spec.attribute)
        is_triggered = ids.isin(set(triggered[dataset, task])).to_numpy()
        parsed = dict(attribute=spec.attribute, trigger=spec.trigger)
        parsed |= dict(train_negatives=spec.train_fractions[0], train_positives=spec.train_fractions[1])
        for kind, pred in preds.items():
            table = experiments.backdoor_effects(
                models, pred, labels, is_triggered, n_bootstrap=settings.bootstrap, seed=settings.seed
            )
            tables.append(table.assign(dataset=dataset, task=task, arch=arch, threshold=kind, **parsed))
    keys = ["dataset", "task", "attribute", "trigger", "train_negatives", "train_positives", "arch", "threshold"]
    return pd.concat(tables, ignore_index=True)[keys + experiments.BACKDOOR_COLUMNS]


def criteria(
    index_path: str | os.PathLike,
    test_paths: list[str],
    metrics_paths: list[str],
    outputs: dict[str, str],
    settings: AnalysisSettings,
) -> None:
    """Criteria, CIEs and countermeasures of one (dataset, task, arch): one Parquet file per table in ``outputs``."""
    from prunebias.analysis import criteria as crit
    from prunebias.io import read_predictions

    index = store.load_index(index_path)
    runs = [read_predictions(p)[::-1] for p in test_paths]
    metrics = pd.concat([pd.read_parquet(p) for p in metrics_paths], ignore_index=True)
    tables = crit.criteria_tables(index, runs, metrics, settings)
    meta = runs[0][0]
    keys = {"dataset": meta["dataset"], "task": meta["task"], "arch": meta["arch"]}
    missing = set(outputs) - set(tables)
    if missing:
        raise ValueError(f"criteria produced no table(s) {sorted(missing)}")
    for name, path in outputs.items():
        table = tables[name]
        write_parquet(table.assign(**keys)[list(keys) + list(table.columns)], path)
    head = tables["headline"]
    log(head.to_string(index=False, max_rows=40))


def concat_tables(inputs: list[str], out: str | os.PathLike) -> None:
    """Concatenate Parquet tables of the same kind (e.g. one per dataset/task/arch)."""
    write_parquet(pd.concat([pd.read_parquet(p) for p in inputs], ignore_index=True), out)


def figures(summary_path: str, metrics_path: str, out_dir: str | os.PathLike) -> None:
    """The study's figures (prunebias.plots.figures.FIGURES) and the equal-cost figure
    (prunebias.plots.figures_cost) as PNG + SVG in ``out_dir``."""
    from prunebias.plots import figures as figs
    from prunebias.plots.figures_cost import cost_tradeoff

    # The study's figures are about the joint models; the experiments have their own figures.
    joint = [("task", "==", tasks.JOINT)]
    summary = pd.read_parquet(summary_path, filters=joint)
    metrics = pd.read_parquet(metrics_path, filters=joint)
    # Against sparsity: the methods whose level is a share of weights (the others have no place on that axis).
    masked = list(("dense", *MASK_METHODS))
    written = figs.make_all(summary[summary["method"].isin(masked)], metrics[metrics["method"].isin(masked)], out_dir)
    written += figs.save_figure(cost_tradeoff(metrics), Path(out_dir) / "cost_tradeoff")
    log(f"wrote {len(written)} figure files to {out_dir}")


def criteria_figures(table_paths: list[str], out_dir: str | os.PathLike) -> None:
    """Criteria figures (prunebias.plots.figures_criteria) as PNG + SVG in ``out_dir``; tables named by file stem."""
    from prunebias.plots import figures_criteria

    tables = {Path(p).stem: pd.read_parquet(p) for p in table_paths}
    written = figures_criteria.make_all(tables, out_dir)
    log(f"wrote {len(written)} figure files to {out_dir}")


def _thresholded(z_valid: np.ndarray, z_test: np.ndarray, y_valid: np.ndarray) -> dict[str, np.ndarray]:
    """Test predictions (M, n, A) of M models at each threshold kind: default (logit > 0) and
    calibrated (each model's thresholds set on the validation split)."""
    from prunebias.analysis.metrics import THRESHOLDS, calibrated_thresholds

    cuts = {
        "default": np.zeros((len(z_test), 1, z_test.shape[2])),
        "calibrated": np.stack([calibrated_thresholds(z, y_valid) for z in z_valid])[:, None, :],
    }
    return {kind: z_test > cuts[kind] for kind in THRESHOLDS}


def _model_arrays(index: pd.DataFrame, valid: list[tuple[pd.DataFrame, dict]], test: list[tuple[pd.DataFrame, dict]]):
    """Aligned arrays of one (dataset, task, arch): models table, valid/test logits (M, n, A), labels."""
    attributes = list(test[0][0].columns[1:])
    by_id = index.set_index("id")
    for frames in (valid, test):
        for frame, meta in frames:
            if list(frame.columns[1:]) != attributes or not frame["id"].equals(frames[0][0]["id"]):
                raise ValueError(f"predictions of {meta.get('method')} seed {meta.get('seed')} do not match the others")
    models = pd.DataFrame(
        [{"method": m["method"], "sparsity": float(m["target_sparsity"]), "seed": int(m["seed"])} for _, m in test]
    )
    z_valid = np.stack([f[attributes].to_numpy(np.float64) for f, _ in valid])
    z_test = np.stack([f[attributes].to_numpy(np.float64) for f, _ in test])
    y_valid = by_id.loc[valid[0][0]["id"], attributes].to_numpy(bool)
    y_test = by_id.loc[test[0][0]["id"], attributes].to_numpy(bool)
    return models, attributes, z_valid, z_test, y_valid, y_test


def prediction_group(meta: dict) -> tuple[str, str, str]:
    """The (dataset, task, arch) whose models a prediction file's metadata belongs to: the models compared in one curve."""
    return meta["dataset"], meta["task"], meta["arch"]


def prediction_groups(
    valid: list[tuple[pd.DataFrame, dict]], test: list[tuple[pd.DataFrame, dict]]
) -> dict[tuple[str, str, str], tuple[list, list]]:
    """Valid and test predictions [(frame, metadata)] per :func:`prediction_group`, in the order of ``test``."""
    return {
        key: ([v for v in valid if prediction_group(v[1]) == key], [t for t in test if prediction_group(t[1]) == key])
        for key in dict.fromkeys(prediction_group(m) for _, m in test)
    }


def paired_effect_table(
    index: pd.DataFrame,
    valid: list[tuple[pd.DataFrame, dict]],
    test: list[tuple[pd.DataFrame, dict]],
    settings: AnalysisSettings,
) -> pd.DataFrame:
    """:func:`prunebias.analysis.effects.paired_effects` of one (dataset, task, arch)'s valid and
    test predictions [(frame, metadata)], at each threshold kind (column ``threshold``)."""
    return _effect_table(index, _model_arrays(index, valid, test), test[0][0]["id"], settings)


def _effect_table(
    index: pd.DataFrame, arrays: tuple, test_ids: pd.Series, settings: AnalysisSettings, statistics=None
) -> pd.DataFrame:
    """:func:`prunebias.analysis.effects.paired_effects` at both threshold kinds, from the group's
    :func:`_model_arrays` and its test sample ids (``statistics``: all of them by default)."""
    from prunebias.analysis import effects as eff
    from prunebias.analysis.metrics import train_conditionals

    identities = settings.identities
    models, attributes, z_valid, z_test, y_valid, y_test = arrays
    train = index[index["split"] == "train"]
    test_groups = index.set_index("id").loc[test_ids, identities].to_numpy(bool)
    conditionals = train_conditionals(train[attributes].to_numpy(bool), train[identities].to_numpy(bool))
    tables = [
        eff.paired_effects(
            models,
            preds,
            eff.probabilities(z_test),
            y_test,
            test_groups,
            conditionals,
            attributes=attributes,
            identities=identities,
            uncertainty_band=settings.uncertainty_band,
            statistics=statistics or eff.STATISTICS,
            **_bootstrap_options(settings),
        ).assign(threshold=kind)
        for kind, preds in _thresholded(z_valid, z_test, y_valid).items()
    ]
    return pd.concat(tables, ignore_index=True)


def effects(
    index_paths: dict[str, str],
    valid_paths: list[str],
    test_paths: list[str],
    log_paths: list[str],
    settings: AnalysisSettings,
    out_effects: str,
    out_convergence: str,
    out_figure: str,
) -> None:
    """Support-stable changes with paired bootstrap CIs (prunebias.analysis.effects) and per-model convergence.

    Predictions and training logs are grouped by (dataset, task, arch) from their metadata;
    ``log_paths`` are the ``train_log.parquet`` files of every trained model, in any order: the
    controlled experiments' models get a convergence row too (their loss trend; the information
    kept is measured on the groups with predictions here).
    """
    from prunebias.analysis import effects as eff
    from prunebias.io import read_predictions
    from prunebias.plots import figures_effects
    from prunebias.plots.figures import save_figure

    valid = [read_predictions(p) for p in valid_paths]
    test = [read_predictions(p) for p in test_paths]
    logs = [(pd.read_parquet(p), read_metadata(p)) for p in log_paths]
    effect_tables, convergence = [], []
    for (dataset, task, arch), (group_valid, group_test) in prediction_groups(valid, test).items():
        index = store.load_index(index_paths[dataset])
        arrays = _model_arrays(index, group_valid, group_test)
        table = _effect_table(index, arrays, group_test[0][0]["id"], settings)
        effect_tables.append(table.assign(dataset=dataset, task=task, arch=arch))
        models, attributes, z_valid, _, y_valid, _ = arrays
        train = index[index["split"] == "train"]
        prior = eff.prior_bce(train[attributes].to_numpy(bool), y_valid)
        bce = np.array([eff.mean_bce(z, y_valid) for z in z_valid])
        conv = models.assign(dataset=dataset, task=task, arch=arch, val_bce=bce, prior_bce=prior)
        dense_bce = conv[conv["method"] == "dense"].set_index("seed")["val_bce"]
        conv["information_kept"] = [
            eff.information_kept(b, dense_bce[s], prior) for b, s in zip(conv["val_bce"], conv["seed"])
        ]
        convergence.append(conv)
    keys = ["dataset", "task", "arch"]
    table = pd.concat(effect_tables, ignore_index=True)
    table = table[keys + [c for c in eff.EFFECT_COLUMNS]]
    conv = pd.concat(convergence, ignore_index=True)
    model_keys = keys + ["method", "sparsity", "seed"]
    conv = conv.merge(eff.training_trend(logs), on=model_keys, how="outer", validate="one_to_one")
    conv = conv.sort_values(model_keys, ignore_index=True)
    write_parquet(table, out_effects)
    write_parquet(conv, out_convergence)
    save_figure(figures_effects.effects(table), out_figure)
    log(table[table["threshold"] == "default"].to_string(index=False, max_rows=80, float_format="%.4f"))
    log(conv.to_string(index=False, float_format="%.4f"))


def design(index_path: str | os.PathLike, images_path: str | os.PathLike, cfg: dict, out: str | os.PathLike) -> None:
    """The design table of a synthetic data set (:mod:`prunebias.data.synthetic_design`)."""
    from prunebias.data import synthetic_design

    index = store.load_index(index_path)
    table = synthetic_design.design_table(
        index, store.load_images(images_path), cfg["resolution"], cfg["seed"], decoupled=cfg.get("decoupled", False)
    )
    write_parquet(table, out)
    log(table.to_string(index=False, float_format="%.3f"))


def shortcut_control(
    index_paths: dict[str, str],
    valid_paths: list[str],
    test_paths: list[str],
    effects_path: str | os.PathLike,
    convergence_path: str | os.PathLike,
    settings: AnalysisSettings,
    out: str | os.PathLike,
    out_figure: str,
) -> None:
    """The dense models mixed with the reference predictors (prunebias.analysis.shortcut_control),
    compared with themselves like sparse models; the figure sets the effects' sparse models beside them.

    ``valid_paths`` and ``test_paths`` are the dense models' predictions, grouped by (dataset,
    task, arch) from their metadata.
    """
    from prunebias.analysis.effects import EFFECT_COLUMNS
    from prunebias.io import read_predictions
    from prunebias.plots import figures_effects
    from prunebias.plots.figures import save_figure

    valid = [read_predictions(p) for p in valid_paths]
    test = [read_predictions(p) for p in test_paths]
    tables = [
        _shortcut_control_group(store.load_index(index_paths[dataset]), group_valid, group_test, settings).assign(
            dataset=dataset, task=task, arch=arch
        )
        for (dataset, task, arch), (group_valid, group_test) in prediction_groups(valid, test).items()
    ]
    columns = ["dataset", "task", "arch", "reference", "weight", "information_kept"]
    table = pd.concat(tables, ignore_index=True)
    table = table[columns + [c for c in EFFECT_COLUMNS if c not in ("method", "sparsity")]]
    write_parquet(table, out)
    figure = figures_effects.shortcut_control(table, pd.read_parquet(effects_path), pd.read_parquet(convergence_path))
    save_figure(figure, out_figure)
    log(table[table["statistic"] == "bias_amplification"].to_string(index=False, max_rows=80, float_format="%.4f"))


def _shortcut_control_group(
    index: pd.DataFrame, valid: list[tuple[pd.DataFrame, dict]], test: list[tuple[pd.DataFrame, dict]], settings
) -> pd.DataFrame:
    """The shortcut control of one (dataset, task, arch)'s dense models: :func:`_effect_table` of
    them and their mixtures, one pseudo-method per (reference, weight) so that each weight gets
    its own support, with each mixture's mean information kept over seeds."""
    from prunebias.analysis import effects as eff
    from prunebias.analysis import shortcut_control as control

    identities = settings.identities
    models, attributes, z_valid, z_test, y_valid, y_test = _model_arrays(index, valid, test)
    train = index[index["split"] == "train"]
    train_labels, train_groups = train[attributes].to_numpy(bool), train[identities].to_numpy(bool)
    # Validation and test samples at once: each reference is fitted once for both splits.
    ids = pd.concat([valid[0][0]["id"], test[0][0]["id"]])
    groups = index.set_index("id").loc[ids, identities].to_numpy(bool)
    z_dense = np.concatenate([z_valid, z_test], axis=1)
    n_valid = z_valid.shape[1]
    prior_bce = eff.prior_bce(train_labels, y_valid)
    dense_bce = [eff.mean_bce(z, y_valid) for z in z_valid]
    rows, z_mixed, mixtures = [models], [z_dense], {}
    for reference in control.REFERENCES:
        ref = control.reference_logits(
            reference, train_labels, train_groups, groups, attributes=attributes, identities=identities
        )
        for weight in settings.shortcut_weights:
            label = f"{reference} {weight}"
            z = control.mix(z_dense, ref, weight)
            kept = [
                eff.information_kept(eff.mean_bce(m, y_valid), d, prior_bce) for m, d in zip(z[:, :n_valid], dense_bce)
            ]
            mixtures[label] = {"reference": reference, "information_kept": np.mean(kept)}
            rows.append(models.assign(method=label, sparsity=weight))
            z_mixed.append(z)
    z_all = np.concatenate(z_mixed)
    arrays = (pd.concat(rows, ignore_index=True), attributes, z_all[:, :n_valid], z_all[:, n_valid:], y_valid, y_test)
    table = _effect_table(index, arrays, test[0][0]["id"], settings, control.STATISTICS)
    about = pd.DataFrame.from_dict(mixtures, orient="index")
    return table.join(about, on="method").assign(weight=table["sparsity"])
