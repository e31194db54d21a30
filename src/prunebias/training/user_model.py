"""A user's own trained dense model as a prunebias dense checkpoint, for the post-training methods.

The post-training pruning methods (``gmp_pt``, ``oneshot``, ...) start from the dense
checkpoint of their seed; :func:`import_dense` writes that checkpoint from a model the user
trained elsewhere, in exactly the form :func:`prunebias.jobs.train` gives a dense model, so
pruning and prediction read it unchanged.

Accepted files. A user's file is data, never code, so nothing in it is unpickled except
tensors and plain data:

- a ``torch.save`` file (any suffix but ``.safetensors``), read with ``weights_only=True``
  (:func:`prunebias.io.load_torch`), holding a state dict, or a dict that holds one under
  ``"state_dict"`` or ``"model"`` (what common training scripts save, a prunebias
  checkpoint included);
- a ``.safetensors`` file (tensors only, by design).

Keys prefixed ``module.`` (``nn.DataParallel``, ``DistributedDataParallel``) or ``_orig_mod.``
(``torch.compile``) are stripped. A pickled model object (``torch.save(model)``) is
refused: loading it would run code; save ``model.state_dict()`` instead. A TorchScript
archive (``torch.jit.save``) or a ``torch.export`` archive (``torch.export.save``) is read with
PyTorch's own loader for it (``torch.jit.load``, ``torch.export.load``: a compiled program and
its tensors, no Python objects), and only its weights are kept: they go into the named
architecture, whose modules the pruning masks act on; the program itself is not used.

The weights must fit the prunebias architecture (:func:`prunebias.training.models.build_model`)
exactly: ``resnet18``/``resnet50`` are torchvision's, with a 3x3 stride-1 stem and no max-pool
below 96 px; every architecture's final layer is ``fc``.

Output mapping. The model's outputs are named in the order the model emits them
(``outputs``); the checkpoint's output ``i`` is the data set's attribute ``i``, so the rows
of ``fc.weight`` and ``fc.bias`` are reordered, and outputs the data set lacks are dropped.
For example, a model trained with ``outputs = ["Smiling", "Age", "Blond_Hair"]`` on a data
set whose attributes are ``["Blond_Hair", "Smiling"]`` keeps rows 2 and 0 of ``fc``, in that
order; ``Age`` is dropped. An attribute the model does not predict is an error.
"""

from __future__ import annotations

import os
import zipfile
from collections import Counter
from pathlib import Path

import torch

from prunebias import tasks
from prunebias.io import RefusedFileError, file_digest, load_torch, save_torch
from prunebias.training.checkpoint import CHECKPOINT_FORMAT
from prunebias.training.models import SMALL_INPUT, build_model
from prunebias.training.pruning import measured_sparsity

#: The final linear layer of every architecture (:data:`prunebias.training.models.ARCHITECTURES`).
HEAD = "fc"
#: Wrapper prefixes stripped from the keys: DataParallel / DistributedDataParallel, torch.compile.
WRAPPER_PREFIXES = ("module.", "_orig_mod.")
#: The keys under which training scripts commonly nest the state dict, in the order looked up.
NESTED_KEYS = ("state_dict", "model")
#: The run identity every checkpoint carries (what ``jobs.train`` and ``jobs.predict`` read).
RUN_KEYS = ("dataset", "task", "arch", "method", "target_sparsity", "seed")
#: How many keys an error message names per kind of mismatch.
SHOWN_KEYS = 5
_SAVE_WEIGHTS = "save the weights only: torch.save(model.state_dict(), path)"


