"""Public-domain face photos shipped with the package (see samples/ATTRIBUTION.md): the
embedded default input of `restore`, and the real data of tests and benchmarks."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

SAMPLES_DIR = Path(__file__).resolve().parent / "samples"
ASTRONAUT = SAMPLES_DIR / "astronaut.png"        # Eileen Collins, NASA (scikit-image data)
GRACE_HOPPER = SAMPLES_DIR / "grace_hopper.jpg"  # Grace Hopper, US Navy (matplotlib sample data)
CAMERA = SAMPLES_DIR / "camera.png"              # cameraman, grayscale (scikit-image data)
NO_FACE = SAMPLES_DIR / "coffee.png"             # a cup of coffee, no face (scikit-image data)
FACE_PHOTOS = [ASTRONAUT, GRACE_HOPPER]
DEGRADED_PRESET, DEGRADED_SEED = "blur2-x4-jpeg60", 0
# Grace Hopper through the evaluation preset (degraded_sample() makes it again): the demo's
# degraded input, compared with GRACE_HOPPER
DEGRADED_SAMPLE = SAMPLES_DIR / f"grace_hopper_{DEGRADED_PRESET}.png"


def read_rgb8(path: Path) -> np.ndarray:
    """A sample as uint8 RGB HxWx3."""
    return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def degraded_sample() -> np.ndarray:
    """DEGRADED_SAMPLE's pixels (uint8 RGB), made from GRACE_HOPPER: the DEGRADED_PRESET
    degradation (training/data/degradations.py) drawn with DEGRADED_SEED."""
    from dataclasses import replace

    from training.data.degradations import PRESETS, degrade

    preset = replace(PRESETS[DEGRADED_PRESET], clean_fraction=0.0)
    return degrade(read_rgb8(GRACE_HOPPER), DEGRADED_SEED, preset)[0]


def group_photo(height: int = 600, gap: int = 24) -> np.ndarray:
    """A real multi-face photo (uint8 RGB): astronaut, Grace Hopper and the astronaut mirrored,
    side by side at one height on a grey background."""
    tiles = []
    for img in (read_rgb8(ASTRONAUT), read_rgb8(GRACE_HOPPER), read_rgb8(ASTRONAUT)[:, ::-1]):
        w = round(img.shape[1] * height / img.shape[0])
        tiles.append(cv2.resize(img, (w, height), interpolation=cv2.INTER_AREA))
    canvas = np.full((height + 2 * gap, sum(t.shape[1] for t in tiles) + gap * (len(tiles) + 1), 3), 128, np.uint8)
    x = gap
    for t in tiles:
        canvas[gap:gap + height, x:x + t.shape[1]] = t
        x += t.shape[1] + gap
    return canvas


def crowd_photo() -> np.ndarray:
    """A real 36-face photo (uint8 RGB, 1200x1380): the astronaut's and Grace Hopper's faces,
    200x230 each, alternating in a 6x6 grid: the recall check of detection and tiling."""
    faces = [cv2.resize(img[y0:y0 + 300, x0:x0 + 260], (200, 230)) for img, y0, x0 in
             ((read_rgb8(ASTRONAUT), 0, 110), (read_rgb8(GRACE_HOPPER), 40, 120))]
    rows = [np.concatenate([faces[(r + c) % 2] for c in range(6)], axis=1) for r in range(6)]
    return np.concatenate(rows, axis=0)


def large_photo(width: int = 4000, height: int = 3000) -> np.ndarray:
    """A real one-face photo of a camera's size (uint8 RGB, default 4000x3000 = 12 MP): Grace
    Hopper enlarged (bicubic) to the full height, centred on grey: the memory and speed check
    of large photos (49 detector views at the default --min-face-size)."""
    img = read_rgb8(GRACE_HOPPER)
    w = round(img.shape[1] * height / img.shape[0])
    canvas = np.full((height, width, 3), 128, np.uint8)
    x = (width - w) // 2
    canvas[:, x:x + w] = cv2.resize(img, (w, height), interpolation=cv2.INTER_CUBIC)
    return canvas
