"""The degradation model of safm.txt eq. 9, used to make LQ/HQ training pairs and evaluation sets:

    I_l = { JPEG_q( (I_h * k_sigma) downarrow_r + n_delta ) } uparrow_r

Gaussian blur sigma in [0.1, 5], bicubic down-scale factor r in [0.1, 8] (as the paper states;
r < 1 is an up- then down-sampling), Gaussian noise delta in [0, 15] (8-bit levels), JPEG quality
in [70, 100]; colour jitter on the LQ image with probability 0.3 (as GFPGAN does); 10% of pairs
are left clean (LQ = HQ). Deterministic under a seed.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class DegradationConfig:
    """Sampling ranges of eq. 9 (safm.txt section IV.B) and the extras around it."""

    blur_sigma: tuple[float, float] = (0.1, 5.0)
    downscale: tuple[float, float] = (0.1, 8.0)
    noise: tuple[float, float] = (0.0, 15.0)
    jpeg_quality: tuple[int, int] = (70, 100)
    clean_fraction: float = 0.1
    color_jitter_prob: float = 0.3
    color_jitter: float = 0.05  # brightness/contrast/saturation shift, as a fraction


@dataclass(frozen=True)
class Sample:
    """The parameters drawn for one pair (kept for reports and reproducibility)."""

    clean: bool
    sigma: float
    scale: float
    noise: float
    quality: int
    jitter: tuple[float, float, float] | None


def draw(cfg: DegradationConfig, rng: np.random.Generator) -> Sample:
    """Draw one set of degradation parameters."""
    clean = rng.random() < cfg.clean_fraction
    jitter = tuple(rng.uniform(-cfg.color_jitter, cfg.color_jitter, 3)) if rng.random() < cfg.color_jitter_prob else None
    return Sample(clean, float(rng.uniform(*cfg.blur_sigma)), float(rng.uniform(*cfg.downscale)),
                  float(rng.uniform(*cfg.noise)), int(rng.integers(cfg.jpeg_quality[0], cfg.jpeg_quality[1] + 1)), jitter)


def apply(hq: np.ndarray, s: Sample, rng: np.random.Generator) -> np.ndarray:
    """Degrade an HxWx3 uint8 RGB image with the drawn parameters (uint8 out, same size)."""
    if s.clean:
        return hq.copy()
    h, w = hq.shape[:2]
    x = cv2.GaussianBlur(hq.astype(np.float32), (0, 0), s.sigma, borderType=cv2.BORDER_REFLECT101)
    small = (max(1, round(w / s.scale)), max(1, round(h / s.scale)))
    x = cv2.resize(x, small, interpolation=cv2.INTER_CUBIC)
    x = x + rng.normal(0.0, s.noise, x.shape).astype(np.float32)
    x = np.clip(np.rint(x), 0, 255).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", x[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, s.quality])
    x = cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1]
    x = cv2.resize(x.astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    if s.jitter is not None:
        x = _color_jitter(x, *s.jitter)
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def _color_jitter(x: np.ndarray, brightness: float, contrast: float, saturation: float) -> np.ndarray:
    """Shift brightness, contrast and saturation of a float RGB image in 0..255."""
    x = x * (1 + brightness)
    mean = x.mean()
    x = (x - mean) * (1 + contrast) + mean
    gray = x.mean(axis=2, keepdims=True)
    return (x - gray) * (1 + saturation) + gray


def degrade(hq: np.ndarray, seed: int, cfg: DegradationConfig = DegradationConfig()) -> tuple[np.ndarray, Sample]:
    """One LQ image from an HQ one, deterministic in `seed`."""
    rng = np.random.default_rng(seed)
    sample = draw(cfg, rng)
    return apply(hq, sample, rng), sample
