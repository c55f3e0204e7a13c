"""VQGAN encoder, codebook and generator in CodeFormer's module layout (same parameter names:
`encoder.blocks.N`, `quantize.embedding`, `generator.blocks.N`), so published weights map on."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from training.safm.config import SaFMConfig


def normalize(channels: int, groups: int) -> nn.GroupNorm:
    return nn.GroupNorm(num_groups=min(groups, channels), num_channels=channels, eps=1e-6, affine=True)


class ResBlock(nn.Module):
    """GroupNorm-swish-conv twice with a (1x1-projected) shortcut."""

    def __init__(self, in_ch: int, out_ch: int, groups: int) -> None:
        super().__init__()
        self.in_channels, self.out_channels = in_ch, out_ch
        self.norm1 = normalize(in_ch, groups)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, 1, 1)
        self.norm2 = normalize(out_ch, groups)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, 1, 1)
        if in_ch != out_ch:
            self.conv_out = nn.Conv2d(in_ch, out_ch, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return h + (self.conv_out(x) if self.in_channels != self.out_channels else x)


class AttnBlock(nn.Module):
    """Single-head spatial self-attention with 1x1 q/k/v/proj convolutions."""

    def __init__(self, ch: int, groups: int) -> None:
        super().__init__()
        self.norm = normalize(ch, groups)
        self.q, self.k, self.v, self.proj_out = (nn.Conv2d(ch, ch, 1) for _ in range(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm(x)
        b, c, hh, ww = h.shape
        q = self.q(h).flatten(2).transpose(1, 2)            # b, hw, c
        k = self.k(h).flatten(2)                            # b, c, hw
        v = self.v(h).flatten(2)                            # b, c, hw
        attn = torch.softmax(torch.bmm(q, k) * c ** -0.5, dim=2)
        out = torch.bmm(v, attn.transpose(1, 2)).reshape(b, c, hh, ww)
        return x + self.proj_out(out)


class Downsample(nn.Module):
    """Stride-2 3x3 convolution with (0, 1, 0, 1) padding."""

    def __init__(self, ch: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, 2, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class Upsample(nn.Module):
    """Nearest 2x upsampling and a 3x3 convolution."""

    def __init__(self, ch: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


def _add_level(blocks: list[nn.Module], ch_in: int, ch_out: int, res: int, cfg: SaFMConfig) -> int:
    """Append one resolution level's residual blocks (each followed by attention at the
    attention resolutions), CodeFormer's order; returns the level's output channels."""
    for _ in range(cfg.num_res_blocks):
        blocks.append(ResBlock(ch_in, ch_out, cfg.norm_groups))
        ch_in = ch_out
        if res in cfg.attn_resolutions:
            blocks.append(AttnBlock(ch_in, cfg.norm_groups))
    return ch_in


class Encoder(nn.Module):
    """E: image -> latent Z_d (emb_dim x 16 x 16) and the features f_n^e at every resolution."""

    def __init__(self, cfg: SaFMConfig) -> None:
        super().__init__()
        g, nf, res = cfg.norm_groups, cfg.nf, cfg.img_size
        in_mult = (1,) + tuple(cfg.ch_mult)
        blocks: list[nn.Module] = [nn.Conv2d(3, nf, 3, 1, 1)]
        self.taps: dict[int, int] = {}  # block index -> resolution of the feature after it
        for i, mult in enumerate(cfg.ch_mult):
            ch_in = _add_level(blocks, nf * in_mult[i], nf * mult, res, cfg)
            self.taps[len(blocks) - 1] = res
            if i != len(cfg.ch_mult) - 1:
                blocks.append(Downsample(ch_in))
                res //= 2
        blocks += [ResBlock(ch_in, ch_in, g), AttnBlock(ch_in, g), ResBlock(ch_in, ch_in, g),
                   normalize(ch_in, g), nn.Conv2d(ch_in, cfg.emb_dim, 3, 1, 1)]
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
        feats: dict[int, torch.Tensor] = {}
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in self.taps:
                feats[self.taps[i]] = x
        return x, feats


class VectorQuantizer(nn.Module):
    """The codebook: Z_q is the nearest code (L2) of every latent vector of Z_d."""

    def __init__(self, codebook_size: int, emb_dim: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(codebook_size, emb_dim)

    def indices(self, z: torch.Tensor) -> torch.Tensor:
        """Nearest-code index per position: [B, H, W]."""
        b, c, h, w = z.shape
        flat = z.permute(0, 2, 3, 1).reshape(-1, c)
        codes = self.embedding.weight
        dist = (flat ** 2).sum(1, keepdim=True) - 2 * flat @ codes.t() + (codes ** 2).sum(1)[None]
        return dist.argmin(dim=1).reshape(b, h, w)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.embedding(self.indices(z)).permute(0, 3, 1, 2).contiguous()


class Generator(nn.Module):
    """D: fused latent f_m -> image, exposing the block index where each resolution ends (LDE)."""

    def __init__(self, cfg: SaFMConfig) -> None:
        super().__init__()
        g, nf = cfg.norm_groups, cfg.nf
        ch_in = nf * cfg.ch_mult[-1]
        res = cfg.latent_size
        blocks: list[nn.Module] = [nn.Conv2d(cfg.emb_dim, ch_in, 3, 1, 1), ResBlock(ch_in, ch_in, g),
                                   AttnBlock(ch_in, g), ResBlock(ch_in, ch_in, g)]
        self.taps: dict[int, int] = {}
        for i in reversed(range(len(cfg.ch_mult))):
            ch_in = _add_level(blocks, ch_in, nf * cfg.ch_mult[i], res, cfg)
            self.taps[len(blocks) - 1] = res
            if i != 0:
                blocks.append(Upsample(ch_in))
                res *= 2
        blocks += [normalize(ch_in, g), nn.Conv2d(ch_in, 3, 3, 1, 1)]
        self.blocks = nn.ModuleList(blocks)

