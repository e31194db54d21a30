"""A user's own dense model as a prunebias dense checkpoint (prunebias.training.user_model).

The user's models here predict the data set's attributes in a shuffled order plus one the
data set lacks; the imported checkpoint must give the original model's logits for the
data set's attributes, in the data set's order, and be what pruning and prediction read.
"""

from __future__ import annotations

import zipfile

import pandas as pd
import pytest
import torch
import torchvision

from prunebias import jobs
from prunebias.data import store
from prunebias.io import file_digest
from prunebias.training.checkpoint import load_checkpoint
from prunebias.training.models import build_model
from prunebias.training.user_model import (
    UserModelError,
    dense_checkpoint,
    import_dense,
    map_outputs,
    read_state_dict,
)
from workflow_utils import prepared_files, train_spec

ATTRIBUTES = ["Blond_Hair", "Smiling", "Male", "Young"]
# The user's model: the data set's attributes shuffled, and one it lacks.
OUTPUTS = ["Young", "Age", "Blond_Hair", "Male", "Smiling"]
# What jobs.train writes besides the run identity.
TRAIN_KEYS = (
    "format_version",
    "attributes",
    "task_spec",
    "image_size",
    "state_dict",
    "masks",
    "measured_sparsity",
    "plan",
    "selected_epoch",
    "spec",
    "parent",
)
RUN = {"dataset": "faces", "task": "joint", "arch": "resnet18", "method": "dense", "target_sparsity": 0.0, "seed": 3}


class Config:
    """A custom class: a file holding one cannot be read without running code."""

    depth = 18


def users_model(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """``model`` with random BatchNorm statistics (so they must be carried over), in eval mode."""
    torch.manual_seed(seed)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    return model.eval()


@pytest.fixture(scope="module")
def small_resnet():
    """A prunebias resnet18 at 32 px (3x3 stem) trained elsewhere, with the user's outputs."""
    return users_model(build_model("resnet18", len(OUTPUTS), 32))


@pytest.fixture
def saved(small_resnet, tmp_path):
    """The small ResNet's state dict as a user saves it."""
    path = tmp_path / "user.pt"
    torch.save(small_resnet.state_dict(), path)
    return path


def dense_kwargs(**changes):
    """The keywords of dense_checkpoint for the user's model, with ``changes``."""
    return {"arch": "resnet18", "outputs": OUTPUTS, "attributes": ATTRIBUTES, "image_size": 32, "run": RUN} | changes


def convert(path, **changes):
    return dense_checkpoint(path, **dense_kwargs(**changes))


def assert_same_logits(original: torch.nn.Module, ckpt: dict, image_size: int):
    """The checkpoint's model gives the original's logits of the data set's attributes, in its order."""
    model = build_model(ckpt["arch"], len(ckpt["attributes"]), ckpt["image_size"])
    model.load_state_dict(ckpt["state_dict"])
    x = torch.randn(2, 3, image_size, image_size, generator=torch.Generator().manual_seed(1))
    rows = [OUTPUTS.index(a) for a in ckpt["attributes"]]
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(x), original(x)[:, rows])


def test_prunebias_resnet_keeps_its_logits(small_resnet, saved):
    ckpt = convert(saved)
    assert ckpt["attributes"] == ATTRIBUTES
    assert_same_logits(small_resnet, ckpt, 32)


def test_torchvision_resnet_keeps_its_logits(tmp_path):
    original = users_model(torchvision.models.resnet18(num_classes=len(OUTPUTS)))
    torch.save(original.state_dict(), tmp_path / "torchvision.pt")
    assert_same_logits(original, convert(tmp_path / "torchvision.pt", image_size=224), 224)


def test_checkpoint_is_a_dense_one(saved, tmp_path):
    import_dense(saved, tmp_path / "out" / "model.pt", **dense_kwargs())
    ckpt = load_checkpoint(tmp_path / "out" / "model.pt", "resnet18", ATTRIBUTES)
    assert set(ckpt) == set(TRAIN_KEYS) | set(RUN) | {"source", "source_digest"}
    assert {k: ckpt[k] for k in RUN} == RUN
    assert (ckpt["masks"], ckpt["task_spec"], ckpt["image_size"]) == (None, None, 32)
    assert ckpt["source"] == str(saved) and ckpt["source_digest"] == file_digest(saved)
    assert 0.0 <= ckpt["measured_sparsity"]["global"] < 0.01


@pytest.mark.parametrize("prefix", ["module.", "_orig_mod.", "_orig_mod.module."])
def test_wrapper_prefixes_are_stripped(small_resnet, tmp_path, prefix):
    torch.save({prefix + k: v for k, v in small_resnet.state_dict().items()}, tmp_path / "wrapped.pt")
    assert read_state_dict(tmp_path / "wrapped.pt").keys() == small_resnet.state_dict().keys()


