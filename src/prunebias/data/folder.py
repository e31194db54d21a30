"""Any labelled image folder: a table with one row per image, decoded once into the prepared data set.

The table (``datasets.<name>.table``: CSV, TSV or Parquet, by suffix) lists the images under
``datasets.<name>.root``, one per row, e.g. ``faces.csv``::

    path,split,Smiling,Eyeglasses,Male,age_band
    adults/0001.jpg,train,1,0,1,30-39
    adults/0002.png,train,0,0,0,20-29
    adults/0003.webp,valid,1,1,1,30-39
    older/0004.JPEG,test,0,0,1,60+

- ``path`` (``path_column``): the image's path relative to ``root``, folders separated by
  ``/``; it becomes the sample's ``id`` (``./`` and doubled ``/`` removed). Suffix ``.jpg``,
  ``.jpeg``, ``.png`` or ``.webp`` in any case; each image listed once. Nothing outside
  ``root`` is read: absolute paths, ``..`` and symbolic links whose target lies outside
  ``root`` are refused.
- ``split`` (``split_column``), optional: exactly ``train``, ``valid`` or ``test``. Without
  the column the split is drawn (below).
- Every other column is an attribute: binary, in one encoding per column: ``0``/``1``,
  ``true``/``false`` (a bool column, or the strings in any case) or ``-1``/``1`` (CelebA's:
  ``-1`` is false). No empty cells; a column may hold one value throughout (the analysis
  decides what it can use). The index keeps them as bool columns, in table order.
- Columns named in ``categorical`` (here ``age_band``) hold multi-valued groups instead.

Each problem raises one :class:`FolderError` naming the table, the row, the column and the
value; "row N" is the N-th data row (line N + 1 of a CSV, below its header line).

**The drawn split.** The rows are shuffled with
``numpy.random.default_rng(split_seed).permutation``; in that order train takes the first
``round(f_train · N)`` rows, valid the rows up to ``round((f_train + f_valid) · N)``, test
the rest (``split_fractions`` = (f_train, f_valid, f_test), rounding half up). Rounding the
cumulative shares makes the counts sum to N, each within one image of its share. The same
table (same rows in the same order) and seed give the same split; every split must get at
least one image.

**Categorical columns.** ``categorical: [age_band]`` replaces the column by one bool column
per level (levels sorted as text), in its place: ``age_band_20_29``, ``age_band_30_39``,
``age_band_60_`` (:func:`level_column`: every character of the level outside A-Z, a-z,
0-9 becomes ``_``). ``age_band_30_39`` is true exactly where ``age_band`` is ``30-39``:
one level against all the others together. Named in ``identities``, each level is an
identity of its own, so bias amplification is computed per level and attribute: for
identity ``age_band_30_39`` and attribute a, the training split gives
P1 = P(a | aged 30-39) and P0 = P(a | everyone else); the group with the higher rate is
favoured, and BA = its share of the model's test positives of a minus its share of the true
positives (:func:`prunebias.analysis.metrics.bias_amplification`). No level is compared with
another single level.

**Images.** Any size and mode (L, LA, RGB, RGBA, P, CMYK) becomes RGB (alpha is dropped,
not composited); the shorter side is resized to ``resolution`` and the centre square cut
(:func:`prunebias.data.celeba.decode_image`). Smaller images are upscaled: a folder mixes
sizes, so there is no ``allow_upscale`` switch here. Unreadable images stop the run, or with
``skip_bad_images`` are dropped and listed on stderr.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.lib.format import open_memmap

from prunebias.data import tables
from prunebias.data.celeba import decode_chunk
from prunebias.data.store import INDEX_COLUMNS
from prunebias.io import atomic_path, save_array
from prunebias.vocabulary import SPLITS

SOURCE = "folder"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
#: Images decoded per worker task.
CHUNK = 256
#: Unreadable images a refusal lists (the rest are counted).
LISTED = 10
_UNSAFE = re.compile(r"[^A-Za-z0-9]")
# A ".." component anywhere: the path could climb out of root.
_PARENT = r"(?:^|/)\.\.(?:/|$)"


class FolderError(ValueError):
    """A file of a folder data set is missing or malformed; the message names the file (and row) and says how to fix it."""


@contextlib.contextmanager
def _as_folder_error() -> Iterator[None]:
    """Re-raise the shared table reader's errors (same message) as :class:`FolderError`."""
    try:
        yield
    except tables.TableError as exc:
        raise FolderError(str(exc)) from None


