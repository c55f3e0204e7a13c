"""GPEN (Yang et al., *GAN Prior Embedded Network for Blind Face Restoration in the Wild*, CVPR
2021), the network of the published GPEN-BFR-256/512/1024/2048 files: a strided-conv encoder of the
degraded face gives one latent (through StyleGAN2's mapping MLP) and, per resolution, a feature map
that the StyleGAN2 generator takes where StyleGAN2 injects noise (concatenated, scaled by the
layer's learned noise weight, GPEN's `isconcat`). Input RGB S x S in [-1, 1], output [-1, 1].
The published files are bare state dicts (GPEN's `FaceGAN.load_model` loads them as they are);
GPEN-BFR-256: channel multiplier 1, narrow 0.5; 512, 1024, 2048: multiplier 2, narrow 1.

Noise: in GPEN's `FullGenerator` (every BFR model: in size = out size) the "noise" of each layer is
the encoder's feature map of that resolution, never random; only `FullGenerator_SR` (out size >
in size, no published BFR file) draws random noise for its extra levels. So the output is
deterministic and exportable as it is: no fixed noise buffers are needed.

The layers follow rosinality's StyleGAN2 (equalised learning rate: weights scaled by
1/sqrt(fan in) at run time, 4-tap [1, 3, 3, 1] blur filters around up/down-sampling, leaky ReLU
with bias x sqrt 2), in GPEN's key layout (blur kernels are buffers of the file). Written by us
from the paper and the weights' layout; two choices differ from the reference and leave its
output unchanged: modulation as input scaling + one shared-weight (transposed) convolution +
demodulation (one ONNX graph for any batch, training/published/stylegan2.py), and up/down FIR
filtering as depthwise convolutions (what GPEN's CPU fallback `upfirdn2d_native` computes).

Checked once against yangxy/GPEN's `face_model/gpen_model.py` (`FullGenerator(size, 512, 8,
channel_multiplier, narrow=narrow)`, commit 2c73670, its pure-torch CPU ops) on the same random
weights (seed 0, every tensor of the file perturbed, blur kernels included) and real aligned faces:
GPEN-BFR-256 (cm 1, narrow 0.5, 18.9 M parameters) max |difference| 1.4e-06 at batch 1 and
1.3e-06 at batch 2 (outputs up to 2.5 in absolute value); GPEN-BFR-512 (cm 2, narrow 1, 71.0 M)
1.3e-06 / 1.6e-06 (outputs up to 1.7). The state dicts' key sets and shapes are the same."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from training.published.stylegan2 import SQRT2, NormStyleCode, channels, demodulation

BLUR = (1.0, 3.0, 3.0, 1.0)


def blur_kernel(factor: int = 1) -> torch.Tensor:
    """The separable [1, 3, 3, 1] filter as a 4x4 kernel summing to factor^2 (gain of the zeros
    an upsampling by `factor` inserts)."""
    k = torch.tensor(BLUR)
    k = k[None, :] * k[:, None]
    return k / k.sum() * factor ** 2


def upfirdn2d(x: torch.Tensor, kernel: torch.Tensor, ch: int, up: int = 1, down: int = 1,
              pad: tuple[int, int] = (0, 0)) -> torch.Tensor:
    """Per channel of x [B, ch, H, W]: upsample by inserting up-1 zeros after each pixel, pad
    (before, after) on both axes, convolve with the 4x4 `kernel` (a true convolution: the kernel
    flipped), keep every down-th pixel. `ch` is given (not read from x) so that the exported
    depthwise weights have a known shape."""
    if up > 1:   # zero insertion as a depthwise transposed 1x1 conv (any batch, exportable)
        x = F.conv_transpose2d(x, x.new_ones(ch, 1, 1, 1), stride=up, groups=ch)
    extra = up - 1
    x = F.pad(x, (pad[0], pad[1] + extra, pad[0], pad[1] + extra))
    taps = len(BLUR)
    weight = kernel.flip(0, 1).reshape(1, 1, taps, taps).expand(ch, 1, taps, taps)
    return F.conv2d(x, weight, stride=down, groups=ch)


class Blur(nn.Module):
    def __init__(self, ch: int, pad: tuple[int, int], factor: int = 1) -> None:
        super().__init__()
        self.register_buffer("kernel", blur_kernel(factor))
        self.ch, self.pad = ch, pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upfirdn2d(x, self.kernel, self.ch, pad=self.pad)


class Upsample(nn.Module):
    """x2 upsampling of an RGB image: zeros inserted, then the blur filter."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("kernel", blur_kernel(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upfirdn2d(x, self.kernel, 3, up=2, pad=(2, 1))


