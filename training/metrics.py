"""Reference image metrics for evaluation: PSNR and SSIM (Gaussian window, as Wang et al. 2004)."""
from __future__ import annotations

import cv2
import numpy as np


def psnr(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    """PSNR in dB of two uint8 images; with a boolean `mask` [H, W], over its pixels only."""
    err = (a.astype(np.float64) - b.astype(np.float64)) ** 2
    mse = np.mean(err if mask is None else err[mask])
    return float("inf") if mse == 0 else float(10 * np.log10(255.0 ** 2 / mse))


def ssim(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean SSIM of two uint8 images (per channel, 11x11 Gaussian window, sigma 1.5); with a
    boolean `mask` [H, W], the mean over its pixels (5-pixel border excluded either way)."""
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    a, b = a.astype(np.float64), b.astype(np.float64)
    blur = lambda x: cv2.GaussianBlur(x, (11, 11), 1.5)  # noqa: E731
    mu_a, mu_b = blur(a), blur(b)
    var_a, var_b, cov = blur(a * a) - mu_a ** 2, blur(b * b) - mu_b ** 2, blur(a * b) - mu_a * mu_b
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
    inner = s[5:-5, 5:-5]
    return float(inner.mean() if mask is None else inner[mask[5:-5, 5:-5]].mean())


def delta_e76(a: np.ndarray, b: np.ndarray, sigma: float = 0.0) -> float:
    """Mean CIE76 colour difference (Euclidean distance in CIELAB, D65) of two uint8 RGB images;
    with `sigma` > 0 both are low-passed first (a Gaussian of that sigma): the colour cast,
    without the detail a restorer is meant to change."""
    def lab(x: np.ndarray) -> np.ndarray:
        x = x.astype(np.float32) / 255.0
        if sigma > 0:
            x = cv2.GaussianBlur(x, (0, 0), sigma, borderType=cv2.BORDER_REFLECT101)
        return cv2.cvtColor(x, cv2.COLOR_RGB2LAB)
    return float(np.linalg.norm(lab(a) - lab(b), axis=-1).mean())