def read_table(path: str | os.PathLike, *, text_columns: Sequence[str] = ("path", "split")) -> pd.DataFrame:
    """The table at ``path``: CSV (``.csv``, ``.tsv``) or Parquet (``.parquet``, ``.pq``), by suffix.

    CSV columns are typed by pandas except ``text_columns`` (paths, splits, categorical
    columns: a level ``01`` keeps its zero), read as text. A missing or unreadable file, or
    another suffix, raises :class:`FolderError` naming the file (and the accepted suffixes).
    """
    with _as_folder_error():
        return tables.read_table(path, text_columns=tuple(text_columns))


def categorical_levels(table: pd.DataFrame, column: str) -> list[str]:
    """The distinct levels of ``table[column]`` as text (stripped), sorted; empty cells are not levels."""
    text = _level_text(table[column])
    return sorted(set(text[text != ""]))


def level_column(column: str, level) -> str:
    """The one-vs-rest column of a level: ``("age_band", "30-39")`` -> ``"age_band_30_39"``."""
    return f"{column}_{_UNSAFE.sub('_', str(level))}"


def _level_text(column: pd.Series) -> pd.Series:
    """Cells as stripped text, missing cells as "" (Parquet integers give "3", floats "3.0")."""
    return column.astype("string").str.strip().fillna("")


def _first(bad: pd.Series) -> int | None:
    """Position of the first true entry, or None."""
    hits = np.flatnonzero(bad.to_numpy(dtype=bool))
    return int(hits[0]) if hits.size else None


def _row_error(table_path, i: int, column: str, value, problem: str) -> FolderError:
    shown = "empty cell" if pd.isna(value) else f"value {value!r}"  # pandas reads an empty CSV cell as NaN
    return FolderError(f"{table_path}: row {i + 1}, column {column!r}: {shown}: {problem}")


def _check_root(root: str | os.PathLike) -> Path:
    """``root`` resolved (links followed); :class:`FolderError` unless it is a directory."""
    resolved = Path(os.path.realpath(root))
    if not resolved.is_dir():
        # A relative root is relative to where Snakemake runs: show where that is.
        where = "" if Path(root).is_absolute() else f" (= {resolved})"
        raise FolderError(
            f"image folder {root}{where} is not a directory; set datasets.<name>.root to the folder "
            "the table's paths are relative to"
        )
    return resolved