class FusedLeakyReLU(nn.Module):
    """Bias, leaky ReLU 0.2, gain sqrt 2."""

    def __init__(self, ch: int) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = self.bias.view(1, -1, *([1] * (x.dim() - 2)))
        return F.leaky_relu(x + bias, 0.2) * SQRT2


class EqualLinear(nn.Module):
    """Linear layer with equalised learning rate (weight x lr_mul / sqrt(in), bias x lr_mul),
    optionally followed by FusedLeakyReLU's activation."""

    def __init__(self, in_dim: int, out_dim: int, lr_mul: float = 1.0, activate: bool = False) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim) / lr_mul)
        self.bias = nn.Parameter(torch.zeros(out_dim))
        self.scale, self.lr_mul, self.activate = lr_mul / math.sqrt(in_dim), lr_mul, activate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.linear(x, self.weight * self.scale, self.bias * self.lr_mul)
        return F.leaky_relu(out, 0.2) * SQRT2 if self.activate else out


class EqualConv2d(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int = 1, padding: int = 0,
                 bias: bool = True) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_ch, in_ch, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(out_ch)) if bias else None
        self.scale, self.stride, self.padding = 1 / math.sqrt(in_ch * kernel ** 2), stride, padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.scale, self.bias, self.stride, self.padding)


