"""The one factory of restorers: any registered restorer on any backend. It checks the options,
picks the device and precision, opens one session per network of the restorer's spec (torch,
onnxruntime or tensorrt) and hands them to the spec's `build`."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from runtime.restorers import RESTORERS
from runtime.restorers.base import Net, Restorer, RestorerSpec

BACKENDS = ("torch", "onnxruntime", "tensorrt")


def torch_precision(device: str, precision: str) -> str:
    """`precision` if the device can run it ("auto": fp16 on CUDA, fp32 elsewhere), else ValueError:
    fp16 only on CUDA (CPU half precision is slow), bf16 on CUDA or on a CPU that computes it
    natively (AVX512-BF16 or AMX)."""
    from training.cpu import has_bf16
    from runtime.sessions import DTYPES

    if precision == "auto":
        return "fp16" if device.startswith("cuda") else "fp32"
    if precision not in DTYPES:
        raise ValueError(f"unknown precision '{precision}'; choose one of {sorted(DTYPES)} or auto")
    if not device.startswith("cuda"):
        if precision == "fp16":
            raise ValueError(f"--precision fp16 needs a CUDA device (got --device {device}); on a CPU use bf16")
        if precision == "bf16" and not has_bf16():
            raise ValueError("--precision bf16 needs a CUDA device or a CPU with AVX512-BF16 or AMX; this CPU has "
                             "neither (see /proc/cpuinfo flags)")
    return precision


def _torch_sessions(spec: RestorerSpec, checkpoint: Path | None, device: str, precision: str, fp16_vae: bool,
                    channels_last: bool) -> dict[str, Net]:
    import torch

    from runtime.sessions import DTYPES, TorchSession

    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r}: no CUDA device here; use device='cpu'")
    dtype = DTYPES[torch_precision(device, precision)]
    modules = spec.torch_modules(checkpoint) if spec.torch_modules else {}
    return {c.name: TorchSession(modules[c.name], c, device,
                                 torch.float32 if c.name in spec.fp32_networks and not fp16_vae else dtype,
                                 channels_last) for c in spec.networks}


def make_restorer(name: str, checkpoint: Path | None = None, backend: str = "torch",
                  onnx_dir: Path | dict[str, Path] | None = None, device: str = "cpu", precision: str = "fp32", *,
                  threads: int | None = None, fp16_vae: bool = False, channels_last: bool = True,
                  progress: bool = True, **options: Any) -> Restorer:
    """The restorer `name` of the registry on `backend`.

    checkpoint: its weights (None: the restorer's default). onnx_dir: folder of the ONNX files
    (onnxruntime) or engines (tensorrt), default ``engines``, or one folder per network name (the
    ONNX cache); files of other weights are refused.
    device: "cpu", "cuda", "cuda:N" or "auto" (cuda when available). precision: torch backend
    "fp32", "fp16", "bf16" or "auto". threads: ONNX Runtime intra-op threads (None: one per
    physical core). fp16_vae: keep no network in fp32 at half precision (fp16-safe VAEs only).
    channels_last: torch backend in the NHWC memory layout. progress: progress bars and notes.
    options: the restorer's own options (its spec), checked against their ranges."""
    if name not in RESTORERS:
        raise ValueError(f"unknown restorer '{name}'; choose one of {sorted(RESTORERS)}")
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend '{backend}'; choose one of {', '.join(BACKENDS)}")
    spec = RESTORERS[name]
    settings = spec.settings(options)
    spec.check_checkpoint(checkpoint)
    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    def folder(network: str) -> Path:
        return Path(onnx_dir[network] if isinstance(onnx_dir, dict) else onnx_dir or "engines")

    if not spec.networks:
        sessions: dict[str, Net] = {}
    elif backend == "torch":
        sessions = _torch_sessions(spec, checkpoint, device, precision, fp16_vae, channels_last)
    elif backend == "onnxruntime":
        from runtime.sessions import onnx_session

        sessions = {c.name: onnx_session(c, folder(c.name), checkpoint, device, threads) for c in spec.networks}
        device = "cpu"
    else:
        from runtime.tensorrt_session import tensorrt_session

        sessions = {c.name: tensorrt_session(c, folder(c.name), checkpoint, use_cuda_graph=c.name in spec.cuda_graph_networks)
                    for c in spec.networks}
        device = "cuda"   # TensorRT sessions take CUDA tensors (run_torch): a loop stays on the GPU
    return spec.build(sessions, checkpoint, device, progress, **settings)
