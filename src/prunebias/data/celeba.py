"""CelebA reader: the official aligned-and-cropped release, decoded once into the image array.

Expected layout under ``root`` (as distributed by the CelebA authors)::

    root/
      img_align_celeba/000001.jpg ... 202599.jpg   (178 x 218 JPEGs)
      list_attr_celeba.txt                         (count; 40 names; "file v1 ... v40", values -1/1)
      list_eval_partition.txt                      ("file split", 0 train / 1 valid / 2 test)

Images are resized so the shorter side equals ``resolution`` and centre-cropped to a
``resolution`` square, once; training then takes random crops of that square and
evaluation its centre crop (SPEC: resize to 256, crop 224).
"""

from __future__ import annotations

import codecs
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.lib.format import open_memmap

from prunebias.io import atomic_path

IMAGE_DIR = "img_align_celeba"
ATTR_FILE = "list_attr_celeba.txt"
PARTITION_FILE = "list_eval_partition.txt"
SPLIT_CODES = {0: "train", 1: "valid", 2: "test"}
LAYOUT = f"""expected layout:
  <root>/{IMAGE_DIR}/000001.jpg ...
  <root>/{ATTR_FILE}
  <root>/{PARTITION_FILE}"""


class CelebAError(ValueError):
    """A CelebA file is missing or malformed; the message names it and says how to fix it."""


def check_layout(root: str | os.PathLike) -> Path:
    """Raise :class:`CelebAError` naming every missing file or folder under ``root``."""
    root = Path(root)
    missing = [p for p in (root / IMAGE_DIR, root / ATTR_FILE, root / PARTITION_FILE) if not p.exists()]
    if missing:
        names = "\n".join(f"  missing: {p}" for p in missing)
        # A relative root is relative to where Snakemake runs: show where that is.
        where = "" if root.is_absolute() else f" (= {root.resolve()})"
        raise CelebAError(
            f"CelebA not found under {root}{where} (config key datasets.<name>.root):\n{names}\n{LAYOUT}\n"
            "Download the 'Align&Cropped Images' release and the annotation files from the CelebA site."
        )
    return root


def _show(text: str, limit: int = 60) -> str:
    """``repr`` of a value from a file, shortened: a damaged file can hold megabyte-long "fields"."""
    return repr(text) if len(text) <= limit else repr(text[:limit]) + f"... ({len(text)} characters)"


def _read_lines(path: Path) -> list[str]:
    """The lines of a CelebA text file (LF, CRLF or CR endings; an optional UTF-8 byte-order mark).

    Raises :class:`CelebAError` naming the file and line if it is not ASCII/UTF-8 text or
    holds NUL bytes (a damaged download, or a UTF-16 file).
    """
    data = path.read_bytes()
    fix = "re-download it, or save it as plain text (ASCII or UTF-8)"
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise CelebAError(f"{path}: the file is UTF-16 encoded, not ASCII/UTF-8 text; {fix}")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise CelebAError(f"{path}, line {line}: not ASCII/UTF-8 text (byte 0x{data[exc.start]:02x}); {fix}") from None
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if lines[-1] == "":
        lines.pop()
    for k, line in enumerate(lines, start=1):
        if "\x00" in line:
            raise CelebAError(f"{path}, line {k}: contains a NUL byte (a damaged file, or UTF-16 text); {fix}")
    return lines


def _check_file_names(path: Path, names: list[str], line_no: list[int]) -> None:
    """Image names must be plain, distinct file names (no folders: nothing outside the image folder is read)."""
    for name, k in zip(names, line_no):
        if "/" in name or "\\" in name or name in (".", ".."):
            raise CelebAError(f"{path}, line {k}: {_show(name)} is not a plain image file name")
    seen: dict[str, int] = {}
    for name, k in zip(names, line_no):
        if name in seen:
            raise CelebAError(f"{path}, line {k}: image {_show(name)} is listed twice (first on line {seen[name]})")
        seen[name] = k


