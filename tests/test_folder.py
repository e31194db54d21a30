"""The labelled-folder reader: images written here (JPEG, PNG, WebP; several sizes and modes), every bad input.

Each bad input must raise one FolderError naming the table, row, column and value, and leave
no image array (nor a temporary file) behind.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from prunebias.data import folder, store
from prunebias.data.folder import FolderError

RES = 16

# (path, mode, size, fill colour, expected RGB after decoding, save options)
IMAGES = [
    ("a/red.png", "RGB", (30, 20), (200, 30, 60), (200, 30, 60), {}),
    ("a/grey.png", "L", (16, 40), 128, (128, 128, 128), {}),
    ("b/alpha.png", "RGBA", (50, 50), (10, 20, 30, 100), (10, 20, 30), {}),  # alpha dropped, not composited
    ("b/palette.png", "P", (8, 6), (0, 128, 255), (0, 128, 255), {}),  # smaller than RES: upscaled
    ("c/green.webp", "RGB", (64, 20), (20, 220, 40), (20, 220, 40), {"lossless": True}),
    ("c/blue.jpg", "RGB", (40, 30), (20, 40, 230), (20, 40, 230), {"quality": 95}),
    ("c/cmyk.JPEG", "CMYK", (30, 30), (0, 255, 255, 0), (255, 0, 0), {"quality": 95}),
    ("d/big.jpeg", "L", (300, 200), 50, (50, 50, 50), {"quality": 95}),
    ("d/yellow.webp", "RGBA", (25, 25), (250, 240, 10, 255), (250, 240, 10), {"lossless": True}),
]
LOSSY = {".jpg", ".jpeg"}


def write_image(path: Path, mode: str, size, fill, **options) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if mode == "P":  # a real palette image, holding exactly the fill colour
        image = Image.new("RGB", size, fill).convert("P", palette=Image.Palette.ADAPTIVE)
    else:
        image = Image.new(mode, size, fill)
    image.save(path, **options)


def good_table() -> pd.DataFrame:
    """The table of IMAGES, as text (a CSV's cells): three encodings and a categorical column."""
    return pd.DataFrame(
        {
            "path": [p for p, *_ in IMAGES],
            "split": ["train"] * 5 + ["valid"] * 2 + ["test"] * 2,
            "Smiling": ["0", "1", "1", "0", "1", "0", "0", "1", "1"],
            "Male": ["-1", "1", "1", "-1", "-1", "1", "-1", "1", "-1"],
            "age_band": ["20-29", "30-39", "30-39", "60+", "20-29", "60+", "30-39", "20-29", "60+"],
            "Young": ["true", "FALSE", "True", "false", "true", "false", "TRUE", "false", "true"],
        }
    )


def typed(frame: pd.DataFrame) -> pd.DataFrame:
    """The same table with the dtypes a Parquet file would hold: ints, bools."""
    return frame.assign(
        Smiling=frame["Smiling"].astype(int),
        Male=frame["Male"].astype(int),
        Young=frame["Young"].str.lower() == "true",
    )


@pytest.fixture(scope="module")
def image_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("folder") / "root"
    for path, mode, size, fill, _, options in IMAGES:
        write_image(root / path, mode, size, fill, **options)
    return root


def write_table(frame: pd.DataFrame, path: Path) -> Path:
    if path.suffix == ".parquet":
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, sep="\t" if path.suffix == ".tsv" else ",", index=False)
    return path


def run(root: Path, frame: pd.DataFrame, tmp_path: Path, name: str = "table.csv", **kw) -> pd.DataFrame:
    table = write_table(frame, tmp_path / name)
    return folder.prepare(root, table, tmp_path / "out" / "images.npy", RES, **kw)


def assert_no_output(tmp_path: Path) -> None:
    out = tmp_path / "out"
    left = sorted(p.name for p in out.iterdir()) if out.exists() else []
    assert left == [], f"partial output left behind: {left}"


