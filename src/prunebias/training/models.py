"""Model registry: config names to builders. Every model maps (B, 3, H, W) to one logit per attribute."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

# Below this input size the ImageNet stem (7x7 stride-2 conv + max-pool) would shrink the
# image to nothing, so ResNets get a CIFAR-style 3x3 stride-1 stem instead.
SMALL_INPUT = 96


def _resnet(name: str, num_outputs: int, image_size: int) -> nn.Module:
    # torchvision costs ~1.5 s to import; jobs that train or run small_cnn never need it.
    from torchvision import models as tvm

    model = getattr(tvm, name)(weights=None, num_classes=num_outputs)
    if image_size < SMALL_INPUT:
        model.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
        model.maxpool = nn.Identity()
    return model


def _conv_bn(cin: int, cout: int, stride: int, groups: int = 1, kernel: int = 3) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class MobileNetV1(nn.Module):
    """MobileNetV1 (Howard et al. 2017), width multiplier ``width``: a stem and 13 depthwise-separable blocks."""

    # (output channels, stride) of the 13 depthwise-separable blocks at width 1.0.
    BLOCKS = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)] + [(512, 1)] * 5 + [(1024, 2), (1024, 1)]

    def __init__(self, num_outputs: int, image_size: int = 224, width: float = 1.0):
        super().__init__()
        ch = lambda c: max(8, int(c * width))  # noqa: E731
        small = image_size < SMALL_INPUT
        layers = [_conv_bn(3, ch(32), 1 if small else 2)]
        cin = ch(32)
        for i, (cout, stride) in enumerate(self.BLOCKS):
            # Small inputs skip the first down-sampling so the last feature map is not 1x1.
            stride = 1 if small and i == 1 else stride
            layers += [_conv_bn(cin, cin, stride, groups=cin), _conv_bn(cin, ch(cout), 1, kernel=1)]
            cin = ch(cout)
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, num_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.features(x)), 1))


class SmallCNN(nn.Module):
    """A small VGG-style CNN for quick CPU runs: four stages of two 3x3 convs, then a linear head."""

    def __init__(self, num_outputs: int, image_size: int = 32, width: int = 16):
        super().__init__()
        chans = [width, width * 2, width * 4, width * 8]
        layers, cin = [], 3
        for i, c in enumerate(chans):
            layers += [_conv_bn(cin, c, 1 if i == 0 else 2), _conv_bn(c, c, 1)]
            cin = c
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, num_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.features(x)), 1))


ARCHITECTURES: dict[str, Callable[[int, int], nn.Module]] = {
    "small_cnn": lambda n, size: SmallCNN(n, size),
    "resnet18": lambda n, size: _resnet("resnet18", n, size),
    "resnet50": lambda n, size: _resnet("resnet50", n, size),
    "mobilenet_v1": lambda n, size: MobileNetV1(n, size),
}


def build_model(arch: str, num_outputs: int, image_size: int) -> nn.Module:
    """Build an untrained model by config name (see :data:`ARCHITECTURES`)."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown arch {arch!r}; choose one of {sorted(ARCHITECTURES)}")
    if num_outputs < 1:
        raise ValueError(f"num_outputs must be positive, got {num_outputs}")
    return ARCHITECTURES[arch](num_outputs, image_size)
