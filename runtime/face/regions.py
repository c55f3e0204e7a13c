"""Face-mesh index sets and the region label map (the SaFM semantic prior) in aligned space.

Label ids (uint8), painted in this order so later ones win:
    0 background, 1 skin (face oval), 2 brow on the image's left, 3 brow on the image's right,
    4 eye on the image's left, 5 eye on the image's right, 6 nose, 7 lips, 8 inner mouth.
"Image's left" is the subject's right for a frontal face; it is the FFHQ template's first eye.
Polygons are MediaPipe face-mesh contours (FACEMESH_FACE_OVAL, _LIPS, _LEFT/RIGHT_EYE,
_LEFT/RIGHT_EYEBROW); the nose region is the convex hull of the nose-bridge and nostril points.
"""
from __future__ import annotations

import cv2
import numpy as np

LABELS = {"background": 0, "skin": 1, "brow_l": 2, "brow_r": 3, "eye_l": 4, "eye_r": 5,
          "nose": 6, "lips": 7, "mouth": 8}

FACE_OVAL = [10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400,
             377, 152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109]
BROW_L = [70, 63, 105, 66, 107, 55, 65, 52, 53, 46]
BROW_R = [300, 293, 334, 296, 336, 285, 295, 282, 283, 276]
EYE_L = [33, 246, 161, 160, 159, 158, 157, 173, 133, 155, 154, 153, 145, 144, 163, 7]
EYE_R = [263, 466, 388, 387, 386, 385, 384, 398, 362, 382, 381, 380, 374, 373, 390, 249]
NOSE = [168, 6, 197, 195, 5, 4, 1, 19, 94, 2, 98, 97, 326, 327, 294, 278, 344, 440, 275, 45,
        220, 115, 48, 64]
LIPS_OUTER = [61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291, 375, 321, 405, 314, 17, 84, 181, 91, 146]
LIPS_INNER = [78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308, 324, 318, 402, 317, 14, 87, 178, 88, 95]
NOSE_TIP = 1
MOUTH_L, MOUTH_R = 61, 291

# (label, polygon indices, fill the convex hull instead of the polygon)
_PAINT_ORDER = [
    (LABELS["skin"], FACE_OVAL, False),
    (LABELS["nose"], NOSE, True),
    (LABELS["brow_l"], BROW_L, False),
    (LABELS["brow_r"], BROW_R, False),
    (LABELS["eye_l"], EYE_L, False),
    (LABELS["eye_r"], EYE_R, False),
    (LABELS["lips"], LIPS_OUTER, False),
    (LABELS["mouth"], LIPS_INNER, False),
]

EYE_BOX_SCALE = 1.8      # eye box side = 1.8 x the eye contour's width, centred on the eye
MOUTH_BOX_SCALE = 1.1    # mouth box side = 1.1 x the outer-lip width


def five_points(landmarks: np.ndarray) -> np.ndarray:
    """5 alignment points (eye on image left, eye on image right, nose tip, mouth corner left,
    mouth corner right) from 468 mesh points [468, >=2] -> [5, 2]."""
    pts = landmarks[:, :2]
    return np.stack([pts[EYE_L].mean(0), pts[EYE_R].mean(0), pts[NOSE_TIP], pts[MOUTH_L], pts[MOUTH_R]])


def label_map(points: np.ndarray, size: int) -> np.ndarray:
    """Rasterise the region polygons of mesh points [468, 2] (aligned pixels) into size x size uint8."""
    out = np.zeros((size, size), np.uint8)
    for label, idx, hull in _PAINT_ORDER:
        poly = np.round(points[idx] * 16).astype(np.int32)  # 4 fractional bits
        if hull:
            poly = cv2.convexHull(poly)
        cv2.fillPoly(out, [poly.reshape(-1, 1, 2)], int(label), lineType=cv2.LINE_8, shift=4)
    return out


def region_boxes(points: np.ndarray) -> np.ndarray:
    """Square boxes (x0, y0, x1, y1) for [left eye, right eye, mouth] from mesh points [468, 2]."""
    boxes = []
    for idx, scale in ((EYE_L, EYE_BOX_SCALE), (EYE_R, EYE_BOX_SCALE), (LIPS_OUTER, MOUTH_BOX_SCALE)):
        p = points[idx]
        centre = (p.min(0) + p.max(0)) / 2
        half = scale * (p[:, 0].max() - p[:, 0].min()) / 2
        boxes.append([centre[0] - half, centre[1] - half, centre[0] + half, centre[1] + half])
    return np.asarray(boxes, np.float32)
