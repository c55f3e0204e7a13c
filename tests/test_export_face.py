"""ONNX export of the face networks from their contracts, verified against PyTorch."""
from __future__ import annotations

import onnx
import pytest

from export.cli import main as export_main
from export.verify import verify_onnx
from runtime.contracts import BATCH, FACE_MESH
from runtime.restorers import CONTRACTS, MODEL_GROUPS
from tests.conftest import export_networks


@pytest.fixture(scope="module")
def onnx_dir(tmp_path_factory):
    return export_networks(MODEL_GROUPS["face"], tmp_path_factory.mktemp("engines"))


@pytest.mark.parametrize("name", MODEL_GROUPS["face"])
def test_graph_follows_the_contract(name, onnx_dir):
    contract = CONTRACTS[name]
    model = onnx.load(str(onnx_dir / f"{name}.onnx"))
    assert model.opset_import[0].version >= 17
    for spec, value in zip(contract.inputs + contract.outputs, list(model.graph.input) + list(model.graph.output)):
        assert value.name == spec.name
        dims = [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]
        assert dims == list(spec.shape)


@pytest.mark.parametrize("name", MODEL_GROUPS["face"])
def test_onnxruntime_matches_torch_on_real_inputs(name, onnx_dir):
    rows = verify_onnx(CONTRACTS[name], onnx_dir / f"{name}.onnx", batches=(1, 4))
    assert len(rows) == 4 and all(r.ok for r in rows), rows
    assert max(r.max_abs for r in rows) < 5e-4


def test_profile_and_dynamic_axes_come_from_the_contract():
    assert FACE_MESH.profile(max_batch=16) == {"image": ((1, 3, 192, 192), (4, 3, 192, 192), (16, 3, 192, 192))}
    assert FACE_MESH.dynamic_axes() == {"image": {0: BATCH}, "landmarks": {0: BATCH}, "presence_logit": {0: BATCH}}


def test_cli_verify_prints_a_table_and_refuses_missing_files(onnx_dir, tmp_path, capsys):
    assert export_main(["verify", "--model", "face", "--out", str(onnx_dir)]) == 0
    out = capsys.readouterr().out
    assert out.count("| yes |") == 8 and "| NO |" not in out
    assert export_main(["verify", "--model", "face_mesh", "--out", str(tmp_path)]) == 2
    assert "face_mesh.onnx: not found" in capsys.readouterr().err
