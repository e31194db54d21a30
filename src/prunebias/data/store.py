"""The prepared data set on disk: ``index.parquet`` + ``images.npy`` (uint8, N×H×W×3).

Both the synthetic generator and the CelebA reader produce this pair once, at prepare
time; training and prediction only ever read it (the array memory-mapped).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from prunebias.io import read_metadata, write_parquet
from prunebias.validation import require_columns
from prunebias.vocabulary import SPLITS

INDEX_COLUMNS = ("id", "split", "source")


def attribute_names(index: pd.DataFrame) -> list[str]:
    """The attribute columns of an index, in data-set order."""
    return [c for c in index.columns if c not in INDEX_COLUMNS]


def check_index(index: pd.DataFrame, n_images: int | None = None) -> None:
    """Raise ValueError unless ``index`` follows the contract (columns, splits, dtypes, unique ids)."""
    require_columns(index, INDEX_COLUMNS, "index")
    bad_split = set(index["split"]) - set(SPLITS)
    if bad_split:
        raise ValueError(f"index has unknown splits {sorted(bad_split)}; expected {SPLITS}")
    absent = [s for s in SPLITS if not (index["split"] == s).any()]
    if absent:
        raise ValueError(f"index has no samples in split(s) {absent}")
    not_bool = [c for c in attribute_names(index) if index[c].dtype != bool]
    if not_bool:
        raise ValueError(f"attribute columns must be bool, not: {not_bool}")
    if index["id"].duplicated().any():
        raise ValueError(f"index has duplicate ids, e.g. {index['id'][index['id'].duplicated()].iloc[0]!r}")
    if n_images is not None and n_images != len(index):
        raise ValueError(f"index has {len(index)} rows but the image array has {n_images} images")


def write_index(index: pd.DataFrame, path: str | os.PathLike, info: dict) -> None:
    """Write the index file (``index.parquet``) with ``info`` (source, resolution, ...) in its metadata."""
    check_index(index)
    write_parquet(index, path, metadata={**info, "attributes": attribute_names(index)})


def load_index(path: str | os.PathLike) -> pd.DataFrame:
    """Read and check an index file: FileNotFoundError if missing, ValueError if malformed (naming the file)."""
    path = Path(path)
    fix = "delete the data directory and rerun the prepare step (snakemake rebuilds it)"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing; {fix}")
    try:
        index = pd.read_parquet(path)
        check_index(index)
    except (OSError, ValueError, pa.ArrowException) as exc:
        raise ValueError(f"{path}: not a valid index ({exc}); {fix}") from None
    return index


def index_info(path: str | os.PathLike) -> dict:
    """The metadata an index file was written with (source, resolution, attributes)."""
    return read_metadata(path)


def load_images(path: str | os.PathLike, mmap: bool = True) -> np.ndarray:
    """The image array file (``images.npy``: N×H×W×3 uint8), memory-mapped unless ``mmap`` is False."""
    return np.load(path, mmap_mode="r" if mmap else None)