@pytest.mark.parametrize("key", ["state_dict", "model"])
def test_nested_state_dict(small_resnet, tmp_path, key):
    torch.save({"epoch": 90, "optimizer": {"lr": 0.1}, key: small_resnet.state_dict()}, tmp_path / "nested.pt")
    assert_same_logits(small_resnet, convert(tmp_path / "nested.pt"), 32)


def test_safetensors(small_resnet, tmp_path):
    from safetensors.torch import save_file

    save_file(small_resnet.state_dict(), tmp_path / "user.safetensors")
    assert_same_logits(small_resnet, convert(tmp_path / "user.safetensors"), 32)


@pytest.mark.parametrize("content", ["custom class", "whole model"])
def test_pickled_objects_are_refused(small_resnet, tmp_path, content):
    obj = {"state_dict": small_resnet.state_dict(), "config": Config()} if content == "custom class" else small_resnet
    torch.save(obj, tmp_path / "pickled.pt")
    with pytest.raises(UserModelError, match=r"pickled\.pt: refused: .*could run code.*weights_only=True"):
        read_state_dict(tmp_path / "pickled.pt")


@pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::UserWarning", "ignore::DeprecationWarning")
@pytest.mark.parametrize("kind", ["torchscript", "export"])
def test_compiled_archives_give_their_weights(tmp_path, kind):
    """TorchScript and torch.export archives are read by their own loaders; their weights, and only
    those, fill the named architecture, exactly as a state dict of the same model does."""
    model = build_model("small_cnn", 2, 16).eval()
    if kind == "torchscript":
        torch.jit.save(torch.jit.script(model), tmp_path / "compiled.pt")
    else:
        torch.export.save(torch.export.export(model, (torch.randn(1, 3, 16, 16),)), tmp_path / "compiled.pt")
    state = read_state_dict(tmp_path / "compiled.pt")
    expected = model.state_dict()
    assert state.keys() == expected.keys()
    for key, value in expected.items():
        assert torch.equal(state[key], value), key


def test_a_damaged_compiled_archive_is_named(tmp_path):
    model = build_model("small_cnn", 2, 16).eval()
    torch.jit.save(torch.jit.script(model), tmp_path / "compiled.pt")
    with zipfile.ZipFile(tmp_path / "compiled.pt") as archive, zipfile.ZipFile(tmp_path / "broken.pt", "w") as out:
        for item in archive.infolist():
            if not item.filename.endswith("data.pkl"):
                out.writestr(item, archive.read(item))
    with pytest.raises(UserModelError, match=r"broken\.pt: unreadable TorchScript archive"):
        read_state_dict(tmp_path / "broken.pt")


def test_unreadable_and_missing_files(tmp_path):
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(UserModelError, match=r"junk\.pt: not a readable torch file"):
        read_state_dict(tmp_path / "junk.pt")
    with pytest.raises(UserModelError, match=r"absent\.pt: model file not found"):
        read_state_dict(tmp_path / "absent.pt")


def mangled(small_resnet, tmp_path, change):
    """The small ResNet's state dict with ``change`` applied, saved; its path."""
    state = dict(small_resnet.state_dict())
    change(state)
    torch.save(state, tmp_path / "mangled.pt")
    return tmp_path / "mangled.pt"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda s: s.pop("layer2.0.conv1.weight"), r"missing keys .*: layer2\.0\.conv1\.weight"),
        (lambda s: s.update(extra_head=torch.zeros(3)), r"unexpected keys .*: extra_head"),
        (
            lambda s: s.update({"layer1.0.conv2.weight": torch.zeros(64, 64, 1, 1)}),
            r"wrong shapes: layer1\.0\.conv2\.weight expected \(64, 64, 3, 3\), found \(64, 64, 1, 1\)",
        ),
        (lambda s: s.update(epoch=torch.tensor(3), note="x"), r"entry 'note' is a str, not a tensor"),
    ],
    ids=["missing key", "unexpected key", "wrong shape", "not a tensor"],
)
def test_state_dict_that_does_not_fit(small_resnet, tmp_path, change, message):
    with pytest.raises(UserModelError, match=r"mangled\.pt: .*" + message):
        convert(mangled(small_resnet, tmp_path, change))


def test_all_mismatches_in_one_error(small_resnet, tmp_path):
    def change(state):
        state.pop("bn1.bias")
        state["stray"] = torch.zeros(1)

    with pytest.raises(UserModelError, match=r"missing keys .*bn1\.bias.*; unexpected keys .*stray"):
        convert(mangled(small_resnet, tmp_path, change))


