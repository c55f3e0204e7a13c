"""Any ONNX face enhancer the user brings (facefusion's set and others): `--model onnx
--checkpoint PATH.onnx`. Its image input, output, face size and extra scalar input (a fidelity
weight `weight`/`w`, float64 or float32) are read from the graph, or from `PATH.json` beside it
(runtime/restorers/onnx/graph.py). Runs on ONNX Runtime. Light: no torch, no onnxruntime here."""
from runtime.restorers.base import RestorerSpec
from runtime.restorers.options import FIDELITY_OPTION


def _build(sessions, data, device, progress):
    from runtime.restorers.onnx.restorer import build

    return build(data["path"], device)   # its one session opened from the file (its contract is the graph's)


ONNX_RESTORER = RestorerSpec(
    "onnx", "any ONNX face enhancer: --checkpoint PATH.onnx (input `input`/`x` float32 NCHW RGB in [-1, 1], "
            "optional scalar `weight`/`w` fed --fidelity, output [0]; or declared in PATH.json); ONNX Runtime only.",
    (), (FIDELITY_OPTION,), _build, weights_data=lambda checkpoint: {"path": checkpoint}, cpu_onnxruntime=True, served=False, needs_checkpoint="PATH.onnx")