def _image_paths(table: pd.DataFrame, root: Path, table_path, column: str) -> tuple[pd.Series, list[Path]]:
    """The ids (normalised relative paths) and the resolved image files of the table's rows."""
    if column not in table.columns:
        raise FolderError(
            f"{table_path}: no column {column!r} of image paths (columns: {list(table.columns)}); "
            "add it, or set datasets.<name>.path_column to the column that holds them"
        )
    raw = table[column]
    text = raw.astype("string").fillna("")
    fix = f"give the image's path relative to {root}"
    checks = (
        (text.str.strip() == "", f"no image path; {fix}"),
        (text.str.contains("\x00", regex=False), f"the path holds a NUL character; {fix}"),
        (
            ~text.str.lower().str.endswith(IMAGE_SUFFIXES),
            f"not an image file name; the accepted suffixes are {' '.join(IMAGE_SUFFIXES)} (any case)",
        ),
        (
            text.str.startswith("/") | text.str.contains(_PARENT),
            f"the path leaves the image folder; {fix}, without '..'",
        ),
    )
    for bad, problem in checks:
        if (i := _first(bad)) is not None:
            raise _row_error(table_path, i, column, raw.iloc[i], problem)
    ids = text.map(lambda p: Path(p).as_posix())  # "./a.jpg" and "a//b.jpg" name the files a.jpg and a/b.jpg
    if (pair := tables.first_duplicate(ids)) is not None:
        first, i = pair
        raise FolderError(
            f"{table_path}: rows {first + 1} and {i + 1}, column {column!r}: value {raw.iloc[i]!r}: "
            "the same image is listed twice; list each image once"
        )
    files = ids.map(lambda p: Path(os.path.realpath(root / p)))  # never raises (a link loop stays unresolved)
    if (i := _first(~files.map(lambda f: f.is_relative_to(root)))) is not None:
        raise _row_error(
            table_path, i, column, raw.iloc[i], f"a link to {files.iloc[i]}, outside {root}; refused: copy the image in"
        )
    # os.path.isfile, not Path.is_file: a name too long for the file system is not a file, not a crash.
    if (i := _first(~files.map(os.path.isfile))) is not None:
        raise _row_error(table_path, i, column, raw.iloc[i], f"no such image file ({root / ids.iloc[i]})")
    return ids, list(files)


def _one_vs_rest(column: pd.Series, levels: list[str]) -> pd.DataFrame:
    """One bool column per level, true exactly where the cell is that level."""
    text = _level_text(column)
    return pd.DataFrame({level_column(column.name, v): (text == v).to_numpy(dtype=bool) for v in levels})


def _check_attribute_names(named: list[tuple[str, str]], table_path) -> None:
    """Attribute names (with where each comes from) must be distinct and not the index's own columns."""
    seen: dict[str, str] = {}
    for name, origin in named:
        if name in INDEX_COLUMNS:
            raise FolderError(
                f"{table_path}: {origin} would be the attribute {name!r}, a name the index keeps for its own "
                f"columns {list(INDEX_COLUMNS)} (the id is the image path); rename or drop it"
            )
        if name in seen:
            raise FolderError(f"{table_path}: {seen[name]} and {origin} both become the column {name!r}; rename one")
        seen[name] = origin


def attribute_columns(table: pd.DataFrame, table_path, columns: list[str], categorical: Sequence[str]) -> pd.DataFrame:
    """The bool attribute columns: binary columns as they are, categorical ones expanded in place
    (one-vs-rest, :func:`level_column`). Also the labels of an audit-only data set
    (:mod:`prunebias.data.user_predictions`)."""
    unknown = [c for c in categorical if c not in columns]
    if unknown:
        raise FolderError(
            f"{table_path}: categorical column(s) {unknown} are not attribute columns of the table; "
            f"its attribute columns are {columns} (fix datasets.<name>.categorical)"
        )
    if not columns:
        raise FolderError(f"{table_path}: no attribute columns besides the paths and the split; add binary labels")
    levels = {}
    for c in categorical:
        if (i := _first(_level_text(table[c]) == "")) is not None:
            raise _row_error(
                table_path, i, c, table[c].iloc[i], "no level in a categorical column; give every row a level"
            )
        levels[c] = categorical_levels(table, c)
    named = []
    for c in columns:
        named += (
            [(level_column(c, v), f"level {v!r} of column {c!r}") for v in levels[c]]
            if c in levels
            else [(c, f"column {c!r}")]
        )
    # Names first: a clash (say an "id" column) explains itself better than its values would.
    _check_attribute_names(named, table_path)
    with _as_folder_error():
        binary = tables.binary_labels(table, [c for c in columns if c not in levels], table_path=table_path)
    parts = [_one_vs_rest(table[c], levels[c]) if c in levels else binary[[c]] for c in columns]
    return pd.concat(parts, axis=1)


