"""File I/O at the edges: atomic writes, Parquet with run metadata, checkpoints.

Every artifact is written to a temporary name in the destination directory and renamed
into place, so a job killed at any moment leaves either no output or a complete one.
Torch files are read by :func:`load_torch` only, which never runs code from the file.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import hashlib
import json
import os
import pickle
import pickletools
import secrets
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

METADATA_KEY = b"prunebias"


class DiskFullError(OSError):
    """A write ran out of disk space (or quota); the message names the file and the free space.

    An ``OSError`` with ``errno`` ENOSPC or EDQUOT, so code that handles those still does;
    ``str()`` is the message alone (no ``[Errno 28]`` prefix).
    """

    def __str__(self) -> str:
        return str(self.strerror)


_FULL_ERRNOS = {errno.ENOSPC: "no space left on device", errno.EDQUOT: "disk quota exceeded"}


def _mount_point(path: Path) -> Path:
    path = path.resolve()
    while not os.path.ismount(path) and path != path.parent:
        path = path.parent
    return path


def _free_bytes(directory: Path) -> tuple[int, int]:
    """(bytes available to unprivileged users, total bytes) of the file system holding ``directory``."""
    st = os.statvfs(directory)
    return st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize


def _disk_full_errno(exc: BaseException, directory: Path) -> int | None:
    """ENOSPC/EDQUOT if ``exc`` (or an exception it was raised from) means the disk is full, else None.

    Some writers lose the errno (NumPy's ``tofile`` raises ``OSError('N requested and M
    written')``): an errno-less ``OSError`` on a file system with (almost) nothing left
    counts as a full disk too. Called before the partial file is removed.
    """
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, OSError) and cause.errno in _FULL_ERRNOS:
            return cause.errno
        cause = cause.__cause__ or cause.__context__
    if isinstance(exc, OSError) and exc.errno is None:
        with contextlib.suppress(OSError):
            free, total = _free_bytes(directory)
            if free < min(2**20, total // 100):
                return errno.ENOSPC
    return None


def _disk_full_error(code: int, path: Path) -> DiskFullError:
    try:
        free, _ = _free_bytes(path.parent)
        room = f"only {free} bytes free on {_mount_point(path.parent)}"
    except OSError:
        room = "free space unknown"
    fix = "free space and rerun" if code == errno.ENOSPC else "free space (or raise the quota) and rerun"
    return DiskFullError(code, f"{path}: {_FULL_ERRNOS[code]} while writing ({room}); {fix}", str(path))


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` if the block succeeds.

    On any exception the temporary file is removed and ``path`` is left untouched. A
    temporary file that a killed writer of ``path`` left behind (``.<name>.*.tmp``) is
    removed first, so kills cannot pile up stale copies (one writer per path: Snakemake's
    lock and one job per output guarantee it). A full disk (or quota) raises one
    :class:`DiskFullError` naming ``path`` instead of whatever the writer raised.
    """
    path = Path(path)
    tmp: Path | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        prefix = f".{path.name}."
        for stale in path.parent.glob(f"{glob.escape(prefix)}*.tmp"):
            if "." not in stale.name[len(prefix) : -len(".tmp")]:  # not the temp file of "<name>.<more>"
                stale.unlink(missing_ok=True)
        name = path.parent / f"{prefix}{secrets.token_hex(6)}.tmp"
        # Mode 0666 less the umask, as for any new file (mkstemp would make it private).
        os.close(os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        tmp = name
        yield tmp
        os.replace(tmp, path)
    except Exception as exc:
        if isinstance(exc, DiskFullError):  # from a nested atomic_path: already names its file
            raise
        code = _disk_full_errno(exc, path.parent)
        if code is None:
            raise
        if tmp is not None:
            tmp.unlink(missing_ok=True)  # before measuring the free space
        raise _disk_full_error(code, path) from None
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)


def write_parquet(df: pd.DataFrame, path: str | os.PathLike, metadata: dict | None = None) -> None:
    """Write ``df`` (without its index) atomically; ``metadata`` goes into the file's key-value metadata as JSON."""
    table = pa.Table.from_pandas(df, preserve_index=False)
    if metadata is not None:
        schema_meta = dict(table.schema.metadata or {})
        schema_meta[METADATA_KEY] = json.dumps(metadata, sort_keys=True).encode()
        table = table.replace_schema_metadata(schema_meta)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def _reason(exc: BaseException) -> str:
    """A one-line, bounded description of why a file could not be read."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def read_metadata(path: str | os.PathLike) -> dict:
    """Return the prunebias key-value metadata of a Parquet file ({} if it has none).

    FileNotFoundError if ``path`` is missing; ValueError naming the file if it is not a
    readable Parquet file or its metadata is not a JSON object.
    """
    try:
        meta = pq.read_schema(path).metadata or {}
    except FileNotFoundError:
        raise
    except Exception as exc:  # any decoding failure of a damaged file
        raise ValueError(f"{path}: not a readable Parquet file ({_reason(exc)})") from None
    if METADATA_KEY not in meta:
        return {}
    try:
        value = json.loads(meta[METADATA_KEY])
    except ValueError as exc:  # also invalid UTF-8
        raise ValueError(f"{path}: its prunebias metadata is not valid JSON ({_reason(exc)})") from None
    if not isinstance(value, dict):
        raise ValueError(f"{path}: its prunebias metadata is a JSON {type(value).__name__}, not an object")
    return value


# Metadata every predictions file carries (written by ``prunebias predict``) that the
# analysis stages read, with the types they need.
PREDICTION_METADATA = {
    "dataset": str,
    "task": str,
    "arch": str,
    "method": str,
    "target_sparsity": (int, float),
    "seed": int,
}


def read_predictions(path: str | os.PathLike) -> tuple[pd.DataFrame, dict]:
    """Read a predictions file: (DataFrame of id + one float32 logit column per attribute, run metadata).

    The file is checked against that contract: FileNotFoundError if missing, else one
    ValueError naming the file (and the column or id) if it is not readable Parquet, lacks
    the ``id`` column or a logit column, has missing or duplicate ids, non-float or
    non-finite (NaN, inf) logits, or lacks run metadata.
    """
    fix = "delete it and rerun the predict job that writes it"
    if not os.path.isfile(path):
        if os.path.exists(path):
            raise ValueError(f"{path}: not a file; {fix}")
        raise FileNotFoundError(f"{path}: missing; rerun the predict job that writes it")
    try:
        frame = pd.read_parquet(path)
    except Exception as exc:  # any decoding failure of a damaged file
        raise ValueError(f"{path}: not a readable predictions file ({_reason(exc)}); {fix}") from None
    meta = read_metadata(path)
    problem = _predictions_problem(frame, meta)
    if problem:
        raise ValueError(f"{path}: {problem}; {fix}")
    return frame, meta


def _predictions_problem(frame: pd.DataFrame, meta: dict) -> str | None:
    columns = list(frame.columns)
    if len(set(columns)) != len(columns):
        return f"duplicate column names {sorted({c for c in columns if columns.count(c) > 1})}"
    if "id" not in columns:
        return f"no 'id' column (columns: {columns[:10]})"
    attributes = [c for c in columns if c != "id"]
    if not attributes:
        return "no logit columns besides 'id'"
    ids = frame["id"]
    if ids.isna().any():
        return f"missing id in row {int(np.flatnonzero(ids.isna().to_numpy())[0])}"
    if ids.duplicated().any():
        return f"duplicate id {ids[ids.duplicated()].iloc[0]!r}"
    not_float = [f"{c!r} ({frame[c].dtype})" for c in attributes if not pd.api.types.is_float_dtype(frame[c].dtype)]
    if not_float:
        return f"logit columns must be floats, not: {', '.join(not_float[:5])}"
    bad = ~np.isfinite(frame[attributes].to_numpy(dtype=np.float64))
    if bad.any():
        cols = [a for a, b in zip(attributes, bad.any(axis=0)) if b]
        row = int(np.flatnonzero(bad[:, attributes.index(cols[0])])[0])
        value = frame[cols[0]].iloc[row]
        return (
            f"non-finite logits (NaN or inf) in column(s) {cols[:5]}{' ...' if len(cols) > 5 else ''}, "
            f"e.g. {value} for id {ids.iloc[row]!r} in {cols[0]!r}"
        )
    missing = [k for k in PREDICTION_METADATA if k not in meta]
    if missing:
        return f"run metadata lacks keys {missing}"
    wrong = [
        f"{k}={meta[k]!r}"
        for k, t in PREDICTION_METADATA.items()
        if not isinstance(meta[k], t) or isinstance(meta[k], bool)
    ]
    if wrong:
        return f"run metadata has values of the wrong type: {', '.join(wrong)}"
    if "attributes" in meta and meta["attributes"] != attributes:
        return f"logit columns {attributes[:5]}... differ from the metadata's attributes {str(meta['attributes'])[:80]}"
    return None


def write_text(text: str, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def save_array(array: np.ndarray, path: str | os.PathLike) -> None:
    """Save a NumPy array as .npy atomically (memory-mappable with ``np.load(mmap_mode='r')``)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, array)


