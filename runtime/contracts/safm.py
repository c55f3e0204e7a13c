"""Contract of the SaFM restorer: aligned faces + region maps + fidelity -> restored faces."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from runtime.contracts.base import BATCH, NetworkContract, TensorSpec

if TYPE_CHECKING:
    import torch

FACE = 512
DEFAULT_FIDELITY = 0.5


@lru_cache(maxsize=1)
def real_faces() -> tuple[np.ndarray, np.ndarray]:
    """The aligned 512 faces and label maps of the sample photos (astronaut, Grace Hopper and
    the 3-face group photo): float32 NCHW [5, 3, 512, 512] in [-1, 1] and [5, 1, 512, 512]."""
    from runtime.face import torch_face_pipeline
    from runtime.imageio import Photo, read_image
    from runtime.samples import FACE_PHOTOS, group_photo

    pipeline = torch_face_pipeline()
    photos = [read_image(p) for p in FACE_PHOTOS] + [Photo(rgb=group_photo().astype(np.float32) / 255.0)]
    batches = [pipeline.align(p, pipeline.find(p)[0]) for p in photos]
    images = np.concatenate([b.model_input() for b in batches])
    labels = np.concatenate([b.label_maps[:, None] for b in batches]).astype(np.float32)
    return images, labels


def safm_inputs(images: np.ndarray, label_maps: np.ndarray, fidelity: float) -> tuple[np.ndarray, ...]:
    """The SaFM network's inputs, in contract order, from face crops and label maps."""
    return (np.ascontiguousarray(images, np.float32), np.ascontiguousarray(label_maps, np.float32),
            np.full((len(images), 1), fidelity, np.float32))


def _samples(batch: int) -> tuple[np.ndarray, ...]:
    images, labels = real_faces()
    idx = np.arange(batch) % len(images)
    return safm_inputs(images[idx], labels[idx], DEFAULT_FIDELITY)


def build_safm(checkpoint: Path | None = None) -> torch.nn.Module:
    """The SaFM network from a checkpoint, or the shipped demo weights (safm-tiny) without one."""
    from training.safm import DEMO_CHECKPOINT, load_checkpoint

    return load_checkpoint(checkpoint if checkpoint is not None else DEMO_CHECKPOINT)


SAFM = NetworkContract(
    name="safm",
    inputs=(TensorSpec("image", (BATCH, 3, FACE, FACE)), TensorSpec("label_map", (BATCH, 1, FACE, FACE)),
            TensorSpec("fidelity", (BATCH, 1))),
    outputs=(TensorSpec("restored", (BATCH, 3, FACE, FACE)),),
    build_module=build_safm, sample_inputs=_samples, opt_batch=4, max_batch=16,
    # Measured 5e-5..2.2e-4 with random weights, whose activations grow to outputs of +-8 through
    # 70 layers; a nearest-code lookup can also flip on a near-tie. Trained scale: ~1e-4 absolute.
    parity_tolerance=5e-4,
)
