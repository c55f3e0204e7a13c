"""A published restorer: its network (any session) between uint8 crops and its own pixel range."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from runtime.face.pipeline import FaceBatch
from runtime.imageio import to_uint8
from runtime.restorers.base import Net, Settable, option_defaults, require_checkpoint
from runtime.restorers.options import FIDELITY_OPTION
from runtime.restorers.published.arch import PublishedArch

if TYPE_CHECKING:
    import torch

    from training.provenance import Provenance


def to_range(crops: np.ndarray, value_range: tuple[float, float]) -> np.ndarray:
    """uint8 NHWC crops -> float32 NCHW in `value_range`."""
    low, high = value_range
    return np.ascontiguousarray((crops.transpose(0, 3, 1, 2).astype(np.float32) / 255.0) * (high - low) + low)


def from_range(restored: np.ndarray, value_range: tuple[float, float]) -> np.ndarray:
    """float NCHW in `value_range` -> uint8 NHWC crops, clipped and rounded (to_range's inverse)."""
    low, high = value_range
    return to_uint8((restored.transpose(0, 2, 3, 1) - low) / (high - low))


class PublishedRestorer(Settable):
    """A published network behind any session (torch, onnxruntime, tensorrt, Triton BLS): all
    faces of a photo as one batch, with the fidelity weight (a setting) where the network takes one."""

    def __init__(self, arch: PublishedArch, net: Net, provenance: Provenance | None = None) -> None:
        self.arch, self.net, self.provenance = arch, net, provenance
        self.name = arch.name
        self.settings = option_defaults((FIDELITY_OPTION,) if arch.fidelity else ())

    def inputs(self, crops: np.ndarray, fidelity: float | None = None) -> dict[str, np.ndarray]:
        """The network's inputs by name for uint8 crops."""
        image, *rest = self.arch.contract().inputs
        named = {image.name: to_range(crops, self.arch.value_range)}
        if rest:
            named[rest[0].name] = np.full((len(crops), 1), fidelity, np.float32)
        return named

    def __call__(self, batch: FaceBatch, **settings) -> np.ndarray:
        batch.require_size(self.arch.face_size, self.arch.title)
        (restored,) = self.net(**self.inputs(batch.crops, self.merged(settings).get("fidelity")))
        return from_range(restored, self.arch.value_range)


def load_network(arch: PublishedArch, checkpoint: Path | None) -> torch.nn.Module:
    """The architecture's torch module with the published file's weights (every key, exact
    shapes: training/published/weights.py refuses any other file, naming the key)."""
    from training.published.weights import load_into

    path = require_checkpoint(arch.name, arch.weights_files, checkpoint)
    module = new_network(arch)
    load_into(module, path, arch.key_prefix)
    return module.eval()


def new_network(arch: PublishedArch) -> torch.nn.Module:
    """The architecture's torch module, randomly initialised."""
    import importlib

    module_name, attr = arch.network.split(":")
    return getattr(importlib.import_module(module_name), attr)(**dict(arch.kwargs))


def save_random(arch: PublishedArch, path: Path, seed: int = 0, edit=None) -> Path:
    """A seeded random-weight instance of `arch` saved as its authors publish their weights:
    BasicSR's `params_ema` (over a zeroed `params`), Lightning's `state_dict` with the
    architecture's key prefix; every tensor perturbed, so zero-initialised ones (noise strengths,
    biases) count too; a bare state dict where the authors publish one (GPEN). For tests and
    benchmarks: no published weights exist here. `edit(state)`
    changes the state dict before saving."""
    import torch

    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    state = {k: v + 0.02 * torch.randn(v.shape, generator=g) if v.is_floating_point() else v
             for k, v in new_network(arch).state_dict().items()}
    if edit is not None:
        edit(state)
    if arch.key_prefix:
        wrapped = {"state_dict": {arch.key_prefix + k: v for k, v in state.items()}}
    elif arch.wrapper:
        wrapped = {arch.wrapper: state, "params": {k: torch.zeros_like(v) for k, v in state.items()}}
    else:
        wrapped = state
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    torch.save(wrapped, path)
    return Path(path)


def provenance(arch: PublishedArch, checkpoint: Path | None) -> Provenance:
    """The user's published file: trained (a published file is), its sha256 and its licence."""
    from runtime.files import sha256_file
    from training.provenance import Provenance

    path = require_checkpoint(arch.name, arch.weights_files, checkpoint)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found")
    return Provenance(f"{arch.title}: the user's published weights {path.name} (sha256 {sha256_file(path)[:16]}), "
                      f"licence {arch.licence}", True, arch.licence, arch.non_commercial)


def build(arch: PublishedArch, sessions: dict[str, Net], data: dict, device: str, progress: bool) -> PublishedRestorer:
    """The restorer on its session."""
    return PublishedRestorer(arch, sessions[arch.name])
