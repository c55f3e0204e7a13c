"""One contract per exported network (DESIGN.md section 3).

Each contract names the network's tensors once (names, dtypes, shapes with the dynamic batch
axis), says how to build its torch module and real sample inputs, the TensorRT optimization
profile and the precision policy. ONNX export, engine builds, Triton configs and runtime
sessions all read these objects; no tensor name is typed anywhere else.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

BATCH = "batch"  # the one dynamic axis: faces (or photos) per call


@dataclass(frozen=True)
class TensorSpec:
    """A named tensor: dtype and shape, with BATCH marking the dynamic axis."""

    name: str
    shape: tuple[int | str, ...]
    dtype: str = "float32"

    def concrete(self, batch: int) -> tuple[int, ...]:
        """The shape with the batch axis filled in."""
        return tuple(batch if d == BATCH else int(d) for d in self.shape)


@dataclass(frozen=True)
class NetworkContract:
    """Everything export, engine build, serving and the runtime need to know about one network."""

    name: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    build_module: Callable[[], torch.nn.Module]
    sample_inputs: Callable[[int], tuple[np.ndarray, ...]]
    opt_batch: int = 1
    max_batch: int = 8
    precision: str = "fp16"  # TensorRT build precision; "fp32" keeps the network in fp32/tf32

    @property
    def input_names(self) -> list[str]:
        return [t.name for t in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [t.name for t in self.outputs]

    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        """torch.onnx.export's dynamic_axes for every tensor with a batch axis."""
        return {t.name: {i: BATCH for i, d in enumerate(t.shape) if d == BATCH}
                for t in self.inputs + self.outputs if BATCH in t.shape}

    def profile(self, max_batch: int | None = None) -> dict[str, tuple[tuple[int, ...], ...]]:
        """TensorRT optimization profile: input name -> (min, opt, max) shapes."""
        top = max_batch or self.max_batch
        return {t.name: (t.concrete(1), t.concrete(min(self.opt_batch, top)), t.concrete(top)) for t in self.inputs}


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


def _face_detector() -> torch.nn.Module:
    from training.face_nets import load_face_detector

    return load_face_detector()


def _face_mesh() -> torch.nn.Module:
    from training.face_nets import load_face_mesh

    return load_face_mesh()


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

CONTRACTS: dict[str, NetworkContract] = {c.name: c for c in (FACE_DETECTOR, FACE_MESH)}
MODEL_GROUPS: dict[str, list[str]] = {"face": ["face_detector", "face_mesh"]}
