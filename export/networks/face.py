"""The face detector and face mesh (MediaPipe ports) for export: modules and real sample inputs."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from export.networks.base import ExportNetwork
from runtime.contracts.face import FACE_DETECTOR, FACE_MESH

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
    detections = detect_faces(TorchSession(load_face_detector(), FACE_DETECTOR), photo)
    crops = [cv2.warpAffine(photo, roi_affine(detections[i % len(detections)]), (INPUT_SIZE, INPUT_SIZE),
                            flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE) for i in range(batch)]
    return (to_model_range(np.stack(crops)),)


def _face_detector(checkpoint: Path | None = None) -> torch.nn.Module:
    from training.face_nets import load_face_detector

    return load_face_detector(checkpoint)


def _face_mesh(checkpoint: Path | None = None) -> torch.nn.Module:
    from training.face_nets import load_face_mesh

    return load_face_mesh(checkpoint)


FACE_DETECTOR_NETWORK = ExportNetwork(FACE_DETECTOR, _face_detector, _detector_samples)
FACE_MESH_NETWORK = ExportNetwork(FACE_MESH, _face_mesh, _mesh_samples)
