"""Backends behind one session interface: numpy arrays in, a tuple of numpy arrays out."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from runtime.contracts.base import SOURCE_KEY, NetworkContract


class SessionError(RuntimeError):
    """An artifact that cannot back a session; the message names the file and what to do."""


DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


class TorchSession:
    """Runs an eval-mode torch module under inference_mode on a device/dtype; numpy in and out.
    Inputs at the positions `fp32_inputs` (timesteps, scales) stay fp32, so bf16 does not
    round timestep 999 to 1000. channels_last: weights and 4-D inputs in NHWC memory layout
    (the layout oneDNN and cuDNN convolutions run fastest in: benchmarks/NOTES.md)."""

    def __init__(self, module: torch.nn.Module, device: str = "cpu", dtype: torch.dtype = torch.float32,
                 fp32_inputs: tuple[int, ...] = (), channels_last: bool = False) -> None:
        self.device, self.dtype, self.fp32_inputs = torch.device(device), dtype, set(fp32_inputs)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.module = module.eval().to(self.device, dtype).to(memory_format=self.memory_format)

    def _tensor(self, i: int, x: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(np.ascontiguousarray(x)).to(self.device, torch.float32 if i in self.fp32_inputs else self.dtype)
        return t.contiguous(memory_format=self.memory_format) if t.ndim == 4 else t

    def __call__(self, *inputs: np.ndarray) -> tuple[np.ndarray, ...]:
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
    each used when the installed onnxruntime has it (ort_providers)."""

    def __init__(self, path: str, input_names: list[str], output_names: list[str], device: str = "cpu") -> None:
        import onnxruntime as ort

        providers = ort_providers(device, ort.get_available_providers(), Path(path).parent / "ort_trt_cache")
        self.session = ort.InferenceSession(str(path), providers=providers)
        self.input_names, self.output_names = input_names, output_names

    def __call__(self, *inputs: np.ndarray) -> tuple[np.ndarray, ...]:
        feed = {n: np.ascontiguousarray(x, dtype=np.float32) for n, x in zip(self.input_names, inputs)}
        return tuple(self.session.run(self.output_names, feed))


def onnx_session(contract: NetworkContract, onnx_dir: Path, checkpoint: Path | None = None,
                 device: str = "cpu") -> OnnxRuntimeSession:
    """An ONNX Runtime session of `<onnx_dir>/<contract name>.onnx`, refused (SessionError) when
    the file is missing or was exported from other weights than `checkpoint`."""
    path = Path(onnx_dir) / f"{contract.name}.onnx"
    ckpt = f" --checkpoint {checkpoint}" if checkpoint else ""
    hint = f"run `python -m export onnx --model {contract.name}{ckpt} --out {onnx_dir}`"
    if not path.is_file():
        raise SessionError(f"{path}: not found; {hint}")
    session = OnnxRuntimeSession(str(path), contract.input_names, contract.output_names, device)
    source = session.session.get_modelmeta().custom_metadata_map.get(SOURCE_KEY)
    if source != contract.source_id(checkpoint):
        raise SessionError(f"{path}: exported from other weights ({source}) than {checkpoint or 'the default'}; {hint}")
    return session