RESERVED_COLUMNS = ("id", "split", "source")  # the index's own columns (prunebias.data.store)


def read_attributes(path: str | os.PathLike) -> pd.DataFrame:
    """Parse ``list_attr_celeba.txt`` into a DataFrame: ``id`` then one bool column per attribute.

    Fields may be separated by any run of spaces; lines may end in LF, CRLF or CR. Raises
    :class:`CelebAError` with the line number on text that is not ASCII/UTF-8, a wrong
    column count, a value other than -1/1, a repeated attribute or image name.
    """
    path = Path(path)
    lines = _read_lines(path)
    if len(lines) < 3:
        raise CelebAError(f"{path}: expected a count line, a names line and data lines; got {len(lines)} lines")
    try:
        count = int(lines[0].strip())
    except ValueError:
        raise CelebAError(f"{path}, line 1: expected the number of images, got {_show(lines[0])}") from None
    names = lines[1].split()
    if not names:
        raise CelebAError(f"{path}, line 2: expected the attribute names, got {_show(lines[1])}")
    for j, name in enumerate(names):
        if name in names[:j] or name in RESERVED_COLUMNS:
            what = "is listed twice" if name in names[:j] else "is a reserved column name"
            raise CelebAError(f"{path}, line 2: attribute name {_show(name)} {what}")
    # Blank lines are skipped, so keep each row's own line number for the messages.
    numbered = [(k, line.split()) for k, line in enumerate(lines[2:], start=3) if line.strip()]
    if not numbered:
        raise CelebAError(f"{path}: no data lines after the names line")
    line_no = [k for k, _ in numbered]
    rows = [r for _, r in numbered]
    widths = np.fromiter((len(r) for r in rows), dtype=int, count=len(rows))
    bad = np.flatnonzero(widths != len(names) + 1)
    if bad.size:
        i = bad[0]
        raise CelebAError(
            f"{path}, line {line_no[i]}: expected {len(names) + 1} fields (file name + {len(names)} attributes), "
            f"got {widths[i]}"
        )
    if count != len(rows):
        said = str(count) if abs(count) < 10**20 else f"a {len(str(abs(count)))}-digit number of"
        raise CelebAError(f"{path}, line 1: says {said} images but the file lists {len(rows)}")
    table = np.array(rows, dtype=object)
    values = table[:, 1:]
    valid = (values == "1") | (values == "-1")
    if not valid.all():
        i, j = np.argwhere(~valid)[0]
        raise CelebAError(
            f"{path}, line {line_no[i]}: attribute {names[j]!r} is {_show(values[i, j])}; values must be -1 or 1"
        )
    _check_file_names(path, list(table[:, 0]), line_no)
    frame = pd.DataFrame(values == "1", columns=names)
    frame.insert(0, "id", table[:, 0].astype(str))
    return frame


def read_partition(path: str | os.PathLike, ids: pd.Series) -> pd.Series:
    """Parse ``list_eval_partition.txt``; return the split name per id, aligned with ``ids``.

    Raises :class:`CelebAError` naming the line on a malformed line, and if the file's image
    list disagrees with the attribute file's.
    """
    path = Path(path)
    numbered = [(k, line.split()) for k, line in enumerate(_read_lines(path), start=1) if line.strip()]
    if not numbered:
        raise CelebAError(f"{path}: empty; expected one 'file split' line per image")
    codes = {str(c): c for c in SPLIT_CODES}
    for k, fields in numbered:
        if len(fields) != 2:
            raise CelebAError(f"{path}, line {k}: expected 2 fields (file name, split code), got {len(fields)}")
        if fields[1] not in codes:
            raise CelebAError(f"{path}, line {k}: split code {_show(fields[1])}; must be 0, 1 or 2")
    _check_file_names(path, [f[0] for _, f in numbered], [k for k, _ in numbered])
    part = pd.Series([codes[f[1]] for _, f in numbered], index=[f[0] for _, f in numbered], name="code")
    only_attr = ids[~ids.isin(part.index)]
    only_part = part.index[~part.index.isin(ids)]
    if len(only_attr) or len(only_part):
        raise CelebAError(
            f"{path} disagrees with {ATTR_FILE}: {len(only_attr)} image(s) only in the attribute file "
            f"(e.g. {list(only_attr[:3])}), {len(only_part)} only in the partition file "
            f"(e.g. {list(only_part[:3])}). Use the two files of the same CelebA release."
        )
    return part.reindex(ids).map(SPLIT_CODES).reset_index(drop=True)


