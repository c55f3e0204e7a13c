"""GFPGANv1Clean (Wang et al., *Towards Real-World Blind Face Restoration with Generative Facial
Prior*, CVPR 2021), the network of the published GFPGANv1.2/1.3/1.4.pth files: a U-Net encoder
of the degraded face that gives one StyleGAN2 latent per layer and, per level of its decoder, SFT
scale/shift maps that modulate the pretrained StyleGAN2 generator (training/published/stylegan2.py).
Input RGB 512 in [-1, 1], output [-1, 1]; weights under `params_ema` (else `params`), Apache-2.0.

Written by us from the paper and the published key layout. Checked once against TencentARC/GFPGAN's
`gfpgan/archs/gfpganv1_clean_arch.py` (`GFPGANv1Clean(512, channel_multiplier=2, input_is_latent=True,
different_w=True, sft_half=True)`, `randomize_noise=False`) on the same random weights (seed 0) and
real aligned faces: max |difference| 1.0e-07 at batch 1 and 9.7e-08 at batch 2 (outputs up to 0.15
in absolute value; 86.4 M parameters). The toRGB heads of the published file (intermediate outputs for training losses) are
loaded and not run."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from training.published.stylegan2 import StyleGAN2SFTGenerator, channels


class ResBlock(nn.Module):
    """Two 3x3 convs with leaky ReLU around a bilinear x2 up- or x0.5 down-sampling, and a 1x1 skip."""

    def __init__(self, in_ch: int, out_ch: int, scale: float) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, in_ch, 3, 1, 1)
        self.conv2 = nn.Conv2d(in_ch, out_ch, 3, 1, 1)
        self.skip = nn.Conv2d(in_ch, out_ch, 1, bias=False)
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.leaky_relu(self.conv1(x), 0.2)
        out = F.interpolate(out, scale_factor=self.scale, mode="bilinear", align_corners=False)
        out = F.leaky_relu(self.conv2(out), 0.2)
        return out + self.skip(F.interpolate(x, scale_factor=self.scale, mode="bilinear", align_corners=False))


def _sft_branch(ch: int, out_ch: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(ch, ch, 3, 1, 1), nn.LeakyReLU(0.2), nn.Conv2d(ch, out_ch, 3, 1, 1))


class GFPGANv1Clean(nn.Module):
    """image [B, 3, S, S] in [-1, 1] -> restored [B, 3, S, S] in [-1, 1] (S = out_size)."""

    def __init__(self, out_size: int = 512, style_dim: int = 512, channel_multiplier: int = 2, num_mlp: int = 8,
                 narrow: float = 1.0, sft_half: bool = True) -> None:
        super().__init__()
        self.style_dim = style_dim
        self.log_size = int(math.log2(out_size))
        ch = channels(channel_multiplier, narrow * 0.5)   # the U-Net has half the generator's channels
        self.conv_body_first = nn.Conv2d(3, ch[out_size], 1)
        self.conv_body_down = nn.ModuleList(ResBlock(ch[2 ** i], ch[2 ** (i - 1)], 0.5)
                                            for i in range(self.log_size, 2, -1))
        self.final_conv = nn.Conv2d(ch[4], ch[4], 3, 1, 1)
        self.conv_body_up = nn.ModuleList(ResBlock(ch[2 ** (i - 1)], ch[2 ** i], 2) for i in range(3, self.log_size + 1))
        self.toRGB = nn.ModuleList(nn.Conv2d(ch[2 ** i], 3, 1) for i in range(3, self.log_size + 1))
        self.final_linear = nn.Linear(ch[4] * 16, (self.log_size * 2 - 2) * style_dim)
        self.stylegan_decoder = StyleGAN2SFTGenerator(out_size, style_dim, num_mlp, channel_multiplier, narrow, sft_half)
        sft = [ch[2 ** i] * (1 if sft_half else 2) for i in range(3, self.log_size + 1)]
        self.condition_scale = nn.ModuleList(_sft_branch(ch[2 ** i], s) for i, s in zip(range(3, self.log_size + 1), sft))
        self.condition_shift = nn.ModuleList(_sft_branch(ch[2 ** i], s) for i, s in zip(range(3, self.log_size + 1), sft))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        feat = F.leaky_relu(self.conv_body_first(image), 0.2)
        skips: list[torch.Tensor] = []
        for down in self.conv_body_down:
            feat = down(feat)
            skips.insert(0, feat)
        feat = F.leaky_relu(self.final_conv(feat), 0.2)
        latent = self.final_linear(feat.flatten(1)).unflatten(1, (-1, self.style_dim))
        conditions = []
        for skip, up, scale, shift in zip(skips, self.conv_body_up, self.condition_scale, self.condition_shift):
            feat = up(feat + skip)
            conditions += [scale(feat), shift(feat)]
        return self.stylegan_decoder(latent, conditions)
