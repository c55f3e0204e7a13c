"""torch -> ONNX for one network contract: export, check, shape inference, atomic write."""
from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import onnx
import torch

from runtime.contracts.base import SOURCE_KEY, NetworkContract
from runtime.files import write_atomic

OPSET = 17


def export_onnx(contract: NetworkContract, out_dir: Path, checkpoint: Path | None = None) -> Path:
    """Export `contract`'s network (weights from `checkpoint`, or its default) to
    OUT_DIR/<name>.onnx (dynamic batch axis, opset 17), run onnx.checker and shape inference,
    and write the file atomically. Returns its path."""
    module = contract.build_module(checkpoint).eval()
    example = tuple(torch.from_numpy(x) for x in contract.sample_inputs(1))
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / f"{contract.name}.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter warns about its own passes
            torch.onnx.export(module, example, str(raw), dynamo=False, opset_version=OPSET,
                              input_names=contract.input_names, output_names=contract.output_names,
                              dynamic_axes=contract.dynamic_axes(), do_constant_folding=True)
        model = onnx.load(str(raw))
        _check_names(contract, model)
        _stamp_shapes(contract, model)
        onnx.helper.set_model_props(model, {"network": contract.name, SOURCE_KEY: contract.source_id(checkpoint)})
        onnx.checker.check_model(model, full_check=True)
        model = onnx.shape_inference.infer_shapes(model, strict_mode=True)
        path = Path(out_dir) / f"{contract.name}.onnx"
        write_atomic(path, model.SerializeToString())
    return path


def _stamp_shapes(contract: NetworkContract, model: onnx.ModelProto) -> None:
    """Write the contract's shapes (static dims, named batch axis) on the graph's inputs and
    outputs; the exporter leaves reshaped outputs with made-up symbolic dims."""
    for spec, value in zip(contract.inputs + contract.outputs, list(model.graph.input) + list(model.graph.output)):
        dims = value.type.tensor_type.shape.dim
        del dims[:]
        for d in spec.shape:
            dim = dims.add()
            if isinstance(d, str):
                dim.dim_param = d
            else:
                dim.dim_value = d


def _check_names(contract: NetworkContract, model: onnx.ModelProto) -> None:
    """The graph's inputs/outputs are exactly the contract's, in order."""
    got_in = [i.name for i in model.graph.input]
    got_out = [o.name for o in model.graph.output]
    if got_in != contract.input_names or got_out != contract.output_names:
        raise RuntimeError(f"{contract.name}: exported graph has inputs {got_in} / outputs {got_out}, "
                           f"contract says {contract.input_names} / {contract.output_names}")