def conv_layer(in_ch: int, out_ch: int, kernel: int, downsample: bool = False) -> nn.Sequential:
    """[blur,] equalised conv (stride 2 when downsampling), bias + leaky ReLU: GPEN's encoder layer."""
    layers: list[nn.Module] = [Blur(in_ch, (2, 2))] if downsample else []
    layers += [EqualConv2d(in_ch, out_ch, kernel, 2 if downsample else 1, 0 if downsample else kernel // 2, bias=False),
               FusedLeakyReLU(out_ch)]
    return nn.Sequential(*layers)


class ModulatedConv2d(nn.Module):
    """StyleGAN2's modulated convolution with equalised learning rate; when upsampling, a stride-2
    transposed convolution followed by the blur filter."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, style_dim: int, demodulate: bool = True,
                 upsample: bool = False) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(1, out_ch, in_ch, kernel, kernel))
        self.modulation = EqualLinear(style_dim, in_ch)
        if upsample:
            self.blur = Blur(out_ch, (1, 1), factor=2)
        self.scale, self.demodulate, self.upsample = 1 / math.sqrt(in_ch * kernel ** 2), demodulate, upsample

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        s = self.modulation(style)
        weight = self.weight[0] * self.scale
        x = x * s[:, :, None, None]
        out = (F.conv_transpose2d(x, weight.transpose(0, 1), stride=2) if self.upsample
               else F.conv2d(x, weight, padding=weight.shape[-1] // 2))
        if self.demodulate:
            out = out * demodulation(s, weight)[:, :, None, None]
        return self.blur(out) if self.upsample else out


class NoiseInjection(nn.Module):
    """The encoder's features of this resolution, scaled by a learned weight, concatenated."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor, feature: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, self.weight * feature], dim=1)


class StyledConv(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, style_dim: int, upsample: bool = False) -> None:
        super().__init__()
        self.conv = ModulatedConv2d(in_ch, out_ch, 3, style_dim, upsample=upsample)
        self.noise = NoiseInjection()
        self.activate = FusedLeakyReLU(out_ch * 2)

    def forward(self, x: torch.Tensor, style: torch.Tensor, feature: torch.Tensor) -> torch.Tensor:
        return self.activate(self.noise(self.conv(x, style), feature))


class ToRGB(nn.Module):
    def __init__(self, in_ch: int, style_dim: int, upsample: bool = True) -> None:
        super().__init__()
        if upsample:
            self.upsample = Upsample()
        self.conv = ModulatedConv2d(in_ch, 3, 1, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))

    def forward(self, x: torch.Tensor, style: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        out = self.conv(x, style) + self.bias
        return out if skip is None else out + self.upsample(skip)


class ConstantInput(nn.Module):
    def __init__(self, ch: int) -> None:
        super().__init__()
        self.input = nn.Parameter(torch.randn(1, ch, 4, 4))

    def forward(self, like: torch.Tensor) -> torch.Tensor:
        return self.input.repeat(like.shape[0], 1, 1, 1)


class Generator(nn.Module):
    """GPEN's StyleGAN2 generator: mapping MLP, constant input, styled convs whose noise inputs
    are the encoder's features (so each conv's output has twice its channels), ToRGB skips."""

    def __init__(self, size: int, style_dim: int, n_mlp: int, ch: dict[int, int]) -> None:
        super().__init__()
        self.style = nn.Sequential(NormStyleCode(), *[EqualLinear(style_dim, style_dim, 0.01, activate=True)
                                                      for _ in range(n_mlp)])
        self.input = ConstantInput(ch[4])
        self.conv1 = StyledConv(ch[4], ch[4], style_dim)
        self.to_rgb1 = ToRGB(ch[4] * 2, style_dim, upsample=False)
        self.convs, self.to_rgbs = nn.ModuleList(), nn.ModuleList()
        in_ch = ch[4]
        for i in range(3, int(math.log2(size)) + 1):
            out_ch = ch[2 ** i]
            self.convs.append(StyledConv(in_ch * 2, out_ch, style_dim, upsample=True))
            self.convs.append(StyledConv(out_ch * 2, out_ch, style_dim))
            self.to_rgbs.append(ToRGB(out_ch * 2, style_dim))
            in_ch = out_ch

    def forward(self, code: torch.Tensor, features: list[torch.Tensor]) -> torch.Tensor:
        """code [B, style_dim] (before the MLP); features: the encoder's maps from 4x4 up."""
        w = self.style(code)
        out = self.conv1(self.input(w), w, features[0])
        skip = self.to_rgb1(out, w)
        for level, to_rgb in enumerate(self.to_rgbs):
            feature = features[level + 1]
            out = self.convs[2 * level](out, w, feature)
            out = self.convs[2 * level + 1](out, w, feature)
            skip = to_rgb(out, w, skip)
        return skip


class GPEN(nn.Module):
    """image [B, 3, S, S] in [-1, 1] -> restored [B, 3, S, S] in [-1, 1] (S = size)."""

    def __init__(self, size: int = 512, style_dim: int = 512, n_mlp: int = 8, channel_multiplier: int = 2,
                 narrow: float = 1.0) -> None:
        super().__init__()
        ch = channels(channel_multiplier, narrow)
        self.log_size = int(math.log2(size))
        self.generator = Generator(size, style_dim, n_mlp, ch)
        # encoder layers ecd0 (1x1 at S) .. ecd{log2 S - 2} (down to 4x4), each GPEN's Sequential([ConvLayer])
        self.ecd0 = nn.Sequential(conv_layer(3, ch[size], 1))
        for i in range(self.log_size, 2, -1):
            layer = conv_layer(ch[2 ** i], ch[2 ** (i - 1)], 3, downsample=True)
            setattr(self, f"ecd{self.log_size - i + 1}", nn.Sequential(layer))
        self.final_linear = nn.Sequential(EqualLinear(ch[4] * 16, style_dim, activate=True))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        features = []
        x = image
        for i in range(self.log_size - 1):
            x = getattr(self, f"ecd{i}")(x)
            features.append(x)
        return self.generator(self.final_linear(x.flatten(1)), features[::-1])
