"""The served job's interface: the tensors of the Triton ensembles ``face_restore_<restorer>``
and of the python models between their steps. The renderer of the model repository
(export/triton_repo.py), the python-backend models in triton_repo/ and the client
(runtime/serving/client.py) all read these objects; no served tensor name is typed anywhere else.

One ensemble per restorer, three steps::

    IMAGE, options --> face_preprocess --(CROPS, LABEL_MAPS)--> <restorer>_faces --(RESTORED_CROPS)-->
                       (BLS: face_detector,    |                (BLS: the restorer's
                        face_mesh)             |                 networks)           face_postprocess --> RESTORED
                                               +--(AFFINES, LABEL_MAPS, FRAME)-----> (IMAGE passed through)

The face axis of the tensors between steps is variable and may be 0 (a photo without faces):
only non-batched python models see it; the restorer step calls its batched networks (their
own Triton models, max_batch_size from the network contracts) only with 1..max_batch faces.

Crops travel as uint8 RGB (0.75 MB a 512 face), as the in-process FaceBatch holds them: both
paths quantize at the same places (the aligned crop, the restorer's output), so they give the
same pictures. The photo is decoded once, in face_preprocess: FRAME carries its decoded
samples to face_postprocess (runtime.imageio.frame_bytes: one byte a sample for an 8-bit
photo, two for a 16-bit PNG; gray and alpha as decoded): a whole frame of the stubs' shared
memory per request (144 MB for 48 MP of 8-bit RGB) instead of the time of a second decode in
face_postprocess (never a float32 frame). A photo that comes back byte for byte (no face,
scale 1, its own format: request_checks.passes_through) sends an empty FRAME.

The crop side is per service, not one global size: the gate of ``face_restore_<restorer>``
adds FACE_SIZE (its restorer's spec's face_size) to the job, and face_preprocess aligns to it
(the tensors between the steps have a variable side; face_postprocess pastes any side). One
int per request keeps one face_preprocess model for every restorer; per-geometry preprocess
models would multiply its python instances (each a process holding the runtime and its own
shared memory) and its configs by every size a restorer takes (GPEN-BFR alone has four). A
face template other than FFHQ's (GPEN-BFR-256's ArcFace one) would travel the same way.
"""
from __future__ import annotations

from dataclasses import dataclass

from runtime.contracts.base import BATCH, TensorSpec
from runtime import photo_options
from runtime.face.align import TEMPLATES
from runtime.face.pipeline import FaceOptions
from runtime.imageio import DEFAULT_MAX_PIXELS
from runtime.restorers import MODEL_GROUPS, RESTORERS
from runtime.restorers.base import RestorerOption, RestorerSpec

FACE = FaceOptions().size          # aligned crop side when a job request names none (512)
MIN_FACE, MAX_FACE = 64, 2048      # aligned crop sides a job request may name (GPEN-BFR: 256 to 2048)
MAX_UPLOAD_BYTES = 64 * 2**20      # largest encoded photo accepted, both protocols (client and server check)
MAX_OUTPUT_PIXELS = DEFAULT_MAX_PIXELS  # largest restored photo (after --upscale) the server encodes
MAX_FACES = 64                     # most faces restored in one photo (face_preprocess parameter max_faces)
MAX_TIMEOUT_S = 600.0              # longest a request may run (its TIMEOUT, and the default)
# face_postprocess config parameter: set (to the tile side) when the repository serves the optional
# background upsampler step (`serve --bg-upsampler`): the photo is upsampled by the bg_upsampler
# network model (BLS, tiled) and the faces are pasted on it, as `restore --bg-upsampler` does
BG_UPSAMPLER_TILE = "bg_upsampler_tile"

# numpy dtype name -> Triton config data type; "bytes" is TYPE_STRING (the wire's BYTES)
TRITON_TYPES = {"bytes": "TYPE_STRING", "bool": "TYPE_BOOL", "uint8": "TYPE_UINT8", "int32": "TYPE_INT32",
                "int64": "TYPE_INT64", "float16": "TYPE_FP16", "float32": "TYPE_FP32", "float64": "TYPE_FP64"}


