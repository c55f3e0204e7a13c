"""The contract type: one per exported network (docs/ARCHITECTURE.md).

Each contract names the network's tensors once (names, dtypes, shapes with the dynamic batch
axis), its TensorRT optimization profile, precision policy and parity tolerance: pure data.
ONNX export, engine builds, Triton configs and runtime sessions all read these objects; no
tensor name is typed anywhere else. How a network is built in torch and its sample inputs are
export's (export/networks/).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

BATCH = "batch"  # the one dynamic axis: faces (or photos) per call
SOURCE_KEY = "source_weights"  # ONNX metadata key: which weights an exported graph came from (runtime/weights.py)


@dataclass(frozen=True)
class TensorSpec:
    """A named tensor: dtype and shape, with BATCH marking the dynamic axis. keep_fp32: the input
    stays fp32 when the network runs in fp16/bf16 (timesteps: bf16 rounds 999 to 1000)."""

    name: str
    shape: tuple[int | str, ...]
    dtype: str = "float32"
    keep_fp32: bool = False

    def concrete(self, batch: int, sizes: dict[str, int] | None = None) -> tuple[int, ...]:
        """The shape with the batch axis and the open image axes named in `sizes` filled in
        (ValueError for an open axis not in `sizes`)."""
        sizes = {**(sizes or {}), BATCH: batch}
        if open_axes := [d for d in self.shape if isinstance(d, str) and d not in sizes]:
            raise ValueError(f"tensor '{self.name}' has open axes {open_axes}: give their sizes for a fixed shape")
        return tuple(sizes[d] if isinstance(d, str) else int(d) for d in self.shape)

    def nbytes(self, batch: int) -> int:
        """Bytes of the tensor at `batch` (its declared dtype)."""
        import numpy as np

        return int(np.prod(self.concrete(batch))) * np.dtype(self.dtype).itemsize


@dataclass(frozen=True)
class NetworkContract:
    """Everything export, engine build, serving and the runtime need to know about one network."""

    name: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    opt_batch: int = 1
    max_batch: int = 8
    precision: str = "fp16"  # TensorRT build precision; "fp32" keeps the network in fp32/tf32
    parity_tolerance: float = 1e-4  # fp32 ONNX Runtime vs PyTorch: max |err| / max |output|
    per_step: bool = False  # called once per denoising step of a request (a batching delay is paid every step)

    @property
    def input_names(self) -> list[str]:
        return [t.name for t in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [t.name for t in self.outputs]

    def bind(self, args: tuple[Any, ...], named: dict[str, Any]) -> dict[str, Any]:
        """One call's inputs by name: given by name, or (generic callers: sample inputs, tests) all
        in contract order; ValueError naming the network on a missing, extra or unknown input."""
        if args and named:
            raise ValueError(f"{self.name}: pass the inputs by name or all in contract order, not both")
        if args:
            if len(args) != len(self.inputs):
                raise ValueError(f"{self.name}: {len(args)} inputs given, it takes {self.input_names}")
            return dict(zip(self.input_names, args))
        if set(named) != set(self.input_names):
            raise ValueError(f"{self.name}: inputs {sorted(named)} given, it takes {self.input_names}")
        return {n: named[n] for n in self.input_names}

    def call_bytes(self, batch: int) -> int:
        """Bytes of one call's inputs and outputs at `batch`: what a BLS caller moves through
        Triton's memory for it."""
        return sum(t.nbytes(batch) for t in self.inputs + self.outputs)

    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        """torch.onnx.export's dynamic_axes: every named axis (the batch; an image size where the
        contract leaves it open) of every tensor that has one."""
        return {t.name: {i: d for i, d in enumerate(t.shape) if isinstance(d, str)}
                for t in self.inputs + self.outputs if any(isinstance(d, str) for d in t.shape)}

    def open_axes(self) -> list[str]:
        """The inputs' open axes other than the batch (an image's height and width), in order."""
        return list(dict.fromkeys(d for t in self.inputs for d in t.shape if isinstance(d, str) and d != BATCH))

    def profile(self, max_batch: int | None = None,
                axes: dict[str, tuple[int, int, int]] | None = None) -> dict[str, tuple[tuple[int, ...], ...]]:
        """TensorRT optimization profile: input name -> (min, opt, max) shapes; `axes` gives the
        (min, opt, max) of each open image axis (the upsampler's tiles: contracts/upsampler.py)."""
        top, axes = max_batch or self.max_batch, axes or {}
        batches = (1, min(self.opt_batch, top), top)
        return {t.name: tuple(t.concrete(b, {a: r[i] for a, r in axes.items()}) for i, b in enumerate(batches))
                for t in self.inputs}