def refused(root: Path, frame: pd.DataFrame, tmp_path: Path, match: str, **kw) -> None:
    """prepare raises one FolderError matching ``match`` (after the table's name) and writes nothing."""
    with pytest.raises(FolderError, match="(?s)" + re.escape(str(tmp_path / "table.csv")) + ".*" + match):
        run(root, frame, tmp_path, **kw)
    assert_no_output(tmp_path)


def index_of(root: Path, frame: pd.DataFrame, **kw) -> pd.DataFrame:
    index, _ = folder.folder_index(frame, root, table_path="t.csv", **kw)
    store.check_index(index)
    return index


# --- the happy path -------------------------------------------------------------------------

EXPECTED_COLUMNS = [
    "id",
    "split",
    "source",
    "Smiling",
    "Male",
    "age_band_20_29",
    "age_band_30_39",
    "age_band_60_",
    "Young",
]


@pytest.mark.parametrize("name", ["table.csv", "table.tsv", "table.parquet"])
def test_a_good_table_round_trips_to_the_index_and_the_images(image_root, tmp_path, name):
    frame = good_table() if name != "table.parquet" else typed(good_table())
    index = run(image_root, frame, tmp_path, name, categorical=["age_band"])
    assert list(index.columns) == EXPECTED_COLUMNS
    assert index["id"].tolist() == [p for p, *_ in IMAGES]
    assert index["split"].tolist() == good_table()["split"].tolist()
    assert (index["source"] == "folder").all()
    assert index["Smiling"].tolist() == [False, True, True, False, True, False, False, True, True]
    assert index["Male"].tolist() == [False, True, True, False, False, True, False, True, False]
    assert index["Young"].tolist() == [True, False, True, False, True, False, True, False, True]
    assert index["age_band_60_"].tolist() == [False, False, False, True, False, True, False, False, True]
    images = np.load(tmp_path / "out" / "images.npy")
    store.check_index(index, len(images))
    assert images.shape == (len(IMAGES), RES, RES, 3) and images.dtype == np.uint8
    for k, (path, *_, expected, _) in enumerate(IMAGES):
        tolerance = 4 if Path(path).suffix.lower() in LOSSY else 0
        np.testing.assert_allclose(images[k].reshape(-1, 3), [expected] * RES * RES, atol=tolerance, err_msg=path)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["images.npy"]


def test_returns_the_resolved_files_in_table_order_and_other_column_names(image_root):
    frame = good_table().rename(columns={"path": "file", "split": "fold"}).iloc[::-1]
    frame["file"] = "./" + frame["file"]  # normalised in the id
    index, files = folder.folder_index(
        frame, image_root, table_path="t.csv", path_column="file", split_column="fold", categorical=["age_band"]
    )
    assert index["id"].tolist() == [p for p, *_ in IMAGES][::-1]
    assert files == [image_root.resolve() / p for p, *_ in IMAGES][::-1]
    assert all(f.is_absolute() for f in files)


# --- encodings ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "values, expected",
    [
        (["0", "1", "1"], [False, True, True]),
        (["-1", "1", "-1"], [False, True, False]),
        (["TRUE", "false", "True"], [True, False, True]),
        ([" 1", "0 ", "1"], [True, False, True]),
        ([True, False, True], [True, False, True]),
        ([-1, 1, 1], [False, True, True]),
        ([0.0, 1.0, 0.0], [False, True, False]),
        (["1", "1", "1"], [True, True, True]),  # one value throughout: allowed
        (["-1", "-1", "-1"], [False, False, False]),
    ],
)
def test_binary_encodings_map_to_bool(tiny_root, values, expected):
    index = index_of(tiny_root, three_rows(Smiling=values))
    assert index["Smiling"].dtype == bool
    assert index["Smiling"].tolist() == expected


@pytest.fixture
def tiny_root(tmp_path) -> Path:
    """Three images, one per split (written, never decoded by the index checks)."""
    root = tmp_path / "root"
    for name in ("x.png", "y.jpg", "z.webp"):
        write_image(root / name, "RGB", (4, 4), (1, 2, 3))
    return root


