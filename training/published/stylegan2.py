"""The StyleGAN2 generator (Karras et al., *Analyzing and Improving the Image Quality of StyleGAN*)
in the module layout of BasicSR's `StyleGAN2GeneratorClean` (the decoder of GFPGAN's published
weights): style MLP, constant input, modulated convolutions with noise injection, ToRGB skips,
and GFPGAN's spatial feature transform (SFT) of half the channels after each upsampling conv.

Written by us from the paper and the weights' key layout. Two choices differ from the reference
code and leave its output unchanged (checked in training/published/gfpgan.py):
- modulation as input scaling + one shared-weight convolution + demodulation of the output,
  conv(x * s, W) * d with d = rsqrt(s^2 @ sum_k W^2 + eps), instead of a per-sample weight and a
  grouped convolution (`groups=batch`), which ONNX cannot export with a dynamic batch;
- the noise of every layer is the checkpoint's fixed buffer (`noises.noiseN`, what the reference
  does with `randomize_noise=False`): outputs are reproducible and exportable."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

SQRT2 = 2 ** 0.5


def channels(multiplier: int, narrow: float = 1.0) -> dict[int, int]:
    """Feature channels per resolution (StyleGAN2's config-f with a channel multiplier)."""
    base = {4: 512, 8: 512, 16: 512, 32: 512, 64: 256 * multiplier, 128: 128 * multiplier,
            256: 64 * multiplier, 512: 32 * multiplier, 1024: 16 * multiplier, 2048: 8 * multiplier}
    return {r: int(c * narrow) for r, c in base.items()}


class ModulatedConv2d(nn.Module):
    """StyleGAN2's modulated convolution (no bias): the style scales the input channels, one
    convolution with the shared weight, demodulation scales the output channels."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, style_dim: int, demodulate: bool = True,
                 upsample: bool = False, eps: float = 1e-8) -> None:
        super().__init__()
        self.modulation = nn.Linear(style_dim, in_ch)
        self.weight = nn.Parameter(torch.randn(1, out_ch, in_ch, kernel, kernel) / math.sqrt(in_ch * kernel ** 2))
        self.demodulate, self.upsample, self.eps = demodulate, upsample, eps

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        s = self.modulation(style)                              # [B, Cin]
        weight = self.weight[0]                                 # [Cout, Cin, k, k]
        if self.upsample:
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        out = F.conv2d(x * s[:, :, None, None], weight, padding=weight.shape[-1] // 2)
        if self.demodulate:
            out = out * demodulation(s, weight, self.eps)[:, :, None, None]
        return out


def demodulation(s: torch.Tensor, weight: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """StyleGAN2's demodulation factors [B, Cout] of styles s [B, Cin] for a shared weight [Cout,
    Cin, k, k]: rsqrt of the sum over Cin, k, k of (W s)^2, plus eps."""
    return torch.rsqrt((s * s) @ weight.pow(2).sum((2, 3)).t() + eps)


class StyleConv(nn.Module):
    """Modulated 3x3 conv, fixed-noise injection (learned strength), bias, leaky ReLU (x sqrt 2)."""

    def __init__(self, in_ch: int, out_ch: int, style_dim: int, upsample: bool = False) -> None:
        super().__init__()
        self.modulated_conv = ModulatedConv2d(in_ch, out_ch, 3, style_dim, upsample=upsample)
        self.weight = nn.Parameter(torch.zeros(1))                   # noise strength
        self.bias = nn.Parameter(torch.zeros(1, out_ch, 1, 1))

    def forward(self, x: torch.Tensor, style: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        out = self.modulated_conv(x, style) * SQRT2 + self.weight * noise + self.bias
        return F.leaky_relu(out, 0.2)


class ToRGB(nn.Module):
    """Modulated 1x1 conv to RGB (no demodulation) plus the upsampled RGB of the level below."""

    def __init__(self, in_ch: int, style_dim: int, upsample: bool = True) -> None:
        super().__init__()
        self.modulated_conv = ModulatedConv2d(in_ch, 3, 1, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))
        self.upsample = upsample

    def forward(self, x: torch.Tensor, style: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        out = self.modulated_conv(x, style) + self.bias
        if skip is not None:
            out = out + (F.interpolate(skip, scale_factor=2, mode="bilinear", align_corners=False) if self.upsample else skip)
        return out


class ConstantInput(nn.Module):
    def __init__(self, ch: int, size: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(1, ch, size, size))

    def forward(self, batch_like: torch.Tensor) -> torch.Tensor:
        return self.weight.repeat(batch_like.shape[0], 1, 1, 1)


class NormStyleCode(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(1, keepdim=True) + 1e-8)


class StyleGAN2SFTGenerator(nn.Module):
    """The StyleGAN2 generator of `out_size` whose upsampling convs' outputs are modulated by SFT
    conditions (scale, shift) per level, on the second half of their channels when `sft_half`.
    Called with one latent per layer ([B, num_latent, style_dim], GFPGAN's `different_w`)."""

    def __init__(self, out_size: int, style_dim: int = 512, num_mlp: int = 8, channel_multiplier: int = 2,
                 narrow: float = 1.0, sft_half: bool = True) -> None:
        super().__init__()
        ch = channels(channel_multiplier, narrow)
        self.log_size = int(math.log2(out_size))
        self.num_layers = (self.log_size - 2) * 2 + 1
        self.num_latent = self.log_size * 2 - 2
        self.sft_half = sft_half
        # the style MLP is in the published weights but unused: GFPGAN's encoder gives latents directly
        self.style_mlp = nn.Sequential(NormStyleCode(), *[m for _ in range(num_mlp)
                                                          for m in (nn.Linear(style_dim, style_dim), nn.LeakyReLU(0.2))])
        self.constant_input = ConstantInput(ch[4], 4)
        self.style_conv1 = StyleConv(ch[4], ch[4], style_dim)
        self.to_rgb1 = ToRGB(ch[4], style_dim, upsample=False)
        self.style_convs, self.to_rgbs = nn.ModuleList(), nn.ModuleList()
        self.noises = nn.Module()
        for i in range(self.num_layers):
            res = 2 ** ((i + 5) // 2)
            self.noises.register_buffer(f"noise{i}", torch.randn(1, 1, res, res))
        in_ch = ch[4]
        for i in range(3, self.log_size + 1):
            out_ch = ch[2 ** i]
            self.style_convs.append(StyleConv(in_ch, out_ch, style_dim, upsample=True))
            self.style_convs.append(StyleConv(out_ch, out_ch, style_dim))
            self.to_rgbs.append(ToRGB(out_ch, style_dim))
            in_ch = out_ch

    def forward(self, latent: torch.Tensor, conditions: list[torch.Tensor]) -> torch.Tensor:
        noise = [getattr(self.noises, f"noise{i}") for i in range(self.num_layers)]
        out = self.style_conv1(self.constant_input(latent), latent[:, 0], noise[0])
        skip = self.to_rgb1(out, latent[:, 1])
        for level, to_rgb in enumerate(self.to_rgbs):
            i = 2 * level + 1
            out = self.style_convs[2 * level](out, latent[:, i], noise[i])
            if i < len(conditions):
                scale, shift = conditions[i - 1], conditions[i]
                if self.sft_half:
                    same, sft = out.chunk(2, dim=1)
                    out = torch.cat([same, sft * scale + shift], dim=1)
                else:
                    out = out * scale + shift
            out = self.style_convs[2 * level + 1](out, latent[:, i + 1], noise[i + 1])
            skip = to_rgb(out, latent[:, i + 2], skip)
        return skip
