"""The published restorers' networks for export: built from the user's weights file as the torch
backend builds them, with real aligned faces as samples (and w = the option's default)."""
from __future__ import annotations

import numpy as np

from export.networks.base import ExportNetwork, restorer_network
from runtime.restorers import RESTORERS
from runtime.restorers.options import FIDELITY_OPTION
from runtime.restorers.published import PUBLISHED
from runtime.restorers.published.arch import PublishedArch


def _samples(arch: PublishedArch):
    def samples(batch: int) -> tuple[np.ndarray, ...]:
        import cv2

        from export.networks.safm import real_faces
        from runtime.restorers.published.restorer import to_range

        faces = ((real_faces()[0][np.arange(batch) % 5].transpose(0, 2, 3, 1) + 1) * 127.5).round().astype(np.uint8)
        if arch.face_size != faces.shape[1]:
            faces = np.stack([cv2.resize(f, (arch.face_size,) * 2, interpolation=cv2.INTER_AREA) for f in faces])
        image = to_range(faces, arch.value_range)
        return (image, np.full((batch, 1), FIDELITY_OPTION.default, np.float32)) if arch.fidelity else (image,)

    return samples


def published_network(name: str) -> ExportNetwork:
    """The ExportNetwork of the registered published restorer `name` (KeyError when none)."""
    arch = PUBLISHED[name]
    return restorer_network(RESTORERS[name], arch.contract(), _samples(arch))
