"""The degradation model of the SaFM paper eq. 9, used to make LQ/HQ training pairs and evaluation sets:

    I_l = { JPEG_q( (I_h * k_sigma) downarrow_r + n_delta ) } uparrow_r

Gaussian blur sigma in [0.1, 5], bicubic down-scale factor r in [0.1, 8] (as the paper states;
r < 1 is an up- then down-sampling), Gaussian noise delta in [0, 15] (8-bit levels), JPEG quality
in [70, 100]; colour jitter on the LQ image with probability 0.3 (as GFPGAN does); 10% of pairs
are left clean (LQ = HQ). Deterministic under a seed.

Named presets (PRESETS): `safm` (eq. 9 above), `bfr` (GFPGAN / BFRffusion, which AuthFace
follows: iso- and anisotropic blur sigma up to 10, down-scale 0.8-8, noise 0-20, JPEG 60-100),
`demo` (what the shipped demo model is trained on: no colour jitter, so it learns to keep
colours) and `blur2-x4-jpeg60` (one fixed degradation for evaluation).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np


@dataclass(frozen=True)
class DegradationConfig:
    """Sampling ranges of eq. 9 (the SaFM paper section IV.B) and the extras around it."""

    blur_sigma: tuple[float, float] = (0.1, 5.0)
    downscale: tuple[float, float] = (0.1, 8.0)
    noise: tuple[float, float] = (0.0, 15.0)
    jpeg_quality: tuple[int, int] = (70, 100)
    clean_fraction: float = 0.1
    color_jitter_prob: float = 0.3
    color_jitter: float = 0.05  # brightness/contrast/saturation shift, as a fraction
    anisotropic_prob: float = 0.0  # share of blurs with a rotated anisotropic Gaussian kernel


@dataclass(frozen=True)
class Sample:
    """The parameters drawn for one pair (kept for reports and reproducibility)."""

    clean: bool
    sigma: float
    scale: float
    noise: float
    quality: int
    jitter: tuple[float, float, float] | None
    sigma_y: float | None = None   # anisotropic blur: second axis sigma ...
    angle: float = 0.0             # ... and rotation in degrees


def draw(cfg: DegradationConfig, rng: np.random.Generator) -> Sample:
    """Draw one set of degradation parameters."""
    clean = rng.random() < cfg.clean_fraction
    jitter = tuple(rng.uniform(-cfg.color_jitter, cfg.color_jitter, 3)) if rng.random() < cfg.color_jitter_prob else None
    sample = Sample(clean, float(rng.uniform(*cfg.blur_sigma)), float(rng.uniform(*cfg.downscale)),
                    float(rng.uniform(*cfg.noise)), int(rng.integers(cfg.jpeg_quality[0], cfg.jpeg_quality[1] + 1)), jitter)
    if cfg.anisotropic_prob and rng.random() < cfg.anisotropic_prob:
        sample = replace(sample, sigma_y=float(rng.uniform(*cfg.blur_sigma)), angle=float(rng.uniform(0, 180)))
    return sample


def _blur(x: np.ndarray, s: Sample) -> np.ndarray:
    """Isotropic Gaussian blur, or the anisotropic kernel of (sigma, sigma_y) rotated by angle."""
    if s.sigma_y is None:
        return cv2.GaussianBlur(x, (0, 0), s.sigma, borderType=cv2.BORDER_REFLECT101)
    radius = int(np.ceil(3 * max(s.sigma, s.sigma_y)))
    yy, xx = np.mgrid[-radius:radius + 1, -radius:radius + 1].astype(np.float64)
    t = np.deg2rad(s.angle)
    u, v = xx * np.cos(t) + yy * np.sin(t), -xx * np.sin(t) + yy * np.cos(t)
    kernel = np.exp(-0.5 * ((u / s.sigma) ** 2 + (v / s.sigma_y) ** 2))
    return cv2.filter2D(x, -1, (kernel / kernel.sum()).astype(np.float32), borderType=cv2.BORDER_REFLECT101)


def apply(hq: np.ndarray, s: Sample, rng: np.random.Generator) -> np.ndarray:
    """Degrade an HxWx3 uint8 RGB image with the drawn parameters (uint8 out, same size)."""
    if s.clean:
        return hq.copy()
    h, w = hq.shape[:2]
    x = _blur(hq.astype(np.float32), s)
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


PRESETS: dict[str, DegradationConfig] = {
    "safm": DegradationConfig(),
    "bfr": DegradationConfig(blur_sigma=(0.1, 10.0), downscale=(0.8, 8.0), noise=(0.0, 20.0), jpeg_quality=(60, 100),
                             anisotropic_prob=0.5),
    "demo": DegradationConfig(blur_sigma=(0.1, 3.0), downscale=(1.0, 6.0), noise=(0.0, 10.0), jpeg_quality=(40, 95),
                              clean_fraction=0.05, color_jitter_prob=0.0),
    "blur2-x4-jpeg60": DegradationConfig(blur_sigma=(2.0, 2.0), downscale=(4.0, 4.0), noise=(0.0, 0.0),
                                         jpeg_quality=(60, 60), clean_fraction=0.0, color_jitter_prob=0.0),
}


def degrade(hq: np.ndarray, seed: int, cfg: DegradationConfig = DegradationConfig()) -> tuple[np.ndarray, Sample]:
    """One LQ image from an HQ one, deterministic in `seed`."""
    rng = np.random.default_rng(seed)
    sample = draw(cfg, rng)
    return apply(hq, sample, rng), sample
