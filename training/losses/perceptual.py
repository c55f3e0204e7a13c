"""Perceptual loss on VGG-19 conv1..conv5 features (the SaFM paper eq. 4). The layer layout is
torchvision's `vgg19().features`, so its converted weights load by name (`features.N.weight`)."""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from training.losses.pretrained import load_frozen

# VGG-19 configuration "E": channels, "M" = max-pool.
_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512]
# Indices in `features` after which relu1_1 .. relu5_1 are taken (conv1..conv5 feature maps).
TAPS = (1, 6, 11, 20, 29)
_MEAN = torch.tensor([0.485, 0.456, 0.406]).reshape(1, 3, 1, 1)
_STD = torch.tensor([0.229, 0.224, 0.225]).reshape(1, 3, 1, 1)


class VGG19Features(nn.Module):
    """VGG-19 convolutional trunk up to relu5_1, returning the five tapped feature maps."""

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        ch = 3
        for v in _CFG:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(ch, v, 3, padding=1), nn.ReLU(inplace=False)]
                ch = v
        self.features = nn.Sequential(*layers[: TAPS[-1] + 1])

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = ((x + 1) / 2 - _MEAN.to(x)) / _STD.to(x)
        out = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in TAPS:
                out.append(x)
        return out


class PerceptualLoss(nn.Module):
    """sum over conv1..conv5 of the mean squared feature difference (||phi(a) - phi(b)||_2^2)."""

    def __init__(self, weights: Path | None) -> None:
        super().__init__()
        self.vgg = load_frozen(VGG19Features(), weights, "VGG-19 perceptual", "--vgg")

    def forward(self, restored: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return sum(F.mse_loss(a, b) for a, b in zip(self.vgg(restored), self.vgg(target.detach())))
