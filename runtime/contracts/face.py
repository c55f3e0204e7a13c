"""Contracts of the face detector and face mesh (MediaPipe ports)."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from runtime.contracts.base import BATCH, NetworkContract, TensorSpec

if TYPE_CHECKING:
    import torch


def _detector_samples(batch: int) -> tuple[np.ndarray, ...]:
    """Real photos letterboxed to 192x192 in [-1, 1], cycled to `batch`."""
    from runtime.face.detect import letterbox
    from runtime.samples import FACE_PHOTOS, group_photo, read_rgb8

    photos = [read_rgb8(p) for p in FACE_PHOTOS] + [group_photo()]
    frames = [letterbox(photos[i % len(photos)])[0] for i in range(batch)]
    return (np.concatenate(frames),)


def _mesh_samples(batch: int) -> tuple[np.ndarray, ...]:
    """Real mesh inputs: the rotated 192x192 face crops of the sample photos, cycled to `batch`."""
    import cv2

    from runtime.face.detect import detect_faces, to_model_range
    from runtime.face.mesh import INPUT_SIZE, roi_affine
    from runtime.samples import group_photo
    from runtime.sessions import TorchSession
    from training.face_nets import load_face_detector

    photo = group_photo()
    detections = detect_faces(TorchSession(load_face_detector()), photo)
    crops = [cv2.warpAffine(photo, roi_affine(detections[i % len(detections)]), (INPUT_SIZE, INPUT_SIZE),
                            flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE) for i in range(batch)]
    return (to_model_range(np.stack(crops)),)


def _face_detector(checkpoint: Path | None = None) -> torch.nn.Module:
    from training.face_nets import load_face_detector

    return load_face_detector(checkpoint)


def _face_mesh(checkpoint: Path | None = None) -> torch.nn.Module:
    from training.face_nets import load_face_mesh

    return load_face_mesh(checkpoint)


FACE_DETECTOR = NetworkContract(
    name="face_detector",
    inputs=(TensorSpec("image", (BATCH, 3, 192, 192)),),
    outputs=(TensorSpec("regressors", (BATCH, 2304, 16)), TensorSpec("score_logits", (BATCH, 2304, 1))),
    build_module=_face_detector, sample_inputs=_detector_samples, opt_batch=1, max_batch=16,
)

FACE_MESH = NetworkContract(
    name="face_mesh",
    inputs=(TensorSpec("image", (BATCH, 3, 192, 192)),),
    outputs=(TensorSpec("landmarks", (BATCH, 1404)), TensorSpec("presence_logit", (BATCH, 1))),
    build_module=_face_mesh, sample_inputs=_mesh_samples, opt_batch=4, max_batch=32,
)
