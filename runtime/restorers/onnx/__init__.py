"""Any ONNX face enhancer the user brings (facefusion's set and others): `--model onnx
--checkpoint PATH.onnx`. Its image input, output, face size and extra scalar input (a fidelity
weight `weight`/`w`, float64 or float32) are read from the graph, or from `PATH.json` beside it
(runtime/restorers/onnx/restorer.py), with the 5-point template its faces are aligned on
(`"template": "arcface_128"` for facefusion's gpen_bfr_256; FFHQ's by default). Runs on ONNX
Runtime; served, the file runs inside its faces step (`onnx_faces/1/model.onnx`, ONNX Runtime on
the CPU: no network model, so neither a batch axis nor a TensorRT plan is asked of a file the
project did not export). Light: no torch, no onnxruntime here."""
from pathlib import Path

from runtime.restorers.base import RestorerSpec, require_checkpoint
from runtime.restorers.options import FIDELITY_OPTION

SERVED_FILE = "model.onnx"   # the user's file beside the served onnx_faces model


def _impl():
    from runtime.restorers.onnx import restorer

    return restorer


def _build(sessions, data, device, progress):
    # its one session opened from the file (its contract is the graph's): the user's, or the served copy
    return _impl().build(Path(data["folder"]) / SERVED_FILE if "folder" in data else data["path"], device)


def _weights_data(checkpoint):
    size, template = _impl().face_crop(checkpoint)
    return {"path": str(checkpoint), "face_size": size, "face_template": template}


def _served_files(checkpoint):
    declared = Path(checkpoint).with_suffix(".json")   # the JSON beside the file goes with it
    return {SERVED_FILE: Path(checkpoint), **({"model.json": declared} if declared.is_file() else {})}


ONNX_RESTORER = RestorerSpec(
    "onnx", "any ONNX face enhancer: --checkpoint PATH.onnx (input `input`/`x` float32 NCHW RGB in [-1, 1], "
            "optional scalar `weight`/`w` fed --fidelity, output [0]; or declared in PATH.json, with the face "
            "template: {\"template\": \"arcface_128\"} for facefusion's gpen_bfr_256, else FFHQ's); ONNX Runtime only.",
    (), (FIDELITY_OPTION,), _build, provenance=lambda c: _impl().provenance(require_checkpoint("onnx", "PATH.onnx", c)),
    weights_data=_weights_data, served_files=_served_files, cpu_onnxruntime=True,
    needs_checkpoint="PATH.onnx")
