"""A foreign ONNX face enhancer: its tensors read from the graph (or the JSON beside it), run on
ONNX Runtime face by face when its batch is fixed, as one batch when it is dynamic."""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from runtime.contracts.base import NetworkContract, TensorSpec
from runtime.face.align import TEMPLATES
from runtime.face.pipeline import FaceBatch
from runtime.files import sha256_file
from runtime.restorers.base import Settable, option_defaults
from runtime.restorers.options import FIDELITY_OPTION
from runtime.restorers.published.restorer import from_range, to_range
from training.provenance import Provenance

IMAGE_NAMES = ("input", "x", "image", "img")
WEIGHT_NAMES = ("weight", "w", "fidelity")
ORT_TYPES = {"tensor(float)": "float32", "tensor(double)": "float64", "tensor(float16)": "float16"}


class ForeignOnnxError(ValueError):
    """An ONNX file whose tensors cannot be told apart; the message names the file and the fix."""


@dataclass(frozen=True)
class ForeignGraph:
    """What a foreign face enhancer takes and gives. `weight` / `weight_shape` / `weight_dtype`:
    its scalar input (None: it has none). `batch`: its batch axis is dynamic (else one face per call).
    `template`: the 5-point template its faces are aligned on (runtime.face.align.TEMPLATES)."""

    image: str
    output: str
    size: int
    weight: str | None = None
    weight_shape: tuple[int, ...] = (1,)
    weight_dtype: str = "float32"
    value_range: tuple[float, float] = (-1.0, 1.0)
    batch: bool = True
    template: str = "ffhq"

    def contract(self) -> NetworkContract:
        """A contract of the file's own names and dtypes (the session binds by it)."""
        inputs: tuple[TensorSpec, ...] = (TensorSpec(self.image, ("batch", 3, self.size, self.size)),)
        if self.weight:
            inputs += (TensorSpec(self.weight, self.weight_shape, self.weight_dtype),)
        return NetworkContract("onnx", inputs, (TensorSpec(self.output, ("batch", 3, self.size, self.size)),))


def _dim(d: object) -> int | None:
    return d if isinstance(d, int) and d > 0 else None


def read_graph(path: Path, inputs: Sequence, outputs: Sequence) -> ForeignGraph:
    """The graph's roles from ONNX Runtime's input/output descriptions (`.name`, `.shape`,
    `.type`) and, when present, `<path>.json` (keys: image, output, size, weight, value_range,
    template: `ffhq` (default) or `arcface_128`, e.g. facefusion's gpen_bfr_256),
    which wins over what the graph says."""
    declared = path.with_suffix(".json")
    meta = json.loads(declared.read_text()) if declared.is_file() else {}
    images = [i for i in inputs if len(i.shape) == 4]
    scalars = [i for i in inputs if len(i.shape) != 4]
    image = next((i for i in images if i.name == meta.get("image")), None) or \
        next((i for i in images if i.name in IMAGE_NAMES), None) or (images[0] if len(images) == 1 else None)
    if image is None:
        raise ForeignOnnxError(f"{path}: no single NCHW image input among {[i.name for i in inputs]}; "
                               f"declare it in {declared.name} ({{\"image\": NAME}})")
    weight = next((i for i in scalars if i.name == meta.get("weight")), None) or \
        next((i for i in scalars if i.name in WEIGHT_NAMES), None)
    if weight is None and scalars:
        raise ForeignOnnxError(f"{path}: inputs {[i.name for i in scalars]} are neither the image nor a weight "
                               f"({'/'.join(WEIGHT_NAMES)}); declare them in {declared.name} ({{\"weight\": NAME}})")
    if len(inputs) > 1 + (weight is not None):
        raise ForeignOnnxError(f"{path}: more inputs than an image and a weight: {[i.name for i in inputs]}")
    size = meta.get("size") or _dim(image.shape[2])
    if not size or (_dim(image.shape[3]) not in (None, size)):
        raise ForeignOnnxError(f"{path}: face size not fixed in the graph ({image.shape}); declare it in "
                               f"{declared.name} ({{\"size\": 512}})")
    output = meta.get("output") or outputs[0].name
    if output not in [o.name for o in outputs]:
        raise ForeignOnnxError(f"{path}: no output {output!r}; it has {[o.name for o in outputs]}")
    for t in [image] + ([weight] if weight else []):
        if t.type not in ORT_TYPES:
            raise ForeignOnnxError(f"{path}: input {t.name} is {t.type}; only float tensors are fed")
    weight_shape = tuple(_dim(d) or 1 for d in weight.shape) if weight else (1,)
    template = meta.get("template", "ffhq")
    if template not in TEMPLATES:
        raise ForeignOnnxError(f"{declared}: unknown template {template!r}; known: {', '.join(TEMPLATES)}")
    return ForeignGraph(image.name, output, int(size), weight.name if weight else None, weight_shape,
                        ORT_TYPES[weight.type] if weight else "float32",
                        tuple(meta.get("value_range", (-1.0, 1.0))), _dim(image.shape[0]) is None, template)


