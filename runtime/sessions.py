"""Backends behind one session interface: numpy arrays in, a tuple of numpy arrays out.

Importing this module imports no torch: the ONNX Runtime path starts without it."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from runtime.contracts.base import SOURCE_KEY, NetworkContract
from runtime.weights import source_ids

if TYPE_CHECKING:
    import torch

PRECISIONS = ("fp32", "fp16", "bf16")


class SessionError(RuntimeError):
    """An artifact that cannot back a session; the message names the file and what to do."""


def __getattr__(name: str) -> Any:
    """DTYPES (precision name -> torch dtype) is made on first use, importing torch only then."""
    if name == "DTYPES":
        import torch

        return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class TorchSession:
    """Runs an eval-mode torch module under inference_mode on a device/dtype; numpy in and out.
    Inputs at the positions `fp32_inputs` (timesteps, scales) stay fp32, so bf16 does not
    round timestep 999 to 1000. channels_last: weights and 4-D inputs in NHWC memory layout
    (the layout oneDNN and cuDNN convolutions run fastest in: benchmarks/NOTES.md)."""

    def __init__(self, module: torch.nn.Module, device: str = "cpu", dtype: torch.dtype | None = None,
                 fp32_inputs: tuple[int, ...] = (), channels_last: bool = False) -> None:
        import torch

        dtype = dtype or torch.float32
        self.device, self.dtype, self.fp32_inputs = torch.device(device), dtype, set(fp32_inputs)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.module = module.eval().to(self.device, dtype).to(memory_format=self.memory_format)

    def _tensor(self, i: int, x: np.ndarray) -> torch.Tensor:
        import torch

        t = torch.from_numpy(np.ascontiguousarray(x)).to(self.device, torch.float32 if i in self.fp32_inputs else self.dtype)
        return t.contiguous(memory_format=self.memory_format) if t.ndim == 4 else t

    def __call__(self, *inputs: np.ndarray) -> tuple[np.ndarray, ...]:
        import torch

        with torch.inference_mode():
            out = self.module(*(self._tensor(i, x) for i, x in enumerate(inputs)))
        out = out if isinstance(out, (tuple, list)) else (out,)
        return tuple(o.float().cpu().numpy() for o in out)


def ort_providers(device: str, available: list[str], cache_dir: Path) -> list:
    """ONNX Runtime execution providers for `device`, best first, among those `available`
    (the onnxruntime-gpu wheel, extra ``ort-gpu``, has the GPU ones): 'tensorrt' = the TensorRT
    provider (fp16, engines and timing cache kept in `cache_dir`) then CUDA; 'cuda[:N]' = CUDA;
    the CPU provider always last."""
    providers: list = []
    if device == "tensorrt" and "TensorrtExecutionProvider" in available:
        providers.append(("TensorrtExecutionProvider", {
            "trt_fp16_enable": True, "trt_engine_cache_enable": True, "trt_engine_cache_path": str(cache_dir),
            "trt_timing_cache_enable": True, "trt_timing_cache_path": str(cache_dir)}))
    if device.startswith(("cuda", "tensorrt")) and "CUDAExecutionProvider" in available:
        index = device.split(":", 1)[1] if device.startswith("cuda:") else "0"
        providers.append(("CUDAExecutionProvider", {"device_id": int(index)}))
    return providers + ["CPUExecutionProvider"]


class OnnxRuntimeSession:
    """Runs an ONNX file with ONNX Runtime, binding inputs and outputs by the contract's names.
    device: 'cpu', 'cuda[:N]' (CUDA provider) or 'tensorrt' (TensorRT provider, CUDA fallback),
    each used when the installed onnxruntime has it (ort_providers).

    `threads`: intra-op threads (None: ORT's default, one per physical core). Idle intra-op
    threads sleep instead of spinning: on a loaded 2-core machine spinning made 2 threads
    1.1-1.7x slower than 1, without it they are as fast or faster (benchmarks/NOTES.md)."""

    def __init__(self, path: str, input_names: list[str], output_names: list[str], device: str = "cpu",
                 threads: int | None = None) -> None:
        import onnxruntime as ort

        providers = ort_providers(device, ort.get_available_providers(), Path(path).parent / "ort_trt_cache")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(path), options, providers=providers)
        self.input_names, self.output_names = input_names, output_names

    def __call__(self, *inputs: np.ndarray) -> tuple[np.ndarray, ...]:
        feed = {n: np.ascontiguousarray(x, dtype=np.float32) for n, x in zip(self.input_names, inputs)}
        return tuple(self.session.run(self.output_names, feed))


def onnx_session(contract: NetworkContract, onnx_dir: Path, checkpoint: Path | None = None,
                 device: str = "cpu", threads: int | None = None) -> OnnxRuntimeSession:
    """An ONNX Runtime session of `<onnx_dir>/<contract name>.onnx`, refused (SessionError) when
    the file is missing or was exported from other weights than `checkpoint` (None: the
    contract's default weights, by name or by their file's sha256)."""
    path = Path(onnx_dir) / f"{contract.name}.onnx"
    ckpt = f" --checkpoint {checkpoint}" if checkpoint else ""
    hint = f"run `python -m export onnx --model {contract.name}{ckpt} --out {onnx_dir}`"
    if not path.is_file():
        raise SessionError(f"{path}: not found; {hint}")
    session = OnnxRuntimeSession(str(path), contract.input_names, contract.output_names, device, threads)
    source = session.session.get_modelmeta().custom_metadata_map.get(SOURCE_KEY)
    if source not in source_ids(contract.name, checkpoint):
        raise SessionError(f"{path}: exported from other weights ({source}) than {checkpoint or 'the default'}; {hint}")
    return session
