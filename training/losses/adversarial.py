"""Adversarial losses (the SaFM paper eqs. 5-6): a global discriminator on whole faces and one per facial
component (left eye, right eye, mouth) on ROI-aligned crops, with the Gram-matrix feature style
loss on each component discriminator's multi-resolution features."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

REGIONS = ("left_eye", "right_eye", "mouth")


def roi_align(images: torch.Tensor, boxes: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear crops [B, C, size, size] of one box (x0, y0, x1, y1, pixels) per image."""
    b, _, h, w = images.shape
    t = torch.linspace(0, 1, size, device=images.device, dtype=images.dtype)
    x = boxes[:, 0:1] + (boxes[:, 2:3] - boxes[:, 0:1]) * t          # B, size
    y = boxes[:, 1:2] + (boxes[:, 3:4] - boxes[:, 1:2]) * t
    gx = (x + 0.5) / w * 2 - 1
    gy = (y + 0.5) / h * 2 - 1
    grid = torch.stack([gx[:, None, :].expand(b, size, size), gy[:, :, None].expand(b, size, size)], dim=-1)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


class Discriminator(nn.Module):
    """PatchGAN-style discriminator (spectral norm); returns logits and the feature maps of every
    stage (the multi-resolution features phi used by the style loss)."""

    def __init__(self, channels: int = 64, stages: int = 4) -> None:
        super().__init__()
        sn = nn.utils.spectral_norm
        layers, ch = [], 3
        for i in range(stages):
            out = channels * 2 ** min(i, 3)
            layers.append(nn.Sequential(sn(nn.Conv2d(ch, out, 4, 2, 1)), nn.LeakyReLU(0.2)))
            ch = out
        self.stages = nn.ModuleList(layers)
        self.head = sn(nn.Conv2d(ch, 1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        return self.head(x), feats


def gram(x: torch.Tensor) -> torch.Tensor:
    """Gram matrix [B, C, C] of features [B, C, H, W], normalised by C*H*W."""
    b, c, h, w = x.shape
    f = x.reshape(b, c, h * w)
    return f @ f.transpose(1, 2) / (c * h * w)


def g_loss(logits_fake: torch.Tensor) -> torch.Tensor:
    """Generator side of log D(real) + log(1 - D(fake)), non-saturating form."""
    return F.softplus(-logits_fake).mean()


def d_loss(logits_real: torch.Tensor, logits_fake: torch.Tensor) -> torch.Tensor:
    """Discriminator side: -log D(real) - log(1 - D(fake))."""
    return F.softplus(-logits_real).mean() + F.softplus(logits_fake).mean()


class ComponentDiscriminators(nn.Module):
    """One discriminator per region on ROI-aligned crops (eyes 80x80, mouth 120x120, as GFPGAN)."""

    SIZES = {"left_eye": 80, "right_eye": 80, "mouth": 120}

    def __init__(self, channels: int = 32) -> None:
        super().__init__()
        self.nets = nn.ModuleDict({r: Discriminator(channels, stages=3) for r in REGIONS})

    def crops(self, images: torch.Tensor, boxes: torch.Tensor) -> dict[str, torch.Tensor]:
        """Region crops of images [B, 3, S, S] with boxes [B, 3, 4] (left eye, right eye, mouth)."""
        return {r: roi_align(images, boxes[:, i], self.SIZES[r]) for i, r in enumerate(REGIONS)}

    def generator_losses(self, restored: torch.Tensor, target: torch.Tensor, boxes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(adversarial, Gram style) terms of eq. 6 for the generator, summed over regions."""
        fake, real = self.crops(restored, boxes), self.crops(target, boxes)
        adv, style = restored.new_zeros(()), restored.new_zeros(())
        for r in REGIONS:
            logits, f_fake = self.nets[r](fake[r])
            with torch.no_grad():
                _, f_real = self.nets[r](real[r])
            adv = adv + g_loss(logits)
            style = style + sum(F.mse_loss(gram(a), gram(b), reduction="sum") / len(a) for a, b in zip(f_fake, f_real))
        return adv, style

    def discriminator_loss(self, restored: torch.Tensor, target: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        """Eq. 6 discriminative term for the region discriminators, summed over regions."""
        fake, real = self.crops(restored.detach(), boxes), self.crops(target, boxes)
        return sum(d_loss(self.nets[r](real[r])[0], self.nets[r](fake[r])[0]) for r in REGIONS)
