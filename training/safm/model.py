"""The SaFM restorer (the SaFM paper Fig. 2): encoder, codebook, semantic-aware fusion, decoder with
local detail enhancement. Export-friendly: fixed control flow, no branches on tensor values."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from training.safm.config import SaFMConfig
from training.safm.fusion import SemanticAwareFusion
from training.safm.lde import LocalDetailEnhancement
from training.safm.semantic import SemanticEncoder, skip_maps
from training.safm.vqgan import Encoder, Generator, VectorQuantizer


class SaFMRestorer(nn.Module):
    """forward(image [B,3,S,S] in [-1,1], label_map [B,1,S,S] region ids as floats,
    fidelity [B,1] in [0,1]) -> restored image [B,3,S,S] (about [-1,1]).

    Z_q is the nearest codebook entry of each latent vector of Z_d (CodeFormer's transformer
    code prediction is replaced by the SaFM, which fuses Z_q, Z_seg and f^e instead)."""

    def __init__(self, cfg: SaFMConfig) -> None:
        super().__init__()
        self.config = cfg
        self.encoder = Encoder(cfg)
        self.quantize = VectorQuantizer(cfg.codebook_size, cfg.emb_dim)
        self.semantic = SemanticEncoder(cfg)
        self.safm = SemanticAwareFusion(cfg.emb_dim, cfg.heads)
        self.generator = Generator(cfg)
        self.lde = nn.ModuleDict({str(r): LocalDetailEnhancement(cfg.channels_at(r), cfg.channels_at(r),
                                                                 cfg.norm_groups, cfg.img_size // r)
                                  for r in cfg.lde_scales})

    def fuse(self, image: torch.Tensor, label_map: torch.Tensor) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
        """f_m (the SaFM output at the latent size) and the encoder features f_n^e."""
        z_d, feats = self.encoder(image)
        return self.safm(z_d, self.quantize(z_d), self.semantic(label_map)), feats

    def reconstruct(self, image: torch.Tensor, beta: float = 0.25) -> tuple[torch.Tensor, torch.Tensor]:
        """Codebook pre-training (the SaFM paper III.A, as VQGAN): HQ image -> E -> nearest codes
        (straight-through gradient) -> D, no fusion and no LDE. Returns the reconstruction and the
        codebook + beta * commitment loss."""
        z, _ = self.encoder(image)
        q = self.quantize(z)
        vq = F.mse_loss(q, z.detach()) + beta * F.mse_loss(z, q.detach())
        x = z + (q - z).detach()
        for block in self.generator.blocks:
            x = block(x)
        return x, vq

    def forward(self, image: torch.Tensor, label_map: torch.Tensor, fidelity: torch.Tensor) -> torch.Tensor:
        x, feats = self.fuse(image, label_map)
        z_skip = skip_maps(label_map)
        for i, block in enumerate(self.generator.blocks):
            x = block(x)
            res = self.generator.taps.get(i)
            if res is not None and str(res) in self.lde:
                x = self.lde[str(res)](feats[res], x, z_skip, fidelity)
        return image + x if self.config.residual else x
