"""BlazeFace full-range post-processing: letterbox, SSD anchors, score/box decoding, weighted NMS.

The network itself is `training.face_nets.BlazeFaceFullRange`; this module turns its raw
outputs (regressors [N, 2304, 16], score logits [N, 2304, 1]) into detections in photo pixels.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np

from runtime.contracts.face import DETECTOR_IMAGE

INPUT_SIZE = 192
STRIDE = 4                      # full-range model: one SSD layer, stride 4, one anchor per cell
# Narrowest face (box width, input pixels) the detector is relied on to find at 192x192: alone
# on a grey canvas real faces were found from 11-13 px on, but in the 36-face crowd 4 faces of
# 72 px were lost in 768 px tiles (18 px at the input) and none in 640 px tiles (21.6 px).
MIN_FACE_AT_INPUT = 22
TILE_SIDE = 640                 # the finest tiling: a 640 px tile finds faces from ~73 px on
RAW_SCORE_LIMIT = 100.0         # MediaPipe clips logits to +-100 before the sigmoid
NMS_IOU = 0.3
# Detector views per network call: a 12 MP photo's 49 views (640 px tiles) took 0.21-0.30 s in
# calls of 4, 0.33-0.58 s in calls of 8, 1.4-2.0 s as one batch of 49, whose activations also
# added 300 MB of peak RSS (ONNX Runtime fp32, 2-core Xeon, loaded; the same detections).
VIEWS_PER_CALL = 4

Net = Callable[[np.ndarray], tuple[np.ndarray, ...]]


@dataclass
class Detection:
    """One face: box (x0, y0, x1, y1) and 6 keypoints (right eye, left eye as seen in the image
    order of the model, nose, mouth, two tragions) in photo pixels, and its score."""

    box: np.ndarray
    keypoints: np.ndarray
    score: float

    @property
    def width(self) -> float:
        return float(self.box[2] - self.box[0])

    @property
    def center(self) -> np.ndarray:
        return (self.box[:2] + self.box[2:]) / 2


def anchors() -> np.ndarray:
    """Anchor centres (2304 x 2) in [0, 1], row-major, as MediaPipe's SsdAnchorsCalculator."""
    n = INPUT_SIZE // STRIDE
    ys, xs = np.meshgrid((np.arange(n) + 0.5) / n, (np.arange(n) + 0.5) / n, indexing="ij")
    return np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float32)


_ANCHORS = anchors()


