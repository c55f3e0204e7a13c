"""The SaFM restorer: aligned face batch in, restored crops out (uint8 RGB [N, S, S, 3])."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from runtime.restorers.safm.contracts import FACE, FIDELITY, IMAGE, LABEL_MAP, SAFM
from runtime.face.pipeline import FaceBatch, to_crops
from runtime.restorers.base import Net, Settable, option_defaults
from runtime.restorers.options import FIDELITY_OPTION
from runtime.weights import default_weights

if TYPE_CHECKING:
    import torch

    from training.provenance import Provenance


def safm_inputs(images: np.ndarray, label_maps: np.ndarray, fidelity: float) -> dict[str, np.ndarray]:
    """The SaFM network's inputs by name, from face crops and label maps."""
    return {IMAGE.name: images, LABEL_MAP.name: label_maps, FIDELITY.name: np.full((len(images), 1), fidelity)}


class SaFMRestorer(Settable):
    """The SaFM network behind any session (torch, onnxruntime, tensorrt, Triton BLS): faces,
    region maps and the fidelity weight (a setting) go in as one batch."""

    name = "safm"

    def __init__(self, net: Net, provenance: Provenance | None = None) -> None:
        self.net, self.provenance, self.settings = net, provenance, option_defaults((FIDELITY_OPTION,))

    def __call__(self, batch: FaceBatch, **settings) -> np.ndarray:
        batch.require_size(FACE, "SaFM")
        fidelity = self.merged(settings)["fidelity"]
        (restored,) = self.net(**safm_inputs(batch.model_input(), batch.label_maps[:, None], fidelity))
        return to_crops(restored)


def provenance(checkpoint: Path | None) -> Provenance:
    """What a SaFM checkpoint's weights are (None: the shipped demo weights)."""
    from training.provenance import safm_provenance   # here: the served safm_faces model loads no `training`

    return safm_provenance(checkpoint if checkpoint is not None else default_weights(SAFM.name))


def torch_modules(checkpoint: Path | None) -> dict[str, torch.nn.Module]:
    """The SaFM network from a checkpoint, or the shipped demo weights without one."""
    from training.safm import load_checkpoint

    return {SAFM.name: load_checkpoint(checkpoint)}


def build(sessions: dict[str, Net], data: dict, device: str, progress: bool) -> SaFMRestorer:
    """SaFM on its session."""
    return SaFMRestorer(sessions[SAFM.name])