def three_rows(**columns) -> pd.DataFrame:
    frame = pd.DataFrame({"path": ["x.png", "y.jpg", "z.webp"], "split": ["train", "valid", "test"]})
    return frame.assign(**{"Smiling": ["0", "1", "1"], **columns})


@pytest.mark.parametrize(
    "values, shown",
    [
        (["0", "2", "1"], "'?2'?"),
        (["1", "maybe", "0"], "'maybe'"),
        (["1", "", "0"], "(nan|'')"),  # an empty CSV cell
        (["0", "-1", "1"], "'?-1'?"),  # two encodings in one column
        (["true", "0", "false"], "'0'"),
    ],
)
def test_a_non_binary_column_is_refused_naming_row_column_and_value(tiny_root, tmp_path, values, shown):
    refused(tiny_root, three_rows(Smiling=values), tmp_path, f"column 'Smiling', row 2: value {shown}")


def test_a_missing_value_in_a_parquet_column_is_refused(tiny_root, tmp_path):
    table = write_table(three_rows(Smiling=[1.0, np.nan, 0.0]), tmp_path / "t.parquet")
    with pytest.raises(FolderError, match=r"t\.parquet: column 'Smiling', row 2: value nan is not binary"):
        folder.prepare(tiny_root, table, tmp_path / "out" / "images.npy", RES)
    assert_no_output(tmp_path)


def test_a_table_without_attributes_or_rows_is_refused(tiny_root, tmp_path):
    refused(tiny_root, three_rows().drop(columns="Smiling"), tmp_path, "no attribute columns")
    refused(tiny_root, three_rows().iloc[:0], tmp_path, "no rows")


# --- image paths ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "paths, match",
    [
        (["x.png", "", "z.webp"], r"row 2, column 'path': empty cell: no image path"),
        (
            ["x.png", "y.gif", "z.webp"],
            r"row 2, column 'path': value 'y.gif': not an image file name.*\.jpg \.jpeg \.png \.webp",
        ),
        (["x.png", "y.jpg", "z"], r"row 3, column 'path': value 'z': not an image file name"),
        (
            ["x.png", "/etc/y.jpg", "z.webp"],
            r"row 2, column 'path': value '/etc/y.jpg': the path leaves the image folder",
        ),
        (["x.png", "../root/y.jpg", "z.webp"], r"row 2, column 'path': value '../root/y.jpg': the path leaves"),
        (["x.png", "sub/../y.jpg", "z.webp"], r"row 2, column 'path': value 'sub/../y.jpg': the path leaves"),
        (["x.png", "y.jpg", "x.png"], r"rows 1 and 3, column 'path': value 'x.png': the same image is listed twice"),
        (
            ["x.png", "y.jpg", "./x.png"],
            r"rows 1 and 3, column 'path': value './x.png': the same image is listed twice",
        ),
        (["x.png", "y.jpg", "w.webp"], r"row 3, column 'path': value 'w.webp': no such image file"),
        (["x.png", "y.jpg", "Z.WEBP"], r"row 3, column 'path': value 'Z.WEBP': no such image file"),
        (["x.png", "y.jpg", "n" * 300 + ".png"], r"row 3, column 'path': value 'nnn.*: no such image file"),
    ],
)
def test_bad_image_paths_are_refused_naming_the_row(tiny_root, tmp_path, paths, match):
    refused(tiny_root, three_rows(path=paths), tmp_path, match)


def test_a_nul_character_in_a_path_is_refused(tiny_root):
    with pytest.raises(FolderError, match=r"t: row 2, column 'path': value 'y\\x00.jpg': the path holds a NUL"):
        folder.folder_index(three_rows(path=["x.png", "y\x00.jpg", "z.webp"]), tiny_root, table_path="t")


