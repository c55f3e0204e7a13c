"""The SaFM restorer network for export: module and real sample inputs."""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from export.networks.base import restorer_network
from runtime.restorers.safm.contracts import DEFAULT_FIDELITY, SAFM
from runtime.restorers.safm import SAFM_RESTORER
from runtime.restorers.safm.restorer import safm_inputs


@lru_cache(maxsize=1)
def real_faces() -> tuple[np.ndarray, np.ndarray]:
    """The aligned 512 faces and label maps of the sample photos (astronaut, Grace Hopper and
    the 3-face group photo): float32 NCHW [5, 3, 512, 512] in [-1, 1] and [5, 1, 512, 512]."""
    from runtime.face import torch_face_pipeline
    from runtime.imageio import frame_photo, read_image
    from runtime.samples import FACE_PHOTOS, group_photo

    pipeline = torch_face_pipeline()
    photos = [read_image(p) for p in FACE_PHOTOS] + [frame_photo(group_photo())]
    batches = [pipeline.align(p, pipeline.find(p)[0]) for p in photos]
    images = np.concatenate([b.model_input() for b in batches])
    labels = np.concatenate([b.label_maps[:, None] for b in batches]).astype(np.float32)
    return images, labels


def _samples(batch: int) -> tuple[np.ndarray, ...]:
    images, labels = real_faces()
    idx = np.arange(batch) % len(images)
    named = safm_inputs(images[idx], labels[idx], DEFAULT_FIDELITY)
    return tuple(np.ascontiguousarray(named[s.name], s.dtype) for s in SAFM.inputs)


SAFM_NETWORK = restorer_network(SAFM_RESTORER, SAFM, _samples)
