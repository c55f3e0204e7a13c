"""What every front end of the restore job shares (`facerestore restore`, `facerestore client`,
the web page): the backend choice, the result of one photo, and the one report: report.json
(restorer, backend, settings, provenance with the licence, faces, skipped detections, seconds and
errors per photo), the summary line and the notices (untrained weights, a NON-COMMERCIAL
licence) that every front end shows."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from runtime.files import write_atomic
from runtime.restorers import RESTORERS
from training.cpu import cpu_flags
from training.provenance import Provenance

BACKENDS = ("auto", "torch", "onnxruntime", "openvino", "tensorrt")
ONNX_BACKENDS = ("onnxruntime", "openvino")   # they run the ONNX files of the ONNX cache


class BackendChoice(NamedTuple):
    """Where a restorer runs: the backend and its precision."""

    backend: str
    precision: str

    def __str__(self) -> str:
        return self.backend if self.precision == "fp32" else f"{self.backend} {self.precision}"


def choose_backend(backend: str, restorer: str, device: str = "cpu", precision: str = "fp32") -> BackendChoice:
    """`backend` in `precision`, or for auto on a CPU in fp32, for a restorer whose spec says so:
    OpenVINO bf16 where its spec measured it (SaFM: `cpu_openvino_bf16`), the CPU has AMX-BF16
    (measured there; AVX512-BF16 alone was not faster in bf16) and OpenVINO is installed; else ONNX
    Runtime fp32 (`cpu_onnxruntime`); torch for everything else."""
    if backend != "auto":
        return BackendChoice(backend, precision)
    spec = RESTORERS[restorer]
    if device != "cpu" or precision != "fp32" or not spec.cpu_onnxruntime:
        return BackendChoice("torch", precision)
    if spec.cpu_openvino_bf16 and "amx_bf16" in cpu_flags():
        from runtime.openvino_session import openvino_available

        if openvino_available():
            return BackendChoice("openvino", "bf16")
    return BackendChoice("onnxruntime", "fp32")


def face_networks_on_onnxruntime(backend: str, device: str) -> bool:
    """The face detector and mesh run on ONNX Runtime on a CPU unless torch is asked for."""
    return backend != "torch" and device == "cpu"


def done_summary(inputs: list[str], done: list[str], frames: int = 0) -> str:
    """What a run did, for its summary line: '2/3 photos', '1/1 clips (75 frames)' or '3/4 files
    (2 photos, 2 clips: 75 frames)' (`frames`: of the clips done)."""
    from runtime.video import VIDEO_SUFFIXES   # (no PyAV: runtime.video itself imports nothing heavy)

    clips = sum(Path(i).suffix.lower() in VIDEO_SUFFIXES for i in inputs)
    count = f"{len(done)}/{len(inputs)}"
    if not clips:
        return f"{count} photos"
    frames_done = f"{frames} frames" if frames else "no frames"
    if clips == len(inputs):
        return f"{count} clips ({frames_done})"
    photos = len(inputs) - clips
    return f"{count} files ({photos} photo{'s' * (photos != 1)}, {clips} clip{'s' * (clips != 1)}: {frames_done})"


@dataclass
class PhotoResult:
    """What happened to one input photo (or clip)."""

    input: str
    output: str | None = None
    faces: int = 0
    skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0          # to restore it (in-process) or the request's round trip (served)
    error: str | None = None
    video: dict | None = None     # a clip's frames, faces, face tracks, speed, encoder, copied streams


@dataclass
class JobReport:
    """One run of the job: the restorer (`served`: by a server), where it ran, the settings,
    what its weights are, and every photo's result."""

    restorer: str
    backend: str
    provenance: Provenance | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    photos: list[PhotoResult] = field(default_factory=list)
    wall_s: float = 0.0
    served: bool = False

    def notices(self) -> list[str]:
        """The lines every front end shows: untrained weights, a non-commercial licence."""
        origin = self.provenance
        if origin is None:
            return []
        return [line for line in (origin.warning(self.who), origin.licence_notice(self.who)) if line]

    @property
    def who(self) -> str:
        """The restorer as the notices name it ('served safm' for a served one)."""
        return f"served {self.restorer}" if self.served else self.restorer

    def to_dict(self) -> dict[str, Any]:
        origin = self.provenance
        return {"restorer": self.restorer, "backend": self.backend, "settings": self.settings,
                "provenance": None if origin is None else origin.to_dict(),
                "untrained": origin is not None and not origin.trained,
                "licence_notice": None if origin is None else origin.licence_notice(self.who),
                "wall_s": round(self.wall_s, 3), "photos": [asdict(r) for r in self.photos]}

    def write(self, out_dir: Path) -> Path:
        """report.json in `out_dir`, written atomically."""
        path = Path(out_dir) / "report.json"
        write_atomic(path, json.dumps(self.to_dict(), indent=2, default=str).encode())
        return path

    def summary(self, where: object) -> str:
        """One line: photos written to `where`, faces, errors, and speed when the job was timed."""
        done = [r for r in self.photos if r.error is None]
        faces = sum(r.faces for r in done)
        verb = "passed through unchanged (identity)" if self.restorer == "identity" else "restored"
        if self.provenance is not None and not self.provenance.trained:
            verb = "run through UNTRAINED weights, not restored"
        frames = sum(r.video["frames"] for r in done if r.video)
        counts = done_summary([r.input for r in self.photos], [r.input for r in done], frames)
        text = (f"{counts} written to {where} with {self.restorer} ({faces} faces {verb}, "
                f"{sum(1 for r in done if not r.faces)} without faces, {len(self.photos) - len(done)} errors)")
        if done and self.wall_s > 0 and not frames:   # a clip's frames/s is on its own line
            ms = sorted(r.seconds * 1000 for r in done)
            p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
            p50 = (ms[(len(ms) - 1) // 2] + ms[len(ms) // 2]) / 2
            text += (f" in {self.wall_s:.2f} s ({len(done) / self.wall_s:.2f} photos/s); latency ms: mean "
                     f"{sum(ms) / len(ms):.0f}, p50 {p50:.0f}, p95 {p95:.0f}, max {ms[-1]:.0f}")
        return text
