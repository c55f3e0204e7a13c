"""Restorers: aligned face batch in, restored crops out (float32 [N, S, S, 3] in [0, 1])."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable, Protocol

import numpy as np
import torch

from runtime.contracts.safm import FACE, SAFM, safm_inputs
from runtime.face.pipeline import FaceBatch, to_crops
from runtime.sessions import DTYPES, TorchSession, onnx_session
from training.provenance import Provenance
from training.safm.checkpoint import provenance as safm_provenance

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
    """A torch session in the channels_last layout; fp16/bf16 only on CUDA (CPU half precision
    is slow and inexact)."""
    if precision != "fp32" and not device.startswith("cuda"):
        raise ValueError(f"--precision {precision} needs a CUDA device (got --device {device})")
    return TorchSession(module, device, DTYPES[precision], channels_last=True)


def make_safm_restorer(checkpoint: Path | None = None, backend: str = "torch", onnx_dir: Path = Path("engines"),
                       device: str = "cpu", precision: str = "fp32", fidelity: float = 0.5) -> SaFMRestorer:
    """SaFM on the torch, onnxruntime or tensorrt backend (ONNX / engine files in `onnx_dir`).
    Without a checkpoint it runs the shipped demo weights and says what they are."""
    if checkpoint is None:
        print("note: no --checkpoint given: SaFM runs the shipped DEMO weights (a small model trained on a CPU on "
              "photographs and one face; see training/weights/safm/README.md). Pass --checkpoint PATH.safetensors.",
              file=sys.stderr)
    origin = safm_provenance(checkpoint)
    if not 0.0 <= fidelity <= 1.0:
        raise ValueError(f"--fidelity must be in [0, 1], got {fidelity}")
    if backend == "onnxruntime":
        return SaFMRestorer(onnx_session(SAFM, onnx_dir, checkpoint, device), fidelity, origin)
    if backend == "tensorrt":
        from runtime.tensorrt_session import tensorrt_session

        return SaFMRestorer(tensorrt_session(SAFM, onnx_dir, checkpoint, use_cuda_graph=True), fidelity, origin)
    return SaFMRestorer(torch_session(SAFM.build_module(checkpoint), device, precision), fidelity, origin)
