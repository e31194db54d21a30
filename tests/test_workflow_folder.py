"""Your own images and your own dense model through the real Snakefile: a folder of JPEG/PNG/WebP
files with a CSV table (a categorical identity), and a torchvision ResNet18 state dict as the dense
model that GMP-PT prunes; plus the bad inputs, each refused before any job writes a file."""

import copy

import numpy as np
import pandas as pd
import pytest
import torch
import torchvision
from PIL import Image

from prunebias.io import read_predictions
from prunebias.training.checkpoint import load_checkpoint
from workflow_utils import TINY_CONFIG, assert_fails_before_any_job, planned_jobs, snakemake, write_config

pytestmark = pytest.mark.slow

# The user's model's outputs, in its order, with one the table lacks (dropped on import).
OUTPUTS = ["Young", "age_band_60_", "Eyeglasses", "Smiling", "age_band_20_29", "Male", "age_band_30_39"]
ATTRIBUTES = ["Smiling", "Male", "Eyeglasses", "age_band_20_29", "age_band_30_39", "age_band_60_"]


def write_folder(root, n=90, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        suffix = (".jpg", ".png", ".webp")[i % 3]
        path = f"{'ab'[i % 2]}/img{i:03d}{suffix}"
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        size = (60 + 7 * (i % 5), 80 + 3 * (i % 4))
        Image.fromarray(rng.integers(0, 255, (*size[::-1], 3), dtype=np.uint8)).save(root / path)
        rows.append(
            {
                "path": path,
                "split": ("train", "train", "valid", "test")[i % 4],
                "Smiling": int(rng.random() < 0.5),
                "Male": (-1, 1)[int(rng.random() < 0.5)],
                "Eyeglasses": bool(rng.random() < 0.3),
                "age_band": ("20-29", "30-39", "60+")[i % 3],
            }
        )
    table = root / "faces.csv"
    pd.DataFrame(rows).to_csv(table, index=False)
    return table


def folder_config(root, table, **dataset):
    config = copy.deepcopy(TINY_CONFIG)
    config["datasets"] = {
        "faces": {
            "source": "folder",
            "root": str(root),
            "table": str(table),
            "resolution": 96,
            "categorical": ["age_band"],
            **dataset,
        }
    }
    config["grid"] = {
        "datasets": ["faces"],
        "archs": ["resnet18"],
        "methods": ["gmp_pt"],
        "sparsities": [0.5],
        "seeds": [3],
    }
    config["identities"] = ["Male", "age_band_60_"]
    config["train"] = {**config["train"], "epochs": 1, "batch_size": 32}
    config["prune"]["methods"]["gmp_pt"]["epochs"] = 2
    config["analysis"] = {"bootstrap": 10, "ba_min_positives": 1}
    return config


@pytest.fixture
def user_model(tmp_path):
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=len(OUTPUTS))
    path = tmp_path / "models" / "resnet18_seed3.pt"
    path.parent.mkdir()
    torch.save(model.state_dict(), path)
    return path


