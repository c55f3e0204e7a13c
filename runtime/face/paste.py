"""Paste restored faces back: colour fix against the input face, then an inverse affine over
each face's own photo region through a soft mask shaped like the face (or the crop square)."""
from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from runtime.face.align import source_box
from runtime.imageio import from_float, to_float

PASTE_MASKS = ("face", "square")
COLOUR_FIXES = ("wavelet", "adain", "none")
MASK_MARGIN = 0.06   # the face oval grown by this share of the crop side (forehead, jaw) ...
MASK_FEATHER = 0.03  # ... then feathered outwards with a Gaussian of this sigma (share of the side)
LOW_PASS = 1 / 32    # colour fix: sigma of the low band, share of the crop side (16 px at 512)
PASTE_ROWS = 512     # paste-back: photo rows blended at a time (a 512 px crop's region at scale 1 is one strip)


@lru_cache(maxsize=8)
def feather_mask(size: int, feather: float = 0.06) -> np.ndarray:
    """size x size float32 mask: 1 inside, smoothly falling to 0 over `feather` x size at the edges."""
    d = np.minimum(np.arange(size) + 0.5, size - np.arange(size) - 0.5) / (feather * size)
    ramp = np.clip(d, 0.0, 1.0)
    ramp = ramp * ramp * (3 - 2 * ramp)  # smoothstep
    return np.minimum.outer(ramp, ramp).astype(np.float32)


def face_mask(label_map: np.ndarray) -> np.ndarray:
    """Soft float32 mask of one aligned face from its region map (everything but background is
    inside the mesh's face oval): grown by MASK_MARGIN to cover forehead and jaw, feathered
    outwards, exactly 0 far from the face and at the crop's edges. An empty map (no mesh: the
    face could not be shaped) gives the square mask."""
    size = label_map.shape[0]
    outside = (label_map == 0).astype(np.uint8)
    if outside.all():
        return feather_mask(size)
    r = max(1, round(MASK_MARGIN * size))
    # grown by a disc of radius r: pixels within r of the face (an exact distance transform, 4x
    # faster than dilating with an elliptical kernel)
    grown = cv2.distanceTransform(outside, cv2.DIST_L2, cv2.DIST_MASK_PRECISE) <= r + 0.5
    sigma = MASK_FEATHER * size
    soft = _blur(grown.astype(np.float32), sigma, cv2.BORDER_CONSTANT)
    soft = np.clip(soft * 2.0, 0.0, 1.0)  # the grown edge (0.5 after the blur) is fully inside
    return np.minimum(soft, feather_mask(size))


