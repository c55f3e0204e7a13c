"""Restorers: aligned face batch in, restored crops out (float32 [N, S, S, 3] in [0, 1])."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Protocol

import numpy as np

from runtime.contracts.safm import FACE, SAFM
from runtime.face.pipeline import FaceBatch, to_crops
from runtime.sessions import onnx_session
from runtime.weights import default_weights
from training.provenance import Provenance, safm_provenance

if TYPE_CHECKING:
    import torch

    from runtime.sessions import TorchSession

Net = Callable[..., tuple[np.ndarray, ...]]


class Restorer(Protocol):
    """What the restore job calls: all faces of one photo as one batch. `provenance` says what
    its weights are (None: not recorded, e.g. inside a served BLS model)."""

    name: str
    provenance: Provenance | None

    def __call__(self, batch: FaceBatch) -> np.ndarray: ...


class IdentityRestorer:
    """Gives the aligned crops back unchanged: a check of the face pipeline (detect, align,
    paste back), not a restorer."""

    name = "identity"
    provenance = Provenance("identity: no network, the aligned crops unchanged", True)

    def __call__(self, batch: FaceBatch) -> np.ndarray:
        return batch.crops


def safm_inputs(images: np.ndarray, label_maps: np.ndarray, fidelity: float) -> tuple[np.ndarray, ...]:
    """The SaFM network's inputs, in contract order, from face crops and label maps."""
    return (np.ascontiguousarray(images, np.float32), np.ascontiguousarray(label_maps, np.float32),
            np.full((len(images), 1), fidelity, np.float32))


class SaFMRestorer:
    """The SaFM network behind any session (torch, onnxruntime, tensorrt): faces, region maps
    and the fidelity weight go in as one batch."""

    name = "safm"

    def __init__(self, net: Net, fidelity: float = 0.5, provenance: Provenance | None = None) -> None:
        self.net, self.fidelity, self.provenance = net, fidelity, provenance

    def __call__(self, batch: FaceBatch) -> np.ndarray:
        batch.require_size(FACE, "SaFM")
        (restored,) = self.net(*safm_inputs(batch.model_input(), batch.label_maps[:, None], self.fidelity))
        return to_crops(restored)


def torch_session(module: torch.nn.Module, device: str, precision: str) -> TorchSession:
    """A torch session in the channels_last layout; fp16 only on CUDA (CPU half precision is
    slow), bf16 on CUDA or on a CPU that computes it natively (AVX512-BF16 or AMX)."""
    from runtime.cpu import has_bf16
    from runtime.sessions import DTYPES, TorchSession

    if not device.startswith("cuda"):
        if precision == "fp16":
            raise ValueError(f"--precision fp16 needs a CUDA device (got --device {device}); on a CPU use bf16")
        if precision == "bf16" and not has_bf16():
            raise ValueError("--precision bf16 needs a CUDA device or a CPU with AVX512-BF16 or AMX; this CPU has "
                             "neither (see /proc/cpuinfo flags)")
    return TorchSession(module, device, DTYPES[precision], channels_last=True)


def make_safm_restorer(checkpoint: Path | None = None, backend: str = "torch", onnx_dir: Path = Path("engines"),
                       device: str = "cpu", precision: str = "fp32", fidelity: float = 0.5,
                       threads: int | None = None) -> SaFMRestorer:
    """SaFM on the torch, onnxruntime or tensorrt backend (ONNX / engine files in `onnx_dir`;
    `threads`: ONNX Runtime intra-op threads, None: one per physical core).
    Without a checkpoint it runs the shipped demo weights and says what they are."""
    if checkpoint is None:
        print("note: no --checkpoint given: SaFM runs the shipped DEMO weights (a small model trained on a CPU on "
              "photographs and one face; see training/weights/safm/README.md). Pass --checkpoint PATH.safetensors.",
              file=sys.stderr)
    origin = safm_provenance(checkpoint if checkpoint is not None else default_weights(SAFM.name))
    if not 0.0 <= fidelity <= 1.0:
        raise ValueError(f"--fidelity must be in [0, 1], got {fidelity}")
    if backend == "onnxruntime":
        return SaFMRestorer(onnx_session(SAFM, onnx_dir, checkpoint, device, threads), fidelity, origin)
    if backend == "tensorrt":
        from runtime.tensorrt_session import tensorrt_session

        return SaFMRestorer(tensorrt_session(SAFM, onnx_dir, checkpoint, use_cuda_graph=True), fidelity, origin)
    from training.safm import load_checkpoint

    return SaFMRestorer(torch_session(load_checkpoint(checkpoint), device, precision), fidelity, origin)
