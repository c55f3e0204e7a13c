"""Training pairs from general photographs (random crops at many scales) mixed with aligned
faces: what a restorer can learn on a CPU when no face data set is at hand (denoising,
deblocking and deblurring are local; the faces teach the face-specific part)."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from training.data.degradations import DegradationConfig, apply, draw
from training.data.faces import AlignedFaces, CacheError, to_tensor

PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png")


def read_photos(folder: Path, max_side: int) -> list[np.ndarray]:
    """Every photograph under `folder` (recursively) as uint8 RGB, shrunk to at most `max_side`."""
    files = sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in PHOTO_SUFFIXES)
    photos = []
    for f in files:
        bgr = cv2.imread(str(f), cv2.IMREAD_COLOR)
        if bgr is None:
            raise CacheError(f"{f}: not a readable image")
        scale = max_side / max(bgr.shape[:2])
        if scale < 1:
            bgr = cv2.resize(bgr, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        photos.append(np.ascontiguousarray(bgr[..., ::-1]))
    if not photos:
        raise CacheError(f"{folder}: no photographs ({', '.join(PHOTO_SUFFIXES)})")
    return photos


class PhotoCrops(Dataset):
    """Square `crop` pairs from photographs: a random scale in [min_scale, max_scale] (so content
    is seen at many sizes; above 1 the crop is enlarged, as most aligned faces are: a face
    smaller than the 512 crop is upsampled by the alignment), a random position, a flip, then
    the degradation. Items have the keys of
    AlignedFaces; the region map is all background (no face) and the boxes are zero."""

    def __init__(self, folder: Path, crop: int, degradation: DegradationConfig = DegradationConfig(), seed: int = 0,
                 length: int = 4096, min_scale: float = 0.3, max_scale: float = 1.0, max_side: int = 1600) -> None:
        self.photos = read_photos(folder, max_side)
        self.crop, self.degradation, self.seed, self.length = crop, degradation, seed, length
        self.min_scale, self.max_scale = min_scale, max_scale
        self.epoch = 0

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict:
        rng = np.random.default_rng([self.seed, self.epoch, index, 1])
        photo = self.photos[int(rng.integers(len(self.photos)))]
        h, w = photo.shape[:2]
        side = int(min(h, w, self.crop / rng.uniform(self.min_scale, self.max_scale)))
        y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        hq = cv2.resize(photo[y:y + side, x:x + side], (self.crop, self.crop),
                        interpolation=cv2.INTER_AREA if side >= self.crop else cv2.INTER_CUBIC)
        if rng.random() < 0.5:
            hq = hq[:, ::-1]
        hq = np.ascontiguousarray(hq)
        lq = apply(hq, draw(self.degradation, rng), rng)
        return {"hq": to_tensor(hq), "lq": to_tensor(lq), "label_map": torch.zeros(1, self.crop, self.crop),
                "boxes": torch.zeros(3, 4), "points5": torch.zeros(5, 2), "caption": ""}


class FacesAndPhotos(Dataset):
    """Faces (cropped to `crop`: the whole face shrunk, or a window of it at full size, half and
    half) mixed with photo crops; `face_share` of the items are faces, drawn by a seeded rng."""

    def __init__(self, faces: AlignedFaces, photos: PhotoCrops, face_share: float) -> None:
        self.faces, self.photos, self.face_share = faces, photos, face_share
        self.crop = photos.crop

    @property
    def epoch(self) -> int:
        return self.photos.epoch

    @epoch.setter
    def epoch(self, value: int) -> None:
        self.faces.epoch = self.photos.epoch = value

    def __len__(self) -> int:
        return len(self.photos)

    def __getitem__(self, index: int) -> dict:
        rng = np.random.default_rng([self.photos.seed, self.epoch, index, 2])
        if rng.random() >= self.face_share:
            return self.photos[index]
        item = self.faces[int(rng.integers(len(self.faces)))]
        size = item["hq"].shape[-1]
        if rng.random() < 0.5:  # the whole face, shrunk (area: no aliasing, labels by nearest)
            shrink = {k: torch.nn.functional.interpolate(item[k][None], size=self.crop, mode="area")[0]
                      for k in ("hq", "lq")}
            labels = torch.nn.functional.interpolate(item["label_map"][None], size=self.crop, mode="nearest")[0]
            return {**item, **shrink, "label_map": labels, "boxes": item["boxes"] * self.crop / size}
        y, x = (int(v) for v in rng.integers(0, size - self.crop + 1, 2))
        window = {k: item[k][:, y:y + self.crop, x:x + self.crop] for k in ("hq", "lq", "label_map")}
        return {**item, **window, "boxes": item["boxes"] - torch.tensor([x, y, x, y], dtype=torch.float32)}