def file_digest(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes (hex)."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def save_torch(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` atomically; same object, same bytes (the archive is not named after the temporary file)."""
    import torch

    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            torch.save(obj, fh)


class RefusedFileError(ValueError):
    """A torch file that holds objects other than tensors and plain data, so it was not loaded."""


def load_torch(path: str | os.PathLike, map_location: Any = None) -> Any:
    """``torch.load`` that never runs code from the file (``weights_only=True``).

    Tensors and plain data load: dicts (also ``OrderedDict``), lists, tuples, numbers,
    strings, bools, None, torch dtypes and sizes, which is all that checkpoints and resume
    states hold. Unpickling anything else (a class, a function: what a crafted file uses to
    run code) is refused with :class:`RefusedFileError` naming the file. A damaged file
    raises what torch raises (``pickle.UnpicklingError`` with a short reason for a
    corrupt pickle).
    """
    import torch

    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:
        damage = _pickle_damage(path)
        if damage is not None:  # not well-formed pickle data: damaged, not refused
            raise pickle.UnpicklingError(f"damaged pickle data: {damage}") from None
        raise RefusedFileError(
            f"{path}: refused: it contains objects other than tensors and plain data (loading it could run code)"
        ) from None


def _pickle_damage(path: str | os.PathLike) -> str | None:
    """Why the pickle in torch file ``path`` is not well-formed, or None if it is.

    Only parses the opcodes (:func:`pickletools.genops`), so nothing in the file is run.
    """
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                names = [n for n in archive.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
                if not names:
                    return "no data.pkl in the archive"
                data = archive.read(names[0])
            for _ in pickletools.genops(data):
                pass
        else:  # the legacy format: consecutive pickles, the first one checked
            with open(path, "rb") as fh:
                for _ in pickletools.genops(fh):
                    pass
    except Exception as exc:
        return str(exc) or type(exc).__name__
    return None
