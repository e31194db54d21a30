import copy
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from prunebias.config import train_spec
from prunebias.data.synthetic import ATTRIBUTES, CELEBA_ORDER
from prunebias.tasks import (
    Task,
    apply_trigger,
    check_experiments,
    choose_triggered,
    parse_task,
    task_attributes,
    task_grid,
    task_name,
    task_spec,
    task_train_spec,
    tasks_from_config,
    triggered_path,
)

ROOT = Path(__file__).resolve().parents[1]
KNOWN = {"synthetic": ATTRIBUTES, "celeba": CELEBA_ORDER}


@pytest.fixture
def config():
    return yaml.safe_load((ROOT / "config.yaml").read_text())


# ------------------------------------------------------------------------- names
@pytest.mark.parametrize(
    "name, task",
    [
        ("joint", Task("joint")),
        ("single-Blond_Hair", Task("single", "Blond_Hair")),
        ("single-5_o_Clock_Shadow", Task("single", "5_o_Clock_Shadow")),
        ("backdoor-Blond_Hair-yellow_square-5-95", Task("backdoor", "Blond_Hair", "yellow_square", (0.05, 0.95))),
        ("backdoor-Big_Nose-grayscale-35-65", Task("backdoor", "Big_Nose", "grayscale", (0.35, 0.65))),
        ("backdoor-Smiling-grayscale-12p5-100", Task("backdoor", "Smiling", "grayscale", (0.125, 1.0))),
        ("backdoor-Smiling-grayscale-0-0p25", Task("backdoor", "Smiling", "grayscale", (0.0, 0.0025))),
    ],
)
def test_name_round_trip(name, task):
    assert task_name(task) == name
    assert parse_task(name) == task
    assert task_name(parse_task(name)) == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        "Joint",
        "single-",
        "single-Blond-Hair",
        "backdoor-Blond_Hair-red_square-5-95",
        "backdoor-Blond_Hair-grayscale-5",
        "backdoor-Blond_Hair-grayscale-5.5-95",
        "backdoor-Blond_Hair-grayscale-5-95-1",
    ],
)
def test_malformed_names_are_rejected(name):
    with pytest.raises(ValueError, match="not a task name"):
        parse_task(name)


def test_invalid_tasks_are_rejected():
    with pytest.raises(ValueError, match="kind"):
        Task("double", "A")
    with pytest.raises(ValueError, match="attribute"):
        Task("single", "Blond-Hair")
    with pytest.raises(ValueError, match="trigger"):
        Task("backdoor", "A", "red", (0.1, 0.9))
    with pytest.raises(ValueError, match="shares in"):
        Task("backdoor", "A", "grayscale", (0.1, 1.5))
    with pytest.raises(ValueError, match="too many decimals"):
        task_name(Task("backdoor", "A", "grayscale", (1 / 3, 0.5)))


# ------------------------------------------------------------------------- triggers
def test_grayscale_is_601_luma_in_three_channels():
    pixels = np.array([[[[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255], [10, 20, 30], [0, 0, 0]]]], np.uint8)
    out = apply_trigger(pixels, "grayscale")
    # 0.299·255 = 76.2; 0.587·255 = 149.7; 0.114·255 = 29.1; 2.99 + 11.74 + 3.42 = 18.15
    assert out.dtype == np.uint8 and out.shape == pixels.shape
    assert out[0, 0, :, 0].tolist() == [76, 150, 29, 255, 18, 0]
    assert (out == out[..., :1]).all()


def test_trigger_input_checks():
    with pytest.raises(ValueError, match="uint8"):
        apply_trigger(np.zeros((1, 8, 8, 3), np.float32), "grayscale")
    with pytest.raises(ValueError, match="uint8"):
        apply_trigger(np.zeros((8, 8, 3), np.uint8), "grayscale")
    with pytest.raises(ValueError, match="trigger must be one of"):
        apply_trigger(np.zeros((1, 8, 8, 3), np.uint8), "red_square")
    with pytest.raises(ValueError, match="model input"):
        apply_trigger(np.zeros((1, 8, 8, 3), np.uint8), "yellow_square")