def letterbox(rgb8: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fit an HxWx3 uint8 image into 192x192 keeping its aspect ratio (zero padding).

    Returns the model input (1x3x192x192 float32 in [-1, 1]) and the 2x3 affine photo -> input.
    """
    h, w = rgb8.shape[:2]
    scale = INPUT_SIZE / max(h, w)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    small = cv2.resize(rgb8, (nw, nh), interpolation=interp)
    px, py = (INPUT_SIZE - nw) // 2, (INPUT_SIZE - nh) // 2
    canvas = np.zeros((INPUT_SIZE, INPUT_SIZE, 3), np.uint8)
    canvas[py:py + nh, px:px + nw] = small
    affine = np.array([[nw / w, 0, px], [0, nh / h, py]], np.float64)
    return to_model_range(canvas[None]), affine


def to_model_range(rgb8: np.ndarray) -> np.ndarray:
    """NHWC uint8 -> NCHW float32 in [-1, 1] (the project's in-model convention)."""
    return np.ascontiguousarray(rgb8.transpose(0, 3, 1, 2), dtype=np.float32) / 127.5 - 1.0


def decode(regressors: np.ndarray, logits: np.ndarray, min_score: float) -> list[tuple[np.ndarray, float]]:
    """Decode one image's raw outputs into (16 values: box xyxy + 6 keypoints xy in [0,1] input
    coordinates, score) above `min_score`, before NMS."""
    scores = 1.0 / (1.0 + np.exp(-np.clip(logits[:, 0], -RAW_SCORE_LIMIT, RAW_SCORE_LIMIT)))
    keep = np.nonzero(scores >= min_score)[0]
    raw = regressors[keep].reshape(-1, 8, 2) / INPUT_SIZE
    anchor = _ANCHORS[keep][:, None, :]
    centre, size = raw[:, 0] + anchor[:, 0], raw[:, 1]
    points = raw[:, 2:] + anchor
    boxes = np.concatenate([centre - size / 2, centre + size / 2], axis=1)
    out = []
    for box, pts, score in zip(boxes, points, scores[keep]):
        if box[2] > box[0] and box[3] > box[1]:
            out.append((np.concatenate([box, pts.ravel()]), float(score)))
    return out


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    x0 = np.maximum(box[0], boxes[:, 0])
    y0 = np.maximum(box[1], boxes[:, 1])
    x1 = np.minimum(box[2], boxes[:, 2])
    y1 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = lambda b: (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])  # noqa: E731
    return inter / np.maximum(area(box) + area(boxes) - inter, 1e-12)


def weighted_nms(candidates: list[tuple[np.ndarray, float]], iou: float = NMS_IOU) -> list[tuple[np.ndarray, float]]:
    """MediaPipe's weighted NMS: each cluster (IoU > iou with its best member) is replaced by the
    score-weighted mean of its boxes and keypoints, keeping the best score."""
    if not candidates:
        return []
    values = np.stack([c[0] for c in candidates])
    scores = np.array([c[1] for c in candidates])
    order = np.argsort(-scores, kind="stable")
    values, scores = values[order], scores[order]
    alive = np.ones(len(scores), bool)
    out = []
    for i in range(len(scores)):
        if not alive[i]:
            continue
        cluster = alive & (_iou(values[i, :4], values[:, :4]) > iou)
        cluster[i] = True
        w = scores[cluster][:, None]
        out.append(((values[cluster] * w).sum(0) / w.sum(), float(scores[i])))
        alive &= ~cluster
    return out


def _spans(length: int, tile_side: int, overlap: float) -> list[tuple[int, int]]:
    """Sliding windows of `tile_side` overlapping by `overlap`, evenly spread over one axis; a
    length at most ~5% over one tile is one span (no sliver windows)."""
    n = max(1, int(np.ceil((length - tile_side * overlap) / (tile_side * (1 - overlap)) - 0.1)))
    span = length if n == 1 else tile_side
    return [(round(s), round(s) + span) for s in np.linspace(0, length - span, n)]


def tiles(width: int, height: int, tile_side: int = 640, overlap: float = 0.25) -> list[tuple[int, int, int, int]]:
    """Overlapping tiles (x0, y0, x1, y1) covering a large photo, so that the small faces of a
    group photo stay large enough at 192x192; empty when the photo is about one tile."""
    xs, ys = _spans(width, tile_side, overlap), _spans(height, tile_side, overlap)
    if len(xs) * len(ys) == 1:
        return []
    return [(x0, y0, x1, y1) for y0, y1 in ys for x0, x1 in xs]


def tile_side_for(width: int, height: int, min_face_size: float = 0.0) -> int | None:
    """The tile side needed to find faces `min_face_size` px wide, or None when the whole photo
    in one 192x192 view already shows them at MIN_FACE_AT_INPUT px or more. Tiles are never
    finer than TILE_SIDE (smaller faces than those it finds are not searched for)."""
    if min_face_size * INPUT_SIZE / max(width, height) >= MIN_FACE_AT_INPUT:
        return None
    side = max(TILE_SIDE, int(min_face_size * INPUT_SIZE / MIN_FACE_AT_INPUT))
    return side if tiles(width, height, side) else None


def views(rgb8: np.ndarray, tile_side: int | None) -> list[tuple[np.ndarray, np.ndarray]]:
    """The detector's views of an HxWx3 uint8 photo, each (1x3x192x192 model input, 2x3 affine
    photo -> input): the whole photo and, given `tile_side`, overlapping tiles of that side. All
    are cut from one copy of the photo resized so that a tile is 192 px (not each tile resized on
    its own from the full photo); the whole view is that copy letterboxed."""
    if tile_side is None:
        return [letterbox(rgb8)]
    h, w = rgb8.shape[:2]
    scale = INPUT_SIZE / tile_side
    small = cv2.resize(rgb8, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    sx, sy = small.shape[1] / w, small.shape[0] / h
    out = []
    for x0, y0, x1, y1 in [(0, 0, w, h)] + tiles(w, h, tile_side):
        cx0, cy0, cx1, cy1 = round(x0 * sx), round(y0 * sy), round(x1 * sx), round(y1 * sy)
        image, affine = letterbox(small[cy0:cy1, cx0:cx1])
        to_crop = np.array([[sx, 0, -cx0], [0, sy, -cy0], [0, 0, 1]])   # photo -> the cut of the copy
        out.append((image, affine @ to_crop))
    return out


def detect_faces(net: Net, rgb8: np.ndarray, min_score: float = 0.5, min_face_size: float = 0.0) -> list[Detection]:
    """Find faces in an HxWx3 uint8 photo: the whole photo and, only when faces `min_face_size`
    px wide would be too small in it (tile_side_for), overlapping tiles (views), VIEWS_PER_CALL
    views at a time through the detector; merged by weighted NMS in photo pixels."""
    h, w = rgb8.shape[:2]
    inputs, affines = zip(*views(rgb8, tile_side_for(w, h, min_face_size)))
    outputs = [net(**{DETECTOR_IMAGE.name: np.concatenate(inputs[i:i + VIEWS_PER_CALL])})
               for i in range(0, len(inputs), VIEWS_PER_CALL)]
    regressors, logits = (np.concatenate(o) for o in zip(*outputs))
    candidates = []
    for affine, reg, logit in zip(affines, regressors, logits):
        inv = cv2.invertAffineTransform(affine)
        for values, score in decode(reg, logit, min_score):
            pts = values.reshape(8, 2) * INPUT_SIZE
            candidates.append(((pts @ inv[:, :2].T + inv[:, 2]).ravel(), score))
    return [Detection(box=v[:4], keypoints=v[4:].reshape(6, 2), score=s) for v, s in weighted_nms(candidates)]
