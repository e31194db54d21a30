"""File I/O at the edges: atomic writes, Parquet with run metadata, checkpoints.

Every artifact is written to a temporary name in the destination directory and renamed
into place, so a job killed at any moment leaves either no output or a complete one.
Torch files are read by :func:`load_torch` only, which never runs code from the file.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
import pickle
import pickletools
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

METADATA_KEY = b"prunebias"
_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` if the block succeeds.

    On any exception the temporary file is removed and ``path`` is left untouched. A
    temporary file that a killed writer of ``path`` left behind (``.<name>.*.tmp``) is
    removed first, so kills cannot pile up stale copies (one writer per path: Snakemake's
    lock and one job per output guarantee it).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{path.name}."
    for stale in path.parent.glob(f"{glob.escape(prefix)}*.tmp"):
        if "." not in stale.name[len(prefix) : -len(".tmp")]:  # not the temp file of "<name>.<more>"
            stale.unlink(missing_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=prefix, suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        # mkstemp makes the file private (0600); give it the permissions of a normal new file.
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    finally:
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


def read_metadata(path: str | os.PathLike) -> dict:
    """Return the prunebias key-value metadata of a Parquet file ({} if it has none)."""
    meta = pq.read_schema(path).metadata or {}
    return json.loads(meta[METADATA_KEY]) if METADATA_KEY in meta else {}


def read_predictions(path: str | os.PathLike) -> tuple[pd.DataFrame, dict]:
    """Read a predictions file: (DataFrame of id + one float32 logit column per attribute, run metadata)."""
    return pd.read_parquet(path), read_metadata(path)


def write_json(obj: Any, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def write_text(text: str, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


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