def test_a_missing_path_column_is_refused_listing_the_columns(tiny_root, tmp_path):
    frame = three_rows().rename(columns={"path": "file"})
    refused(tiny_root, frame, tmp_path, r"no column 'path' of image paths \(columns: \['file', 'split', 'Smiling'\]\)")


def test_a_directory_named_like_an_image_is_not_a_file(tiny_root, tmp_path):
    (tiny_root / "dir.png").mkdir()
    refused(tiny_root, three_rows(path=["x.png", "y.jpg", "dir.png"]), tmp_path, "value 'dir.png': no such image file")


def test_links_out_of_the_root_are_refused_and_links_inside_accepted(tiny_root, tmp_path):
    outside = tmp_path / "outside"
    write_image(outside / "secret.png", "RGB", (4, 4), (9, 9, 9))
    (tiny_root / "leak.png").symlink_to(outside / "secret.png")
    (tiny_root / "leakdir").symlink_to(outside, target_is_directory=True)
    (tiny_root / "alias.png").symlink_to(tiny_root / "x.png")
    for path in ("leak.png", "leakdir/secret.png"):
        refused(
            tiny_root,
            three_rows(path=["x.png", "y.jpg", path]),
            tmp_path,
            f"row 3, column 'path': value '{path}': a link to .*secret.png, outside .*root; refused",
        )
    index, files = folder.folder_index(three_rows(path=["alias.png", "y.jpg", "z.webp"]), tiny_root, table_path="t")
    assert index["id"].iloc[0] == "alias.png" and files[0] == (tiny_root / "x.png").resolve()


def test_a_root_that_is_not_a_directory_is_refused(tmp_path):
    with pytest.raises(FolderError, match=r"image folder .*nowhere.* is not a directory; set datasets.<name>.root"):
        folder.folder_index(three_rows(), tmp_path / "nowhere", table_path="t")


def test_read_table_refuses_other_suffixes_and_missing_files(tmp_path):
    (tmp_path / "t.xlsx").write_text("x")
    with pytest.raises(FolderError, match=r"t\.xlsx: a table must be \.csv, \.tsv, \.parquet, \.pq"):
        folder.read_table(tmp_path / "t.xlsx")
    with pytest.raises(FolderError, match=r"absent\.csv: no such file"):
        folder.read_table(tmp_path / "absent.csv")


# --- categorical columns --------------------------------------------------------------------


def test_level_column_names():
    assert folder.level_column("age_band", "30-39") == "age_band_30_39"
    assert folder.level_column("age_band", "60+") == "age_band_60_"
    assert folder.level_column("skin", 3) == "skin_3"
    assert folder.level_column("region", "Île de France") == "region__le_de_France"


def test_categorical_levels_are_sorted_text_without_empty_cells():
    frame = pd.DataFrame({"band": ["60+", " 20-29", "30-39", "20-29", ""]})
    assert folder.categorical_levels(frame, "band") == ["20-29", "30-39", "60+"]
    assert folder.categorical_levels(pd.DataFrame({"skin": [3, 1, 2, 1]}), "skin") == ["1", "2", "3"]


def test_a_categorical_column_becomes_one_vs_rest_columns_in_its_place(tiny_root):
    frame = three_rows(age_band=["30-39", "60+", "30-39"], Male=["1", "0", "0"])
    index = index_of(tiny_root, frame, categorical=["age_band"])
    assert list(index.columns) == ["id", "split", "source", "Smiling", "age_band_30_39", "age_band_60_", "Male"]
    assert index["age_band_30_39"].tolist() == [True, False, True]
    assert index["age_band_60_"].tolist() == [False, True, False]
    skin = index_of(tiny_root, three_rows(skin=[2, 1, 2]), categorical=["skin"])
    assert skin[["skin_1", "skin_2"]].to_numpy().tolist() == [[False, True], [True, False], [False, True]]
    single = index_of(tiny_root, three_rows(site=["A", "A", "A"]), categorical=["site"])
    assert single["site_A"].all()


