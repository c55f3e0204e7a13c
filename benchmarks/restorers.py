"""Restorer latency on every path available here, measured in one run at batch 1, 4 and 8:
torch eager fp32 (the reference), torch fp16/bf16 and TensorRT on CUDA, torch.compile, ONNX
Runtime. SaFM per network; AuthFace per network (VAE encoder, UNet+ControlNet = one denoising
step, VAE decoder) and the whole restoration (scheduler loop included). Each row carries the
speed-up over the eager path of the same batch and the fraction of the device's measured
matmul rate that its FLOPs (torch's FlopCounterMode) reach.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Callable

import torch

from benchmarks.timing import interleaved_ms, peak_memory_mb, reset_peak_memory, stats
from export.networks import NETWORKS, ExportNetwork
from export.onnx_cache import onnx_up_to_date
from runtime.engines import EngineMismatch
from runtime.openvino_session import openvino_available, openvino_session
from runtime.sessions import DTYPES, CudaGraphSession, SessionError, TorchSession, onnx_session
from runtime.tensorrt_session import TensorRTUnavailable
from training.cpu import has_bf16, reported_flags

EAGER = "torch eager fp32"             # the reference: the restorers' torch backend (channels_last)
EAGER_NCHW = "torch eager fp32 NCHW"   # the same in the layout the modules were written in
BATCHES = (1, 4, 8)
Run = Callable[..., object]
Factory = Callable[[], Run]
# what a path that cannot run here raises when it is made: no ONNX file / engine, no TensorRT
UNAVAILABLE = (SessionError, EngineMismatch, TensorRTUnavailable, FileNotFoundError, ImportError)


def _device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def gflop_per_face(fn: Run, inputs: tuple) -> float:
    """GFLOP of one call on batch-1 inputs, counted by torch's FlopCounterMode."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        fn(*inputs)
    return counter.get_total_flops() / 1e9


def network_cost(module: torch.nn.Module, inputs: tuple[torch.Tensor, ...]) -> tuple[float, float]:
    """(GFLOP per face on batch-1 `inputs`, million parameters) of a module."""
    return gflop_per_face(module, inputs), sum(p.numel() for p in module.parameters()) / 1e6


def sample_tensors(network: ExportNetwork) -> tuple[torch.Tensor, ...]:
    """The network's real batch-1 sample inputs as tensors."""
    return tuple(torch.from_numpy(x) for x in network.sample_inputs(1))


def network_paths(network: ExportNetwork, checkpoint: Path | None, onnx_dir: Path,
                   compile_: bool = False, nchw: bool = False, cpu_bf16: bool = False) -> dict[str, Factory]:
    """Every path of one network that can exist here, as factories (each made, timed and
    dropped in turn, so only one copy of a large model is in memory). The torch paths run in
    the channels_last layout, as the restorers do; `nchw` adds eager fp32 in the layout the
    modules were written in; `cpu_bf16` adds eager bf16 on a CPU that computes bf16 natively. On a
    CPU, OpenVINO fp32 (and bf16 where the CPU computes it natively) when it is installed."""
    contract, dev = network.contract, _device()
    cuda = dev == "cuda"

    def torch_path(precision: str, compiled: bool = False, channels_last: bool = True) -> Factory:
        def make() -> Run:
            session = TorchSession(network.build_module(checkpoint), contract, dev, DTYPES[precision], channels_last)
            if compiled:
                session.module = torch.compile(session.module, mode="max-autotune" if cuda else "default")
            return session
        return make

    half = cuda and contract.precision == "fp16"   # the fp32-policy networks (SDXL's VAE) stay fp32
    paths: dict[str, Factory] = {EAGER: torch_path("fp32")}
    if nchw:
        paths[EAGER_NCHW] = torch_path("fp32", channels_last=False)
    if half:
        paths["torch eager fp16"] = torch_path("fp16")
        paths["torch eager bf16"] = torch_path("bf16")
    elif cpu_bf16 and not cuda and has_bf16():  # a CPU with AVX512-BF16 / AMX
        paths["torch eager bf16"] = torch_path("bf16")
    if compile_:
        precision = "fp16" if half else "fp32"
        paths[f"torch.compile {precision}"] = torch_path(precision, compiled=True)
    paths[f"onnxruntime {dev}"] = lambda: onnx_session(contract, onnx_dir, checkpoint, dev)
    if not cuda and openvino_available():
        for precision in ("fp32", "bf16") if has_bf16() else ("fp32",):
            paths[f"openvino {precision}"] = lambda p=precision: openvino_session(contract, onnx_dir, checkpoint, p)
    if cuda:
        from runtime.tensorrt_session import tensorrt_session

        paths["tensorrt + cuda graph"] = lambda: tensorrt_session(contract, onnx_dir, checkpoint, use_cuda_graph=True)
    return paths