def split_counts(n: int, fractions: Sequence[float]) -> np.ndarray:
    """Images per split (train, valid, test) for ``n`` images: the cumulative shares rounded half up.

    :class:`FolderError` unless ``fractions`` are three shares in [0, 1] summing to 1.
    """
    f = np.asarray(fractions, dtype=np.float64)
    if f.shape != (3,) or not np.all((f >= 0) & (f <= 1)) or abs(f.sum() - 1) > 1e-6:
        raise FolderError(
            f"datasets.<name>.split_fractions: {list(fractions)!r}; give three shares (train, valid, test) summing to 1"
        )
    bounds = np.floor(np.cumsum(f[:2]) * n + 0.5).astype(int)
    return np.diff(np.concatenate([[0], bounds, [n]]))


def _drawn_split(n: int, fractions: Sequence[float], seed: int) -> np.ndarray:
    """The split of each of ``n`` rows: :func:`split_counts` of them, in a seeded random order."""
    split = np.empty(n, dtype=object)
    split[np.random.default_rng(seed).permutation(n)] = np.repeat(
        np.array(SPLITS, dtype=object), split_counts(n, fractions)
    )
    return split


def _given_split(table: pd.DataFrame, table_path, column: str) -> np.ndarray:
    if (i := _first(~table[column].isin(SPLITS))) is not None:
        raise _row_error(
            table_path, i, column, table[column].iloc[i], f"the split must be exactly one of {', '.join(SPLITS)}"
        )
    return table[column].to_numpy(dtype=object)


def _require_every_split(split, problem: str, fix: str) -> None:
    empty = [s for s in SPLITS if not (split == s).any()]
    if empty:
        raise FolderError(f"{problem}: no image in split(s) {empty}; every split needs at least one: {fix}")


def folder_index(
    table: pd.DataFrame,
    root: str | os.PathLike,
    *,
    table_path: str | os.PathLike,
    path_column: str = "path",
    split_column: str = "split",
    categorical: Sequence[str] = (),
    split_fractions: Sequence[float] = (0.8, 0.1, 0.1),
    split_seed: int = 0,
) -> tuple[pd.DataFrame, list[Path]]:
    """The index of a folder table (:mod:`prunebias.data.store` contract) and its image files, in table order.

    ``id`` is the image's relative path, ``split`` from ``split_column`` or drawn from
    ``split_fractions`` and ``split_seed``, ``source`` "folder", then the attributes as bool
    columns. The files are absolute, links resolved. Only the file system is read (whether
    each file exists, and where links point); ``table_path`` names the table in messages.
    Every problem raises one :class:`FolderError` (module docstring).
    """
    root = _check_root(root)
    table = table.reset_index(drop=True)  # positions are rows
    if table.empty:
        raise FolderError(f"{table_path}: no rows; list one image per row")
    ids, files = _image_paths(table, root, table_path, path_column)
    columns = [c for c in table.columns if c not in (path_column, split_column)]
    attributes = attribute_columns(table, table_path, columns, categorical)
    if split_column in table.columns:
        split = _given_split(table, table_path, split_column)
        _require_every_split(split, f"{table_path}: column {split_column!r}", "give some rows each split")
    else:
        split = _drawn_split(len(table), split_fractions, split_seed)
        _require_every_split(
            split,
            f"{len(table)} images with datasets.<name>.split_fractions {list(split_fractions)} (no split column)",
            "raise the empty split's share, add images, or add a split column",
        )
    index = pd.DataFrame({"id": ids.to_numpy(dtype=object), "split": split, "source": SOURCE})
    return pd.concat([index, attributes], axis=1), files


#: The keys of a ``datasets.<name>`` block (source folder) that shape its index.
TABLE_OPTIONS = ("path_column", "split_column", "categorical", "split_fractions", "split_seed")


def table_options(cfg: dict) -> dict:
    """The :data:`TABLE_OPTIONS` a ``datasets.<name>`` block sets (the keywords of :func:`read_folder_index`)."""
    return {k: cfg[k] for k in TABLE_OPTIONS if k in cfg}