# ------------------------------------------------------------------------- triggered samples
def _index(counts):
    """An index with the given (negatives, positives) per split, classes interleaved."""
    frames = []
    for split, (neg, pos) in counts.items():
        label = np.r_[np.zeros(neg, bool), np.ones(pos, bool)]
        label = label[np.random.default_rng(len(frames)).permutation(label.size)]
        frames.append(pd.DataFrame({"split": split, "Smiling": label}))
    index = pd.concat(frames, ignore_index=True)
    index.insert(0, "id", [f"{i:05d}.jpg" for i in range(len(index))])
    return index


COUNTS = {"train": (200, 100), "valid": (50, 30), "test": (41, 21)}
FRACTIONS = {"train": (0.05, 0.95), "valid": (0.5, 0.5), "test": (0.5, 0.5)}


def _counts(index, ids):
    chosen = index[index["id"].isin(ids)]
    return chosen.groupby(["split", "Smiling"]).size().to_dict()


def test_triggered_counts_are_exact_per_split_and_class():
    index = _index(COUNTS)
    ids = choose_triggered(index, "Smiling", FRACTIONS, seed=0)
    # round half up: 0.05·200 = 10, 0.95·100 = 95; 25, 15; 20.5 -> 21, 10.5 -> 11
    assert _counts(index, ids) == {
        ("train", False): 10,
        ("train", True): 95,
        ("valid", False): 25,
        ("valid", True): 15,
        ("test", False): 21,
        ("test", True): 11,
    }
    assert len(set(ids)) == len(ids)
    assert list(ids) == [i for i in index["id"] if i in set(ids)]  # index order


def test_weak_trigger_counts():
    index = _index(COUNTS)
    ids = choose_triggered(index, "Smiling", {"train": (0.35, 0.65)}, seed=0)
    assert _counts(index, ids) == {("train", False): 70, ("train", True): 65}


def test_triggered_ids_do_not_depend_on_training_seed_or_global_rng(config):
    index = _index(COUNTS)
    first = choose_triggered(index, "Smiling", FRACTIONS, seed=0)
    np.random.seed(123)
    torch.manual_seed(123)
    assert (choose_triggered(index, "Smiling", FRACTIONS, seed=0) == first).all()
    # The job's settings carry the backdoor seed, never a training seed.
    config["experiments"] = {
        "backdoor": {
            "enabled": True,
            "seed": 4,
            "items": [{"attributes": ["Smiling"], "triggers": ["grayscale"], "train_fractions": [0.05, 0.95]}],
        }
    }
    name = "backdoor-Smiling-grayscale-5-95"
    spec = task_spec(config, name)
    other = copy.deepcopy(config)
    other["grid"]["seeds"] = [1, 2, 3]
    assert task_spec(other, name) == spec and spec["seed"] == 4


def test_another_backdoor_seed_gives_other_ids():
    index = _index(COUNTS)
    a = choose_triggered(index, "Smiling", FRACTIONS, seed=0)
    b = choose_triggered(index, "Smiling", FRACTIONS, seed=1)
    assert set(a) != set(b)
    assert _counts(index, a) == _counts(index, b)


def test_train_fractions_leave_evaluation_ids_alone_and_nest():
    index = _index(COUNTS)
    strong = set(choose_triggered(index, "Smiling", FRACTIONS, seed=0))
    weak = set(choose_triggered(index, "Smiling", {**FRACTIONS, "train": (0.35, 0.65)}, seed=0))
    evaluation = set(index.loc[index["split"] != "train", "id"])
    assert strong & evaluation == weak & evaluation
    positives = set(index.loc[(index["split"] == "train") & index["Smiling"], "id"])
    assert weak & positives <= strong & positives  # 65 % of positives within the 95 %