@pytest.mark.parametrize(
    "columns, match",
    [
        (
            {"age_band": ["30-39", "30_39", "60+"]},
            r"level '30-39' of column 'age_band' and level '30_39' of column 'age_band' both become the column 'age_band_30_39'; rename one",
        ),
        (
            {"age_band_60_": ["1", "0", "0"], "age_band": ["60+", "20-29", "60+"]},
            r"column 'age_band_60_' and level '60\+' of column 'age_band' both become the column 'age_band_60_'",
        ),
        ({"age_band": ["30-39", "", "60+"]}, r"row 2, column 'age_band': empty cell: no level"),
        ({"id": ["1", "0", "1"]}, r"column 'id' would be the attribute 'id', a name the index keeps"),
    ],
)
def test_categorical_and_name_clashes_are_refused(tiny_root, tmp_path, columns, match):
    refused(tiny_root, three_rows(**columns), tmp_path, match, categorical=[c for c in columns if c == "age_band"])


def test_an_unknown_categorical_name_lists_the_attribute_columns(tiny_root, tmp_path):
    match = r"categorical column\(s\) \['age'\] are not attribute columns.*\['Smiling', 'age_band'\]"
    refused(tiny_root, three_rows(age_band=["a", "b", "c"]), tmp_path, match, categorical=["age"])
    refused(tiny_root, three_rows(), tmp_path, r"\['path'\] are not attribute columns", categorical=["path"])


def test_a_missing_level_in_a_parquet_categorical_is_refused(tiny_root):
    with pytest.raises(FolderError, match=r"row 3, column 'band': empty cell: no level in a categorical column"):
        folder.folder_index(three_rows(band=["a", "b", None]), tiny_root, table_path="t", categorical=["band"])


# --- splits ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "split, match",
    [
        (
            ["train", "val", "test"],
            r"row 2, column 'split': value 'val': the split must be exactly one of train, valid, test",
        ),
        (["Train", "valid", "test"], r"row 1, column 'split': value 'Train'"),
        (["train", "valid", ""], r"row 3, column 'split': empty cell: the split must be"),
        (
            ["train", "valid", "train"],
            r"column 'split': no image in split\(s\) \['test'\]; every split needs at least one: give some rows",
        ),
    ],
)
def test_bad_split_columns_are_refused(tiny_root, tmp_path, split, match):
    refused(tiny_root, three_rows(split=split), tmp_path, match)


@pytest.fixture
def twenty(tmp_path) -> tuple[Path, pd.DataFrame]:
    """20 image files without a split column (empty files: the index checks only that they exist)."""
    root = tmp_path / "root"
    root.mkdir()
    names = [f"{k:02d}.png" for k in range(20)]
    for name in names:
        (root / name).touch()
    return root, pd.DataFrame({"path": names, "Smiling": ["0", "1"] * 10})


def test_a_drawn_split_has_exact_counts_and_depends_only_on_the_seed(twenty):
    root, frame = twenty
    first, again, other = (index_of(root, frame, split_seed=seed)["split"] for seed in (0, 0, 1))
    assert first.value_counts().to_dict() == {"train": 16, "valid": 2, "test": 2}
    assert other.value_counts().to_dict() == {"train": 16, "valid": 2, "test": 2}
    assert first.tolist() == again.tolist()
    assert first.tolist() != other.tolist()
    halves = index_of(root, frame, split_fractions=(0.5, 0.25, 0.25))["split"]
    assert halves.value_counts().to_dict() == {"train": 10, "valid": 5, "test": 5}


def test_split_counts_round_the_cumulative_shares_half_up():
    assert folder.split_counts(25, (0.8, 0.1, 0.1)).tolist() == [20, 3, 2]  # 22.5 -> 23
    assert folder.split_counts(10, (0.7, 0.2, 0.1)).tolist() == [7, 2, 1]
    assert folder.split_counts(3, (1 / 3, 1 / 3, 1 / 3)).tolist() == [1, 1, 1]
    for bad in [(0.5, 0.5, 0.5), (0.5, 0.5), (1.2, -0.1, -0.1)]:
        with pytest.raises(FolderError, match=r"split_fractions.*three shares \(train, valid, test\) summing to 1"):
            folder.split_counts(10, bad)


