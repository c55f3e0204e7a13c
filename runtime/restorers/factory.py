"""The one factory of restorers: any registered restorer on any backend. It checks the options,
picks the device and precision, opens one session per network of the restorer's spec (torch,
onnxruntime, openvino or tensorrt), hands them to the spec's `build` (built once) and binds the checked
settings (`Restorer.with_settings`: other settings later cost nothing)."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from runtime.restorers import RESTORERS
from runtime.restorers.base import Net, Restorer, RestorerSpec
BACKENDS = ("torch", "onnxruntime", "openvino", "tensorrt")


class UntrainedWeights(ValueError):
    """Weights whose provenance says they were never trained as a restorer, refused unless allowed."""


def check_trained(name: str, checkpoint: Path | None, allow_untrained: bool = False) -> None:
    """UntrainedWeights (one line: the restorer, what its weights are, --allow-untrained) when the
    provenance of `name`'s weights says untrained and `allow_untrained` is False; read from the
    checkpoint's notes, before any network is loaded. A restorer without weights passes."""
    spec = RESTORERS[name]
    if allow_untrained or spec.provenance is None:
        return
    if (reason := spec.provenance(checkpoint).refusal(name)) is not None:
        raise UntrainedWeights(reason)


def torch_precision(device: str, precision: str) -> str:
    """`precision` if the device can run it ("auto": fp16 on CUDA, fp32 elsewhere), else ValueError:
    fp16 only on CUDA (CPU half precision is slow), bf16 on CUDA or on a CPU that computes it
    natively (AVX512-BF16 or AMX)."""
    from runtime.sessions import DTYPES

    if precision == "auto":
        return "fp16" if device.startswith("cuda") else "fp32"
    if precision not in DTYPES:
        raise ValueError(f"unknown precision '{precision}'; choose one of {sorted(DTYPES)} or auto")
    if not device.startswith("cuda"):
        check_cpu_precision(precision, device)
    return precision


def check_cpu_precision(precision: str, device: str = "cpu") -> None:
    """ValueError unless a CPU runs `precision` well: fp16 never (CPU half precision is slow), bf16
    only on a CPU that computes it natively (AVX512-BF16 or AMX)."""
    from training.cpu import has_bf16

    if precision == "fp16":
        raise ValueError(f"--precision fp16 needs a CUDA device (got --device {device}); on a CPU use bf16")
    if precision == "bf16" and not has_bf16():
        raise ValueError("--precision bf16 needs a CUDA device or a CPU with AVX512-BF16 or AMX; this CPU has "
                         "neither (see /proc/cpuinfo flags)")


def _torch_sessions(spec: RestorerSpec, checkpoint: Path | None, device: str, precision: str, fp16_vae: bool,
                    channels_last: bool, mode: str = "eager") -> dict[str, Net]:
    import torch

    from runtime.sessions import DTYPES, TorchSession, torch_mode

    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r}: no CUDA device here; use device='cpu'")
    dtype = DTYPES[torch_precision(device, precision)]
    modules = spec.torch_modules(checkpoint) if spec.torch_modules else {}
    sessions = {c.name: TorchSession(modules[c.name], c, device,
                                     torch.float32 if c.name in spec.fp32_networks and not fp16_vae else dtype,
                                     channels_last) for c in spec.networks}
    # the networks run once per denoising step: CUDA graphs or torch.compile when asked
    return {name: torch_mode(s, mode) if name in spec.cuda_graph_networks else s for name, s in sessions.items()}


def make_restorer(name: str, checkpoint: Path | None = None, backend: str = "torch",
                  onnx_dir: Path | dict[str, Path] | None = None, device: str = "cpu", precision: str = "fp32", *,
                  threads: int | None = None, fp16_vae: bool = False, channels_last: bool = True,
                  progress: bool = True, torch_mode: str = "eager", allow_untrained: bool = False,
                  **options: Any) -> Restorer:
    """The restorer `name` of the registry on `backend`.

    checkpoint: its weights (None: the restorer's default). onnx_dir: folder of the ONNX files
    (onnxruntime) or engines (tensorrt), default ``engines``, or one folder per network name (the
    ONNX cache); files of other weights are refused.
    device: "cpu", "cuda", "cuda:N" or "auto" (cuda when available). precision: torch backend
    "fp32", "fp16", "bf16" or "auto"; openvino (CPU only) "fp32" or "bf16". threads: ONNX Runtime intra-op threads (None: one per
    physical core). fp16_vae: keep no network in fp32 at half precision (fp16-safe VAEs only).
    channels_last: torch backend in the NHWC memory layout. progress: progress bars and notes.
    torch_mode: torch backend, how the spec's per-step networks run (AuthFace's UNet+ControlNet):
    'eager', 'cuda-graph' (CUDA only) or 'compile' (runtime.sessions.torch_mode).
    allow_untrained: build it even when its weights' provenance says untrained (else UntrainedWeights).
    options: the restorer's own options (its spec), checked against their ranges and bound to the
    restorer (`restorer.with_settings(spec.settings(...))` changes them without a rebuild)."""
    if name not in RESTORERS:
        raise ValueError(f"unknown restorer '{name}'; choose one of {sorted(RESTORERS)}")
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend '{backend}'; choose one of {', '.join(BACKENDS)}")
    if torch_mode != "eager" and backend != "torch":
        raise ValueError(f"torch mode '{torch_mode}' is for the torch backend, not {backend}")
    spec = RESTORERS[name]
    settings = spec.settings(options)
    spec.check_checkpoint(checkpoint)
    check_trained(name, checkpoint, allow_untrained)
    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    def folder(network: str) -> Path:
        return Path(onnx_dir[network] if isinstance(onnx_dir, dict) else onnx_dir or "engines")

    if not spec.networks:
        sessions: dict[str, Net] = {}
    elif backend == "torch":
        sessions = _torch_sessions(spec, checkpoint, device, precision, fp16_vae, channels_last, torch_mode)
    elif backend == "onnxruntime":
        from runtime.sessions import onnx_session

        sessions = {c.name: onnx_session(c, folder(c.name), checkpoint, device, threads) for c in spec.networks}
        device = "cpu"
    elif backend == "openvino":
        from runtime.openvino_session import openvino_session

        if device != "cpu":
            raise ValueError(f"--backend openvino runs on the CPU, not --device {device}")
        check_cpu_precision(precision)
        sessions = {c.name: openvino_session(c, folder(c.name), checkpoint, precision, threads) for c in spec.networks}
    else:
        from runtime.tensorrt_session import tensorrt_session

        sessions = {c.name: tensorrt_session(c, folder(c.name), checkpoint, use_cuda_graph=c.name in spec.cuda_graph_networks)
                    for c in spec.networks}
        device = "cuda"   # TensorRT sessions take CUDA tensors (run_torch): a loop stays on the GPU
    if checkpoint is None and spec.default_note:
        print(f"note: {spec.default_note}", file=sys.stderr)
    restorer = spec.build(sessions, spec.weights_data(checkpoint), device, progress)
    if spec.provenance is not None:
        restorer.provenance = spec.provenance(checkpoint)
    return restorer.with_settings(settings)
