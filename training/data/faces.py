"""The aligned-face cache (`facerestore curate`) as a torch dataset of LQ/HQ training pairs."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from training.data.degradations import DegradationConfig, apply, draw

# Label ids of the region map that swap under a horizontal flip (brows 2/3, eyes 4/5).
_FLIP_LABELS = np.arange(256, dtype=np.uint8)
_FLIP_LABELS[[2, 3, 4, 5]] = [3, 2, 5, 4]


class CacheError(ValueError):
    """An unusable face cache; the message names the folder or file."""


def to_tensor(rgb8: np.ndarray) -> torch.Tensor:
    """HxWx3 uint8 -> 3xHxW float in [-1, 1]."""
    return torch.from_numpy(np.ascontiguousarray(rgb8.transpose(2, 0, 1))).float() / 127.5 - 1.0


class AlignedFaces(Dataset):
    """Items: hq, lq (3x512x512 in [-1, 1]), label_map (1x512x512 float ids; one of the maps the
    mesh gave on degraded copies when the cache has them), boxes (3x4: left
    eye, right eye, mouth), points5 (5x2), caption (str, '' without one). LQ comes from the
    eq. 9 degradations, drawn from (seed, epoch, index) so a run is reproducible. Augmentation:
    horizontal flip (labels and boxes swapped accordingly) and, with `jitter`, a small random
    scale/shift (for training on few photos)."""

    def __init__(self, folder: Path, degradation: DegradationConfig = DegradationConfig(), seed: int = 0,
                 flip: bool = True, jitter: float = 0.0) -> None:
        self.folder = Path(folder)
        self.items = sorted(p.with_suffix("") for p in self.folder.glob("*.npz") if p.with_suffix(".png").is_file())
        if not self.items:
            raise CacheError(f"{self.folder}: no <name>.png + <name>.npz pairs; make the cache with `facerestore curate`")
        self.degradation, self.seed, self.flip, self.jitter = degradation, seed, flip, jitter
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict:
        stem = self.items[index]
        hq = cv2.cvtColor(cv2.imread(f"{stem}.png", cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        meta = np.load(f"{stem}.npz")
        labels, boxes, points = meta["label_map"], meta["boxes"].copy(), meta["points5"].copy()
        rng = np.random.default_rng([self.seed, self.epoch, index])
        found = meta["label_maps_degraded"] if "label_maps_degraded" in meta.files else ()
        if len(found):  # a map the mesh found on a degraded copy: what inference sees
            labels = found[rng.integers(len(found))]
        size = hq.shape[1]
        if self.jitter:
            s = 1 + rng.uniform(-self.jitter, self.jitter)
            t = rng.uniform(-self.jitter, self.jitter, 2) * size
            m = np.array([[s, 0, (1 - s) * size / 2 + t[0]], [0, s, (1 - s) * size / 2 + t[1]]])
            hq = cv2.warpAffine(hq, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)
            labels = cv2.warpAffine(labels, m, (size, size), flags=cv2.INTER_NEAREST)
            boxes = (boxes.reshape(-1, 2) * s + m[:, 2]).reshape(-1, 4)
            points = points * s + m[:, 2]
        if self.flip and rng.random() < 0.5:
            hq, labels = hq[:, ::-1], _FLIP_LABELS[labels[:, ::-1]]
            boxes = np.stack([size - boxes[:, 2], boxes[:, 1], size - boxes[:, 0], boxes[:, 3]], 1)[[1, 0, 2]]
            points = np.stack([size - points[:, 0], points[:, 1]], 1)[[1, 0, 2, 4, 3]]
        hq = np.ascontiguousarray(hq)
        lq = apply(hq, draw(self.degradation, rng), rng)
        caption = Path(f"{stem}.txt")
        return {"hq": to_tensor(hq), "lq": to_tensor(lq),
                "label_map": torch.from_numpy(np.ascontiguousarray(labels)).float()[None],
                "boxes": torch.from_numpy(boxes.astype(np.float32)), "points5": torch.from_numpy(points.astype(np.float32)),
                "caption": caption.read_text().strip() if caption.is_file() else ""}
