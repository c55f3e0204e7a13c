"""Local Detail Enhancement (the SaFM paper III.C) at one decoder resolution."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from training.safm.vqgan import ResBlock


class LocalDetailEnhancement(nn.Module):
    """f^e_i and f^d_i concatenated and convolved; the eyes+mouth map Z_skip (3 channels,
    resized to this resolution) is fused by a spatial feature transform (scale and shift
    from Z_skip); the result is added to f^d_i, weighted by the fidelity knob w in [0, 1]:
    f^d_{i-1} = f^d_i + w * (h * (1 + scale(Z_skip)) + shift(Z_skip)), h = conv([f^e_i, f^d_i])."""

    def __init__(self, enc_ch: int, dec_ch: int, groups: int, pool: int, skip_ch: int = 3, hidden: int = 32) -> None:
        super().__init__()
        self.pool = pool  # Z_skip (image size) -> this resolution, by area averaging
        self.fuse = nn.Sequential(nn.Conv2d(enc_ch + dec_ch, dec_ch, 3, 1, 1), ResBlock(dec_ch, dec_ch, groups))
        self.skip = nn.Sequential(nn.Conv2d(skip_ch, hidden, 3, 1, 1), nn.LeakyReLU(0.2))
        self.scale = nn.Conv2d(hidden, dec_ch, 3, 1, 1)
        self.shift = nn.Conv2d(hidden, dec_ch, 3, 1, 1)

    def forward(self, f_e: torch.Tensor, f_d: torch.Tensor, z_skip: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        h = self.fuse(torch.cat([f_e, f_d], dim=1))
        s = self.skip(F.avg_pool2d(z_skip, self.pool))
        return f_d + w.reshape(-1, 1, 1, 1) * (h * (1 + self.scale(s)) + self.shift(s))
