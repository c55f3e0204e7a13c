"""torch -> ONNX for one network contract: export, clean-up (onnxslim), contract shapes, checker,
shape inference, weight provenance, atomic write; external data for graphs over 2 GB."""
from __future__ import annotations

import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import onnx
import onnxslim
import torch

from export.networks import NETWORKS
from runtime.contracts.base import SOURCE_KEY, NetworkContract
from runtime.weights import source_id

OPSET = 17
EXTERNAL_DATA_BYTES = 1_800_000_000  # protobuf caps a model at 2 GB: larger weights go beside it


@dataclass
class ExportReport:
    """What one export produced."""

    path: Path
    nodes_before: int
    nodes_after: int
    external_data: bool


def export_onnx(contract: NetworkContract, out_dir: Path, checkpoint: Path | None = None, slim: bool = True,
                external_data_bytes: int = EXTERNAL_DATA_BYTES) -> ExportReport:
    """Export `contract`'s network (weights from `checkpoint`, or its default) to
    OUT_DIR/<name>.onnx: dynamic batch axis, opset 17, onnxslim clean-up (constant folding,
    dead-node and redundant-op removal), the contract's shapes stamped on inputs/outputs,
    onnx.checker and strict shape inference. Weights over `external_data_bytes` are saved as
    OUT_DIR/<name>.onnx.data. Files appear atomically."""
    network = NETWORKS[contract.name]
    module = network.build_module(checkpoint).eval()
    example = tuple(torch.from_numpy(x) for x in network.sample_inputs(1))
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / f"{contract.name}.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter warns about its own passes
            torch.onnx.export(module, example, str(raw), dynamo=False, opset_version=OPSET,
                              input_names=contract.input_names, output_names=contract.output_names,
                              dynamic_axes=contract.dynamic_axes(), do_constant_folding=True)
        model = onnx.load(str(raw))
        nodes_before = len(model.graph.node)
        if slim:
            model = onnxslim.slim(model)
        _check_names(contract, model)
        _stamp_shapes(contract, model)
        onnx.helper.set_model_props(model, {"network": contract.name, SOURCE_KEY: source_id(checkpoint)})
        external = sum(t.ByteSize() for t in model.graph.initializer) > external_data_bytes
        staged = Path(tmp) / "out" / f"{contract.name}.onnx"
        staged.parent.mkdir()
        onnx.save_model(model, str(staged), save_as_external_data=external, all_tensors_to_one_file=True,
                        location=f"{contract.name}.onnx.data", size_threshold=1024)
        onnx.checker.check_model(str(staged), full_check=True)
        onnx.shape_inference.infer_shapes_path(str(staged), str(Path(tmp) / "inferred.onnx"), strict_mode=True)
        path = Path(out_dir) / staged.name
        path.parent.mkdir(parents=True, exist_ok=True)
        for f in sorted(staged.parent.iterdir(), key=lambda f: f.suffix == ".onnx"):  # data first, graph last
            staging = path.parent / f".{f.name}.tmp"
            shutil.copyfile(f, staging)
            staging.replace(path.parent / f.name)
        if not external:
            Path(f"{path}.data").unlink(missing_ok=True)
    return ExportReport(path, nodes_before, len(model.graph.node), external)


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
