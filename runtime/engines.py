"""TensorRT engine manifests: what an engine was built from and for, and the refusal to load an
engine on a GPU or TensorRT version it was not built for. Pure Python: no TensorRT needed."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from runtime.files import write_atomic

MANIFEST_VERSION = 1


class EngineMismatch(RuntimeError):
    """An engine that must not be loaded here; the message says why and how to rebuild."""


@dataclass(frozen=True)
class BuildTarget:
    """The machine an engine is built for (or loaded on)."""

    tensorrt: str
    gpu: str
    compute_capability: str  # "9.0"


@dataclass
class Manifest:
    """Everything that decides whether an engine can be reused or loaded."""

    network: str
    onnx_sha256: str
    source_weights: str
    target: BuildTarget
    precision: str
    profiles: dict[str, list[list[int]]]      # input -> [min, opt, max] shapes
    build_flags: dict = field(default_factory=dict)
    version: int = MANIFEST_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "Manifest":
        d = json.loads(text)
        d["target"] = BuildTarget(**d["target"])
        return cls(**d)

    def write(self, path: Path) -> None:
        write_atomic(path, self.to_json().encode())


def manifest_path(plan: Path) -> Path:
    """The manifest beside an engine: `<name>.plan` -> `<name>.manifest.json`."""
    return Path(plan).with_suffix(".manifest.json")


def read_manifest(plan: Path) -> Manifest:
    """The manifest of an engine; EngineMismatch when it is missing or unreadable."""
    path = manifest_path(plan)
    try:
        return Manifest.from_json(path.read_text())
    except FileNotFoundError:
        raise EngineMismatch(f"{path}: missing; an engine without its manifest is never loaded "
                             f"(rebuild with `python -m export build-engines`)") from None
    except (ValueError, TypeError, KeyError) as exc:
        raise EngineMismatch(f"{path}: unreadable manifest ({exc})") from None


def is_up_to_date(plan: Path, wanted: Manifest) -> bool:
    """True when `plan` exists and its manifest equals `wanted` (same ONNX, weights, target,
    precision, profiles and flags): the build can be skipped."""
    if not Path(plan).is_file() or not manifest_path(plan).is_file():
        return False
    try:
        return read_manifest(plan) == wanted
    except EngineMismatch:
        return False


def tensorrt_release(version: str) -> tuple[int, int, int]:
    """A TensorRT version as (major, minor, patch): what decides whether a plan deserializes.
    The container's Python bindings report three parts ('10.7.0': NVIDIA/TensorRT v10.7.0
    python/build.sh sets ``__version__`` to MAJOR.MINOR.PATCH), NVIDIA's wheels four
    ('10.8.0.43'), the library headers a fourth build number (NvInferVersion.h
    NV_TENSORRT_BUILD 23 for 10.7.0): one release, whatever the form; ValueError if unreadable."""
    parts = version.strip().split(".")
    try:
        major, minor, patch = (int(p) for p in parts[:3])
    except ValueError:
        raise ValueError(f"'{version}': not a TensorRT version (MAJOR.MINOR.PATCH[.BUILD])") from None
    if len(parts) < 3 or len(parts) > 4:
        raise ValueError(f"'{version}': not a TensorRT version (MAJOR.MINOR.PATCH[.BUILD])")
    return major, minor, patch


def tensorrt_runs(built: str, here: str, version_compatible: bool = False) -> bool:
    """Whether a plan built by TensorRT `built` deserializes in TensorRT `here`: the same
    release by default; with the version-compatible flag any later runtime of the same major
    (TensorRT docs, "Version Compatibility": engines are compatible only with the TensorRT
    version that built them unless built with BuilderFlag.VERSION_COMPATIBLE)."""
    b, h = tensorrt_release(built), tensorrt_release(here)
    return h[0] == b[0] and h >= b if version_compatible else b == h


def gpu_runs(built: BuildTarget, here: BuildTarget, hardware_compatibility: str = "none") -> bool:
    """Whether a plan built on `built`'s GPU runs on `here`'s. Without hardware compatibility a
    plan is for the GPU it was built on (TensorRT support matrix, "Engine Portability": not
    portable across GPU architectures; TensorRT warns against other device models);
    'same_compute_capability' allows any GPU of that compute capability, 'ampere_plus' any
    GPU from compute capability 8.0 on (HardwareCompatibilityLevel)."""
    if hardware_compatibility == "ampere_plus":
        return float(here.compute_capability or 0) >= 8.0
    if hardware_compatibility == "same_compute_capability":
        return built.compute_capability == here.compute_capability
    return built.compute_capability == here.compute_capability and built.gpu == here.gpu


def check_loadable(plan: Path, here: BuildTarget) -> Manifest:
    """The engine's manifest if it runs here: its TensorRT release and GPU against this machine's,
    with the version- and hardware-compatibility flags it was built with (build_flags); else
    EngineMismatch naming the engine, what it was built for and what this machine is."""
    manifest = read_manifest(plan)
    built, flags = manifest.target, manifest.build_flags
    problems = []
    try:
        if not tensorrt_runs(built.tensorrt, here.tensorrt, flags.get("version_compatible", False)):
            problems.append(f"TensorRT {built.tensorrt} (here {here.tensorrt})")
    except ValueError as exc:
        raise EngineMismatch(f"{plan}: {exc}") from None
    if not gpu_runs(built, here, flags.get("hardware_compatibility", "none")):
        problems.append(f"GPU {built.gpu} sm_{built.compute_capability} (here {here.gpu} sm_{here.compute_capability})")
    if problems:
        raise EngineMismatch(f"{plan}: built for {' and '.join(problems)}; engines are not portable across GPUs "
                             f"or TensorRT versions: rebuild it here with `python -m export build-engines`")
    return manifest