def decode_image(path: str | os.PathLike, resolution: int) -> np.ndarray:
    """Decode one JPEG, resize its shorter side to ``resolution``, centre-crop a square: uint8 (r, r, 3)."""
    from PIL import Image

    with Image.open(path) as img:
        img.draft("RGB", (resolution, resolution))  # let libjpeg downscale while decoding
        img = img.convert("RGB")
        w, h = img.size
        scale = resolution / min(w, h)
        size = (max(resolution, round(w * scale)), max(resolution, round(h * scale)))
        img = img.resize(size, Image.BILINEAR, reducing_gap=3.0)
        left, top = (size[0] - resolution) // 2, (size[1] - resolution) // 2
        return np.asarray(img.crop((left, top, left + resolution, top + resolution)), dtype=np.uint8)


def decode_chunk(args: tuple[list[str], int]) -> tuple[np.ndarray, list[tuple[int, str]]]:
    """Decode (paths, resolution) into an array, for a worker process; unreadable files are left
    black and returned as (position, reason). Shared by the CelebA and folder readers."""
    paths, resolution = args
    out = np.zeros((len(paths), resolution, resolution, 3), dtype=np.uint8)
    failures = []
    for i, p in enumerate(paths):
        try:
            out[i] = decode_image(p, resolution)
        except Exception as exc:  # any decoder error is a bad file, reported by name below
            failures.append((i, f"{p}: {exc}"))
    return out, failures


def source_size(root: str | os.PathLike, ids) -> tuple[int, int]:
    """(width, height) of the first image among ``ids`` whose header reads.

    An unreadable first image must not stop the size check: the decode step names (or,
    with ``skip_bad_images``, drops) it.
    """
    from PIL import Image

    for i in ids:
        try:
            with Image.open(Path(root) / IMAGE_DIR / i) as img:
                return img.size
        except OSError:
            continue
    raise CelebAError(f"no readable image in {Path(root) / IMAGE_DIR}; re-download the 'Align&Cropped Images' release")