@dataclass(frozen=True)
class ServiceTensor:
    """A tensor of a non-batched python model or ensemble: shape with -1 for a variable axis."""

    name: str
    dtype: str                 # numpy dtype name, or "bytes" (Triton TYPE_STRING)
    shape: tuple[int, ...]
    optional: bool = False
    help: str = ""

    @property
    def numpy_dtype(self):
        import numpy as np

        return np.object_ if self.dtype == "bytes" else np.dtype(self.dtype)


# --- ensemble inputs (IMAGE required, the rest optional) ----------------------------------------
# IMAGE is required; it is declared optional so that a request without it reaches
# face_preprocess and gets "input IMAGE is required" (Triton 2.51 answers an ensemble request
# missing a required input with "unexpected deadlock")
IMAGE = ServiceTensor("IMAGE", "bytes", (1,), True,
                      help="required: the encoded photo (PNG, JPEG, WebP, BMP, TIFF), at most "
                           f"{MAX_UPLOAD_BYTES // 2**20} MiB; JSON clients may send it base64 (RESTORED then "
                           "comes back base64)")


def photo_tensor(option: RestorerOption) -> ServiceTensor:
    """The served ensemble input of a photo option (runtime/photo_options.py)."""
    return ServiceTensor(option.tensor_name, option.served or "", (1,), True,
                         f"{option.describe(served=True)}" + (f"; one of {', '.join(option.choices)}" if option.choices
                                                              else "") + f" (default {option.default})")


# every served photo option, by tensor name, from its one declaration (runtime/photo_options.py)
PHOTO_INPUTS: dict[str, ServiceTensor] = {o.tensor_name: photo_tensor(o) for o in photo_options.served()}
UPSCALE, OUTPUT_FORMAT = PHOTO_INPUTS["UPSCALE"], PHOTO_INPUTS["OUTPUT_FORMAT"]


def option_tensor(specs: list[RestorerSpec], option: RestorerOption) -> ServiceTensor:
    """The served ensemble input of an option (runtime/restorers/<name>/), its help naming the
    served restorers that take it (one declaration: runtime/restorers/options.py when shared)."""
    default = "none" if option.default is None else f"{option.default:g}"
    return ServiceTensor(option.tensor_name, option.served or "", (1,), True,
                         f"{', '.join(s.name for s in specs)}: {option.describe(served=True)} (default {default})")


def _served_options() -> dict[str, ServiceTensor]:
    takers: dict[str, tuple[RestorerOption, list[RestorerSpec]]] = {}
    for spec in RESTORERS.values():
        for o in spec.served_options() if spec.served and spec.networks else ():
            takers.setdefault(o.tensor_name, (o, []))[1].append(spec)
    return {name: option_tensor(specs, o) for name, (o, specs) in takers.items()}


# every served restorer option, by tensor name, from the restorers' one declaration of each
OPTIONS: dict[str, ServiceTensor] = _served_options()
FIDELITY, STEPS, SEED, STRENGTH = (OPTIONS[n] for n in ("FIDELITY", "STEPS", "SEED", "STRENGTH"))

TIMEOUT = ServiceTensor("TIMEOUT", "float32", (1,), True,
                        f"seconds the client waits for the answer, in (0, {MAX_TIMEOUT_S:g}] (default: the most); "
                        "the server stops restoring the faces once they have passed")

# --- ensemble outputs ---------------------------------------------------------------------------
RESTORED = ServiceTensor("RESTORED", "bytes", (1,), help="the encoded restored photo: ask for it as a binary "
                                                      "tensor (binary_data), or send IMAGE base64 to get it base64")
FACE_COUNT = ServiceTensor("FACE_COUNT", "int32", (1,), help="faces restored")
BOXES = ServiceTensor("BOXES", "float32", (-1, 4), help="their detection boxes x0, y0, x1, y1 (input photo pixels)")

# --- between the steps --------------------------------------------------------------------------
FACE_SIZE = ServiceTensor("FACE_SIZE", "int32", (1,), True,
                          help="the aligned crop side of the job's restorer: face_restore_<restorer> (the gate) sets "
                               f"it from the restorer's spec ({FACE} when absent)")
FACE_TEMPLATE = ServiceTensor("FACE_TEMPLATE", "bytes", (1,), True,
                              help="the 5-point template the job's restorer takes its faces aligned on "
                                   f"({', '.join(TEMPLATES)}): the gate sets it from the restorer's spec "
                                   f"({FaceOptions().template} when absent)")
