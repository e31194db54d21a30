"""The CelebA reader on a generated mini-CelebA in the official formats, including every bad input.

Each bad input must raise one CelebAError naming the file (and line / attribute / image) and
leave nothing in the output directory: no images.npy, no temporary files.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from prunebias import jobs
from prunebias.data import celeba, store
from prunebias.data.celeba import ATTR_FILE, IMAGE_DIR, PARTITION_FILE, CelebAError
from prunebias.data.celeba_format import CELEBA_ATTRIBUTES, write_mini_celeba
from workflow_utils import prepared_files

N = 10
SIZE = (36, 44)  # (width, height): small JPEGs keep the file fast; portrait like CelebA's 178 x 218
SPLITS = {"train": 6, "valid": 2, "test": 2}


@pytest.fixture(scope="module")
def mini(tmp_path_factory) -> Path:
    return write_mini_celeba(tmp_path_factory.mktemp("celeba") / "src", n=N, size=SIZE, split_counts=SPLITS)


@pytest.fixture
def root(mini, tmp_path) -> Path:
    """A private copy of the mini-CelebA that a test may damage."""
    return Path(shutil.copytree(mini, tmp_path / "src"))


def run_prepare(root: Path, out: Path, resolution: int = 16, **kw) -> pd.DataFrame:
    return celeba.prepare(root, out / "images.npy", resolution, **kw)


def assert_no_output(out: Path) -> None:
    left = sorted(p.name for p in out.iterdir()) if out.exists() else []
    assert left == [], f"partial output left behind: {left}"


def edit_line(path: Path, line_no: int, edit) -> None:
    """Replace 1-based line ``line_no`` of ``path`` by ``edit(old_line)``."""
    lines = path.read_text().splitlines()
    lines[line_no - 1] = edit(lines[line_no - 1])
    path.write_text("\n".join(lines) + "\n")


# --- the happy path -------------------------------------------------------------------------


def test_index_columns_dtypes_order_splits_and_ids(mini, tmp_path):
    index = run_prepare(mini, tmp_path / "out")
    assert list(index.columns) == ["id", "split", "source", *CELEBA_ATTRIBUTES]
    assert len(CELEBA_ATTRIBUTES) == 40 and CELEBA_ATTRIBUTES[:3] == [
        "5_o_Clock_Shadow",
        "Arched_Eyebrows",
        "Attractive",
    ]
    assert CELEBA_ATTRIBUTES[20] == "Male" and CELEBA_ATTRIBUTES[-1] == "Young"
    assert all(index[a].dtype == bool for a in CELEBA_ATTRIBUTES)
    assert index["id"].tolist() == [f"{i:06d}.jpg" for i in range(1, N + 1)]
    assert index["source"].tolist() == [f"img_align_celeba/{i:06d}.jpg" for i in range(1, N + 1)]
    assert index["split"].tolist() == ["train"] * 6 + ["valid"] * 2 + ["test"] * 2
    # Labels: the file's 1 is True, -1 is False, row for row.
    rows = [line.split() for line in (mini / ATTR_FILE).read_text().splitlines()[2:]]
    expected = np.array([[v == "1" for v in r[1:]] for r in rows])
    np.testing.assert_array_equal(index[CELEBA_ATTRIBUTES].to_numpy(), expected)
    store.check_index(index, N)


def test_split_follows_the_partition_file_not_the_row_order(root, tmp_path):
    # Partition lines in reverse order, image 2 moved to test: splits still align by file name.
    lines = (root / PARTITION_FILE).read_text().splitlines()[::-1]
    lines = [("000002.jpg 2" if line.startswith("000002.jpg") else line) for line in lines]
    (root / PARTITION_FILE).write_text("\n".join(lines) + "\n")
    index = run_prepare(root, tmp_path / "out")
    assert index["split"].tolist() == ["train", "test"] + ["train"] * 4 + ["valid"] * 2 + ["test"] * 2


@pytest.mark.parametrize("resolution", [16, 32])
def test_image_array_shape_at_two_resolutions(mini, tmp_path, resolution):
    index = run_prepare(mini, tmp_path / "out", resolution)
    images = np.load(tmp_path / "out" / "images.npy")
    assert images.shape == (N, resolution, resolution, 3) and images.dtype == np.uint8
    assert len(index) == len(images)
    assert images.std() > 10  # real faces, not the zero-filled array
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["images.npy"]  # no temp files


@pytest.mark.parametrize("resolution", [20, 40])
def test_shorter_side_resized_then_centre_crop(tmp_path, resolution):
    # A 40 x 80 portrait: red rows 0-14, green rows 15-64, blue rows 65-79. Resizing the
    # shorter side (40) to r and centre-cropping keeps original rows 20-59: all green.
    # A top crop would show red, a squash (no crop) red and blue.
    img = np.zeros((80, 40, 3), np.uint8)
    img[:15, :, 0] = img[15:65, :, 1] = img[65:, :, 2] = 255
    path = tmp_path / "bands.jpg"
    Image.fromarray(img).save(path, quality=95)
    out = celeba.decode_image(path, resolution)
    assert out.shape == (resolution, resolution, 3) and out.dtype == np.uint8
    assert out[..., 1].min() > 200 and out[..., [0, 2]].max() < 60


def test_runs_of_spaces_and_blank_trailing_lines_parse(tmp_path):
    path = tmp_path / ATTR_FILE
    path.write_text("2\nMale  Young Smiling \n000001.jpg  1 -1  1\n000002.jpg   -1  1 -1   \n\n")
    frame = celeba.read_attributes(path)
    assert list(frame.columns) == ["id", "Male", "Young", "Smiling"]
    assert frame["id"].tolist() == ["000001.jpg", "000002.jpg"]
    np.testing.assert_array_equal(frame[["Male", "Young", "Smiling"]].to_numpy(), [[1, 0, 1], [0, 1, 0]])
    assert all(frame[c].dtype == bool for c in ["Male", "Young", "Smiling"])


# --- bad inputs -----------------------------------------------------------------------------


@pytest.mark.parametrize("missing", [IMAGE_DIR, ATTR_FILE, PARTITION_FILE])
def test_missing_file_is_named_with_the_expected_layout(root, tmp_path, missing):
    target = root / missing
    shutil.rmtree(target) if target.is_dir() else target.unlink()
    with pytest.raises(CelebAError) as err:
        run_prepare(root, tmp_path / "out")
    msg = str(err.value)
    assert f"missing: {target}" in msg
    assert msg.count("missing:") == 1  # only the file that is gone
    assert "expected layout" in msg and all(name in msg for name in (IMAGE_DIR, ATTR_FILE, PARTITION_FILE))
    assert_no_output(tmp_path / "out")


def test_all_missing_files_listed_at_once(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(CelebAError) as err:
        run_prepare(tmp_path / "empty", tmp_path / "out")
    assert str(err.value).count("missing:") == 3
    assert_no_output(tmp_path / "out")


def test_relative_root_is_shown_resolved(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CelebAError, match=re.escape(f"CelebA not found under data/celeba (= {tmp_path}/data/celeba)")):
        celeba.check_layout("data/celeba")


def test_attribute_line_with_wrong_column_count(root, tmp_path):
    edit_line(root / ATTR_FILE, 5, lambda line: line.rsplit(" ", 1)[0])  # third image: 39 values
    with pytest.raises(CelebAError) as err:
        run_prepare(root, tmp_path / "out")
    msg = str(err.value)
    assert str(root / ATTR_FILE) in msg and "line 5:" in msg and "expected 41 fields" in msg and "got 40" in msg
    assert_no_output(tmp_path / "out")


def test_attribute_line_number_counts_blank_lines(root, tmp_path):
    lines = (root / ATTR_FILE).read_text().splitlines()
    lines.insert(3, "")  # a blank line 4: the second image moves to line 5
    lines[4] = lines[4] + " 1"  # ... and has 41 values
    (root / ATTR_FILE).write_text("\n".join(lines) + "\n")
    with pytest.raises(CelebAError, match="line 5: expected 41 fields"):
        celeba.read_attributes(root / ATTR_FILE)


def test_attribute_value_other_than_minus_one_or_one(root, tmp_path):
    male = CELEBA_ATTRIBUTES.index("Male")

    def set_male_to_zero(line):
        fields = line.split()
        fields[1 + male] = "0"
        return " ".join(fields)

    edit_line(root / ATTR_FILE, 4, set_male_to_zero)  # second image
    with pytest.raises(CelebAError) as err:
        run_prepare(root, tmp_path / "out")
    msg = str(err.value)
    assert str(root / ATTR_FILE) in msg and "line 4:" in msg and "'Male'" in msg and "'0'" in msg
    assert "-1 or 1" in msg
    assert_no_output(tmp_path / "out")


def test_attribute_count_line_disagreeing_with_rows(root, tmp_path):
    edit_line(root / ATTR_FILE, 1, lambda line: "11")
    with pytest.raises(CelebAError, match=r"line 1: says 11 images but the file lists 10"):
        run_prepare(root, tmp_path / "out")
    assert_no_output(tmp_path / "out")


@pytest.mark.parametrize(
    "edit, expected",
    [
        (lambda lines: lines[:-1], r"1 image\(s\) only in the attribute file \(e.g. \['000010.jpg'\]\), 0 only"),
        (
            lambda lines: lines + ["000099.jpg 0"],
            r"0 image\(s\) only in the attribute file .*1 only in the partition file \(e.g. \['000099.jpg'\]\)",
        ),
    ],
    ids=["image-missing", "extra-image"],
)
def test_partition_file_disagreeing_with_attribute_file(root, tmp_path, edit, expected):
    lines = (root / PARTITION_FILE).read_text().splitlines()
    (root / PARTITION_FILE).write_text("\n".join(edit(lines)) + "\n")
    with pytest.raises(CelebAError, match=expected) as err:
        run_prepare(root, tmp_path / "out")
    assert str(root / PARTITION_FILE) in str(err.value) and "same CelebA release" in str(err.value)
    assert_no_output(tmp_path / "out")


def test_partition_split_code_out_of_range(root, tmp_path):
    edit_line(root / PARTITION_FILE, 3, lambda line: line.split()[0] + " 3")
    with pytest.raises(CelebAError, match=r"line 3: split code '3'; must be 0, 1 or 2"):
        run_prepare(root, tmp_path / "out")
    assert_no_output(tmp_path / "out")


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize("bad", ["000003.jpg", "000001.jpg"])  # the first image also sets the size check
def test_truncated_image_is_named_and_nothing_is_written(root, tmp_path, bad):
    truncate(root / IMAGE_DIR / bad)
    with pytest.raises(CelebAError) as err:
        run_prepare(root, tmp_path / "out")
    msg = str(err.value)
    assert "1 unreadable image(s)" in msg and str(root / IMAGE_DIR / bad) in msg and "skip_bad_images" in msg
    assert_no_output(tmp_path / "out")


def test_garbage_image_is_named(root, tmp_path):
    (root / IMAGE_DIR / "000001.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(CelebAError, match="000001.jpg"):
        run_prepare(root, tmp_path / "out")
    assert_no_output(tmp_path / "out")


def test_skip_bad_images_drops_and_reports(mini, root, tmp_path, capsys):
    clean = run_prepare(mini, tmp_path / "clean")
    clean_images = np.load(tmp_path / "clean" / "images.npy")
    truncate(root / IMAGE_DIR / "000003.jpg")
    (root / IMAGE_DIR / "000008.jpg").write_bytes(b"")
    index = run_prepare(root, tmp_path / "out", skip_bad_images=True)
    images = np.load(tmp_path / "out" / "images.npy")
    err = capsys.readouterr().err
    assert "skipped 2 unreadable image(s)" in err and "000003.jpg" in err and "000008.jpg" in err
    keep = [i for i in range(N) if i not in (2, 7)]
    assert len(index) == len(images) == N - 2
    assert index["id"].tolist() == clean["id"].iloc[keep].tolist()
    pd.testing.assert_frame_equal(index, clean.iloc[keep].reset_index(drop=True))
    np.testing.assert_array_equal(images, clean_images[keep])
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["images.npy"]


def test_resolution_larger_than_source(root, tmp_path):
    with pytest.raises(CelebAError) as err:
        run_prepare(root, tmp_path / "out", resolution=SIZE[0] + 1)
    msg = str(err.value)
    assert f"resolution {SIZE[0] + 1} is larger than the source images (36x44)" in msg and "at most 36" in msg
    assert "allow_upscale" in msg
    assert_no_output(tmp_path / "out")


def test_upscaling_on_purpose(root, tmp_path):
    from prunebias.data import celeba

    celeba.prepare(root, tmp_path / "images.npy", SIZE[0] + 12, allow_upscale=True)
    assert np.load(tmp_path / "images.npy").shape[1:] == (SIZE[0] + 12, SIZE[0] + 12, 3)


# --- end to end through the workflow's prepare job ------------------------------------------


def test_jobs_prepare_writes_a_readable_data_set(mini, tmp_path):
    out = tmp_path / "data"
    jobs.prepare({"source": "celeba", "root": str(mini), "resolution": 32}, *prepared_files(out))
    assert sorted(p.name for p in out.iterdir()) == ["images.npy", "index.parquet"]
    index = store.load_index(out / "index.parquet")
    images = store.load_images(out / "images.npy")
    assert images.shape == (N, 32, 32, 3) and images.dtype == np.uint8
    assert store.attribute_names(index) == CELEBA_ATTRIBUTES
    assert index["split"].value_counts().to_dict() == SPLITS
    assert store.index_info(out / "index.parquet")["resolution"] == 32
    store.check_index(index, len(images))


def test_jobs_prepare_bad_input_leaves_no_data_set(root, tmp_path):
    truncate(root / IMAGE_DIR / "000005.jpg")
    out = tmp_path / "data"
    with pytest.raises(CelebAError, match="000005.jpg"):
        jobs.prepare({"source": "celeba", "root": str(root), "resolution": 32}, *prepared_files(out))
    assert_no_output(out)


def test_jobs_prepare_removes_the_images_when_the_index_fails(mini, tmp_path, monkeypatch):
    def reject(index, *args):
        raise ValueError("index.parquet: bad index")

    monkeypatch.setattr(store, "check_index", reject)
    out = tmp_path / "data"
    with pytest.raises(ValueError, match="bad index"):
        jobs.prepare({"source": "celeba", "root": str(mini), "resolution": 32}, *prepared_files(out))
    assert_no_output(out)


# --- limit and line endings -----------------------------------------------------------------


def test_limit_keeps_the_first_images_of_every_split_in_proportion(mini, tmp_path):
    # 6 / 2 / 2 images; 5 kept: floor(5 * share) = 3 / 1 / 1, the first of each split.
    index = run_prepare(mini, tmp_path / "out", limit=5)
    assert index["id"].tolist() == ["000001.jpg", "000002.jpg", "000003.jpg", "000007.jpg", "000009.jpg"]
    assert index["split"].tolist() == ["train"] * 3 + ["valid", "test"]
    run_prepare(mini, tmp_path / "full")
    full = np.load(tmp_path / "full" / "images.npy")
    np.testing.assert_array_equal(np.load(tmp_path / "out" / "images.npy"), full[[0, 1, 2, 6, 8]])


def test_limit_rows_fills_rounding_leftovers_and_keeps_every_split():
    split = pd.Series(["train"] * 42 + ["valid"] * 32 + ["test"] * 26)
    kept = split[celeba.limit_rows(split, 99)].value_counts().to_dict()
    assert kept == {"train": 42, "valid": 32, "test": 25}  # floors 41/31/25; 2 left: one each to the largest two
    lopsided = pd.Series(["train"] * 100 + ["valid", "test"])  # at least one each: train gives one back
    assert lopsided[celeba.limit_rows(lopsided, 3)].tolist() == ["train", "valid", "test"]
    assert celeba.limit_rows(split, 500).all()
    with pytest.raises(CelebAError, match="limit: 2 is below the number of splits"):
        celeba.limit_rows(split, 2)


def test_jobs_prepare_with_limit_writes_every_split(mini, tmp_path):
    out = tmp_path / "data"
    jobs.prepare({"source": "celeba", "root": str(mini), "resolution": 16, "limit": 5}, *prepared_files(out))
    assert store.load_index(out / "index.parquet")["split"].value_counts().to_dict() == {
        "train": 3,
        "valid": 1,
        "test": 1,
    }
    assert store.load_images(out / "images.npy").shape == (5, 16, 16, 3)


def test_partition_without_a_test_split_fails_before_decoding(root, tmp_path):
    lines = (root / PARTITION_FILE).read_text().replace(" 2\n", " 1\n")
    (root / PARTITION_FILE).write_text(lines)
    with pytest.raises(CelebAError, match=r"list_eval_partition.txt: no image in split\(s\) \['test'\]"):
        run_prepare(root, tmp_path / "out")
    assert_no_output(tmp_path / "out")


def test_windows_line_endings_parse_the_same(mini, root, tmp_path):
    for name in (ATTR_FILE, PARTITION_FILE):
        (root / name).write_bytes((root / name).read_bytes().replace(b"\n", b"\r\n"))
    pd.testing.assert_frame_equal(run_prepare(root, tmp_path / "crlf"), run_prepare(mini, tmp_path / "lf"))
