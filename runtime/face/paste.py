"""Paste restored faces back: inverse affine over each face's own photo region, soft mask."""
from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from runtime.face.align import source_box


@lru_cache(maxsize=8)
def feather_mask(size: int, feather: float = 0.06) -> np.ndarray:
    """size x size float32 mask: 1 inside, smoothly falling to 0 over `feather` x size at the edges."""
    d = np.minimum(np.arange(size) + 0.5, size - np.arange(size) - 0.5) / (feather * size)
    ramp = np.clip(d, 0.0, 1.0)
    ramp = ramp * ramp * (3 - 2 * ramp)  # smoothstep
    return np.minimum.outer(ramp, ramp).astype(np.float32)


def paste_faces(image: np.ndarray, faces: np.ndarray, affines: np.ndarray) -> np.ndarray:
    """Blend restored faces [N, S, S, C] (float, same range as `image`) into an HxWxC float image
    (in place, and returned). `affines` [N, 2, 3] map photo -> crop. Only each face's own region
    of the photo is warped and blended, never the whole frame."""
    h, w = image.shape[:2]
    size = faces.shape[1]
    mask = feather_mask(size)
    for face, affine in zip(faces, affines):
        x0, y0, x1, y1 = source_box(affine, size, w, h)
        if x1 <= x0 or y1 <= y0:
            continue
        inv = cv2.invertAffineTransform(affine)
        inv[:, 2] -= (x0, y0)
        dsize = (x1 - x0, y1 - y0)
        warped = cv2.warpAffine(face, inv, dsize, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        alpha = cv2.warpAffine(mask, inv, dsize, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        region = image[y0:y1, x0:x1]
        alpha = alpha[..., None] if region.ndim == 3 else alpha
        region += alpha * (warped.reshape(region.shape) - region)
    return image
