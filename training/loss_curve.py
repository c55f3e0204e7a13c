"""A training run's loss curve as a PNG (losses.csv -> image; cv2, no plotting library)."""
from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np


def read_losses(path: Path, column: str = "total") -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) of one column of losses.csv; a step logged twice (a resumed run) keeps its last row."""
    with open(path, newline="") as f:
        rows = {int(r["step"]): float(r[column]) for r in csv.DictReader(f)}
    steps = np.array(sorted(rows))
    return steps, np.array([rows[s] for s in steps])


def loss_curve(path: Path, out: Path, column: str = "total", window: int = 8, size: tuple[int, int] = (720, 360)) -> Path:
    """Plot the logged values (grey) and their running mean over `window` logs (black) to `out`."""
    steps, values = read_losses(path, column)
    if len(steps) < 2:
        raise ValueError(f"{path}: fewer than two logged steps")
    window = min(window, len(values))   # a short run: the mean of what was logged
    w, h = size
    pad = 48
    img = np.full((h, w, 3), 255, np.uint8)
    lo, hi = float(values.min()), float(values.max())
    xs = pad + (steps - steps[0]) / max(steps[-1] - steps[0], 1) * (w - 2 * pad)
    ys = lambda v: h - pad - (v - lo) / max(hi - lo, 1e-12) * (h - 2 * pad)  # noqa: E731
    mean = np.convolve(values, np.ones(window) / window, mode="valid")
    for series, colour, offset in ((values, (180, 180, 180), 0), (mean, (0, 0, 0), window - 1)):
        pts = np.stack([xs[offset:offset + len(series)], ys(series)], 1).round().astype(np.int32)
        cv2.polylines(img, [pts], False, colour, 2 if colour == (0, 0, 0) else 1, cv2.LINE_AA)
    cv2.rectangle(img, (pad, pad), (w - pad, h - pad), (0, 0, 0), 1)
    font = cv2.FONT_HERSHEY_SIMPLEX
    cv2.putText(img, f"{column} loss (running mean of {window} logs)", (pad, pad - 14), font, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, f"{hi:.3f}", (4, pad + 4), font, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, f"{lo:.3f}", (4, h - pad), font, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, f"step {steps[0]}", (pad, h - pad + 18), font, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, f"step {steps[-1]}", (w - pad - 70, h - pad + 18), font, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.imwrite(str(out), img)
    return out
