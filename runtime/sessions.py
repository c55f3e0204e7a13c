"""Backends behind one session interface: numpy arrays in (by the contract's names, in its
dtypes), a tuple of numpy arrays out (contract order).

Importing this module imports no torch: the ONNX Runtime path starts without it."""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from runtime.contracts.base import SOURCE_KEY, NetworkContract, TensorSpec
from runtime.files import cache_root
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


def as_declared(spec: TensorSpec, x: np.ndarray) -> np.ndarray:
    """An input as its contract declares it: contiguous, in the spec's dtype."""
    return np.ascontiguousarray(x, spec.dtype)


def contract_feed(contract: NetworkContract, args: tuple, named: dict) -> dict[str, np.ndarray]:
    """The feed of one call of an ONNX-file session: every input by name, in its declared dtype."""
    inputs = contract.bind(args, named)
    return {s.name: as_declared(s, inputs[s.name]) for s in contract.inputs}


class TorchSession:
    """Runs an eval-mode torch module of `contract`'s network under inference_mode on a
    device/dtype; numpy in (by name, or all in contract order), numpy out; or, through
    ``run_torch``, torch tensors in and out on the device (a loop whose state stays there never
    crosses to the host). Floating inputs run in `dtype` except those the contract keeps fp32
    (timesteps, scales: bf16 rounds 999 to 1000); other inputs keep their declared dtype.
    channels_last: weights and 4-D inputs in NHWC memory layout (the layout oneDNN and cuDNN
    convolutions run fastest in: benchmarks/NOTES.md)."""

    def __init__(self, module: torch.nn.Module, contract: NetworkContract, device: str = "cpu",
                 dtype: torch.dtype | None = None, channels_last: bool = False) -> None:
        import torch

        dtype = dtype or torch.float32
        self.contract, self.device, self.dtype = contract, torch.device(device), dtype
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.module = module.eval().to(self.device, dtype)
        for t in (*self.module.parameters(), *self.module.buffers()):   # 4-D only (StyleGAN's weights are 5-D)
            if t.ndim == 4:
                t.data = t.data.contiguous(memory_format=self.memory_format)

    def _tensor(self, spec: TensorSpec, x: np.ndarray | torch.Tensor) -> torch.Tensor:
        import torch

        t = torch.from_numpy(as_declared(spec, x)) if isinstance(x, np.ndarray) else x
        if t.is_floating_point():
            t = t.to(self.device, torch.float32 if spec.keep_fp32 else self.dtype)
        else:
            t = t.to(self.device)
        return t.contiguous(memory_format=self.memory_format) if t.ndim == 4 else t

    def tensors(self, *args: np.ndarray | torch.Tensor, **named: np.ndarray | torch.Tensor) -> list[torch.Tensor]:
        """The inputs (numpy or torch; by name, or all in contract order) as the module's tensors on
        its device, in contract order."""
        inputs = self.contract.bind(args, named)
        return [self._tensor(s, inputs[s.name]) for s in self.contract.inputs]

    @staticmethod
    def to_host(out: torch.Tensor | tuple | list) -> tuple[np.ndarray, ...]:
        """The module's output(s) as float32 numpy arrays."""
        out = out if isinstance(out, (tuple, list)) else (out,)
        return tuple(o.float().cpu().numpy() for o in out)

    def run_torch(self, *args: torch.Tensor, **named: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Torch tensors in, the outputs as torch tensors on the session's device (in its dtype)."""
        import torch

        tensors = self.tensors(*args, **named)
        with torch.inference_mode():
            out = self.module(*tensors)
        return tuple(out) if isinstance(out, (tuple, list)) else (out,)

    def __call__(self, *args: np.ndarray, **named: np.ndarray) -> tuple[np.ndarray, ...]:
        return self.to_host(self.run_torch(*args, **named))


class CudaGraphSession:
    """A CUDA TorchSession replayed from a CUDA graph captured on the first call of each input
    shape: the inputs are copied into the graph's static buffers and one replay launches every
    kernel (eager SDXL UNet+ControlNet steps are launch-bound: 97.6 ms eager vs 19.4 ms replayed
    at batch 1 on an H200, benchmarks/results/nvidia-h200). Outputs are copies, so the next replay
    never changes what a caller holds."""

    def __init__(self, session: TorchSession) -> None:
        if session.device.type != "cuda":
            raise ValueError(f"{session.contract.name}: CUDA graphs need a CUDA device, not {session.device}")
        self.session, self.contract = session, session.contract
        self.graphs: dict[tuple, tuple] = {}

    def _capture(self, tensors: list[torch.Tensor]) -> tuple:
        import torch

        static = [t.clone() for t in tensors]
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side), torch.inference_mode():
            for _ in range(2):   # warm-up on a side stream, as graph capture requires
                self.session.module(*static)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph), torch.inference_mode():
            out = self.session.module(*static)
        return graph, static, tuple(out) if isinstance(out, (tuple, list)) else (out,)

    def run_torch(self, *args: torch.Tensor, **named: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """As TorchSession.run_torch, replayed from the graph of these input shapes."""
        tensors = self.session.tensors(*args, **named)
        key = tuple((tuple(t.shape), t.dtype) for t in tensors)
        if key not in self.graphs:
            self.graphs[key] = self._capture(tensors)
        graph, static, out = self.graphs[key]
        for buffer, t in zip(static, tensors):
            buffer.copy_(t)
        graph.replay()
        return tuple(o.clone() for o in out)

    def __call__(self, *args: np.ndarray, **named: np.ndarray) -> tuple[np.ndarray, ...]:
        return TorchSession.to_host(self.run_torch(*args, **named))


TORCH_MODES = ("eager", "cuda-graph", "compile")


def torch_mode(session: TorchSession, mode: str) -> TorchSession | CudaGraphSession:
    """`session` as `mode` runs it: 'eager' as is; 'cuda-graph' replayed from CUDA graphs
    (CudaGraphSession, CUDA only); 'compile' with its module through torch.compile (mode
    'reduce-overhead' on CUDA: Inductor kernels replayed from CUDA graphs; 'default' on a CPU).
    The first call of each shape captures or compiles: seconds to minutes."""
    import torch

    if mode == "eager":
        return session
    if mode == "cuda-graph":
        return CudaGraphSession(session)
    if mode == "compile":
        session.module = torch.compile(session.module, mode="reduce-overhead" if session.device.type == "cuda"
                                       else "default")
        return session
    raise ValueError(f"unknown torch mode '{mode}'; choose one of {', '.join(TORCH_MODES)}")


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

    def __init__(self, path: str, contract: NetworkContract, device: str = "cpu", threads: int | None = None,
                 keep_optimized: bool = False) -> None:
        import onnxruntime as ort

        providers = ort_providers(device, ort.get_available_providers(), Path(path).parent / "ort_trt_cache")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if keep_optimized and providers == ["CPUExecutionProvider"] and not Path(f"{path}.data").exists():
            path = _optimized_model(Path(path), options)
        self.session = ort.InferenceSession(str(path), options, providers=providers)
        self.contract = contract

    def feed(self, *args: np.ndarray, **named: np.ndarray) -> dict[str, np.ndarray]:
        """ONNX Runtime's feed of one call: every input by name, in its declared dtype."""
        return contract_feed(self.contract, args, named)

    def __call__(self, *args: np.ndarray, **named: np.ndarray) -> tuple[np.ndarray, ...]:
        return tuple(self.session.run(self.contract.output_names, self.feed(*args, **named)))


def optimized_key(path: Path, level: str = "ORT_ENABLE_ALL") -> str:
    """What a pre-optimised ORT model of the ONNX file `path` depends on, hashed: the file (size,
    modification time), the ONNX Runtime version, the CPU (model name and flags: the NCHWc layout
    ORT chooses is the CPU's) and the graph optimisation level."""
    import hashlib
    import platform

    import onnxruntime as ort

    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        cpu = "|".join(sorted({ln.split(":", 1)[1].strip() for ln in lines if ln.startswith(("model name", "flags"))}))
    except OSError:
        cpu = platform.processor()   # runs `uname -p` on Linux (a child process): only without /proc/cpuinfo
    stat = path.stat()
    stamp = f"{stat.st_size}|{stat.st_mtime_ns}|{ort.__version__}|{platform.machine()}|{cpu}|{level}"
    return hashlib.sha256(stamp.encode()).hexdigest()[:16]


def _optimized_model(path: Path, options: Any) -> Path:
    """The ONNX file to load with `options`: <name>.ort-<optimized_key>.onnx beside `path`, ORT's
    graph at ORT_ENABLE_ALL saved on first use, loaded after that with optimisations off (the
    SaFM demo session: 154 ms to create from its ONNX, ~35 ms from the saved graph). A saved
    graph of another file, ORT version, CPU or level has another name and is never loaded."""
    import onnxruntime as ort

    optimized = path.with_name(f"{path.stem}.ort-{optimized_key(path)}.onnx")
    if optimized.is_file():
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        return optimized
    staging = optimized.with_name(f".{optimized.name}.{os.getpid()}.tmp")
    try:
        save = ort.SessionOptions()
        save.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        save.optimized_model_filepath = str(staging)
        save.log_severity_level = 3   # ORT warns that an NCHWc graph is this machine's: the key says so
        ort.InferenceSession(str(path), save, providers=["CPUExecutionProvider"])
        staging.replace(optimized)
    except (OSError, RuntimeError):   # a read-only folder, or a graph ORT cannot save: run the ONNX file
        staging.unlink(missing_ok=True)
        return path
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return optimized


def exported_onnx(contract: NetworkContract, onnx_dir: Path, checkpoint: Path | None = None) -> Path:
    """`<onnx_dir>/<contract name>.onnx`, refused (SessionError) when the file is missing or was
    exported from other weights than `checkpoint` (None: the contract's default weights, by name or
    by their file's sha256; read from its metadata without loading the graph)."""
    from runtime.onnx_metadata import OnnxMetadataError, onnx_metadata

    path = Path(onnx_dir) / f"{contract.name}.onnx"
    ckpt = f" --checkpoint {checkpoint}" if checkpoint else ""
    hint = f"run `python -m export onnx --model {contract.name}{ckpt} --out {onnx_dir}`"
    if not path.is_file():
        raise SessionError(f"{path}: not found; {hint}")
    try:
        source = onnx_metadata(path).get(SOURCE_KEY)
    except OnnxMetadataError as exc:
        raise SessionError(f"{exc}; {hint}") from None
    if source not in source_ids(contract.name, checkpoint):
        raise SessionError(f"{path}: exported from other weights ({source}) than {checkpoint or 'the default'}; {hint}")
    return path


def onnx_session(contract: NetworkContract, onnx_dir: Path, checkpoint: Path | None = None,
                 device: str = "cpu", threads: int | None = None) -> OnnxRuntimeSession:
    """An ONNX Runtime session of `<onnx_dir>/<contract name>.onnx` (checked: exported_onnx). A
    file in the ONNX cache (export/onnx_cache.py) on a CPU runs from its pre-optimised graph saved
    beside it (_optimized_model); a folder the user names is only read."""
    path = exported_onnx(contract, onnx_dir, checkpoint)
    cached = path.resolve().is_relative_to((cache_root() / "onnx").resolve())
    return OnnxRuntimeSession(str(path), contract, device, threads, keep_optimized=cached)
