"""DenseNet-121 in plain PyTorch, with state-dict keys identical to torchvision's ``densenet121``.

A torchvision or CheXpert DenseNet-121 file loads with :func:`xmodal.models.weights.load_image_weights`
(``features.conv0``, ``features.denseblock1.denselayer1.norm1``, ``features.transition1.conv``,
``features.norm5``, ``classifier``...). Huang et al. 2017, "Densely Connected Convolutional Networks".

    net = DenseNet121(in_chans=1)
    net(torch.randn(2, 1, 224, 224))["embedding"]   # (2, 1024)
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

GROWTH = 32
BLOCKS = (6, 12, 24, 16)
INIT_FEATURES = 64
BN_SIZE = 4


class _DenseLayer(nn.Module):
    """BN-ReLU-Conv1x1-BN-ReLU-Conv3x3 on the concatenation of all earlier feature maps."""

    def __init__(self, in_ch: int, growth: int = GROWTH, bn_size: int = BN_SIZE):
        super().__init__()
        self.norm1 = nn.BatchNorm2d(in_ch)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(in_ch, bn_size * growth, kernel_size=1, bias=False)
        self.norm2 = nn.BatchNorm2d(bn_size * growth)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(bn_size * growth, growth, kernel_size=3, padding=1, bias=False)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        """features: list of ``(B, C_i, H, W)`` -> ``(B, growth, H, W)``."""
        x = self.conv1(self.relu1(self.norm1(torch.cat(features, dim=1))))
        return self.conv2(self.relu2(self.norm2(x)))


class _DenseBlock(nn.ModuleDict):
    """``n_layers`` dense layers; output channels ``in_ch + n_layers * growth``."""

    def __init__(self, n_layers: int, in_ch: int, growth: int = GROWTH):
        super().__init__()
        for i in range(n_layers):
            self.add_module(f"denselayer{i + 1}", _DenseLayer(in_ch + i * growth, growth))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for layer in self.values():
            features.append(layer(features))
        return torch.cat(features, dim=1)


class _Transition(nn.Sequential):
    """BN-ReLU-Conv1x1 (halves channels) then 2x2 average pooling."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.add_module("norm", nn.BatchNorm2d(in_ch))
        self.add_module("relu", nn.ReLU(inplace=True))
        self.add_module("conv", nn.Conv2d(in_ch, out_ch, kernel_size=1, bias=False))
        self.add_module("pool", nn.AvgPool2d(kernel_size=2, stride=2))


class DenseNet121(nn.Module):
    """DenseNet-121 feature extractor (torchvision layout).

    Args:
        in_chans: input channels (1 for grayscale CXR; 3 matches ImageNet files exactly).
        num_classes: 0 (default) builds no ``classifier``; > 0 adds ``classifier: Linear(1024, n)``
            and ``forward`` also returns ``logits``. 1000 reproduces torchvision's 7,978,856 params.

    ``out_dim = 1024``.
    """

    out_dim = 1024

    def __init__(self, in_chans: int = 1, num_classes: int = 0):
        super().__init__()
        layers: OrderedDict[str, nn.Module] = OrderedDict(
            conv0=nn.Conv2d(in_chans, INIT_FEATURES, kernel_size=7, stride=2, padding=3, bias=False),
            norm0=nn.BatchNorm2d(INIT_FEATURES),
            relu0=nn.ReLU(inplace=True),
            pool0=nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
        )
        ch = INIT_FEATURES
        for i, n_layers in enumerate(BLOCKS):
            layers[f"denseblock{i + 1}"] = _DenseBlock(n_layers, ch)
            ch += n_layers * GROWTH
            if i != len(BLOCKS) - 1:
                layers[f"transition{i + 1}"] = _Transition(ch, ch // 2)
                ch //= 2
        layers["norm5"] = nn.BatchNorm2d(ch)
        assert ch == self.out_dim
        self.features = nn.Sequential(layers)
        self.classifier = nn.Linear(ch, num_classes) if num_classes > 0 else None
        self._init_weights()

    def _init_weights(self) -> None:
        """torchvision's init: Kaiming-normal convs, unit BN, zero biases."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """x: ``(B, in_chans, H, W)`` -> ``{"embedding": (B, 1024)}`` (+ ``"logits"`` with a classifier)."""
        feats = torch.relu(self.features(x))
        emb = torch.flatten(nn.functional.adaptive_avg_pool2d(feats, 1), 1)
        out = {"embedding": emb}
        if self.classifier is not None:
            out["logits"] = self.classifier(emb)
        return out