def measure(model: str, paths: dict[str, Factory], inputs_for: Callable[[int], tuple], batches: tuple[int, ...],
            repeats: int, max_seconds: float | None, gflop: float, params_m: float, peak_gflops: float) -> list[dict]:
    """One row per (path, batch): median/p90/p99 ms, ms per face, faces/s, speed-up over the
    eager path at that batch, fraction of the measured matmul peak, peak memory. All paths are
    made first and timed in interleaved rounds per batch (a drift of the machine hits them
    alike); peak memory is that of one call, with every path of the model loaded."""
    runs = {}
    for path, make in paths.items():
        try:
            runs[path] = make()
        except UNAVAILABLE as exc:
            print(f"note: {model}: {path} skipped: {exc}", file=sys.stderr)
    rows = []
    for batch in batches:
        inputs = inputs_for(batch)
        memory = {}
        for path, run in runs.items():
            reset_peak_memory()
            run(*inputs)
            memory[path] = peak_memory_mb()
        times = interleaved_ms({path: (lambda run=run: run(*inputs)) for path, run in runs.items()}, repeats,
                               warmup=1, max_seconds=max_seconds)
        for path in runs:
            s = stats(times[path])
            sec = s["median_ms"] / 1e3
            rows.append({"model": model, "params_m": round(params_m, 2), "gflop_per_face": round(gflop, 1),
                         "path": path, "batch": batch, **s, "ms_per_face": round(s["median_ms"] / batch, 1),
                         "faces_per_s": round(batch / sec, 2), "peak_fraction": round(gflop * batch / sec / peak_gflops, 4),
                         "peak_memory_mb": memory[path], "cpu_flags": reported_flags()})
            print(f"{model} | {path} | batch {batch}: {s['median_ms']} ms ({s['runs']} runs)", file=sys.stderr)
    rows.sort(key=lambda r: list(paths).index(r["path"]))  # path by path, batches in order (a stable sort)
    reference = EAGER if EAGER in runs else next(iter(runs))   # an fp16-policy network's own eager path
    eager = {r["batch"]: r["median_ms"] for r in rows if r["path"] == reference}
    for r in rows:
        r["speedup_vs_eager"] = round(eager[r["batch"]] / r["median_ms"], 2) if r["batch"] in eager else None
    del runs
    return rows


def bench_safm(checkpoints: list[Path], onnx_root: Path, repeats: int, max_seconds: float | None,
               peak_gflops: float, compile_: bool = False, nchw: bool = False) -> list[dict]:
    """SaFM rows for each checkpoint (its ONNX in onnx_root/<checkpoint stem>/). On a CPU the
    paper-scale model (seconds per face) runs at batch 1 only."""
    safm = NETWORKS["safm"]
    rows = []
    for ckpt in checkpoints:
        module = safm.build_module(ckpt)
        gflop, params = network_cost(module, sample_tensors(safm))
        heavy = module.config.nf >= 64 and not torch.cuda.is_available()
        name = module.config.name
        del module
        rows += measure(name, network_paths(safm, ckpt, onnx_root / Path(ckpt).stem, compile_, nchw, cpu_bf16=True),
                        safm.sample_inputs, (1,) if heavy else BATCHES, repeats, max_seconds, gflop, params, peak_gflops)
    return rows


def bench_authface(checkpoint: Path | None, onnx_dir: Path, steps: int, repeats: int, max_seconds: float | None,
                   peak_gflops: float, compile_: bool = False, nchw: bool = False) -> list[dict]:
    """AuthFace rows: each network (the UNet+ControlNet row is one denoising step) and the whole
    faithful-mode restoration of `steps` steps (on a CPU at batch 1 only). ONNX in onnx_dir/."""
    from runtime.restorers.factory import make_restorer
    from runtime.restorers.authface.contracts import AUTHFACE_CONTRACTS, VAE_ENCODER

    # the architecture's name from the checkpoint's config.json, without loading its weights
    config = "tiny" if checkpoint is None else json.loads((Path(checkpoint) / "config.json").read_text())["config"]
    rows = []
    for network in (NETWORKS[c.name] for c in AUTHFACE_CONTRACTS):
        gflop, params = network_cost(network.build_module(checkpoint), sample_tensors(network))
        rows += measure(f"authface-{config} {network.name}", network_paths(network, checkpoint, onnx_dir, compile_, nchw),
                        network.sample_inputs, BATCHES, repeats, max_seconds, gflop, params, peak_gflops)

    dev = _device()

    def whole(backend: str, precision: str = "fp32", channels_last: bool = True) -> Factory:
        return lambda: make_restorer("authface", checkpoint, backend, onnx_dir, dev, precision, steps=steps,
                                     progress=False, channels_last=channels_last, allow_untrained=True).restore

    paths = {EAGER: whole("torch")}
    if nchw:
        paths[EAGER_NCHW] = whole("torch", channels_last=False)
    if dev == "cuda":
        paths["torch eager fp16 (VAE fp32)"] = whole("torch", "fp16")
    paths[f"onnxruntime {dev}"] = whole("onnxruntime")
    if dev == "cuda":
        paths["tensorrt + cuda graph"] = whole("tensorrt")
    faces = NETWORKS[VAE_ENCODER.name].sample_inputs   # the whole restoration takes the encoder's faces
    gflop = gflop_per_face(paths[EAGER](), faces(1))
    params = sum(r["params_m"] for r in rows if r["path"] == EAGER and r["batch"] == 1)
    rows += measure(f"authface-{config} whole ({steps} steps)", paths, faces,
                    BATCHES if dev == "cuda" else (1,), repeats, max_seconds, gflop, params, peak_gflops)
    return rows


