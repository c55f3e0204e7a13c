"""Similarity alignment to the FFHQ 512 template, and warping faces in and out of aligned space."""
from __future__ import annotations

import cv2
import numpy as np

from runtime.imageio import to_float

# FFHQ template for 512x512: eye (image left), eye (image right), nose tip, mouth corners.
FFHQ_TEMPLATE_512 = np.array([
    [192.98138, 239.94708],
    [318.90277, 240.1936],
    [256.63416, 314.01935],
    [201.26117, 371.41043],
    [313.08905, 371.15118],
], np.float64)

# Outside the photo a crop mirrors the photo (cv2.BORDER_REFLECT_101), as the trainers' augmentation
# warps do (training/data/faces.py): facexlib's flat grey there made the demo SaFM hand a face at the
# photo's edge back almost unchanged (Grace Hopper's degraded face, its crop 18 % over the edge:
# 0.20 of the centred face's mean change with grey, 0.94 mirrored). The paste-back never writes outside the photo.
BORDER = cv2.BORDER_REFLECT_101


# 5-point templates by name, as shares of the crop side (same point order). A restorer declares the
# one it was trained on (RestorerSpec.face_template); the pipeline scales it to the crop side.
# arcface_128: InsightFace's 112 px ArcFace template in a 128 px crop (x + 8 px: (38.2946 + 8) / 128,
# 51.6963 / 128, ...), as facefusion names it (`arcface_128`, `arcface_128_v2` in older releases,
# facefusion/face_helper.py WARP_TEMPLATE_SET) and aligns gpen_bfr_256 on it;
# the face fills more of the crop than with FFHQ's (eyes 0.275 of the side apart, not 0.246).
TEMPLATES = {
    "ffhq": FFHQ_TEMPLATE_512 / 512.0,
    "arcface_128": np.array([
        [0.36167656, 0.40387734],
        [0.63696719, 0.40235469],
        [0.50019687, 0.56044219],
        [0.38710391, 0.72160547],
        [0.61507734, 0.72034453],
    ], np.float64),
}


def template(size: int = 512, name: str = "ffhq") -> np.ndarray:
    """The 5-point template `name` scaled to a size x size crop."""
    if name not in TEMPLATES:
        raise ValueError(f"unknown face template {name!r}; known: {', '.join(TEMPLATES)}")
    return TEMPLATES[name] * size


def similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation) mapping src -> dst points
    [K, 2] (Umeyama 1991, no reflection), as a 2x3 affine."""
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    cov = d.T @ s / len(src)
    u, sig, vt = np.linalg.svd(cov)
    sign = np.diag([1.0, np.sign(np.linalg.det(u @ vt)) or 1.0])
    rot = u @ sign @ vt
    scale = (sig * np.diag(sign)).sum() / s.var(0).sum()
    m = scale * rot
    return np.hstack([m, (mu_d - m @ mu_s)[:, None]])


def transform_points(affine: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 2x3 affine to points [..., 2]."""
    return points @ affine[:, :2].T + affine[:, 2]


def source_box(affine: np.ndarray, size: int, width: int, height: int, margin: int = 2) -> tuple[int, int, int, int]:
    """Integer box (x0, y0, x1, y1) of the photo region a size x size crop covers, clipped to the photo."""
    corners = np.array([[0, 0], [size, 0], [0, size], [size, size]], np.float64)
    pts = transform_points(cv2.invertAffineTransform(affine), corners)
    x0, y0 = np.floor(pts.min(0)).astype(int) - margin
    x1, y1 = np.ceil(pts.max(0)).astype(int) + margin
    return max(0, x0), max(0, y0), min(width, x1), min(height, y1)


def warp_face(image: np.ndarray, affine: np.ndarray, size: int, as_float: bool = False) -> np.ndarray:
    """Crop a face: warp an HxWxC image, uint8 or float in [0, 1], by `affine` (photo -> crop)
    into size x size of the same dtype; where the crop runs past the photo's edge, the photo mirrored.
    `as_float`: the crop of the float [0, 1] photo, from the face's region of integer samples
    made float (the whole frame never is).

    Only the face's own region of the photo is touched (its edges are the photo's where the crop runs past them); faces much larger than the crop are
    pre-shrunk with area averaging so the crop does not alias."""
    h, w = image.shape[:2]
    x0, y0, x1, y1 = source_box(affine, size, w, h)
    affine = affine @ np.array([[1, 0, x0], [0, 1, y0], [0, 0, 1]], np.float64)
    region = image[y0:max(y1, y0 + 1), x0:max(x1, x0 + 1)]
    if as_float and region.dtype != np.float32:
        region = to_float(region)
    scale = np.sqrt(abs(np.linalg.det(affine[:, :2])))
    if scale < 0.5 and region.size:
        rh, rw = region.shape[:2]
        nw, nh = max(1, round(rw * 2 * scale)), max(1, round(rh * 2 * scale))
        region = cv2.resize(region, (nw, nh), interpolation=cv2.INTER_AREA)
        fx, fy = rw / nw, rh / nh  # pixel centres: r = f * q + (f - 1) / 2
        affine = affine @ np.array([[fx, 0, (fx - 1) / 2], [0, fy, (fy - 1) / 2], [0, 0, 1]])
    # enlarging (most faces are smaller than the crop): bicubic, as paste_faces; the identity
    # restorer's round trip (crop, paste back) leaves the astronaut's face at 50.7 dB PSNR
    # (bilinear both ways: 42.3 dB, a visible blur). Shrinking: bilinear, after the pre-shrink.
    flags = cv2.INTER_CUBIC if scale >= 1 else cv2.INTER_LINEAR
    return cv2.warpAffine(np.ascontiguousarray(region), affine, (size, size), flags=flags,
                          borderMode=BORDER)