def limit_rows(split: pd.Series, limit: int) -> np.ndarray:
    """Bool mask keeping ``limit`` rows: the first of each split, in proportion to the split sizes.

    The official files list all training images first, so "the first N images" would hold
    no validation or test image. Each non-empty split keeps at least one row; rounding
    leftovers go to the largest splits. Raises :class:`CelebAError` if ``limit`` is smaller
    than the number of non-empty splits.
    """
    sizes = split.value_counts()
    if limit >= len(split):
        return np.ones(len(split), dtype=bool)
    if limit < len(sizes):
        raise CelebAError(
            f"datasets.<name>.limit: {limit} is below the number of splits ({len(sizes)}); use at least {len(sizes)}"
        )
    counts = np.maximum(1, limit * sizes // len(split))
    leftover = limit - counts.sum()
    if leftover < 0:  # the at-least-one rule overshot: take it back from the largest split
        counts[sizes.idxmax()] += leftover
    else:  # rounding left some: fill the splits with room, largest first
        room = sizes - counts
        counts += np.clip(leftover - (room.cumsum() - room), 0, room)
    rank = split.groupby(split).cumcount().to_numpy()
    return rank < split.map(counts).to_numpy()


def prepare(
    root: str | os.PathLike,
    images_out: str | os.PathLike,
    resolution: int,
    workers: int = 1,
    chunk: int = 512,
    skip_bad_images: bool = False,
    limit: int | None = None,
    allow_upscale: bool = False,
) -> pd.DataFrame:
    """Read CelebA under ``root`` and write the decoded array to ``images_out``; return the index.

    Decoding runs in ``workers`` processes, ``chunk`` images at a time, straight into a
    memory-mapped ``.npy`` (renamed into place when complete). Unreadable images stop the run
    with their file names, or with ``skip_bad_images`` are dropped and listed on stderr.
    ``limit`` keeps N images, the first of each split in proportion to the split sizes
    (:func:`limit_rows`; quick looks). A ``resolution`` above the source's
    shorter side is refused unless ``allow_upscale`` (the reference recipe resizes CelebA's
    178 px side up to 256).
    """
    root = check_layout(root)
    attrs = read_attributes(root / ATTR_FILE)
    split = read_partition(root / PARTITION_FILE, attrs["id"])
    index = pd.concat([attrs[["id"]], split.rename("split")], axis=1)
    index["source"] = IMAGE_DIR + "/" + attrs["id"]
    index = pd.concat([index, attrs.drop(columns="id")], axis=1)
    if limit is not None:
        index = index[limit_rows(index["split"], limit)].reset_index(drop=True)
    empty = [s for s in SPLIT_CODES.values() if not (index["split"] == s).any()]
    if empty:  # checked before decoding: training needs every split
        raise CelebAError(f"{root / PARTITION_FILE}: no image in split(s) {empty}; every split needs at least one")
    w, h = source_size(root, index["id"])
    if resolution > min(w, h) and not allow_upscale:
        raise CelebAError(
            f"resolution {resolution} is larger than the source images ({w}x{h}); "
            f"set datasets.<name>.resolution to at most {min(w, h)}, "
            "or datasets.<name>.allow_upscale: true to resize up on purpose"
        )
    paths = [str(root / s) for s in index["source"]]
    jobs = [(paths[i : i + chunk], resolution) for i in range(0, len(paths), chunk)]
    failures: list[str] = []
    bad_rows: list[int] = []
    with atomic_path(images_out) as tmp:
        array = open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(len(paths), resolution, resolution, 3))
        start, done = time.perf_counter(), 0
        with ProcessPoolExecutor(max_workers=max(1, workers)) as pool:
            for k, (decoded, chunk_failures) in enumerate(pool.map(decode_chunk, jobs)):
                offset = k * chunk
                array[offset : offset + len(decoded)] = decoded
                failures += [msg for _, msg in chunk_failures]
                bad_rows += [offset + i for i, _ in chunk_failures]
                done += len(decoded)
                rate = done / max(time.perf_counter() - start, 1e-9)
                print(f"prepare: {done}/{len(paths)} images ({rate:.0f}/s)", file=sys.stderr, flush=True)
        if failures and not skip_bad_images:
            listed = "\n".join(f"  {m}" for m in failures[:20])
            raise CelebAError(
                f"{len(failures)} unreadable image(s):\n{listed}\n"
                "Re-download them, or set datasets.<name>.skip_bad_images: true to drop and report them."
            )
        if failures:
            print(f"prepare: skipped {len(failures)} unreadable image(s):", file=sys.stderr)
            for m in failures:
                print(f"  {m}", file=sys.stderr)
            keep = np.setdiff1d(np.arange(len(paths)), bad_rows)
            # Copy the good rows chunk by chunk into a second file: the full array (40 GB
            # for CelebA at 256 px) never has to fit in memory.
            with atomic_path(tmp) as compact_tmp:
                shape = (len(keep),) + array.shape[1:]
                compact = open_memmap(compact_tmp, mode="w+", dtype=np.uint8, shape=shape)
                for i in range(0, len(keep), chunk):
                    compact[i : i + chunk] = array[keep[i : i + chunk]]
                compact.flush()
                del compact
            del array
            index = index.iloc[keep].reset_index(drop=True)
        else:
            array.flush()
            del array
    return index