CROPS = ServiceTensor("CROPS", "uint8", (-1, -1, -1, 3), help="aligned faces, RGB (FACE_SIZE square)")
LABEL_MAPS = ServiceTensor("LABEL_MAPS", "uint8", (-1, -1, -1), help="region label maps")
AFFINES = ServiceTensor("AFFINES", "float64", (-1, 2, 3), help="photo -> crop affines")
RESTORED_CROPS = ServiceTensor("RESTORED_CROPS", "uint8", (-1, -1, -1, 3), help="restored faces, RGB")
FRAME = ServiceTensor("FRAME", "uint8", (-1, -1, -1, -1),
                      help="the decoded photo [H, W, C, bytes per sample] (runtime.imageio.frame_bytes); "
                           "empty when the photo passes through unchanged")
DEADLINE = ServiceTensor("DEADLINE", "float64", (1,), help="when the request's TIMEOUT passes (UNIX time, s)")
CANCEL_FLAG = ServiceTensor("CANCEL_FLAG", "bytes", (1,), True,
                            help="the file face_restore_<restorer> creates when its gRPC client cancelled: the "
                                 "faces step stops at its next network call (runtime/serving/triton_cancel.py)")


@dataclass(frozen=True)
class PythonModel:
    """A python-backend model of the served job (source: triton_repo/<name>/1/model.py)."""

    name: str
    inputs: tuple[ServiceTensor, ...]
    outputs: tuple[ServiceTensor, ...]
    networks: tuple[str, ...] = ()         # network models it calls through BLS
    parameters: tuple[tuple[str, str], ...] = ()   # config.pbtxt parameters (string values)
    gpu: bool = False   # a KIND_GPU instance in the gpu rendering (its loop keeps tensors on the device)


# face_preprocess also reads every option (those of all restorers; an ensemble maps only its
# own): it checks them all before any decode or network call (runtime/serving/request_checks.py)
PREPROCESS = PythonModel("face_preprocess",
                         (IMAGE, *PHOTO_INPUTS.values(), TIMEOUT, FACE_SIZE, FACE_TEMPLATE, *OPTIONS.values()),
                         (CROPS, LABEL_MAPS, AFFINES, FRAME, FACE_COUNT, BOXES, DEADLINE),
                         networks=tuple(MODEL_GROUPS["face"]),
                         parameters=(("max_pixels", str(DEFAULT_MAX_PIXELS)), ("max_faces", str(MAX_FACES))))
POSTPROCESS = PythonModel("face_postprocess", (IMAGE, FRAME, AFFINES, LABEL_MAPS, RESTORED_CROPS, *PHOTO_INPUTS.values()),
                          (RESTORED,))


@dataclass(frozen=True)
class RestorerService:
    """One served restorer: the ensemble ``face_restore_<restorer>`` = preprocess -> faces -> postprocess."""

    restorer: str
    faces: PythonModel      # BLS model: face batch -> restored crops, calling the restorer's networks

    @property
    def ensemble(self) -> str:
        """The served entry point (a python model, the gate: triton_repo/gate_model.py)."""
        return f"face_restore_{self.restorer}"

    @property
    def job(self) -> str:
        """The ensemble the gate hands each request to: preprocess -> faces -> postprocess."""
        return f"face_restore_{self.restorer}_job"

    @property
    def gate(self) -> PythonModel:
        return PythonModel(self.ensemble, self.inputs, self.outputs, parameters=(("job", self.job),))

    @property
    def steps(self) -> tuple[PythonModel, ...]:
        return (PREPROCESS, self.faces, POSTPROCESS)

    @property
    def networks(self) -> tuple[str, ...]:
        """Every network model the ensemble needs (face networks first)."""
        return PREPROCESS.networks + self.faces.networks

    @property
    def options(self) -> tuple[ServiceTensor, ...]:
        """The restorer's own optional inputs (FIDELITY; STEPS, SEED, STRENGTH)."""
        return tuple(t for t in self.faces.inputs if t.optional and t is not CANCEL_FLAG)

    @property
    def inputs(self) -> tuple[ServiceTensor, ...]:
        return (IMAGE, *PHOTO_INPUTS.values(), TIMEOUT) + self.options

    @property
    def job_inputs(self) -> tuple[ServiceTensor, ...]:
        """The job ensemble's: the served inputs, the gate's cancel flag and the restorer's face size."""
        return self.inputs + (CANCEL_FLAG, FACE_SIZE, FACE_TEMPLATE)

    @property
    def face_size(self) -> int:
        """The aligned crop side its restorer takes (RestorerSpec.face_size; the renderer writes the
        weights' own, e.g. a foreign ONNX file's, into the gate's `face_size` parameter), sent by
        the gate as FACE_SIZE."""
        return RESTORERS[self.restorer].face_size

    @property
    def face_template(self) -> str:
        """The template its faces are aligned on (RestorerSpec.face_template; a foreign ONNX
        file's own when rendered with it), sent by the gate as FACE_TEMPLATE."""
        return RESTORERS[self.restorer].face_template

    @property
    def outputs(self) -> tuple[ServiceTensor, ...]:
        return (RESTORED, FACE_COUNT, BOXES)