def test_a_drawn_split_left_empty_is_refused(twenty):
    root, frame = twenty
    with pytest.raises(
        FolderError, match=r"7 images with datasets.<name>.split_fractions.*no image in split\(s\) \['valid'\]"
    ):
        folder.folder_index(frame.iloc[:7], root, table_path="t")  # 0.9 * 7 = 6.3 rounds to 6 = round(0.8 * 7)


# --- unreadable images ----------------------------------------------------------------------


@pytest.fixture
def damaged(tmp_path) -> tuple[Path, pd.DataFrame]:
    """Four good images and two bad ones: garbage bytes, and a PNG cut in half."""
    root = tmp_path / "root"
    for k, name in enumerate(["g0.png", "g1.png", "g2.png", "g3.png"]):
        write_image(root / name, "RGB", (20, 20), (10 * k, 0, 0))
    (root / "garbage.jpg").write_bytes(b"not an image at all")
    write_image(root / "whole.png", "RGB", (64, 64), (1, 2, 3), compress_level=0)
    data = (root / "whole.png").read_bytes()
    (root / "cut.png").write_bytes(data[: len(data) // 2])
    frame = pd.DataFrame(
        {
            "path": ["g0.png", "garbage.jpg", "g1.png", "g2.png", "cut.png", "g3.png"],
            "split": ["train", "train", "valid", "test", "train", "train"],
            "Smiling": ["1", "0", "1", "0", "1", "0"],
        }
    )
    return root, frame


def test_unreadable_images_stop_the_run_listing_them(damaged, tmp_path):
    root, frame = damaged
    match = r"2 unreadable image\(s\):\n  row 2: .*garbage\.jpg.*\n  row 5: .*cut\.png.*skip_bad_images: true to drop and report them"
    refused(root, frame, tmp_path, match)


def test_a_refusal_lists_ten_unreadable_images(damaged, tmp_path):
    root, frame = damaged
    for k in range(12):
        (root / f"bad{k}.jpg").write_bytes(b"junk")
    more = pd.DataFrame({"path": [f"bad{k}.jpg" for k in range(12)], "split": "train", "Smiling": "0"})
    frame = pd.concat([frame, more], ignore_index=True)
    with pytest.raises(FolderError, match=r"14 unreadable image\(s\)") as caught:
        run(root, frame, tmp_path)
    assert str(caught.value).count("\n  row ") == 10 and "... and 4 more" in str(caught.value)
    assert_no_output(tmp_path)


def test_skip_bad_images_drops_and_reports_them(damaged, tmp_path, capsys):
    root, frame = damaged
    index = run(root, frame, tmp_path, skip_bad_images=True)
    assert index["id"].tolist() == ["g0.png", "g1.png", "g2.png", "g3.png"]
    assert index["split"].tolist() == ["train", "valid", "test", "train"]
    images = np.load(tmp_path / "out" / "images.npy")
    store.check_index(index, len(images))
    assert images.shape == (4, RES, RES, 3)
    np.testing.assert_array_equal(images[:, 0, 0], [[0, 0, 0], [10, 0, 0], [20, 0, 0], [30, 0, 0]])
    err = capsys.readouterr().err
    assert "dropped 2 unreadable image(s)" in err and "row 2: " in err and "garbage.jpg" in err and "cut.png" in err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["images.npy"]


def test_skipping_the_only_image_of_a_split_is_refused(damaged, tmp_path):
    root, frame = damaged
    frame = frame.assign(path=frame["path"].replace({"g1.png": "garbage.jpg", "garbage.jpg": "g1.png"}))
    refused(
        root,
        frame,
        tmp_path,
        r"after dropping 2 unreadable image\(s\): no image in split\(s\) \['valid'\]",
        skip_bad_images=True,
    )