class ForeignOnnxRestorer(Settable):
    """A foreign ONNX face enhancer on ONNX Runtime; the `fidelity` setting feeds its weight input."""

    name = "onnx"

    def __init__(self, session, graph: ForeignGraph, provenance: Provenance) -> None:
        self.session, self.graph, self.provenance = session, graph, provenance
        self.face_size, self.face_template = graph.size, graph.template
        self.settings = option_defaults((FIDELITY_OPTION,))

    def _run(self, crops: np.ndarray, fidelity: float) -> np.ndarray:
        feed = {self.graph.image: to_range(crops, self.graph.value_range)}
        if self.graph.weight:
            feed[self.graph.weight] = np.full(self.graph.weight_shape, fidelity, self.graph.weight_dtype)
        (restored,) = self.session(**feed)
        return restored

    def __call__(self, batch: FaceBatch, **settings) -> np.ndarray:
        batch.require_size(self.graph.size, "this ONNX face enhancer")
        fidelity = self.merged(settings)["fidelity"]
        if self.graph.batch and not self.graph.weight:
            restored = self._run(batch.crops, fidelity)
        else:   # a fixed batch of 1, or a weight of fixed shape: one face per call
            restored = np.concatenate([self._run(batch.crops[i:i + 1], fidelity) for i in range(len(batch))])
        return from_range(restored, self.graph.value_range)


def open_graph(checkpoint: Path | None, device: str = "cpu"):
    """(ONNX Runtime session of the user's file, its ForeignGraph); errors name the file."""
    from runtime.sessions import OnnxRuntimeSession

    if checkpoint is None or Path(checkpoint).suffix.lower() != ".onnx":
        raise ValueError(f"onnx: --checkpoint must be a face enhancer's .onnx file, not {checkpoint}")
    path = Path(checkpoint)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found")
    try:   # opened once; its contract is then read from the graph it holds
        session = OnnxRuntimeSession(str(path), NetworkContract("onnx", (), ()), device)
    except Exception as exc:
        raise ForeignOnnxError(f"{path}: ONNX Runtime cannot load it ({str(exc).splitlines()[0][:200]})") from None
    graph = read_graph(path, session.session.get_inputs(), session.session.get_outputs())
    session.contract = graph.contract()
    return session, graph


def face_crop(checkpoint: Path | None) -> tuple[int, str]:
    """The aligned face side the file takes and the template of its faces (its graph, or the
    JSON beside it)."""
    graph = open_graph(checkpoint)[1]
    return graph.size, graph.template


def build(checkpoint: Path | None, device: str) -> ForeignOnnxRestorer:
    """The restorer of the user's ONNX file on ONNX Runtime (CUDA provider when `device` is cuda)."""
    session, graph = open_graph(checkpoint, device)
    return ForeignOnnxRestorer(session, graph, provenance(Path(checkpoint)))


def provenance(checkpoint: Path) -> Provenance:
    """The user's file: its name and sha256 (its licence is its own)."""
    path = Path(checkpoint)
    return Provenance(f"foreign ONNX {path.name}, sha256 {sha256_file(path)}: the user's file (licence: its own)", True)