def test_wrong_stem_says_why(saved):
    # A 32 px model (3x3 stem) declared as a 224 px one (7x7 stem).
    with pytest.raises(UserModelError, match=r"conv1\.weight expected \(64, 3, 7, 7\), found \(64, 3, 3, 3\).*stem"):
        convert(saved, image_size=224)


def test_old_batchnorm_state_without_num_batches_tracked_loads(small_resnet, tmp_path):
    path = mangled(small_resnet, tmp_path, lambda s: [s.pop(k) for k in list(s) if k.endswith("num_batches_tracked")])
    assert_same_logits(small_resnet, convert(path), 32)


@pytest.mark.parametrize(
    ("outputs", "attributes", "message"),
    [
        (OUTPUTS[:4], ATTRIBUTES, r"'fc\.weight' has 5 rows .* outputs names 4"),
        (OUTPUTS, [*ATTRIBUTES, "Bald"], r"does not predict attribute\(s\) \['Bald'\]"),
        (["Young", "Age", "Young", "Male", "Smiling"], ATTRIBUTES, r"output names \['Young'\] appear more than once"),
    ],
    ids=["wrong output count", "missing attribute", "duplicate output"],
)
def test_outputs_that_do_not_map(saved, outputs, attributes, message):
    with pytest.raises(UserModelError, match=r"user\.pt: .*" + message):
        convert(saved, outputs=outputs, attributes=attributes)


def test_map_outputs_reorders_and_drops_rows():
    state = {"fc.weight": torch.arange(6.0).reshape(3, 2), "fc.bias": torch.tensor([0.0, 1.0, 2.0])}
    mapped = map_outputs(state, "fc", ["a", "b", "c"], ["c", "a"], path="m.pt")
    torch.testing.assert_close(mapped["fc.weight"], torch.tensor([[4.0, 5.0], [0.0, 1.0]]))
    torch.testing.assert_close(mapped["fc.bias"], torch.tensor([2.0, 0.0]))
    assert state["fc.bias"].shape == (3,)  # the input is left as it was


def test_import_writes_nothing_on_error(saved, tmp_path):
    out = tmp_path / "out" / "model.pt"
    with pytest.raises(UserModelError):
        import_dense(saved, out, **dense_kwargs(outputs=OUTPUTS[:4]))
    assert not out.exists()
    assert not out.parent.exists() or not any(out.parent.iterdir())


def test_run_must_agree_with_arch(saved):
    with pytest.raises(ValueError, match="arch 'resnet18'.*'small_cnn'"):
        convert(saved, arch="small_cnn")


def test_single_label_task(small_resnet, saved):
    spec = {"kind": "single", "attributes": ["Smiling"]}
    run = {**RUN, "task": "single-Smiling"}
    ckpt = convert(saved, run=run, task_spec=spec)
    assert ckpt["attributes"] == ["Smiling"]
    assert_same_logits(small_resnet, ckpt, 32)


def test_pruning_and_prediction_read_the_imported_model(tiny_data, tmp_path):
    """gmp_pt starts from the imported checkpoint unchanged, and predict reads it."""
    index, images = prepared_files(tiny_data)
    attributes = store.attribute_names(store.load_index(index))
    outputs = [*reversed(attributes), "Extra"]
    torch.save(users_model(build_model("small_cnn", len(outputs), 16)).state_dict(), tmp_path / "user.pt")
    run = {**RUN, "dataset": "tiny", "arch": "small_cnn"}
    dense = tmp_path / "dense" / "model.pt"
    import_dense(
        tmp_path / "user.pt", dense, arch="small_cnn", outputs=outputs, attributes=attributes, image_size=16, run=run
    )

    jobs.predict(index, images, dense, {"test": tmp_path / "test.parquet"}, tmp_path / "cost.json", device="cpu")
    assert list(pd.read_parquet(tmp_path / "test.parquet").columns) == ["id", *attributes]
    spec = {
        "epochs": 2,
        "batch_size": 64,
        "optimizer": {"name": "adam", "lr": 1e-3},
        "lr_schedule": {"name": "constant"},
        "schedule": {"start": 0, "end": 1, "step": 1, "initial_sparsity": 0.05},
    }
    pruned = {**run, "method": "gmp_pt", "target_sparsity": 0.5}
    out = tmp_path / "pruned"
    jobs.train(
        index, images, out / "model.pt", out / "log.parquet", train_spec(spec), pruned, parent=dense, device="cpu"
    )
    assert load_checkpoint(out / "model.pt", "small_cnn", attributes)["measured_sparsity"]["global"] == pytest.approx(
        0.5, abs=1e-6
    )
