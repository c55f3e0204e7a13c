"""Contracts of the face detector and face mesh (MediaPipe ports)."""
from __future__ import annotations

from runtime.contracts.base import BATCH, NetworkContract, TensorSpec

# the inputs callers name (runtime/face/detect.py, mesh.py): letterboxed photos and face crops in [-1, 1]
DETECTOR_IMAGE = TensorSpec("image", (BATCH, 3, 192, 192))
MESH_IMAGE = TensorSpec("image", (BATCH, 3, 192, 192))

FACE_DETECTOR = NetworkContract(
    name="face_detector",
    inputs=(DETECTOR_IMAGE,),
    outputs=(TensorSpec("regressors", (BATCH, 2304, 16)), TensorSpec("score_logits", (BATCH, 2304, 1))),
    opt_batch=1, max_batch=16,
)

FACE_MESH = NetworkContract(
    name="face_mesh",
    inputs=(MESH_IMAGE,),
    outputs=(TensorSpec("landmarks", (BATCH, 1404)), TensorSpec("presence_logit", (BATCH, 1))),
    opt_batch=4, max_batch=32,
)