def read_folder_index(
    root: str | os.PathLike, table_path: str | os.PathLike, **options
) -> tuple[pd.DataFrame, list[Path]]:
    """:func:`folder_index` of the table file (``options``: its keywords, :data:`TABLE_OPTIONS`): what
    :func:`prepare` decodes, and what the workflow checks while it parses (every table problem,
    before any job runs)."""
    text = (options.get("path_column", "path"), options.get("split_column", "split"), *options.get("categorical", ()))
    return folder_index(read_table(table_path, text_columns=text), root, table_path=table_path, **options)


@contextlib.contextmanager
def decoded_images(
    paths: Sequence[str | os.PathLike], images_path: str | os.PathLike, resolution: int, *, workers: int = 1
) -> Iterator[list[tuple[int, str]]]:
    """Decode ``paths`` into ``images_path`` (N×r×r×3 uint8 ``.npy``); yield the failures as (position, reason).

    The images are decoded in ``workers`` processes straight into a memory-mapped file,
    the readable ones in order, the unreadable ones left out. The file appears when the
    ``with`` block ends: a caller refuses the failures by raising inside the block, and
    nothing is left behind.
    """
    n = len(paths)
    starts = range(0, n, CHUNK)
    jobs = [([str(p) for p in paths[s : s + CHUNK]], resolution) for s in starts]
    failures: list[tuple[int, str]] = []
    with atomic_path(images_path) as tmp:
        array = open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(n, resolution, resolution, 3))
        kept, begun = 0, time.perf_counter()
        with ProcessPoolExecutor(max_workers=max(1, workers)) as pool:
            for start, (decoded, bad) in zip(starts, pool.map(decode_chunk, jobs)):
                good = np.ones(len(decoded), dtype=bool)
                good[[i for i, _ in bad]] = False
                readable = decoded[good]
                array[kept : kept + len(readable)] = readable
                kept += len(readable)
                failures += [(start + i, reason) for i, reason in bad]
                done = start + len(decoded)
                print(
                    f"decode: {done}/{n} images ({done / max(time.perf_counter() - begun, 1e-9):.0f}/s)",
                    file=sys.stderr,
                    flush=True,
                )
        array.flush()
        yield failures
        if failures:  # the readable images fill the first rows; np.save streams them from the map
            save_array(array[:kept], tmp)


def _listing(failures: list[tuple[int, str]], limit: int | None = None) -> str:
    shown = failures[:limit]
    more = f"\n  ... and {len(failures) - len(shown)} more" if len(failures) > len(shown) else ""
    return "\n".join(f"  row {i + 1}: {reason}" for i, reason in shown) + more


def prepare(
    root: str | os.PathLike,
    table_path: str | os.PathLike,
    images_path: str | os.PathLike,
    resolution: int,
    *,
    workers: int = 1,
    skip_bad_images: bool = False,
    **options,
) -> pd.DataFrame:
    """Read the table, check it (:func:`folder_index`, with ``options``: :data:`TABLE_OPTIONS`), decode
    every image once into ``images_path``; return the index.

    Images are upscaled when smaller than ``resolution``. Unreadable images raise one
    :class:`FolderError` listing them, or with ``skip_bad_images`` are dropped (listed on
    stderr) and their rows left out of the index. On any error ``images_path`` is not written.
    """
    index, files = read_folder_index(root, table_path, **options)
    with decoded_images(files, images_path, resolution, workers=workers) as failures:
        if failures and not skip_bad_images:
            raise FolderError(
                f"{table_path}: {len(failures)} unreadable image(s):\n{_listing(failures, LISTED)}\n"
                "Replace or remove them, or set datasets.<name>.skip_bad_images: true to drop and report them"
            )
        if failures:
            print(f"prepare: dropped {len(failures)} unreadable image(s) of {table_path}:", file=sys.stderr)
            print(_listing(failures), file=sys.stderr)
            index = index.drop(index=[i for i, _ in failures]).reset_index(drop=True)
            _require_every_split(
                index["split"],
                f"{table_path}: after dropping {len(failures)} unreadable image(s)",
                "replace the unreadable images, or give that split more",
            )
    return index
