"""CodeFormer (Zhou et al., *Towards Robust Blind Face Restoration with Codebook Lookup
Transformer*, NeurIPS 2022), the network of the published codeformer.pth: the VQGAN encoder of
the degraded face, a transformer that predicts the code of each of the 16x16 latent positions,
the codebook, and the VQGAN generator with controllable feature transforms (CFT) from the
encoder at 32/64/128/256 weighted by the fidelity `w` (0: the codebook alone, 1: most of the
input's features). Input RGB 512 in [-1, 1], output [-1, 1]; weights under `params_ema`; S-Lab
licence 1.0 (non-commercial).

Written by us from the paper and the published key layout; the VQGAN modules are SaFM's
(training/safm/vqgan.py, the same CodeFormer layout). `w` is a tensor input [B, 1] and the CFT
always runs (residual x w): a graph exported once serves every `w`, where the reference's
`if w > 0` and a Python-float `w` fold into constants at export; the code of each position is the
arg-max of the logits (the reference's top-1 of their softmax).

Checked once against sczhou/CodeFormer's `basicsr/archs/codeformer_arch.py` (`CodeFormer(dim_embd=512,
codebook_size=1024, n_head=8, n_layers=9, connect_list=['32', '64', '128', '256'])`) on the same
random weights (seed 0) and real aligned faces at batch 2: max |difference| 1.4e-03 at w = 0.5,
1.1e-02 at w = 1 and 2.7e-04 at w = 0 in fp32, for outputs up to 15, 34 and 4.7 (random weights
make activations grow through the 9 transformer layers and 24 generator blocks: 1e-4 to 3e-4 of
the output's size); 94.1 M parameters."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from training.safm.config import SaFMConfig
from training.safm.vqgan import Encoder, Generator, ResBlock, Upsample, VectorQuantizer

GROUPS = 32   # GroupNorm groups of CodeFormer's VQGAN


class SelfAttention(nn.Module):
    """Multi-head self-attention over [L, B, C] in torch's MultiheadAttention key layout
    (`in_proj_weight`, `in_proj_bias`, `out_proj`)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * dim))
        self.out_proj = nn.Linear(dim, dim)
        nn.init.xavier_uniform_(self.in_proj_weight)

    def forward(self, qk: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        length, batch, dim = v.shape
        wq, wk, wv = self.in_proj_weight.chunk(3)
        bq, bk, bv = self.in_proj_bias.chunk(3)

        def heads(x: torch.Tensor) -> torch.Tensor:   # [L, B, C] -> [B, heads, L, C / heads]
            return x.reshape(length, batch * self.heads, -1).transpose(0, 1).unflatten(0, (batch, self.heads))

        out = F.scaled_dot_product_attention(heads(F.linear(qk, wq, bq)), heads(F.linear(qk, wk, bk)),
                                             heads(F.linear(v, wv, bv)))
        return self.out_proj(out.flatten(0, 1).transpose(0, 1).reshape(length, batch, dim))


class TransformerLayer(nn.Module):
    """Pre-norm self-attention (positions added to queries and keys) and a GELU MLP, both residual."""

    def __init__(self, dim: int, heads: int, mlp: int) -> None:
        super().__init__()
        self.self_attn = SelfAttention(dim, heads)
        self.linear1, self.linear2 = nn.Linear(dim, mlp), nn.Linear(mlp, dim)
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        h = self.norm1(x)
        x = x + self.self_attn(h + pos, h)
        return x + self.linear2(F.gelu(self.linear1(self.norm2(x))))


class FuseSFT(nn.Module):
    """CFT: encoder and generator features -> scale and shift; generator + w x (gen x scale + shift)."""

    def __init__(self, ch: int) -> None:
        super().__init__()
        self.encode_enc = ResBlock(2 * ch, ch, GROUPS)
        self.scale = nn.Sequential(nn.Conv2d(ch, ch, 3, 1, 1), nn.LeakyReLU(0.2), nn.Conv2d(ch, ch, 3, 1, 1))
        self.shift = nn.Sequential(nn.Conv2d(ch, ch, 3, 1, 1), nn.LeakyReLU(0.2), nn.Conv2d(ch, ch, 3, 1, 1))

    def forward(self, enc: torch.Tensor, dec: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        enc = self.encode_enc(torch.cat([enc, dec], 1))
        return dec + w[:, :, None, None] * (dec * self.scale(enc) + self.shift(enc))


class CodeFormer(nn.Module):
    """image [B, 3, 512, 512] in [-1, 1], w [B, 1] in [0, 1] -> restored [B, 3, 512, 512] in [-1, 1]."""

    def __init__(self, dim_embd: int = 512, n_head: int = 8, n_layers: int = 9, codebook_size: int = 1024,
                 latent_size: int = 256, connect_list: tuple[int, ...] = (32, 64, 128, 256)) -> None:
        super().__init__()
        # CodeFormer's VQGAN: nf 64, ch_mult 1,2,2,4,4,8, 2 blocks, attention at 16, codes of 256
        cfg = SaFMConfig(name="codeformer-vqgan", codebook_size=codebook_size)
        self.encoder = Encoder(cfg)
        self.quantize = VectorQuantizer(codebook_size, cfg.emb_dim)
        self.generator = Generator(cfg)
        self.position_emb = nn.Parameter(torch.zeros(latent_size, dim_embd))
        self.feat_emb = nn.Linear(cfg.emb_dim, dim_embd)
        self.ft_layers = nn.Sequential(*(TransformerLayer(dim_embd, n_head, 2 * dim_embd) for _ in range(n_layers)))
        self.idx_pred_layer = nn.Sequential(nn.LayerNorm(dim_embd), nn.Linear(dim_embd, codebook_size, bias=False))
        self.fuse_convs_dict = nn.ModuleDict({str(r): FuseSFT(cfg.channels_at(r)) for r in connect_list})
        self.fuse_after: dict[int, str] = {}   # generator block index -> resolution of the CFT after it
        res = cfg.latent_size
        for i, block in enumerate(self.generator.blocks):
            if isinstance(block, Upsample):
                res *= 2
                if str(res) in self.fuse_convs_dict:   # after the first residual block of the resolution
                    self.fuse_after[i + 1] = str(res)

    def forward(self, image: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        lq, feats = self.encoder(image)
        b, c, h, wd = lq.shape
        x = self.feat_emb(lq.flatten(2).permute(2, 0, 1))                  # [HW, B, D]
        pos = self.position_emb[:, None]
        for layer in self.ft_layers:
            x = layer(x, pos)
        codes = self.idx_pred_layer(x).argmax(-1).t()                         # [B, HW]
        x = self.quantize.embedding(codes).transpose(1, 2).reshape(b, c, h, wd)
        w = w.to(x.dtype)
        for i, block in enumerate(self.generator.blocks):
            x = block(x)
            if i in self.fuse_after:
                size = self.fuse_after[i]
                x = self.fuse_convs_dict[size](feats[int(size)], x, w)
        return x