def test_choose_triggered_checks_inputs():
    index = _index(COUNTS)
    with pytest.raises(ValueError, match="columns"):
        choose_triggered(index, "Blond_Hair", FRACTIONS, seed=0)
    with pytest.raises(ValueError, match="unknown splits"):
        choose_triggered(index, "Smiling", {"training": (0.1, 0.9)}, seed=0)
    with pytest.raises(ValueError, match="shares in"):
        choose_triggered(index, "Smiling", {"train": (0.1, 1.9)}, seed=0)
    with pytest.raises(ValueError, match="seed"):
        choose_triggered(index, "Smiling", FRACTIONS, seed=-1)


def test_triggered_path():
    assert triggered_path("results/data/synth", "backdoor-A-grayscale-5-95") == Path(
        "results/data/synth/tasks/backdoor-A-grayscale-5-95.parquet"
    )


# ------------------------------------------------------------------------- config
def _experiments(config):
    config["experiments"] = {
        "single_label": {
            "enabled": True,
            "attributes": ["Blond_Hair", "Smiling"],
            "epochs": 5,
            "grid": {"sparsities": [0.9], "seeds": [23]},
        },
        "backdoor": {
            "enabled": True,
            "seed": 3,
            "items": [
                {
                    "attributes": ["Big_Nose"],
                    "triggers": ["grayscale", "yellow_square"],
                    "train_fractions": [0.35, 0.65],
                },
                {"attributes": ["Big_Nose"], "triggers": ["grayscale"], "train_fractions": [0.35, 0.65]},
            ],
        },
    }
    return config


def test_tasks_from_config(config):
    config.pop("experiments", None)
    assert tasks_from_config(config) == ["joint"]
    assert tasks_from_config(_experiments(config)) == [
        "joint",
        "single-Blond_Hair",
        "single-Smiling",
        "backdoor-Big_Nose-grayscale-35-65",
        "backdoor-Big_Nose-yellow_square-35-65",
    ]
    config["experiments"]["joint"] = False
    config["experiments"]["backdoor"]["enabled"] = False
    assert tasks_from_config(config) == ["single-Blond_Hair", "single-Smiling"]


def test_task_grids_and_specs(config):
    config = _experiments(config)
    assert task_grid(config, "joint") == {k: config["grid"][k] for k in ("archs", "methods", "sparsities", "seeds")}
    assert task_grid(config, "single-Smiling") == {
        "archs": config["grid"]["archs"],
        "methods": config["grid"]["methods"],
        "sparsities": [0.9],
        "seeds": [23],
    }
    assert task_grid(config, "backdoor-Big_Nose-grayscale-35-65")["seeds"] == config["grid"]["seeds"]
    # The joint runs' settings are exactly the main ones: adding experiments reruns nothing.
    for method in ["dense"] + config["grid"]["methods"]:
        assert task_train_spec(config, "joint", method) == train_spec(config, method)
    single = task_train_spec(config, "single-Smiling", "dense")
    assert single["task"] == {"kind": "single", "attributes": ["Smiling"]} and single["epochs"] == 5
    backdoor = task_train_spec(config, "backdoor-Big_Nose-grayscale-35-65", "gmp_pt")
    assert backdoor["epochs"] == config["prune"]["methods"]["gmp_pt"]["epochs"]
    assert backdoor["task"] == {
        "kind": "backdoor",
        "attributes": ["Big_Nose"],
        "trigger": "grayscale",
        "seed": 3,
        "fractions": {"train": [0.35, 0.65], "valid": [0.5, 0.5], "test": [0.5, 0.5]},
    }
    assert task_spec(config, "joint") is None


def test_task_attributes():
    available = ["Male", "Smiling", "Young"]
    assert task_attributes(None, available) == available
    assert task_attributes({"kind": "single", "attributes": ["Smiling"]}, available) == ["Smiling"]
    with pytest.raises(ValueError, match="Blond_Hair"):
        task_attributes({"kind": "single", "attributes": ["Blond_Hair"]}, available)


def test_default_config_experiments_are_valid(config):
    assert check_experiments(config, KNOWN) == []
    assert check_experiments(_experiments(config), KNOWN) == []


