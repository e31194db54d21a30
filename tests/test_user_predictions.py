"""The audit-only source: labels table, manifest and prediction files checked and converted."""

import numpy as np
import pandas as pd
import pytest

from prunebias import jobs
from prunebias.data import store
from prunebias.data.audit_example import write_audit_example
from prunebias.data.store import attribute_names
from prunebias.data.user_predictions import (
    PredictionsSourceError,
    check_prediction_columns,
    from_arrays,
    labels_index,
    prediction_frame,
    read_manifest,
    run_path,
)
from prunebias.io import read_predictions

ATTRIBUTES = ["Smiling", "Male"]
MODELS = [("net", "dense", 0.0, 1), ("net", "mag", 0.8, 1)]


@pytest.fixture
def files(tmp_path):
    return write_audit_example(
        tmp_path, attributes=ATTRIBUTES, sizes={"train": 20, "valid": 10, "test": 12}, models=MODELS, fmt="csv"
    )


def test_labels_index_follows_the_store_contract(files):
    index = labels_index(files["labels"])
    store.check_index(index)
    assert list(index.columns) == ["id", "split", "source", *ATTRIBUTES]
    assert index["split"].value_counts().to_dict() == {"train": 20, "test": 12, "valid": 10}
    assert attribute_names(labels_index(files["labels"])) == ATTRIBUTES


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda t: t.drop(columns="split"), r"needs columns \['id', 'split'\]; missing \['split'\]"),
        (lambda t: t.assign(split=t["split"].replace({"valid": "val"})), r"row 21: split 'val'"),
        (lambda t: t.assign(id=["a"] + list(t["id"][1:2]) + ["a"] + list(t["id"][3:])), r"id 'a' appears twice"),
        (lambda t: t[t["split"] != "train"], r"no rows in split\(s\) \['train'\]"),
        (lambda t: t.assign(Male=[2] + list(t["Male"][1:])), r"Male"),
    ],
)
def test_bad_labels_are_refused_naming_row_and_value(files, change, message):
    change(pd.read_csv(files["labels"])).to_csv(files["labels"], index=False)
    with pytest.raises(ValueError, match=message):
        labels_index(files["labels"])


def test_manifest_resolves_files_and_run_paths(files):
    manifest = read_manifest(files["manifest"])
    assert list(manifest["run"]) == ["net/dense/seed1", "net/mag/s0.8/seed1"]
    assert all(pd.Series(manifest["test"]).map(lambda p: p.startswith(str(files["manifest"].parent))))
    assert run_path("a", "m", 0.25, 3) == "a/m/s0.25/seed3"


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda m: m.assign(sparsity=[0.0, 1.0]), r"row 2: sparsity 1.0"),
        (lambda m: m.assign(sparsity=[0.1, 0.8]), r"row 1: a dense model has sparsity 0"),
        (lambda m: m.assign(seed=[1, 1.5]), r"row 2: seed 1.5"),
        (lambda m: m.assign(extra=1), r"unknown manifest column\(s\) \['extra'\]"),
        (lambda m: m.assign(valid=["/etc/passwd", "x"]), r"row 1: valid: '/etc/passwd' leaves the manifest's folder"),
        (lambda m: m.iloc[:0], r"lists no models"),
    ],
)
def test_bad_manifests_are_refused(files, change, message):
    change(pd.read_csv(files["manifest"])).to_csv(files["manifest"], index=False)
    with pytest.raises(PredictionsSourceError, match=message):
        read_manifest(files["manifest"])


def test_manifest_refuses_a_link_out_of_its_folder(files, tmp_path_factory):
    outside = tmp_path_factory.mktemp("outside") / "p.csv"
    outside.write_text("id\n")
    link = files["manifest"].parent / "link.csv"
    link.symlink_to(outside)
    manifest = pd.read_csv(files["manifest"]).assign(valid=["link.csv", "link.csv"])
    manifest.to_csv(files["manifest"], index=False)
    with pytest.raises(PredictionsSourceError, match="links out of the manifest's folder"):
        read_manifest(files["manifest"])


def test_prediction_frame_reorders_rows_and_columns_and_converts_probabilities():
    ids = pd.Series(["a", "b", "c"])
    user = pd.DataFrame({"Male": [0.5, 0.9, 0.1], "id": ["c", "a", "b"], "Smiling": [1.0, 0.0, 0.25]})
    out = prediction_frame(user, ids, ATTRIBUTES, "probabilities", path="p.csv")
    assert list(out.columns) == ["id", *ATTRIBUTES] and list(out["id"]) == ["a", "b", "c"]
    assert out["Male"].dtype == np.float32
    np.testing.assert_allclose(out["Male"], [np.log(9), np.log(1 / 9), 0.0], atol=1e-5)
    assert np.isfinite(out["Smiling"]).all()  # 0 and 1 are clipped, not infinite
    logits = prediction_frame(user, ids, ATTRIBUTES, "logits", path="p.csv")
    np.testing.assert_array_equal(logits["Smiling"], np.float32([0.0, 0.25, 1.0]))


