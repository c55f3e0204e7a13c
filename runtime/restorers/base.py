"""What a restorer is to the rest of the project, declared once per restorer (a `RestorerSpec` in
runtime/restorers/<name>/__init__.py): its networks (contracts), its options (the CLI flags,
the web page's controls and the served ensemble inputs all come from one `RestorerOption`),
how it is built from one session per network, and what its weights are. Kept free of torch
and `training`: the CLI's parser and the Triton pre-processing model read it."""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Protocol

from runtime.contracts.base import NetworkContract

if TYPE_CHECKING:
    import numpy as np
    import torch

    from runtime.face.pipeline import FaceBatch
    from training.provenance import Provenance

Net = Callable[..., "tuple[np.ndarray, ...]"]   # numpy is not imported here: `facerestore --help` loads none
# Faces per in-process restorer call unless the spec measured its own: 4 kept the SaFM demo's
# peak at 1.8 GB on the 36-face crowd photo where one call for all took 10.6 GB (issue 31).
DEFAULT_BATCH_FACES = 4


class Restorer(Protocol):
    """What the restore job calls: all faces of one photo as one batch. Built once (weights,
    sessions: `RestorerSpec.build`), given its settings (the values of its spec's options) per
    call or bound once with `with_settings`. `provenance` says what its weights are (None: not
    recorded, e.g. inside a served BLS model)."""

    name: str
    provenance: Provenance | None
    settings: dict[str, Any]

    def __call__(self, batch: FaceBatch, **settings: Any) -> np.ndarray: ...

    def with_settings(self, settings: dict[str, Any]) -> Restorer: ...

    def prepare(self) -> None: ...


class Settable:
    """What every restorer shares: `settings`, the option values a call without its own uses
    (checked by `RestorerSpec.settings`, the spec's defaults until bound), and `with_settings`,
    a cheap copy bound to others (the same sessions: nothing is loaded again)."""

    settings: dict[str, Any] = {}
    provenance: Provenance | None = None

    def with_settings(self, settings: dict[str, Any]):
        bound = copy.copy(self)
        bound.settings = dict(settings)
        return bound

    def merged(self, settings: dict[str, Any]) -> dict[str, Any]:
        """The bound settings with a call's own over them."""
        return {**self.settings, **settings}

    def prepare(self) -> None:
        """Pay first-call costs that need no network call (imports, state on the device); none here."""


def restore_in_batches(restorer: Restorer, batch: FaceBatch, batch_faces: int) -> np.ndarray:
    """The restored crops (uint8 NHWC) of every face of `batch`, the restorer called on at most
    `batch_faces` faces at a time, so its memory does not grow with the number of faces."""
    if batch_faces < 1:
        raise ValueError(f"--batch-faces must be >= 1, not {batch_faces}")
    import numpy as np

    restored = np.empty_like(batch.crops)
    for start in range(0, len(batch), batch_faces):
        restored[start:start + batch_faces] = restorer(batch.part(start, start + batch_faces))
    return restored


@dataclass(frozen=True)
class RestorerOption:
    """One option of a restorer: name, type, default, range or choices, help; `served` is the
    dtype of its ensemble input (the upper-cased name), None for an in-process-only option."""

    name: str
    type: type
    default: Any
    help: str
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    low_open: bool = False              # minimum < value (else minimum <= value)
    served: str | None = None           # numpy dtype of the served input
    served_maximum: float | None = None  # a tighter top for served requests (each step costs the server)

    @property
    def flag(self) -> str:
        """The command-line flag, e.g. --conditioning-scale."""
        return "--" + self.name.replace("_", "-")

    @property
    def tensor_name(self) -> str:
        """The served ensemble input, e.g. FIDELITY."""
        return self.name.upper()

    def describe(self, served: bool = False) -> str:
        """The help with the allowed range, e.g. 'denoising steps; in [1, 1000]'."""
        bounded = self.minimum is not None or self.maximum is not None
        return f"{self.help}; in {self.range_text(served)}" if bounded else self.help

    def range_text(self, served: bool = False) -> str:
        """'[0, 1]', '(0, 1]', '[0, inf)' ..."""
        top = self.served_maximum if served and self.served_maximum is not None else self.maximum
        low = f"{'(' if self.low_open else '['}{self.minimum:g}" if self.minimum is not None else "(-inf"
        return f"{low}, {top:g}]" if top is not None else f"{low}, inf)"

    def check(self, value: Any, served: bool = False) -> Any:
        """`value` when allowed, else ValueError naming the option (its served name when
        `served`); None is allowed when the default is None."""
        if value is None and self.default is None:
            return value
        name = self.tensor_name if served else self.name
        if self.choices:
            if value not in self.choices:
                raise ValueError(f"{name} must be one of {list(self.choices)}, not {value!r}")
            return value
        top = self.served_maximum if served and self.served_maximum is not None else self.maximum
        x = float(value)
        low_ok = self.minimum is None or (x > self.minimum if self.low_open else x >= self.minimum)
        if not (math.isfinite(x) and low_ok and (top is None or x <= top)):
            raise ValueError(f"{name} must be in {self.range_text(served)}, got {value}")
        return value


def option_defaults(options: tuple[RestorerOption, ...]) -> dict[str, Any]:
    """Each option's default by name: the settings of a restorer not told otherwise."""
    return {o.name: o.default for o in options}