def _blur(x: np.ndarray, sigma: float, border: int = cv2.BORDER_REFLECT101) -> np.ndarray:
    """Gaussian blur of sigma (x's pixels) with cv2's `border`, computed on a grid `f` times coarser
    where sigma stays >= 4 of its pixels (a Gaussian that wide has nothing left near that grid's
    Nyquist frequency): padded at full resolution, area-downsampled, blurred with the variance
    the area and linear resampling do not already add, linearly upsampled. At 512 px (colour
    fix: sigma 16, f 4) within 0.15/255 of the full-resolution blur and 10-40x faster."""
    h, w = x.shape[:2]
    f = 1
    while sigma / (2 * f) >= 4 and h % (2 * f) == 0 and w % (2 * f) == 0:
        f *= 2
    if f == 1:
        return cv2.GaussianBlur(x, (0, 0), sigma, borderType=border)
    pad = f * int(np.ceil(3 * sigma / f))
    big = cv2.copyMakeBorder(x, pad, pad, pad, pad, border)
    bh, bw = big.shape[:2]
    small = cv2.resize(big, (bw // f, bh // f), interpolation=cv2.INTER_AREA)
    resampling = (f * f - 1) / 12 + f * f / 6     # variance of the area and linear steps, full-res px^2
    small = cv2.GaussianBlur(small, (0, 0), np.sqrt(sigma * sigma - resampling) / f, borderType=border)
    return cv2.resize(small, (bw, bh), interpolation=cv2.INTER_LINEAR)[pad:pad + h, pad:pad + w]


def colour_fix(restored: np.ndarray, reference: np.ndarray, method: str = "wavelet") -> np.ndarray:
    """Restored crop [S, S, 3] float [0, 1] with the colours of the input crop `reference`:
    `wavelet` keeps the restored high frequencies over the reference's low band (a Gaussian
    low-pass of sigma S/32, as StableSR/DiffBIR's wavelet colour fix); `adain` matches each
    channel's mean and standard deviation; `none` returns it as it is."""
    if method == "none":
        return restored
    if method == "adain":
        mu_r, sd_r = restored.mean((0, 1)), restored.std((0, 1)) + 1e-6
        out = (restored - mu_r) / sd_r * reference.std((0, 1)) + reference.mean((0, 1))
    elif method == "wavelet":
        sigma = LOW_PASS * restored.shape[0]
        out = restored + _blur(reference - restored, sigma)   # = restored - low(restored) + low(reference)
    else:
        raise ValueError(f"colour fix must be one of {', '.join(COLOUR_FIXES)}, got {method!r}")
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def paste_faces(image: np.ndarray, faces: np.ndarray, affines: np.ndarray, masks: np.ndarray | None = None) -> np.ndarray:
    """Blend restored faces [N, S, S, C] (float [0, 1]) into an HxWxC image (in place, and
    returned) through `masks` [N, S, S] (default: the square), one face at a time (paste_face)."""
    for i, (face, affine) in enumerate(zip(faces, affines)):
        paste_face(image, face, affine, feather_mask(faces.shape[1]) if masks is None else masks[i])
    return image


def paste_face(image: np.ndarray, face: np.ndarray, affine: np.ndarray, mask: np.ndarray) -> None:
    """Blend one restored face [S, S, C] (float [0, 1]) into an HxWxC image, in place, through
    `mask` [S, S]; `affine` maps photo -> crop. The image is float in [0, 1] or uint8 / uint16
    samples: only the face's own region of the photo is touched, and only PASTE_ROWS rows of it
    at a time are made float, blended, clipped and rounded back (a face filling a 12 MP photo
    costs as little as a small one). The blend runs in place in the warped face's buffer (no
    other float temporaries); where the mask is 0 it gives the photo's own sample back exactly
    (s + 0 * (f - s) = s, and from_float(to_float(s)) = s), so those pixels stay as they were."""
    for region, blended, alpha in face_strips(image, face, affine, mask):
        samples = region if region.dtype.kind == "f" else to_float(region)
        np.subtract(blended, samples, out=blended)                          # samples + alpha * (face - samples)
        np.multiply(blended, alpha, out=blended)
        np.add(blended, samples, out=blended)
        np.clip(blended, 0.0, 1.0, out=blended)
        region[...] = blended if region.dtype.kind == "f" else from_float(blended, region.dtype)


def face_strips(image: np.ndarray, face: np.ndarray, affine: np.ndarray, mask: np.ndarray):
    """The face's region of an HxW(xC) image, PASTE_ROWS rows at a time: (the image's rows there
    (a view), the face warped onto them (float32, bicubic as warp_face), the mask warped onto
    them (bilinear, broadcastable to the rows)), for paste_face."""
    h, w = image.shape[:2]
    x0, y0, x1, y1 = source_box(affine, face.shape[0], w, h)
    if x1 <= x0:
        return
    inv = cv2.invertAffineTransform(affine)
    for top in range(y0, y1, PASTE_ROWS):
        bottom = min(y1, top + PASTE_ROWS)
        strip = inv.copy()
        strip[:, 2] -= (x0, top)
        dsize = (x1 - x0, bottom - top)
        region = image[top:bottom, x0:x1]
        warped = cv2.warpAffine(face, strip, dsize, flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_CONSTANT)
        alpha = cv2.warpAffine(mask, strip, dsize, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        yield region, warped.reshape(region.shape), alpha[..., None] if region.ndim == 3 else alpha
