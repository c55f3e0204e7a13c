"""The TensorRT session: thin and isolated. Allocates by shape, binds by the contract's names, runs
on a CUDA stream with torch tensors as buffers, optional CUDA-graph replay for static shapes.

Nothing here creates a TensorRT object before a CUDA device is confirmed (the lean runtime
segfaults without one) and before the engine's manifest matches this GPU and TensorRT version.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from runtime.contracts.base import NetworkContract
from runtime.engines import BuildTarget, check_loadable


class TensorRTUnavailable(RuntimeError):
    """TensorRT or a CUDA device is missing here; the message says which."""


def require_tensorrt() -> None:
    """Check for a CUDA device and the `tensorrt` module; TensorRTUnavailable otherwise. Callers
    then `import tensorrt as trt` themselves, so mypy checks their calls against TensorRT's stubs."""
    if not torch.cuda.is_available():
        raise TensorRTUnavailable("no CUDA device: TensorRT engines need an NVIDIA GPU")
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        raise TensorRTUnavailable("TensorRT is not installed (pip install tensorrt on a CUDA machine)") from None


def current_target() -> BuildTarget:
    """This machine's TensorRT version, GPU name and compute capability."""
    require_tensorrt()
    import tensorrt as trt

    major, minor = torch.cuda.get_device_capability()
    return BuildTarget(tensorrt=trt.__version__, gpu=torch.cuda.get_device_name(), compute_capability=f"{major}.{minor}")


class TensorRTSession:
    """Runs one engine: numpy (or torch CUDA tensors) in, numpy out, names from the contract."""

    def __init__(self, plan: Path, contract: NetworkContract, use_cuda_graph: bool = False) -> None:
        require_tensorrt()
        import tensorrt as trt

        self.manifest = check_loadable(plan, current_target())
        self.contract = contract
        self.runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.engine = self.runtime.deserialize_cuda_engine(Path(plan).read_bytes())
        if self.engine is None:
            raise RuntimeError(f"{plan}: TensorRT could not deserialize the engine")
        self.context = self.engine.create_execution_context()
        self.stream = torch.cuda.Stream()
        self.use_cuda_graph = use_cuda_graph
        # buffers per input-shape key, so a captured CUDA graph's addresses stay valid
        self.buffers: dict[tuple, dict[str, torch.Tensor]] = {}
        self.graphs: dict[tuple, torch.cuda.CUDAGraph] = {}

    def _bind(self, key: tuple, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Set input shapes, allocate output buffers by shape (once per key), bind addresses by name."""
        for name, tensor in inputs.items():
            self.context.set_input_shape(name, tuple(tensor.shape))
            self.context.set_tensor_address(name, tensor.data_ptr())
        outputs = self.buffers.setdefault(key, {})
        for spec in self.contract.outputs:
            if spec.name not in outputs:
                dims = self.context.get_tensor_shape(spec.name)   # trt.Dims: indexable, not iterable
                outputs[spec.name] = torch.empty([dims[i] for i in range(len(dims))], dtype=getattr(torch, spec.dtype),
                                                 device="cuda")
            self.context.set_tensor_address(spec.name, outputs[spec.name].data_ptr())
        return outputs

    def run_torch(self, *args: torch.Tensor, **inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Run on CUDA tensors (kept on the device); returns output buffers reused by the next call
        of the same shapes. With CUDA graphs, the first call per shape captures, later ones replay."""
        named = {n: t.contiguous() for n, t in self.contract.bind(args, inputs).items()}
        key = tuple(tuple(t.shape) for t in named.values())
        if key in self.graphs:
            for name, t in named.items():
                self.buffers[key]["in:" + name].copy_(t)
            self.stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(self.stream):
                self.graphs[key].replay()
        else:
            if self.use_cuda_graph:  # static input copies live as long as the graph
                named = {n: self.buffers.setdefault(key, {}).setdefault("in:" + n, t.clone()) for n, t in named.items()}
            self._bind(key, named)
            self.stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(self.stream):
                self.context.execute_async_v3(self.stream.cuda_stream)
                if self.use_cuda_graph:
                    graph = torch.cuda.CUDAGraph()
                    with torch.cuda.graph(graph, stream=self.stream):
                        self.context.execute_async_v3(self.stream.cuda_stream)
                    self.graphs[key] = graph
        torch.cuda.current_stream().wait_stream(self.stream)
        return tuple(self.buffers[key][n] for n in self.contract.output_names)

    def __call__(self, *args: np.ndarray, **inputs: np.ndarray) -> tuple[np.ndarray, ...]:
        tensors = {s.name: torch.from_numpy(np.ascontiguousarray(x, s.dtype)).cuda()   # the declared dtype
                   for s, x in zip(self.contract.inputs, self.contract.bind(args, inputs).values())}
        return tuple(t.float().cpu().numpy() for t in self.run_torch(**tensors))


def tensorrt_session(contract: NetworkContract, engines_dir: Path, checkpoint: Path | None = None,
                     use_cuda_graph: bool = False) -> TensorRTSession:
    """The engine `<engines_dir>/<contract name>.plan`, refused when it is missing, was built for
    another GPU/TensorRT, or from other weights than `checkpoint`."""
    from runtime.engines import EngineMismatch, read_manifest
    from runtime.weights import source_id

    plan = Path(engines_dir) / f"{contract.name}.plan"
    hint = f"run `python -m export build-engines --model {contract.name} --out {engines_dir}`"
    if not plan.is_file():
        if not torch.cuda.is_available():
            raise EngineMismatch(f"{plan}: not found, and this machine has no CUDA GPU to build or run a TensorRT "
                                 "engine on; use --backend onnxruntime here, or build the engine on the serving GPU "
                                 f"(`python -m export build-engines --model {contract.name}`)")
        raise EngineMismatch(f"{plan}: not found; {hint}")
    if read_manifest(plan).source_weights != source_id(checkpoint):
        raise EngineMismatch(f"{plan}: built from other weights than {checkpoint or 'the default'}; {hint}")
    return TensorRTSession(plan, contract, use_cuda_graph)