class UserModelError(ValueError):
    """The user's model file cannot be used; the message names the file and the key/shape and says how to fix it."""


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The state dict in the user's model file (on the CPU), wrapper prefixes stripped.

    Raises :class:`UserModelError` if the file is missing, unreadable, refused (it holds
    objects other than tensors and plain data), or holds no state dict.
    """
    path = Path(path)
    if not path.is_file():
        raise UserModelError(f"{path}: model file not found; check the path of the dense model file")
    raw = _read_safetensors(path) if path.suffix == ".safetensors" else _read_torch(path)
    return _strip_wrappers(_find_state_dict(raw, path), path)


def _read_safetensors(path: Path) -> dict:
    from safetensors.torch import load_file

    try:
        return load_file(path, device="cpu")
    except Exception as exc:  # any decoding failure: say which file, not where the reader failed
        raise UserModelError(f"{path}: not a readable safetensors file ({exc})") from None


def _read_torch(path: Path):
    try:
        return load_torch(path, "cpu")
    except RefusedFileError:
        raise UserModelError(
            f"{path}: refused: it holds Python objects other than tensors and plain data (a pickled model or "
            "custom class, say), and unpickling them could run code, so it is read with "
            f"torch.load(weights_only=True) only; {_SAVE_WEIGHTS}"
        ) from None
    except Exception as exc:  # truncated, not a torch file, a compiled archive, ...
        kind = _compiled_kind(path)
        if kind is None:
            raise UserModelError(f"{path}: not a readable torch file ({exc}); {_SAVE_WEIGHTS}") from None
        return _read_compiled(path, kind)


def _compiled_kind(path: Path) -> str | None:
    """ "TorchScript" (``code/``, ``constants.pkl``) or "torch.export" (``models/``, ``archive_format``) for
    such a zip archive, else None."""
    try:
        with zipfile.ZipFile(path) as archive:
            # Entries are "<archive name>/<entry>"; only the entry's first component tells the kind.
            entries = {name.split("/")[1] for name in archive.namelist() if name.count("/") >= 1}
    except zipfile.BadZipFile:  # not a zip at all, or a damaged one: not an archive we can name
        return None
    if entries & {"code", "constants.pkl"}:
        return "TorchScript"
    return "torch.export" if entries & {"models", "archive_format"} else None


def _read_compiled(path: Path, kind: str) -> dict[str, torch.Tensor]:
    """The weights (parameters and buffers, by module path) of a TorchScript or torch.export archive."""
    try:
        if kind == "TorchScript":
            state = torch.jit.load(path, map_location="cpu").state_dict()
        else:
            state = torch.export.load(path).state_dict
    except Exception as exc:  # a damaged or foreign archive: say which file, not where the loader failed
        raise UserModelError(f"{path}: unreadable {kind} archive ({exc}); {_SAVE_WEIGHTS}") from None
    return {key: value.detach().cpu() for key, value in state.items()}


def _find_state_dict(raw, path: Path) -> dict[str, torch.Tensor]:
    """The state dict itself, or the one nested under one of :data:`NESTED_KEYS`; every value a tensor."""
    if not isinstance(raw, dict):
        raise UserModelError(f"{path}: holds a {type(raw).__name__}, not a state dict; {_SAVE_WEIGHTS}")
    nested = next((raw[key] for key in NESTED_KEYS if isinstance(raw.get(key), dict)), None)
    state = raw if nested is None else nested
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise UserModelError(
                f"{path}: entry {key!r} is a {type(value).__name__}, not a tensor: expected a state dict, or a dict "
                f"holding one under {' or '.join(repr(k) for k in NESTED_KEYS)}; {_SAVE_WEIGHTS}"
            )
    if not state:
        raise UserModelError(f"{path}: the state dict is empty; {_SAVE_WEIGHTS}")
    return state


def _strip_wrappers(state: dict[str, torch.Tensor], path: Path) -> dict[str, torch.Tensor]:
    """``state`` with the leading :data:`WRAPPER_PREFIXES` of every key removed (nested wrappers too)."""
    stripped: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        name = key
        while name.startswith(WRAPPER_PREFIXES):
            name = name.split(".", 1)[1]
        if name in stripped:
            raise UserModelError(
                f"{path}: keys {key!r} and another one both name {name!r} once the wrapper prefix "
                "is stripped; save the state dict of one model"
            )
        stripped[name] = value
    return stripped


def map_outputs(
    state_dict: dict[str, torch.Tensor],
    head: str,
    outputs: list[str],
    attributes: list[str],
    *,
    path: str | os.PathLike,
) -> dict[str, torch.Tensor]:
    """A copy of ``state_dict`` whose ``head`` rows are reordered so that output ``i`` predicts ``attributes[i]``.

    ``outputs`` names the model's outputs in the order it emits them; those not in
    ``attributes`` are dropped. Raises :class:`UserModelError` (naming ``path``) for
    duplicate output names, an output count that differs from the head's rows, or an
    attribute among ``attributes`` that no output predicts.
    """
    duplicates = sorted(name for name, n in Counter(outputs).items() if n > 1)
    if duplicates:
        raise UserModelError(f"{path}: output names {duplicates} appear more than once in outputs; name each once")
    weight_key, bias_key = f"{head}.weight", f"{head}.bias"
    if weight_key not in state_dict:
        raise UserModelError(
            f"{path}: no {weight_key!r} (the final layer) in the state dict; keys start {list(state_dict)[:SHOWN_KEYS]}"
        )
    for key in (weight_key, bias_key):
        if key in state_dict and state_dict[key].shape[0] != len(outputs):
            raise UserModelError(
                f"{path}: {key!r} has {state_dict[key].shape[0]} rows (model outputs) but outputs names "
                f"{len(outputs)}; list one name per model output, in the model's order"
            )
    missing = [a for a in attributes if a not in set(outputs)]
    if missing:
        raise UserModelError(
            f"{path}: the model does not predict attribute(s) {missing} of the data set (its outputs: {outputs}); "
            "add their names to outputs or choose a data set or task without them"
        )
    rows = torch.tensor([outputs.index(a) for a in attributes])
    mapped = dict(state_dict)
    for key in (weight_key, bias_key):
        if key in mapped:
            mapped[key] = mapped[key].index_select(0, rows)
    return mapped


def dense_checkpoint(
    path: str | os.PathLike,
    *,
    arch: str,
    outputs: list[str],
    attributes: list[str],
    image_size: int,
    run: dict,
    task_spec: dict | None = None,
) -> dict:
    """The prunebias dense checkpoint of the user's model file ``path``, as :func:`prunebias.jobs.train` writes one.

    ``attributes`` are the data set's; the model must predict those its task selects
    (``task_spec``, :func:`prunebias.tasks.task_spec`: None for the joint task, all of
    them). ``outputs`` names the model's outputs in its order (see the module docstring).
    ``image_size`` is the model input's side, the crop size the post-training methods train
    at. ``run`` is the run identity (:data:`RUN_KEYS`) of the dense model it stands for.

    Nothing was trained here, so ``masks``, ``plan``, ``selected_epoch``, ``spec`` and
    ``parent`` are None; ``source`` and ``source_digest`` (SHA-256) name the user's file.
    Raises :class:`UserModelError` when the file does not fit, ValueError when ``run``
    contradicts ``arch`` or ``task_spec``.
    """
    _check_run(run, arch, task_spec)
    model_attributes = tasks.task_attributes(task_spec, attributes)
    state = map_outputs(read_state_dict(path), HEAD, list(outputs), model_attributes, path=path)
    model = build_model(arch, len(model_attributes), image_size)
    _load_exactly(model, state, path, arch, image_size)
    return {
        "format_version": CHECKPOINT_FORMAT,
        **run,
        "attributes": model_attributes,
        "task_spec": task_spec,
        "image_size": image_size,
        "state_dict": model.state_dict(),
        "masks": None,
        "measured_sparsity": measured_sparsity(model),
        "plan": None,
        "selected_epoch": None,
        "spec": None,
        "parent": None,
        "source": str(path),
        "source_digest": file_digest(path),
    }


def _check_run(run: dict, arch: str, task_spec: dict | None) -> None:
    """The run identity must be complete and agree with ``arch`` and ``task_spec`` (a caller's mistake, else)."""
    missing = [key for key in RUN_KEYS if key not in run]
    if missing:
        raise ValueError(f"run identity lacks keys {missing}; it needs {list(RUN_KEYS)}")
    if run["arch"] != arch:
        raise ValueError(f"run identity names arch {run['arch']!r}, the model is a {arch!r}")
    kind = tasks.parse_task(run["task"]).kind
    if (task_spec or {}).get("kind", tasks.JOINT) != kind:
        raise ValueError(f"task_spec {task_spec} is not that of task {run['task']!r}")


def _load_exactly(model: torch.nn.Module, state: dict[str, torch.Tensor], path, arch: str, image_size: int) -> None:
    """Load ``state`` into ``model`` with every key and shape matching; all mismatches as one UserModelError."""
    expected = model.state_dict()
    wrong_shape = [k for k in state if k in expected and state[k].shape != expected[k].shape]
    fitting = {k: v for k, v in state.items() if k not in wrong_shape}
    # strict=False, then the check below: load_state_dict would stop at the first shape
    # mismatch, and it fills what an old BatchNorm state lacks (num_batches_tracked) itself.
    result = model.load_state_dict(fitting, strict=False)
    missing = [k for k in result.missing_keys if k not in wrong_shape]
    problems = []
    if missing:
        problems.append(f"missing keys (a prunebias {arch} has them, the file does not): {_some(missing)}")
    if result.unexpected_keys:
        problems.append(f"unexpected keys (not in a prunebias {arch}): {_some(result.unexpected_keys)}")
    if wrong_shape:
        shapes = [f"{k} expected {tuple(expected[k].shape)}, found {tuple(state[k].shape)}" for k in wrong_shape]
        problems.append(f"wrong shapes: {_some(shapes)}{_stem_hint(wrong_shape, arch, image_size)}")
    if problems:
        raise UserModelError(
            f"{path}: the state dict does not fit prunebias {arch!r} at {image_size} px ("
            + "; ".join(problems)
            + "); check arch and image_size, or save the state dict of that architecture"
        )


def _some(items: list[str]) -> str:
    """The first :data:`SHOWN_KEYS` of ``items``, and how many more there are."""
    more = len(items) - SHOWN_KEYS
    return ", ".join(items[:SHOWN_KEYS]) + (f" (and {more} more)" if more > 0 else "")


def _stem_hint(wrong_shape: list[str], arch: str, image_size: int) -> str:
    """Why a ResNet's ``conv1`` may not fit: its stem depends on the input size."""
    if not arch.startswith("resnet") or "conv1.weight" not in wrong_shape:
        return ""
    stem = "3x3 stride-1" if image_size < SMALL_INPUT else "7x7 stride-2"
    return f" (at {image_size} px the ResNet stem is {stem}: 3x3 below {SMALL_INPUT} px, torchvision's 7x7 from it)"


def import_dense(path: str | os.PathLike, out: str | os.PathLike, **kwargs) -> None:
    """Write :func:`dense_checkpoint` of ``path`` (same keywords) to ``out`` atomically; nothing on error."""
    save_torch(dense_checkpoint(path, **kwargs), out)
