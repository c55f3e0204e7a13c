"""Real-ESRGAN-class background upsamplers, written from the ESRGAN / Real-ESRGAN papers and the
key layout of their released weights: RRDBNet (ESRGAN's generator; `RealESRGAN_x4plus.pth`,
`RealESRGAN_x2plus.pth`, weights under `params_ema`) and SRVGGNetCompact (Real-ESRGAN's compact
model; `realesr-general-x4v3.pth`, weights under `params`). `load_upsampler` reads either file
(or our safetensors), infers the architecture and its sizes from the tensor shapes and loads
every key through `training.published.weights.load_into`.

Checked once against the reference implementations (BasicSR 1.4.2 `basicsr/archs/rrdbnet_arch.py`
at 8d56e3a, Real-ESRGAN 0.3.0 `realesrgan/archs/srvgg_arch.py` at a4abfb2, run in a scratch folder
with torchvision and BasicSR's registry stubbed) on the same random weights (every tensor
randn * 0.05 after torch.manual_seed(0), loaded into both; input torch.rand(1, 3, 32, 40) after
seed 1; fp32 on CPU), largest absolute difference of the outputs: RRDBNet x4 (64 features, 23
blocks) 0.0, RRDBNet x2 (pixel-unshuffled input) 0.0, SRVGGNetCompact x4 (64 features, 32 convs,
PReLU) 0.0.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from training.published.weights import PublishedWeightsError, load_into, read_state_dict


class ResidualDenseBlock(nn.Module):
    """Five 3x3 convolutions, each fed every previous output (dense), LeakyReLU 0.2, residual x 0.2."""

    def __init__(self, features: int = 64, growth: int = 32) -> None:
        super().__init__()
        for i in range(1, 5):
            setattr(self, f"conv{i}", nn.Conv2d(features + (i - 1) * growth, growth, 3, 1, 1))
        self.conv5 = nn.Conv2d(features + 4 * growth, features, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(0.2, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [x]
        for i in range(1, 5):
            feats.append(self.lrelu(getattr(self, f"conv{i}")(torch.cat(feats, 1))))
        return self.conv5(torch.cat(feats, 1)) * 0.2 + x


class RRDB(nn.Module):
    """Residual-in-residual dense block: three dense blocks, residual x 0.2."""

    def __init__(self, features: int, growth: int) -> None:
        super().__init__()
        self.rdb1 = ResidualDenseBlock(features, growth)
        self.rdb2 = ResidualDenseBlock(features, growth)
        self.rdb3 = ResidualDenseBlock(features, growth)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rdb3(self.rdb2(self.rdb1(x))) * 0.2 + x


class RRDBNet(nn.Module):
    """ESRGAN's generator at x4; x2 and x1 first fold the input into 4 / 16 channels by pixel
    unshuffle (Real-ESRGAN's x2plus), then run the same x4 body. Input/output RGB in [0, 1]."""

    def __init__(self, scale: int = 4, features: int = 64, blocks: int = 23, growth: int = 32) -> None:
        super().__init__()
        if scale not in (1, 2, 4):
            raise ValueError(f"RRDBNet scale must be 1, 2 or 4, not {scale}")
        self.scale = scale
        self.conv_first = nn.Conv2d(3 * (4 // scale) ** 2, features, 3, 1, 1)
        self.body = nn.Sequential(*[RRDB(features, growth) for _ in range(blocks)])
        self.conv_body = nn.Conv2d(features, features, 3, 1, 1)
        self.conv_up1 = nn.Conv2d(features, features, 3, 1, 1)
        self.conv_up2 = nn.Conv2d(features, features, 3, 1, 1)
        self.conv_hr = nn.Conv2d(features, features, 3, 1, 1)
        self.conv_last = nn.Conv2d(features, 3, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(0.2, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.scale < 4:
            x = F.pixel_unshuffle(x, 4 // self.scale)
        feat = self.conv_first(x)
        feat = feat + self.conv_body(self.body(feat))
        feat = self.lrelu(self.conv_up1(F.interpolate(feat, scale_factor=2, mode="nearest")))
        feat = self.lrelu(self.conv_up2(F.interpolate(feat, scale_factor=2, mode="nearest")))
        return self.conv_last(self.lrelu(self.conv_hr(feat)))


class SRVGGNetCompact(nn.Module):
    """Real-ESRGAN's compact model: a plain stack of 3x3 convolutions with PReLU at low
    resolution, pixel shuffle, plus the nearest-upsampled input. Input/output RGB in [0, 1]."""

    def __init__(self, scale: int = 4, features: int = 64, convs: int = 32) -> None:
        super().__init__()
        self.scale = scale
        layers: list[nn.Module] = [nn.Conv2d(3, features, 3, 1, 1), nn.PReLU(features)]
        for _ in range(convs):
            layers += [nn.Conv2d(features, features, 3, 1, 1), nn.PReLU(features)]
        layers.append(nn.Conv2d(features, 3 * scale * scale, 3, 1, 1))
        self.body = nn.ModuleList(layers)
        self.upsampler = nn.PixelShuffle(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        for layer in self.body:
            out = layer(out)
        return self.upsampler(out) + F.interpolate(x, scale_factor=self.scale, mode="nearest")


@dataclass(frozen=True)
class UpsamplerConfig:
    """An upsampler's architecture and sizes, as read from its tensors."""

    arch: str          # "rrdbnet" or "srvgg"
    scale: int
    features: int
    depth: int         # RRDB blocks, or the compact model's middle convolutions
    growth: int = 32   # RRDBNet's dense growth channels

    def build(self) -> nn.Module:
        if self.arch == "rrdbnet":
            return RRDBNet(self.scale, self.features, self.depth, self.growth)
        return SRVGGNetCompact(self.scale, self.features, self.depth)


def infer_config(state: dict[str, torch.Tensor], source: str) -> UpsamplerConfig:
    """The architecture of a state dict: RRDBNet has `conv_first`, the compact model `body.0`."""
    if "conv_first.weight" in state:
        in_ch = state["conv_first.weight"].shape[1]
        scales = {3: 4, 12: 2, 48: 1}
        if in_ch not in scales:
            raise PublishedWeightsError(f"{source}: RRDBNet conv_first takes {in_ch} channels (3, 12 or 48 expected)")
        blocks = len({m[1] for k in state if (m := re.match(r"body\.(\d+)\.", k))})
        growth = state["body.0.rdb1.conv1.weight"].shape[0] if blocks else 32
        return UpsamplerConfig("rrdbnet", scales[in_ch], state["conv_first.weight"].shape[0], blocks, growth)
    if "body.0.weight" in state:
        convs = sorted(int(m[1]) for k in state if (m := re.fullmatch(r"body\.(\d+)\.weight", k))
                       and state[k].dim() == 4)
        out_ch = state[f"body.{convs[-1]}.weight"].shape[0]
        scale = round((out_ch / 3) ** 0.5)
        if 3 * scale * scale != out_ch or "body.1.weight" not in state:
            raise PublishedWeightsError(f"{source}: not an SRVGGNetCompact with PReLU (last conv gives {out_ch} "
                                        "channels, or no PReLU weights at body.1)")
        return UpsamplerConfig("srvgg", scale, state["body.0.weight"].shape[0], len(convs) - 2)
    raise PublishedWeightsError(f"{source}: neither RRDBNet (conv_first.*) nor SRVGGNetCompact (body.0.*) weights")


def load_upsampler(path: Path) -> tuple[nn.Module, UpsamplerConfig]:
    """The upsampler in `path` (.pth with `params_ema`/`params`, or .safetensors), in eval mode."""
    state, _ = read_state_dict(path)
    config = infer_config(state, str(path))
    module = config.build()
    load_into(module, path)
    return module.eval(), config
