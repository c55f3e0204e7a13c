"""RestoreFormer (Wang et al., *RestoreFormer: High-Quality Blind Face Restoration from Undegraded
Key-Value Pairs*, CVPR 2022) and RestoreFormer++ (Wang et al., TPAMI 2023), the networks of the
published RestoreFormer.ckpt / RestoreFormer++.ckpt: a VQGAN whose decoder's multi-head
attentions take their queries from the degraded face's encoder features and their keys and
values from the quantized (high-quality dictionary) path. RestoreFormer: 8 heads, cross-attention
at 16x16; RestoreFormer++: 4 heads, at 16 and 32 (`ex_multi_scale_num` 1). Input RGB 512 in
[-1, 1], output [-1, 1]; weights under `state_dict` with a `vqvae.` prefix (or bare); Apache-2.0.

Written by us from the papers and the published key layout. Checked once against
wzhouxiff/RestoreFormerPlusPlus's `RestoreFormer/modules/vqvae/vqvae_arch.py`
(`VQVAEGANMultiHeadTransformer(head_size=8, ex_multi_scale_num=0)` and `(head_size=4,
ex_multi_scale_num=1)`) on the same random weights (seed 0) and real aligned faces at batch 2:
max |difference| 8.6e-06 for both (outputs up to 2.8 in absolute value; 72.7 M and 73.5 M
parameters). Queries are the degraded face's features, keys and values the decoder's, as in
the reference's code (`q(norm2(y))`, `k, v(norm1(x))`)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from training.safm.vqgan import Downsample, Upsample, VectorQuantizer, normalize

GROUPS = 32


class ResnetBlock(nn.Module):
    """GroupNorm-swish-conv twice with a 1x1 `nin_shortcut` when the width changes."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.norm1, self.conv1 = normalize(in_ch, GROUPS), nn.Conv2d(in_ch, out_ch, 3, 1, 1)
        self.norm2, self.conv2 = normalize(out_ch, GROUPS), nn.Conv2d(out_ch, out_ch, 3, 1, 1)
        if in_ch != out_ch:
            self.nin_shortcut = nn.Conv2d(in_ch, out_ch, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv2(F.silu(self.norm2(self.conv1(F.silu(self.norm1(x))))))
        return h + (self.nin_shortcut(x) if hasattr(self, "nin_shortcut") else x)


class MultiHeadAttention(nn.Module):
    """Spatial multi-head attention, residual on x: keys and values from norm1(x), queries from
    norm2(y) (cross-attention) or from norm1(x) when y is None (self-attention)."""

    def __init__(self, ch: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = normalize(ch, GROUPS), normalize(ch, GROUPS)
        self.q, self.k, self.v, self.proj_out = (nn.Conv2d(ch, ch, 1) for _ in range(4))

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        h = self.norm1(x)
        query = h if y is None else self.norm2(y)
        b, c, hh, ww = x.shape

        def split(t: torch.Tensor) -> torch.Tensor:   # [B, C, H, W] -> [B, heads, HW, C / heads]
            return t.reshape(b, self.heads, c // self.heads, hh * ww).transpose(2, 3)

        out = F.scaled_dot_product_attention(split(self.q(query)), split(self.k(h)), split(self.v(h)))
        return x + self.proj_out(out.transpose(2, 3).reshape(b, c, hh, ww))


class Level(nn.Module):
    """One resolution: residual blocks, each followed by attention at the attention resolutions."""

    def __init__(self, in_ch: int, out_ch: int, blocks: int, heads: int, attention: bool) -> None:
        super().__init__()
        self.block = nn.ModuleList(ResnetBlock(in_ch if i == 0 else out_ch, out_ch) for i in range(blocks))
        self.attn = nn.ModuleList(MultiHeadAttention(out_ch, heads) for _ in range(blocks if attention else 0))


class Middle(nn.Module):
    def __init__(self, ch: int, heads: int) -> None:
        super().__init__()
        self.block_1, self.attn_1, self.block_2 = ResnetBlock(ch, ch), MultiHeadAttention(ch, heads), ResnetBlock(ch, ch)


class RestoreFormer(nn.Module):
    """image [B, 3, 512, 512] in [-1, 1] -> restored [B, 3, 512, 512] in [-1, 1].
    heads 8, cross_scales (16,): RestoreFormer; heads 4, cross_scales (16, 32): RestoreFormer++."""

    def __init__(self, heads: int = 4, cross_scales: tuple[int, ...] = (16, 32), ch: int = 64,
                 ch_mult: tuple[int, ...] = (1, 2, 2, 4, 4, 8), num_res_blocks: int = 2, resolution: int = 512,
                 z_channels: int = 256, embed_dim: int = 256, n_embed: int = 1024) -> None:
        super().__init__()
        levels = len(ch_mult)
        self.encoder = nn.Module()
        self.encoder.conv_in = nn.Conv2d(3, ch, 3, 1, 1)
        self.encoder.down = nn.ModuleList()
        widths = [ch * m for m in (1, *ch_mult)]
        for i in range(levels):
            level = Level(widths[i], widths[i + 1], num_res_blocks, heads, resolution >> i == 16)
            if i != levels - 1:
                level.downsample = Downsample(widths[i + 1])
            self.encoder.down.append(level)
        top = widths[-1]
        self.encoder.mid = Middle(top, heads)
        self.encoder.norm_out = normalize(top, GROUPS)
        self.encoder.conv_out = nn.Conv2d(top, z_channels, 3, 1, 1)
        self.quant_conv = nn.Conv2d(z_channels, embed_dim, 1)
        self.quantize = VectorQuantizer(n_embed, embed_dim)
        self.post_quant_conv = nn.Conv2d(embed_dim, z_channels, 1)
        self.decoder = nn.Module()
        self.decoder.conv_in = nn.Conv2d(z_channels, top, 3, 1, 1)
        self.decoder.mid = Middle(top, heads)
        up, in_ch = [], top
        for i in reversed(range(levels)):
            level = Level(in_ch, ch * ch_mult[i], num_res_blocks + 1, heads, resolution >> i in cross_scales)
            in_ch = ch * ch_mult[i]
            if i != 0:
                level.upsample = Upsample(in_ch)
            up.insert(0, level)
        self.decoder.up = nn.ModuleList(up)
        self.decoder.norm_out = normalize(in_ch, GROUPS)
        self.decoder.conv_out = nn.Conv2d(in_ch, 3, 3, 1, 1)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        enc, feats = self.encoder, {}
        h = enc.conv_in(image)
        for i, level in enumerate(enc.down):
            for j, block in enumerate(level.block):
                h = block(h)
                if len(level.attn):
                    h = level.attn[j](h)
            feats[i] = h                     # the level's output (the deepest: after the middle's first block)
            if hasattr(level, "downsample"):
                h = level.downsample(h)
        h = enc.mid.block_1(h)
        feats[len(enc.down) - 1] = h
        h = enc.mid.block_2(enc.mid.attn_1(h))
        queries_mid = h
        z = self.quant_conv(enc.conv_out(F.silu(enc.norm_out(h))))
        h = self.post_quant_conv(self.quantize(z))
        dec = self.decoder
        h = dec.conv_in(h)
        h = dec.mid.block_2(dec.mid.attn_1(dec.mid.block_1(h), queries_mid))
        for i in reversed(range(len(dec.up))):
            level = dec.up[i]
            for j, block in enumerate(level.block):
                h = block(h)
                if len(level.attn):
                    h = level.attn[j](h, feats[i])
            if hasattr(level, "upsample"):
                h = level.upsample(h)
        return dec.conv_out(F.silu(dec.norm_out(h)))
