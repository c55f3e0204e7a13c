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


def check_loadable(plan: Path, here: BuildTarget) -> Manifest:
    """The engine's manifest if it was built for this GPU and TensorRT version; else EngineMismatch
    naming the engine, what it was built for and what this machine is."""
    manifest = read_manifest(plan)
    built = manifest.target
    problems = []
    if built.tensorrt != here.tensorrt:
        problems.append(f"TensorRT {built.tensorrt} (here {here.tensorrt})")
    if built.compute_capability != here.compute_capability or built.gpu != here.gpu:
        problems.append(f"GPU {built.gpu} sm_{built.compute_capability} (here {here.gpu} sm_{here.compute_capability})")
    if problems:
        raise EngineMismatch(f"{plan}: built for {' and '.join(problems)}; engines are not portable across GPUs "
                             f"or TensorRT versions: rebuild it here with `python -m export build-engines`")
    return manifest
