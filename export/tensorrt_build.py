"""TensorRT engine build from an exported ONNX graph and its contract, through polygraphy
(NetworkFromOnnxPath, CreateConfig with the contract's precision and profile, a timing cache on
disk, EngineBytesFromNetwork). Thin and isolated: the only module of `export` that builds with
TensorRT, and only after a CUDA device is confirmed. `make typecheck` checks these calls
against polygraphy's real signatures."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from runtime.contracts.base import NetworkContract
from runtime.engines import BuildTarget, Manifest, is_up_to_date
from runtime.files import sha256_file, write_atomic
from runtime.tensorrt_session import current_target, require_tensorrt
from runtime.weights import source_id

if TYPE_CHECKING:   # annotations only: neither is imported before a CUDA device is confirmed
    import tensorrt as trt
    from polygraphy.backend.trt import EngineBytesFromNetwork

TIMING_CACHE = "timing.cache"


def engine_precision(contract: NetworkContract, fp16_vae: bool) -> str:
    """The contract's precision, except that fp32 networks (the VAE) go fp16 when the user says
    the VAE is fp16-safe."""
    return "fp16" if contract.precision == "fp16" or fp16_vae else "fp32"


def wanted_manifest(contract: NetworkContract, onnx_path: Path, checkpoint: Path | None, target: BuildTarget,
                    max_batch: int | None, opt_level: int, fp16_vae: bool,
                    axes: dict[str, tuple[int, int, int]] | None = None) -> Manifest:
    """The manifest an engine built now would carry (compared with the existing one to skip builds);
    `axes`: (min, opt, max) of the contract's open image axes (the upsampler's tile_axes)."""
    precision = engine_precision(contract, fp16_vae)
    return Manifest(network=contract.name, onnx_sha256=sha256_file(onnx_path),
                    source_weights=source_id(checkpoint), target=target, precision=precision,
                    profiles={k: [list(s) for s in v] for k, v in contract.profile(max_batch, axes).items()},
                    build_flags={"builder_optimization_level": opt_level, "fp16": precision == "fp16", "tf32": True,
                                 # neither is set in the build (polygraphy's defaults): the plan runs on this
                                 # TensorRT release and this GPU only (runtime.engines.check_loadable)
                                 "version_compatible": False, "hardware_compatibility": "none"})


def build_engine(contract: NetworkContract, onnx_path: Path, plan: Path, checkpoint: Path | None = None,
                 max_batch: int | None = None, opt_level: int = 3, fp16_vae: bool = False, force: bool = False,
                 axes: dict[str, tuple[int, int, int]] | None = None) -> Path:
    """Build `plan` (+ manifest) from `onnx_path` unless an engine with the same manifest exists.
    The timing cache beside the engines is read and updated, so rebuilds are faster."""
    require_tensorrt()
    wanted = wanted_manifest(contract, onnx_path, checkpoint, current_target(), max_batch, opt_level, fp16_vae, axes)
    if not force and is_up_to_date(plan, wanted):
        print(f"{contract.name}: {plan} is up to date (manifest matches); --force rebuilds", file=sys.stderr)
        return plan
    cache_path = plan.parent / TIMING_CACHE
    monitor = progress_monitor(contract.name)
    print(f"{contract.name}: building {wanted.precision} engine (minutes)...", file=sys.stderr)
    try:
        serialized = polygraphy_build(onnx_path, wanted, cache_path, monitor)()
    except Exception as exc:   # polygraphy raises PolygraphyException after TensorRT's log
        raise RuntimeError(f"{onnx_path}: TensorRT engine build failed: {exc}") from None
    write_atomic(plan, bytes(serialized))
    wanted.write(plan.with_suffix(".manifest.json"))
    return plan


def polygraphy_build(onnx_path: Path, wanted: Manifest, cache_path: Path,
                     monitor: trt.IProgressMonitor | None = None) -> EngineBytesFromNetwork:
    """The engine build as polygraphy loaders, not run yet (constructing them needs no TensorRT,
    so a test checks every argument on any machine): parse the ONNX file, a builder config with
    the manifest's precision, TF32, optimization profile and level, the timing cache read from
    and merged back into `cache_path`. Calling the result returns the serialized engine."""
    from polygraphy.backend.trt import CreateConfig, EngineBytesFromNetwork, NetworkFromOnnxPath, Profile

    profile = Profile()
    for name, (low, opt, high) in wanted.profiles.items():
        profile.add(name, min=low, opt=opt, max=high)
    flags = wanted.build_flags
    config = CreateConfig(fp16=wanted.precision == "fp16", tf32=flags.get("tf32", True), profiles=[profile],
                          builder_optimization_level=flags["builder_optimization_level"],
                          progress_monitor=monitor, load_timing_cache=str(cache_path) if cache_path.is_file() else None)
    return EngineBytesFromNetwork(NetworkFromOnnxPath(str(onnx_path)), config, save_timing_cache=str(cache_path))


def progress_monitor(name: str) -> trt.IProgressMonitor:
    """A TensorRT progress monitor printing each build phase (IProgressMonitor: TensorRT >= 10)."""
    import tensorrt as trt

    class Monitor(trt.IProgressMonitor):
        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)

        def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
            print(f"{name}: {phase_name} ({num_steps} steps)", file=sys.stderr)

        def step_complete(self, phase_name: str, step: int) -> bool:
            return True

        def phase_finish(self, phase_name: str) -> None:
            pass

    return Monitor()
