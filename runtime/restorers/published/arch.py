"""One published architecture as data: how to build its network, feed it, and what its weights are.
Light: no torch, no `training`."""
from __future__ import annotations

from dataclasses import dataclass

from runtime.contracts.base import BATCH, NetworkContract, TensorSpec


@dataclass(frozen=True)
class PublishedArch:
    """One published architecture: what is needed to build it, feed it and say what it is.

    network: 'module:callable' of its torch module in training/published/, called with `kwargs`.
    face_size: the aligned face side it takes.
    face_template: the 5-point template its faces are aligned on, scaled to face_size
        (runtime.face.align.TEMPLATES: FFHQ's, or ArcFace's for GPEN-BFR-256 as facefusion runs it).
    wrapper: the dict its published file holds the weights under ('' : a bare state dict).
    value_range: the pixel range of its input and output (uint8 0..255 maps linearly onto it).
    fidelity: it takes a fidelity weight w [B, 1] after the image (the `fidelity` option).
    key_prefix: a prefix stripped from the file's keys (RestoreFormer's Lightning `vqvae.`);
        when the file has it, its keys without it are training-only (losses) and left out.
    licence / non_commercial: the weights' licence as their authors publish it."""

    name: str
    title: str
    network: str
    licence: str
    non_commercial: bool = False
    kwargs: tuple[tuple[str, object], ...] = ()
    face_size: int = 512
    face_template: str = "ffhq"
    wrapper: str = "params_ema"
    value_range: tuple[float, float] = (-1.0, 1.0)
    fidelity: bool = False
    key_prefix: str = ""
    files: str = ""                      # the published files it loads, for --help and errors
    parity_tolerance: float = 1e-3       # ONNX Runtime vs torch, max |err| / max |output| (random weights grow large)

    @property
    def weights_files(self) -> str:
        return self.files or "a .pth file"

    def contract(self) -> NetworkContract:
        """Its network's contract: image (and w) -> restored, any batch."""
        image = TensorSpec("image", (BATCH, 3, self.face_size, self.face_size))
        inputs = (image, TensorSpec("fidelity", (BATCH, 1))) if self.fidelity else (image,)
        return NetworkContract(self.name, inputs, (TensorSpec("restored", image.shape),), opt_batch=4, max_batch=16,
                               parity_tolerance=self.parity_tolerance)