@pytest.mark.parametrize(
    "user, scores, message",
    [
        (
            pd.DataFrame({"id": ["a", "b"], "Smiling": [0.0, 1], "Male": [0.0, 1]}),
            "logits",
            r"1 missing \(e.g. \['c'\]",
        ),
        (pd.DataFrame({"id": list("abcd"), "Smiling": [0.0] * 4, "Male": [0.0] * 4}), "logits", "1 not in the split"),
        (pd.DataFrame({"id": list("abc"), "Smiling": [0.0] * 3}), "logits", r"missing \['Male'\]"),
        (pd.DataFrame({"id": list("abc"), "Smiling": [0.0, np.nan, 0], "Male": [0.0] * 3}), "logits", "id 'b'"),
        (
            pd.DataFrame({"id": list("abc"), "Smiling": [0.0, 1.5, 0], "Male": [0.0] * 3}),
            "probabilities",
            "1.5 is not a",
        ),
        (pd.DataFrame({"id": list("aab"), "Smiling": [0.0] * 3, "Male": [0.0] * 3}), "logits", "'a' appears more"),
        (pd.DataFrame({"id": list("abc"), "Smiling": ["x"] * 3, "Male": [0.0] * 3}), "logits", "must be numbers"),
    ],
)
def test_bad_prediction_files_are_refused(user, scores, message):
    with pytest.raises(PredictionsSourceError, match=message):
        prediction_frame(user, pd.Series(list("abc")), ATTRIBUTES, scores, path="p.csv")


def test_import_job_writes_the_prediction_contract_and_nothing_on_error(files, tmp_path):
    index_path = tmp_path / "index.parquet"
    jobs.prepare_labels({"source": "predictions", "labels": str(files["labels"])}, index_path)
    row = read_manifest(files["manifest"]).iloc[1]
    run = {"dataset": "d", "task": "joint", "arch": "net", "method": "mag", "target_sparsity": 0.8, "seed": 1}
    out = {s: tmp_path / f"{s}.parquet" for s in ("valid", "test")}
    jobs.import_predictions(index_path, {"valid": row["valid"], "test": row["test"]}, run, "logits", out)
    frame, meta = read_predictions(out["test"])
    assert len(frame) == 12 and meta["measured_sparsity"] == 0.8 and meta["attributes"] == ATTRIBUTES

    for path in out.values():
        path.unlink()
    with pytest.raises(PredictionsSourceError):
        jobs.import_predictions(index_path, {"valid": row["valid"], "test": row["valid"]}, run, "logits", out)
    assert not any(p.exists() for p in out.values())


def test_from_arrays_checks_shapes():
    frame = from_arrays(["a", "b"], np.zeros((2, 2)), ATTRIBUTES)
    assert list(frame.columns) == ["id", *ATTRIBUTES]
    with pytest.raises(PredictionsSourceError, match=r"shape \(2, 3\)"):
        from_arrays(["a", "b"], np.zeros((2, 3)), ATTRIBUTES)


def test_predictions_from_torch_writes_a_file_the_audit_reads(tmp_path):
    import torch

    from prunebias.cli import main

    ids, scores = ["a", "b", "c"], torch.tensor([[0.5, -1.0], [2.0, 0.0], [-3.0, 1.0]])
    torch.save({"ids": ids, "scores": scores, "attributes": ATTRIBUTES}, tmp_path / "eval.pt")
    assert (
        main(["predictions-from-torch", "--input", str(tmp_path / "eval.pt"), "--out", str(tmp_path / "t.parquet")])
        == 0
    )
    written = pd.read_parquet(tmp_path / "t.parquet")
    out = prediction_frame(written, pd.Series(ids), ATTRIBUTES, "logits", path="t.parquet")
    np.testing.assert_array_equal(out[ATTRIBUTES].to_numpy(), scores.numpy())


def test_categorical_label_columns_become_one_vs_rest_identities(files):
    table = pd.read_csv(files["labels"])
    table["skin"] = ["I-II", "III-IV", "V-VI"] * (len(table) // 3)
    table.to_csv(files["labels"], index=False)
    assert attribute_names(labels_index(files["labels"], ["skin"])) == [
        *ATTRIBUTES,
        "skin_I_II",
        "skin_III_IV",
        "skin_V_VI",
    ]
    index = labels_index(files["labels"], ["skin"])
    np.testing.assert_array_equal(index["skin_III_IV"], table["skin"] == "III-IV")
    with pytest.raises(ValueError, match=r"column 'skin'"):  # not binary without `categorical`
        labels_index(files["labels"])


def test_prediction_columns_are_checked_from_the_header(files, tmp_path):
    row = read_manifest(files["manifest"]).iloc[0]
    check_prediction_columns(row["test"], ATTRIBUTES)  # a good file passes
    pd.DataFrame({"id": ["a"], "Smiling": [0.0], "Other": [1.0]}).to_parquet(tmp_path / "p.parquet")
    with pytest.raises(PredictionsSourceError, match=r"p.parquet: .*missing \['Male'\], unknown \['Other'\]"):
        check_prediction_columns(tmp_path / "p.parquet", ATTRIBUTES)
    (tmp_path / "bad.parquet").write_bytes(b"junk")
    with pytest.raises(PredictionsSourceError, match="bad.parquet: not a readable table"):
        check_prediction_columns(tmp_path / "bad.parquet", ATTRIBUTES)
