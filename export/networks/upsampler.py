"""The background upsampler for export: module (our RRDBNet / SRVGGNetCompact from the weights'
layout) and real sample inputs (tiles of a real photograph)."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from export.networks.base import ExportNetwork
from runtime.contracts.upsampler import BG_UPSAMPLER

if TYPE_CHECKING:
    import torch

SAMPLE_TILE = 48


def _samples(batch: int) -> tuple[np.ndarray, ...]:
    """`batch` 48x48 tiles of the coffee photo (scikit-image's), RGB in [0, 1], NCHW."""
    from runtime.samples import NO_FACE, read_rgb8

    rgb = read_rgb8(NO_FACE)
    tiles = [rgb[60 + 40 * i:60 + 40 * i + SAMPLE_TILE, 200 + 30 * i:200 + 30 * i + SAMPLE_TILE] for i in range(batch)]
    return (np.stack(tiles).transpose(0, 3, 1, 2).astype(np.float32) / 255,)


def _upsampler(checkpoint: Path | None = None) -> torch.nn.Module:
    from training.published.upsamplers import load_upsampler
    from training.shipped import DEMO_UPSAMPLER

    return load_upsampler(checkpoint or DEMO_UPSAMPLER)[0]


BG_UPSAMPLER_NETWORK = ExportNetwork(BG_UPSAMPLER, _upsampler, _samples)
