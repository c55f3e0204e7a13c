"""Identity-preserving loss (the SaFM paper eq. 7) on ArcFace embeddings. The network is insightface's
IResNet (`iresnet18`/`iresnet50` layout, 112x112 RGB in [-1, 1], 512-d), so its converted
weights load by name."""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from training.losses.pretrained import load_frozen

# The ArcFace 112 template region inside an FFHQ-aligned 512 face (same eyes, same scale).
ARCFACE_BOX_512 = (56, 55, 456, 455)


class IBasicBlock(nn.Module):
    def __init__(self, inplanes: int, planes: int, stride: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(inplanes, eps=1e-5)
        self.conv1 = nn.Conv2d(inplanes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes, eps=1e-5)
        self.prelu = nn.PReLU(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes, eps=1e-5)
        self.downsample = (nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes, eps=1e-5))
                           if stride != 1 or inplanes != planes else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        return out + (self.downsample(x) if self.downsample is not None else x)


class IResNet(nn.Module):
    """insightface IResNet: 112x112 face -> 512-d embedding."""

    def __init__(self, layers: tuple[int, ...] = (2, 2, 2, 2)) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64, eps=1e-5)
        self.prelu = nn.PReLU(64)
        inplanes = 64
        for i, (planes, n) in enumerate(zip((64, 128, 256, 512), layers), 1):
            blocks = [IBasicBlock(inplanes, planes, 2)] + [IBasicBlock(planes, planes, 1) for _ in range(n - 1)]
            setattr(self, f"layer{i}", nn.Sequential(*blocks))
            inplanes = planes
        self.bn2 = nn.BatchNorm2d(512, eps=1e-5)
        self.fc = nn.Linear(512 * 7 * 7, 512)
        self.features = nn.BatchNorm1d(512, eps=1e-5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.prelu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.features(self.fc(torch.flatten(self.bn2(x), 1)))


def arcface_crop(faces: torch.Tensor) -> torch.Tensor:
    """FFHQ-aligned faces [B, 3, S, S] in [-1, 1] -> the ArcFace 112x112 region."""
    s = faces.shape[-1] / 512
    x0, y0, x1, y1 = (round(v * s) for v in ARCFACE_BOX_512)
    return F.interpolate(faces[:, :, y0:y1, x0:x1], size=(112, 112), mode="bilinear", align_corners=False, antialias=True)


class IdentityLoss(nn.Module):
    """||eta(I_h) - eta(I_rec)||_2^2 on L2-normalised ArcFace embeddings."""

    def __init__(self, weights: Path | None, layers: tuple[int, ...] = (2, 2, 2, 2)) -> None:
        super().__init__()
        self.net = load_frozen(IResNet(layers), weights, "ArcFace identity", "--arcface")

    def forward(self, restored: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        a = F.normalize(self.net(arcface_crop(restored)), dim=1)
        b = F.normalize(self.net(arcface_crop(target.detach())), dim=1)
        return ((a - b) ** 2).sum(1).mean()