def test_folder_data_and_user_dense_model_run_end_to_end(tmp_path, user_model):
    root = tmp_path / "images"
    table = write_folder(root)
    config = folder_config(root, table)
    config["datasets"]["faces"]["dense_models"] = {
        "resnet18": {"file": str(user_model).replace("seed3", "seed{seed}"), "outputs": OUTPUTS}
    }
    work = tmp_path / "work"
    work.mkdir()
    write_config(work, config)
    jobs = planned_jobs(work)
    assert jobs["import_dense"] == 1 and "train_dense" not in jobs and jobs["prune"] == 1
    snakemake(work, "--cores", "2")

    res = work / "results"
    index = pd.read_parquet(res / "data/faces/index.parquet")
    assert list(index.columns[3:]) == ATTRIBUTES
    assert index["age_band_60_"].sum() == 30 and index["split"].value_counts()["test"] == 22
    dense = load_checkpoint(res / "models/faces/joint/resnet18/dense/seed3/model.pt", "resnet18")
    user = torch.load(user_model, weights_only=True)
    # the user's fc rows reordered to the data set's attributes, by name
    assert dense["attributes"] == ATTRIBUTES
    order = [OUTPUTS.index(a) for a in ATTRIBUTES]
    torch.testing.assert_close(dense["state_dict"]["fc.weight"], user["fc.weight"][order])
    _, meta = read_predictions(res / "predictions/faces/joint/resnet18/gmp_pt/s0.5/seed3/test.parquet")
    assert meta["measured_sparsity"] == pytest.approx(0.5, abs=1e-4)
    summary = pd.read_parquet(res / "tables/summary.parquet")
    assert {"Male", "age_band_60_"} <= set(summary["identity"])
    assert (res / "report.html").exists() and planned_jobs(work) == {}


def test_user_dense_model_with_wrong_outputs_fails_in_its_job_and_writes_nothing(tmp_path, user_model):
    root = tmp_path / "images"
    config = folder_config(root, write_folder(root, n=40))
    config["datasets"]["faces"]["dense_models"] = {"resnet18": {"file": str(user_model), "outputs": ["a", "b", "c"]}}
    work = tmp_path / "work"
    work.mkdir()
    write_config(work, config)
    proc = snakemake(work, "--cores", "1", "--until", "import_dense", check=False)
    assert proc.returncode != 0
    log = (work / "results/logs/import_dense/faces/joint/resnet18/seed3.log").read_text()
    assert "has 7 outputs" in log or "7" in log
    assert not (work / "results/models/faces/joint/resnet18/dense/seed3/model.pt").exists()


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda t: t.assign(path=["../outside.jpg"] + list(t["path"][1:])), "outside.jpg"),
        (lambda t: t.assign(path=[t["path"][1]] + list(t["path"][1:])), "rows 1 and 2"),
        (lambda t: t.assign(Smiling=[3] + list(t["Smiling"][1:])), "column 'Smiling', row 1"),
        (lambda t: t.assign(split=["val"] + list(t["split"][1:])), "'val'"),
        (lambda t: t.assign(path=["a/missing.jpg"] + list(t["path"][1:])), "missing.jpg"),
    ],
)
def test_bad_folder_tables_fail_before_any_job(tmp_path, change, message):
    root = tmp_path / "images"
    table = write_folder(root, n=12)
    change(pd.read_csv(table)).to_csv(table, index=False)
    work = tmp_path / "work"
    work.mkdir()
    assert_fails_before_any_job(work, folder_config(root, table), message)


def test_a_split_without_positives_of_an_attribute_fails_before_any_job(tmp_path):
    root = tmp_path / "images"
    table = write_folder(root)
    frame = pd.read_csv(table)
    frame.loc[frame["split"] == "test", "Eyeglasses"] = False
    frame.to_csv(table, index=False)
    work = tmp_path / "work"
    work.mkdir()
    message = "faces.csv: attribute 'Eyeglasses' has no positives in split 'test' (22 rows)"
    assert_fails_before_any_job(work, folder_config(root, table), message)


def test_identity_missing_from_folder_table_and_missing_model_file_fail_before_any_job(tmp_path):
    root = tmp_path / "images"
    config = folder_config(root, write_folder(root))
    config["identities"] = ["Male", "age_band"]
    work = tmp_path / "work"
    work.mkdir()
    assert_fails_before_any_job(work, config, "identities: ['age_band'] are not attributes of datasets.faces")
    config = folder_config(root, root / "faces.csv")
    config["datasets"]["faces"]["dense_models"] = {"resnet18": {"file": "nowhere_{seed}.pt", "outputs": OUTPUTS}}
    assert_fails_before_any_job(work, config, "dense_models.resnet18.file: nowhere_3.pt does not exist (seed 3)")
