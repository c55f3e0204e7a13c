"""Face mesh stage: the rotated 192x192 crop around each detection, and the 468 points back in
photo pixels. The network is `training.face_nets.FaceMesh` (MediaPipe face_landmark)."""
from __future__ import annotations

from typing import Callable

import cv2
import numpy as np

from runtime.contracts.face import MESH_IMAGE
from runtime.face.detect import Detection, to_model_range

INPUT_SIZE = 192
ROI_SCALE = 1.5          # MediaPipe: the detection box grown 1.5x, square on its long side
PRESENCE_THRESHOLD = 0.5
# Crops per network call: the crowd photo's 36 faces took 0.9-1.3 s in calls of 4 (+17 MB peak),
# 0.6-1.2 s in calls of 8 (+36 MB), 1.9-2.7 s in one call (+200 MB) (ONNX Runtime fp32, 2-core
# Xeon, loaded; the same landmarks)
FACES_PER_CALL = 4

Net = Callable[[np.ndarray], tuple[np.ndarray, ...]]


def roi_affine(det: Detection) -> np.ndarray:
    """2x3 affine photo -> 192x192 mesh input: centred on the box, rotated so that the line
    between the two detected eyes is horizontal, side = 1.5 x the box's long side."""
    (ex0, ey0), (ex1, ey1) = det.keypoints[0], det.keypoints[1]
    angle = np.arctan2(ey1 - ey0, ex1 - ex0)
    if ex1 < ex0:  # keep upright whichever eye the model lists first
        angle = np.arctan2(ey0 - ey1, ex0 - ex1)
    side = ROI_SCALE * max(det.box[2] - det.box[0], det.box[3] - det.box[1])
    k = INPUT_SIZE / side
    c, s = np.cos(-angle) * k, np.sin(-angle) * k
    cx, cy = det.center
    rot = np.array([[c, -s], [s, c]])
    return np.hstack([rot, (np.array([INPUT_SIZE / 2, INPUT_SIZE / 2]) - rot @ (cx, cy))[:, None]])


def mesh_faces(net: Net, rgb8: np.ndarray, detections: list[Detection]) -> tuple[np.ndarray, np.ndarray]:
    """Run the mesh on all detections of a photo, FACES_PER_CALL at a time.

    Returns landmarks [N, 468, 3] (x, y in photo pixels, z in the crop's pixel scale) and the
    face-presence probability [N].
    """
    if not detections:
        return np.zeros((0, 468, 3), np.float32), np.zeros((0,), np.float32)
    affines = [roi_affine(d) for d in detections]
    crops = np.stack([cv2.warpAffine(rgb8, a, (INPUT_SIZE, INPUT_SIZE), flags=cv2.INTER_LINEAR,
                                     borderMode=cv2.BORDER_REPLICATE) for a in affines])
    outputs = [net(**{MESH_IMAGE.name: to_model_range(crops[i:i + FACES_PER_CALL])})
               for i in range(0, len(crops), FACES_PER_CALL)]
    raw, presence_logit = (np.concatenate(o) for o in zip(*outputs))
    points = raw.reshape(len(detections), 468, 3).astype(np.float64)
    out = np.empty_like(points)
    for i, a in enumerate(affines):
        inv = cv2.invertAffineTransform(a)
        out[i, :, :2] = points[i, :, :2] @ inv[:, :2].T + inv[:, 2]
        out[i, :, 2] = points[i, :, 2] / np.sqrt(abs(np.linalg.det(a[:, :2])))
    presence = 1.0 / (1.0 + np.exp(-presence_logit.reshape(-1)))
    return out.astype(np.float32), presence.astype(np.float32)