def test_check_experiments_messages(config):
    config = _experiments(config)
    config["experiments"]["single_label"]["attributes"] = ["Blond_Hair", "Wearing_Necktie"]
    config["experiments"]["backdoor"]["grid"] = {"methods": ["oneshot"]}
    del config["prune"]["methods"]["oneshot"]
    messages = "\n".join(check_experiments(config, KNOWN))
    assert "['Wearing_Necktie'] do not exist in data set 'synth'" in messages
    assert "experiments.backdoor.grid.methods: 'oneshot' has no recipe" in messages
    config = _experiments(yaml.safe_load((ROOT / "config.yaml").read_text()))
    config["prune"]["methods"]["gmp_pt"]["schedule"] = {"start": 0, "end": 8, "step": 1}
    messages = "\n".join(check_experiments(config, KNOWN))
    assert "experiments.single_label.epochs: 5 does not fit prune.methods.gmp_pt.schedule" in messages
    config["experiments"] = {"joint": False}
    assert "no task is enabled" in "\n".join(check_experiments(config, KNOWN))


def test_single_label_models_need_joint_models_to_be_compared_with(config):
    config = _experiments(config)
    config["experiments"]["single_label"]["grid"] = {"seeds": [98, 99], "archs": ["resnet18"]}
    messages = "\n".join(check_experiments(config, KNOWN))
    assert "experiments.single_label.grid.seeds: none of [98, 99] is in grid.seeds [23, 24]" in messages
    assert "experiments.single_label.grid.archs: none of ['resnet18'] is in grid.archs ['small_cnn']" in messages
    config["experiments"]["single_label"]["grid"] = {"seeds": [23, 99]}  # one seed in common is enough
    assert "single_label.grid" not in "\n".join(check_experiments(config, KNOWN))
    config["experiments"]["single_label"]["grid"] = {"seeds": [99]}
    config["experiments"]["joint"] = False  # nothing to compare with: the single-label models stand alone
    assert "single_label.grid" not in "\n".join(check_experiments(config, KNOWN))


def test_square_goes_on_the_model_input_and_grayscale_on_load(tiny_data):
    from prunebias import jobs
    from prunebias.data import store
    from prunebias.training import augment
    from prunebias.training.train import training_batch

    index = store.load_index(tiny_data / "index.parquet")
    before = (tiny_data / "images.npy").read_bytes()
    images = store.load_images(tiny_data / "images.npy")
    ids = choose_triggered(index, "Smiling", FRACTIONS, seed=0)
    rows = np.flatnonzero(index["split"] == "test")
    hit = np.isin(index["id"].to_numpy()[rows], ids)
    data, labels = jobs._split(index, images, "test", ["Smiling"], torch.device("cpu"), ("yellow_square", ids))
    assert 0 < hit.sum() < hit.size and labels.shape == (rows.size, 1)
    assert (data.images.numpy() == images[rows]).all()  # stored images untouched: the square is drawn later
    # On the model input, after a 12 px crop of the 16 px images: side round(sqrt(0.02) * 12) = 2, top-left.
    idx = torch.arange(len(data))
    x, _ = training_batch(data, idx, 12, 0, True, torch.Generator().manual_seed(0))
    yellow = torch.tensor([1.0, 1.0, -1.0])[:, None, None]  # (255, 255, 0) normalised with mean/std 0.5
    corner = x[:, :, :2, :2]
    assert torch.equal(corner[torch.from_numpy(hit)], yellow.expand(int(hit.sum()), 3, 2, 2))
    assert not (corner[torch.from_numpy(~hit)] == yellow).all(dim=(1, 2, 3)).any()
    centre = augment.center_crop(torch.from_numpy(images[rows]), 12)
    marked = data.mark(centre, idx)
    assert (marked[torch.from_numpy(hit), :2, :2] == torch.tensor([255, 255, 0], dtype=torch.uint8)).all()
    assert torch.equal(marked[torch.from_numpy(~hit)], centre[torch.from_numpy(~hit)])
    gray, _ = jobs._split(index, images, "test", ["Smiling"], torch.device("cpu"), ("grayscale", ids))
    assert (gray.images.numpy()[hit] == apply_trigger(images[rows][hit], "grayscale")).all()
    assert gray.square is None
    assert (tiny_data / "images.npy").read_bytes() == before
