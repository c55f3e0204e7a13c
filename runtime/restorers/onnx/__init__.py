"""Any ONNX face enhancer the user brings (facefusion's set and others): `--model onnx
--checkpoint PATH.onnx`. Its image input, output, face size and extra scalar input (a fidelity
weight `weight`/`w`, float64 or float32) are read from the graph, or from `PATH.json` beside it
(runtime/restorers/onnx/restorer.py), with the 5-point template its faces are aligned on
(`"template": "arcface_128"` for facefusion's gpen_bfr_256; FFHQ's by default). Runs on ONNX
Runtime. Light: no torch, no onnxruntime here."""
from runtime.restorers.base import RestorerSpec
from runtime.restorers.options import FIDELITY_OPTION


def _build(sessions, checkpoint, device, progress, fidelity):
    from runtime.restorers.onnx.restorer import build

    return build(checkpoint, device, fidelity)


ONNX_RESTORER = RestorerSpec(
    "onnx", "any ONNX face enhancer: --checkpoint PATH.onnx (input `input`/`x` float32 NCHW RGB in [-1, 1], "
            "optional scalar `weight`/`w` fed --fidelity, output [0]; or declared in PATH.json, with the face "
            "template: {\"template\": \"arcface_128\"} for facefusion's gpen_bfr_256, else FFHQ's); ONNX Runtime only.",
    (), (FIDELITY_OPTION,), _build, cpu_onnxruntime=True, served=False, needs_checkpoint="PATH.onnx")