def bench_sdxl(repeats: int, max_seconds: float | None, floor: list[dict], peak_gflops: float,
               config: str = "sdxl", device: str = "cuda") -> list[dict]:
    """The real-size SDXL-architecture networks (random weights made on the device; latency
    does not depend on them) at batch 1/4/8 on the real samples: torch eager in the network's
    precision (fp16; the VAE's policy is fp32) and bf16, and on CUDA that precision replayed from
    a CUDA graph. `floor`: sdxl_floor's rows, for the FLOPs. (`config`, `device`: a smaller
    architecture or the CPU, to test this.)"""
    import copy

    from training.authface import make_random_checkpoint

    with torch.device(device):
        checkpoint = make_random_checkpoint(config)   # made once; each path takes its own copy
    rows = []
    for cost in floor:
        network = NETWORKS[cost["network"]]
        precision = network.contract.precision

        def path(dtype: str, graphed: bool = False) -> Factory:
            def make() -> Run:
                module = copy.deepcopy(getattr(checkpoint, network.name)())
                session = TorchSession(module, network.contract, device, DTYPES[dtype], channels_last=True)
                if not graphed:
                    return session
                graphed_session = CudaGraphSession(session)
                try:   # capture now: a module that cannot be captured is a path that is not available
                    graphed_session(*network.sample_inputs(1))
                except RuntimeError as exc:
                    raise SessionError(f"CUDA graph capture failed: {exc}") from exc
                return graphed_session
            return make

        paths = {f"torch eager {precision}": path(precision), "torch eager bf16": path("bf16")}
        if device == "cuda":
            paths[f"torch {precision} + cuda graph"] = path(precision, graphed=True)
        rows += measure(f"authface-{config} {network.name}", paths, network.sample_inputs, BATCHES, repeats,
                        max_seconds, cost["tflop_per_face"] * 1e3, cost["params_m"], peak_gflops)
        if device == "cuda":
            torch.cuda.empty_cache()
    return rows


def sdxl_floor(peak_gflops: float, h100_tflops: float = 800.0) -> list[dict]:
    """FLOPs per 512x512 face of the real SDXL-architecture networks (built on the meta device:
    no memory, no weights) and the time they take at this device's measured matmul rate and at
    an H100's dense fp16 rate (docs/ARCHITECTURE.md): the floor any path can reach."""
    from training.authface import make_random_checkpoint

    from runtime.restorers.authface.contracts import AUTHFACE_CONTRACTS

    with torch.device("meta"):
        ckpt = make_random_checkpoint("sdxl")
        modules = {"vae_encoder": ckpt.vae_encoder(), "unet_controlnet": ckpt.unet_controlnet(),
                   "vae_decoder": ckpt.vae_decoder()}
        rows = []
        for contract in AUTHFACE_CONTRACTS:
            gflop, params = network_cost(modules[contract.name],
                                         tuple(torch.randn(spec.concrete(1)) for spec in contract.inputs))
            tflop = gflop / 1e3
            rows.append({"network": contract.name, "params_m": round(params, 1), "tflop_per_face": round(tflop, 3), "floor_ms_here": round(tflop * 1e6 / peak_gflops, 1),
                         "floor_ms_h100": round(tflop / h100_tflops * 1e3, 2)})
    return rows


def bench_published(checkpoints: dict[str, Path | None], onnx_root: Path, repeats: int, max_seconds: float | None,
                    peak_gflops: float) -> list[dict]:
    """Rows of each published architecture (runtime/restorers/published/): torch eager fp32 and
    ONNX Runtime (exported into onnx_root/<name>/ when missing) timed in the same interleaved
    rounds, at batch 1 on a CPU (seconds per face), 1/4/8 on CUDA. A None checkpoint is a seeded
    random-weight file in the published layout (latency does not depend on the weights)."""
    from export.onnx_export import export_onnx
    from runtime.restorers.published import PUBLISHED
    from runtime.restorers.published.restorer import save_random

    rows = []
    for name, checkpoint in checkpoints.items():
        network = NETWORKS[name]
        folder = onnx_root / name
        weights = checkpoint or save_random(PUBLISHED[name], folder / f"{name}-random.pth")
        if not onnx_up_to_date(network.contract, folder / f"{name}.onnx", weights):
            export_onnx(network.contract, folder, weights)
        module = network.build_module(weights).requires_grad_(False)   # (FLOP counter: no autograd hooks)
        gflop, params = network_cost(module, sample_tensors(network))
        del module
        rows += measure(name, network_paths(network, weights, folder), network.sample_inputs,
                        BATCHES if torch.cuda.is_available() else (1,), repeats, max_seconds, gflop, params, peak_gflops)
    return rows
