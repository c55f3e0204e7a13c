"""The Semantic-aware Fusion Module (the SaFM paper III.B, Fig. 3, eqs. 1-3)."""
from __future__ import annotations

import torch
from torch import nn


class MultiHeadCrossAttention(nn.Module):
    """Eqs. 1-3: Q = F1 Wq + bq, K = F2 Wk + bk, V = F2 Wv + bv; per head
    softmax(Q_i K_i^T / sqrt(C_h)) V_i with C_h = C / N_h; heads concatenated.

    Used as a pre-norm residual block, as in transformer layers (the paper's equations give the
    attention itself): out = F1 + MHCA(LN(F1), LN(F2)). Tokens are [B, L, C]."""

    def __init__(self, channels: int, heads: int) -> None:
        super().__init__()
        if channels % heads:
            raise ValueError(f"channels {channels} not divisible by heads {heads}")
        self.heads, self.head_dim = heads, channels // heads
        self.norm_q, self.norm_kv = nn.LayerNorm(channels), nn.LayerNorm(channels)
        self.q, self.k, self.v = nn.Linear(channels, channels), nn.Linear(channels, channels), nn.Linear(channels, channels)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        return x.reshape(b, n, self.heads, self.head_dim).transpose(1, 2)  # b, h, n, c_h

    def forward(self, f1: torch.Tensor, f2: torch.Tensor) -> torch.Tensor:
        kv = self.norm_kv(f2)
        q, k, v = self._split(self.q(self.norm_q(f1))), self._split(self.k(kv)), self._split(self.v(kv))
        attn = torch.softmax(q @ k.transpose(-1, -2) * self.head_dim ** -0.5, dim=-1)
        z = (attn @ v).transpose(1, 2).reshape(f1.shape)  # Concat(Z_1..Z_Nh)
        return f1 + z


class SemanticAwareFusion(nn.Module):
    """Fig. 3: CA1 fuses f^e (queries) with Z_q; CA2 fuses that with Z_seg; CA3 fuses f^e
    (queries) with Z_seg independently; f_m = CA2 + CA3. Maps [B, C, H, W] -> [B, C, H, W]."""

    def __init__(self, channels: int, heads: int) -> None:
        super().__init__()
        self.ca1 = MultiHeadCrossAttention(channels, heads)
        self.ca2 = MultiHeadCrossAttention(channels, heads)
        self.ca3 = MultiHeadCrossAttention(channels, heads)

    def forward(self, f_e: torch.Tensor, z_q: torch.Tensor, z_seg: torch.Tensor) -> torch.Tensor:
        b, c, h, w = f_e.shape
        tokens = [t.flatten(2).transpose(1, 2) for t in (f_e, z_q, z_seg)]  # b, hw, c
        fe, zq, zseg = tokens
        f_m = self.ca2(self.ca1(fe, zq), zseg) + self.ca3(fe, zseg)
        return f_m.transpose(1, 2).reshape(b, c, h, w)
