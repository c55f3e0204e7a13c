"""The parsing prior: region label map -> Z_seg (semantic encoder) and Z_skip (eyes, mouth)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from training.safm.config import SaFMConfig
from training.safm.vqgan import ResBlock, normalize

# ids of runtime.face.regions.LABELS (kept here as numbers: training depends on nothing of ours)
EYE_L, EYE_R, LIPS, MOUTH = 4, 5, 7, 8


def one_hot(label_map: torch.Tensor, num_labels: int) -> torch.Tensor:
    """[B, 1, H, W] float label ids -> [B, num_labels, H, W] one-hot (export-friendly: a comparison)."""
    ids = torch.arange(num_labels, device=label_map.device, dtype=label_map.dtype).reshape(1, -1, 1, 1)
    return (label_map == ids).to(label_map.dtype)


def skip_maps(label_map: torch.Tensor) -> torch.Tensor:
    """Z_skip: [B, 3, H, W] masks of the left eye, right eye and mouth (lips + inner mouth)."""
    return torch.cat([label_map == EYE_L, label_map == EYE_R, (label_map == LIPS) | (label_map == MOUTH)],
                     dim=1).to(label_map.dtype)


class SemanticEncoder(nn.Module):
    """One-hot label map (512) -> Z_seg (emb_dim x 16 x 16): 4x area pooling, then stride-2
    convolutions with residual blocks down to the latent size."""

    def __init__(self, cfg: SaFMConfig) -> None:
        super().__init__()
        self.num_labels = cfg.num_labels
        ch, g = cfg.seg_channels, min(cfg.norm_groups, cfg.seg_channels)
        layers: list[nn.Module] = [nn.Conv2d(cfg.num_labels, ch, 3, 1, 1)]
        res = cfg.img_size // 4
        while res > cfg.latent_size:
            layers += [ResBlock(ch, ch, g), nn.Conv2d(ch, ch, 3, 2, 1)]
            res //= 2
        layers += [ResBlock(ch, ch, g), normalize(ch, g), nn.SiLU(), nn.Conv2d(ch, cfg.emb_dim, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, label_map: torch.Tensor) -> torch.Tensor:
        return self.net(F.avg_pool2d(one_hot(label_map, self.num_labels), 4))