def require_checkpoint(restorer: str, files: str, checkpoint: Path | None) -> Path:
    """`checkpoint`, or ValueError saying which weights files to pass (none ship for `restorer`)."""
    if checkpoint is None:
        raise ValueError(f"{restorer}: pass --checkpoint with its weights ({files}); none ship with this project")
    return Path(checkpoint)


@dataclass(frozen=True)
class RestorerSpec:
    """One restorer, all the project needs to know about it.

    networks: its network contracts, in the order `build` gets their sessions.
    build(sessions, data, device, progress): the restorer from one session per network (name ->
        session; torch, onnxruntime, openvino, tensorrt or Triton BLS alike) and `weights_data(checkpoint)`;
        built once, its settings are given per call (`Restorer`): the in-process factory and
        the served `<name>_faces` model (triton_repo/faces_model.py) build it the same way.
    weights_data(checkpoint): JSON-able facts of the weights the restorer needs besides its
        sessions (AuthFace: its scheduler config; a foreign ONNX file: its path and face size,
        key "face_size" being the served crop side when given); the renderer writes them beside
        the served model (`<name>_faces/1/weights.json`), which has the sessions but not the
        weights, and adds "folder", its version folder, holding the `served_files`.
    served_files(checkpoint): name -> file of the weights that its served faces model reads itself
        (a foreign ONNX file, run by ONNX Runtime inside the faces step: no network model of its
        own); linked into `<name>_faces/1/` by the renderer. None: it has none.
    torch_modules(checkpoint): name -> torch module of each network (the torch backend).
    provenance(checkpoint): what its weights are.
    fp32_networks: stay fp32 on torch at half precision unless asked (SDXL's VAE overflows).
    cuda_graph_networks: TensorRT runs them with CUDA graphs (same shapes every call).
    cpu_onnxruntime: `--backend auto` on a CPU in fp32 runs it on ONNX Runtime (exported once into
        the ONNX cache), else on torch.
    cpu_openvino_bf16: and on a CPU with AMX-BF16, on OpenVINO bf16 (measured faster
        there at the same quality on the held-out faces: say so where it is set).
    label_maps: its faces model takes the region label maps too.
    served: it has a served ensemble (face_restore_<name>) and a `<name>_faces` model (when it has
        networks or served_files).
    face_size: the aligned face side its networks take (the face pipeline's crop size).
    face_template: the 5-point template its faces are aligned on (runtime.face.align.TEMPLATES).
    needs_checkpoint: it ships no weights; the files to pass as --checkpoint ('' : it runs without).
    default_note: said (stderr) when it runs without a checkpoint.
    served_gpu: a KIND_GPU instance of <name>_faces in the gpu rendering (its loop runs on the
        instance's device, e.g. AuthFace's denoising loop: tensors stay on the GPU).
    batch_faces: faces per in-process restorer call on a CPU and on a GPU (`--batch-faces`
        default: memory stays bounded whatever the number of faces; chosen by measurement,
        in the spec that sets it)."""

    name: str
    summary: str
    networks: tuple[NetworkContract, ...]
    options: tuple[RestorerOption, ...]
    build: Callable[..., Restorer]
    weights_data: Callable[[Path | None], dict[str, Any]] = lambda checkpoint: {}
    served_files: Callable[[Path | None], dict[str, Path]] | None = None
    torch_modules: Callable[[Path | None], dict[str, torch.nn.Module]] | None = None
    provenance: Callable[[Path | None], Provenance] | None = None
    fp32_networks: tuple[str, ...] = ()
    cuda_graph_networks: tuple[str, ...] = ()
    cpu_onnxruntime: bool = False
    cpu_openvino_bf16: bool = False
    label_maps: bool = False
    served: bool = True
    face_size: int = 512
    face_template: str = "ffhq"
    needs_checkpoint: str = ""
    default_note: str = ""
    served_gpu: bool = False
    batch_faces: tuple[int, int] = (DEFAULT_BATCH_FACES, 8)

    @property
    def network_names(self) -> list[str]:
        return [c.name for c in self.networks]

    def default_batch_faces(self, device: str) -> int:
        """Faces per restorer call on `device` ("cpu", "cuda", "cuda:1"; "auto": the CPU's, the smaller)."""
        return self.batch_faces[device.startswith("cuda")]

    def check_checkpoint(self, checkpoint: Path | None) -> None:
        """ValueError saying which file to pass when the restorer needs one and none is given."""
        if self.needs_checkpoint:
            require_checkpoint(self.name, self.needs_checkpoint, checkpoint)

    def face_crop(self, built: object = None) -> tuple[int, str]:
        """(side, template) its faces are aligned at: the built restorer's own where it has them
        (a foreign ONNX file's graph and JSON say them), else this spec's."""
        return getattr(built, "face_size", self.face_size), getattr(built, "face_template", self.face_template)

    def served_options(self) -> tuple[RestorerOption, ...]:
        return tuple(o for o in self.options if o.served)

    def settings(self, given: dict[str, Any], served: bool = False) -> dict[str, Any]:
        """Every option of this restorer: `given` values (checked; a served request's against the
        served ranges, named by its tensor) over the defaults; an unknown name is a ValueError."""
        known = {o.name: o for o in self.options}
        if unknown := sorted(set(given) - set(known)):
            raise ValueError(f"{self.name}: unknown options {unknown}; it takes {sorted(known)}")
        return {name: o.check(given.get(name, o.default), served) for name, o in known.items()}

    def configure(self, restorer: Restorer, **given: Any) -> Restorer:
        """`restorer` (built by this spec) bound to `given` settings, checked here."""
        return restorer.with_settings(self.settings(given))
