import pytest
import torch

from prunebias.training.models import ARCHITECTURES, build_model
from prunebias.training.pruning import prunable_parameters


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
@pytest.mark.parametrize("size", [32, 112])
def test_output_shape(arch, size):
    torch.manual_seed(0)
    model = build_model(arch, 7, size).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, size, size))
    assert out.shape == (2, 7)


def test_small_inputs_get_a_small_stem():
    small, large = build_model("resnet18", 3, 32), build_model("resnet18", 3, 224)
    assert small.conv1.stride == (1, 1) and isinstance(small.maxpool, torch.nn.Identity)
    assert large.conv1.stride == (2, 2)


def test_mobilenet_v1_has_13_separable_blocks():
    model = build_model("mobilenet_v1", 40, 224)
    depthwise = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.groups > 1]
    assert len(depthwise) == 13
    params = sum(p.numel() for p in model.parameters())
    assert 3.0e6 < params < 3.5e6  # MobileNetV1 1.0 with a 40-way head: ~3.25M parameters


def test_prunable_parameters_cover_convs_and_head():
    model = build_model("resnet18", 40, 64)
    names = [n for n, _ in prunable_parameters(model)]
    assert "conv1.weight" in names and "fc.weight" in names
    assert any("downsample.0.weight" in n for n in names)
    assert not any(n.endswith("bias") or ".bn" in n for n in names)


def test_unknown_arch():
    with pytest.raises(ValueError, match="unknown arch 'vgg'"):
        build_model("vgg", 3, 32)
