"""Unit tests of prunebias.training.channels: structured channel pruning with torch-pruning."""

import copy

import pytest
import torch
from torch import nn

from prunebias.training.channels import IMPORTANCES, macs_and_params, prune_channels, rebuild, structure
from prunebias.training.models import build_model

OUTPUTS = 3
CASES = [("small_cnn", 32), ("resnet18", 32), ("resnet50", 32), ("mobilenet_v1", 32), ("resnet18", 224)]


def _model(arch: str, size: int, seed: int = 0) -> nn.Module:
    """A fresh model whose BatchNorm scales differ, as after training (fresh ones are all 1)."""
    torch.manual_seed(seed)
    model = build_model(arch, OUTPUTS, size)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            nn.init.uniform_(module.weight, 0.1, 1.0)
    return model.eval()


def _forward(model: nn.Module, size: int) -> torch.Tensor:
    torch.manual_seed(1)
    with torch.no_grad():
        return model(torch.randn(2, 3, size, size))


@pytest.fixture(scope="module", params=CASES, ids=[f"{a}-{s}" for a, s in CASES])
def pruned(request):
    """(arch, size, model, report): each case pruned once at half the MACs, shared by the tests."""
    arch, size = request.param
    model = _model(arch, size)
    return arch, size, model, prune_channels(model, size, 0.5)


def test_prune_every_arch(pruned):
    arch, size, model, report = pruned
    assert _forward(model, size).shape == (2, OUTPUTS)
    assert model.fc.out_features == OUTPUTS
    assert 0.49 <= report["flops_share_removed"] <= 0.55
    assert (report["macs_after"], report["params_after"]) == macs_and_params(model, size)
    unpruned = build_model(arch, OUTPUTS, size)
    assert report["params_after"] < report["params_before"] == sum(p.numel() for p in unpruned.parameters())
    depthwise = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.groups > 1]
    assert len(depthwise) == (13 if arch == "mobilenet_v1" else 0)
    assert all(m.groups == m.in_channels == m.out_channels for m in depthwise)
    unpruned_depthwise = [m.out_channels for m in unpruned.modules() if isinstance(m, nn.Conv2d) and m.groups > 1]
    assert not depthwise or sum(m.out_channels for m in depthwise) < sum(unpruned_depthwise)
    assert set(report) == {"importance", "target_flops_share", "flops_share_removed", "macs_before", "macs_after",
                           "params_before", "params_after", "pruning_ratio"}  # fmt: skip
    assert all(isinstance(v, str | int | float) for v in report.values())


def test_rebuild_round_trip(pruned, tmp_path):
    arch, size, model, _ = pruned
    torch.save({"structure": structure(model), "state_dict": model.state_dict()}, tmp_path / "pruned.pt")
    saved = torch.load(tmp_path / "pruned.pt", weights_only=True)
    fresh = rebuild(arch, OUTPUTS, size, saved["structure"])
    fresh.load_state_dict(saved["state_dict"], strict=True)
    torch.testing.assert_close(_forward(fresh.eval(), size), _forward(model, size))


def test_structure_is_plain_ints():
    model = _model("resnet18", 32)
    sizes = structure(model)
    assert sizes["conv1"] == {"in_channels": 3, "out_channels": 64, "groups": 1}
    assert sizes["fc"] == {"in_features": 512, "out_features": OUTPUTS}
    assert all(type(v) is int for entry in sizes.values() for v in entry.values())


def test_rebuild_rejects_a_foreign_structure():
    with pytest.raises(ValueError, match="does not fit"):
        rebuild("small_cnn", OUTPUTS, 32, structure(_model("resnet18", 32)))


def test_deterministic_and_keeps_train_mode():
    first = _model("mobilenet_v1", 32).train()
    second = copy.deepcopy(first)
    assert prune_channels(first, 32, 0.4) == prune_channels(second, 32, 0.4)
    assert first.training and second.training
    assert structure(first) == structure(second)
    for (name, a), (_, b) in zip(first.state_dict().items(), second.state_dict().items()):
        assert torch.equal(a, b), name


def test_macs_and_params_leave_the_model_alone():
    model = _model("small_cnn", 32).train()
    before = copy.deepcopy(model.state_dict())
    macs, params = macs_and_params(model, 32)
    assert params == sum(p.numel() for p in model.parameters())
    assert macs > 0 and model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


@pytest.mark.parametrize("importance", IMPORTANCES)
def test_every_importance(importance):
    model = _model("small_cnn", 32)
    report = prune_channels(model, 32, 0.3, importance)
    assert report["importance"] == importance
    assert 0.29 <= report["flops_share_removed"] <= 0.35


def test_importances_choose_different_channels():
    pruned = {imp: _model("small_cnn", 32) for imp in IMPORTANCES}
    for imp, model in pruned.items():
        prune_channels(model, 32, 0.3, imp)
    assert len({str(structure(m)) for m in pruned.values()}) > 1


def test_bn_scale_needs_differing_scales():
    torch.manual_seed(0)
    model = build_model("small_cnn", OUTPUTS, 32)  # every BatchNorm scale is 1: all channels tie
    with pytest.raises(RuntimeError, match="bn_scale"):
        prune_channels(model, 32, 0.3, "bn_scale")


@pytest.mark.parametrize("share", [0.0, 1.0, -0.1, 1.5, float("nan")])
def test_bad_flops_share(share):
    with pytest.raises(ValueError, match="flops_share"):
        prune_channels(_model("small_cnn", 32), 32, share)


def test_unknown_importance():
    with pytest.raises(ValueError, match="unknown importance"):
        prune_channels(_model("small_cnn", 32), 32, 0.5, "taylor")


def test_head_outputs_survive_heavy_pruning():
    model = _model("small_cnn", 32)
    report = prune_channels(model, 32, 0.9)
    assert report["flops_share_removed"] >= 0.89
    assert model.fc.out_features == OUTPUTS and _forward(model, 32).shape == (2, OUTPUTS)
