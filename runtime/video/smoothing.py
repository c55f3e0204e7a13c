"""The One-Euro filter (Casiez, Roussel, Vogel, CHI 2012): an adaptive low-pass whose cutoff
rises with speed, so still landmarks stop jittering and moving ones do not lag. Here over all
coordinates of a face's landmarks at once, with the speed measured in face sizes per second
(the filter then behaves the same for small and large faces)."""
from __future__ import annotations

import math

import numpy as np


def _alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray | float:
    tau = 1.0 / (2 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


class OneEuroFilter:
    """x_hat = lowpass(x, cutoff = min_cutoff + beta * |speed|), speed = lowpass(dx/dt, d_cutoff) / scale.
    Defaults: cutoffs in Hz, beta per face size per second. Measured on a 100-px face at 24 fps:
    a still point with 1 px of noise (sd) comes out with 0.54 px, one moving at 128 px/s (1.3
    face widths a second) lags 2.3 px behind (8 fps: 0.68 px and 2.7 px). The crop and the paste
    use the same smoothed affine, so a lag moves the face in the crop, it does not misplace it."""

    def __init__(self, min_cutoff: float = 1.5, beta: float = 4.0, d_cutoff: float = 1.0) -> None:
        self.min_cutoff, self.beta, self.d_cutoff = min_cutoff, beta, d_cutoff
        self.x: np.ndarray | None = None
        self.dx: np.ndarray | None = None
        self.t = 0.0

    def __call__(self, x: np.ndarray, t: float, scale: float = 1.0) -> np.ndarray:
        """The filtered value of `x` (any shape) at time `t` seconds; `scale` normalises the speed."""
        x = np.asarray(x, np.float64)
        if self.x is None or t <= self.t:
            self.x, self.dx, self.t = x.copy(), np.zeros_like(x), t
            return x.copy()
        dt = t - self.t
        dx = (x - self.x) / dt
        self.dx = self.dx + _alpha(self.d_cutoff, dt) * (dx - self.dx)
        cutoff = self.min_cutoff + self.beta * np.abs(self.dx) / max(scale, 1e-6)
        self.x = self.x + _alpha(cutoff, dt) * (x - self.x)
        self.t = t
        return self.x.copy()