@dataclass(frozen=True)
class Capacity:
    """How much of the served job runs at once and how much may wait, rendered into the model
    configs: instance counts, and the queue policy of each python step (face_preprocess,
    <restorer>_faces, face_postprocess; Triton's ``dynamic_batching.default_queue_policy``,
    which 2.51 applies to non-batched models too).

    A request finding a step's queue full (max_queue_size waiting), or waiting there longer
    than queue_timeout_s, is refused by Triton with UNAVAILABLE (HTTP 503, gRPC UNAVAILABLE:
    "Exceeds maximum queue size" at once / "Request timeout expired"): busy, retry later or
    elsewhere (runtime/client.py does). 0 = no limit; instances None = the rendering target's
    default (export/triton_repo.py: INSTANCES)."""

    python_instances: int | None = None    # of each python step model: photos in flight per step
    network_instances: int | None = None   # of each network model
    max_queue_size: int = 16
    queue_timeout_s: float = 60.0
    max_pixels: int = DEFAULT_MAX_PIXELS   # largest photo face_preprocess decodes (decompression-bomb guard)

    def __post_init__(self) -> None:
        for name in ("python_instances", "network_instances"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name.replace('_', ' ')} must be >= 1, got {value}")
        if self.max_queue_size < 0:
            raise ValueError(f"max queue size must be >= 0 (0 = no limit), got {self.max_queue_size}")
        if not 0 <= self.queue_timeout_s <= MAX_TIMEOUT_S:   # also refuses NaN
            raise ValueError(f"queue timeout must be in [0, {MAX_TIMEOUT_S:g}] s (0 = no limit), "
                             f"got {self.queue_timeout_s}")
        if self.max_pixels < 1:
            raise ValueError(f"max pixels must be >= 1, got {self.max_pixels}")


def restorer_service(spec: RestorerSpec) -> RestorerService:
    """The served restorer of a spec: its <name>_faces model takes the crops (and label maps when
    it reads them), the deadline and its served options, and calls its networks through BLS."""
    inputs = (CROPS, *((LABEL_MAPS,) if spec.label_maps else ()), DEADLINE, CANCEL_FLAG,
              *(OPTIONS[o.tensor_name] for o in spec.served_options()))
    return RestorerService(spec.name, PythonModel(f"{spec.name}_faces", inputs, (RESTORED_CROPS,),
                                                  networks=tuple(spec.network_names), gpu=spec.served_gpu))


SERVICES: dict[str, RestorerService] = {name: restorer_service(spec) for name, spec in RESTORERS.items()
                                        if spec.served and (spec.networks or spec.served_files)}
PYTHON_MODELS: dict[str, PythonModel] = {m.name: m for s in SERVICES.values() for m in s.steps}
GATES: dict[str, PythonModel] = {s.ensemble: s.gate for s in SERVICES.values()}


def triton_dims(spec: TensorSpec) -> tuple[tuple[int, ...], tuple[int, ...] | None]:
    """A network tensor's Triton dims (batch axis dropped: the model's max_batch_size is the
    contract's max_batch; -1 for an open image axis) and its reshape: a tensor of shape [batch]
    is dims [1], reshape []."""
    if spec.shape[0] != BATCH or BATCH in spec.shape[1:]:
        raise ValueError(f"{spec.name}: only a leading batch axis can be served, got {spec.shape}")
    dims = tuple(-1 if isinstance(d, str) else int(d) for d in spec.shape[1:])   # -1: an open image axis
    return ((1,), ()) if not dims else (dims, None)
