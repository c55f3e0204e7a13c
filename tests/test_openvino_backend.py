"""The OpenVINO backend (runtime/openvino_session.py) and `--backend auto`'s choice of it: SaFM on
OpenVINO bf16 on a CPU with AMX-BF16, with results close to ONNX Runtime fp32 on real faces; the
ONNX metadata reader it checks the weights with."""
from __future__ import annotations

import numpy as np
import onnx
import pytest

import runtime.job as job
from export.onnx_cache import cache_root, onnx_dir
from facerestore.cli import main
from runtime.imageio import frame_photo
from runtime.onnx_metadata import OnnxMetadataError, onnx_metadata
from runtime.openvino_session import OpenVinoSession
from runtime.restorers.factory import make_restorer
from runtime.restorers.safm.contracts import SAFM
from runtime.samples import GRACE_HOPPER
from runtime.sessions import OnnxRuntimeSession, SessionError, exported_onnx
from training.cpu import has_bf16


@pytest.fixture(scope="module")
def faces(pipeline, group):
    """The three aligned faces of the group photo."""
    photo = frame_photo(group)
    batch = pipeline.align(photo, pipeline.find(photo)[0])
    assert len(batch) == 3
    return batch


def test_openvino_fp32_equals_onnxruntime_and_bf16_stays_close_on_real_faces(faces):
    folders = {SAFM.name: onnx_dir(SAFM)}
    ort = make_restorer("safm", None, "onnxruntime", folders, progress=False)
    fp32 = make_restorer("safm", None, "openvino", folders, precision="fp32", progress=False)
    assert isinstance(ort.net, OnnxRuntimeSession) and isinstance(fp32.net, OpenVinoSession)
    reference = ort(faces).astype(np.int16)
    assert np.abs(fp32(faces).astype(np.int16) - reference).max() <= 1        # fp32 rounding: ~1e-5 before uint8
    assert any((cache_root() / "openvino").iterdir())                          # the compiled model, cached
    if not has_bf16():
        with pytest.raises(ValueError, match="bf16 needs"):
            make_restorer("safm", None, "openvino", folders, precision="bf16", progress=False)
        return
    bf16 = make_restorer("safm", None, "openvino", folders, precision="bf16", progress=False)
    diff = np.abs(bf16(faces).astype(np.int16) - reference)
    assert 0 < diff.mean() < 0.5 and np.percentile(diff, 99.9) <= 3   # bf16 rounding, not another picture


def test_auto_picks_openvino_bf16_only_with_amx_and_openvino(monkeypatch):
    monkeypatch.setattr(job, "cpu_flags", lambda: frozenset({"avx512f", "amx_tile", "amx_bf16"}))
    assert job.choose_backend("auto", "safm") == ("openvino", "bf16")
    assert str(job.choose_backend("auto", "safm")) == "openvino bf16"
    assert job.choose_backend("auto", "gfpgan") == ("onnxruntime", "fp32")   # not measured: stays on ORT
    assert job.choose_backend("auto", "safm", "cuda") == ("torch", "fp32")
    assert job.choose_backend("onnxruntime", "safm") == ("onnxruntime", "fp32")
    monkeypatch.setattr("runtime.openvino_session.openvino_available", lambda: False)
    assert job.choose_backend("auto", "safm") == ("onnxruntime", "fp32")
    monkeypatch.undo()
    monkeypatch.setattr(job, "cpu_flags", lambda: frozenset({"avx512f", "avx512_bf16"}))   # no AMX
    assert job.choose_backend("auto", "safm") == ("onnxruntime", "fp32")


def test_the_report_says_which_backend_auto_chose(tmp_path):
    assert main(["restore", str(GRACE_HOPPER), "--out", str(tmp_path / "out")]) == 0
    report = (tmp_path / "out" / "report.json").read_text()
    expected = str(job.choose_backend("auto", "safm"))
    assert f'"{expected} on cpu (--backend auto)"' in report


def test_openvino_refuses_fp16_a_gpu_and_other_weights(tmp_path, capsys):
    photo = str(GRACE_HOPPER)
    assert main(["restore", photo, "--backend", "openvino", "--precision", "fp16", "--out", str(tmp_path / "a")]) == 2
    assert "fp16 needs a CUDA device" in capsys.readouterr().err
    with pytest.raises(ValueError, match="runs on the CPU"):
        make_restorer("safm", None, "openvino", {SAFM.name: onnx_dir(SAFM)}, device="cuda", progress=False)
    other = tmp_path / "other"
    other.mkdir()
    model = onnx.load(str(onnx_dir(SAFM) / "safm.onnx"))
    for prop in model.metadata_props:
        if prop.key == "source_weights":
            prop.value = "0" * 64
    onnx.save(model, str(other / "safm.onnx"))
    with pytest.raises(SessionError, match="exported from other weights"):
        make_restorer("safm", None, "openvino", {SAFM.name: other}, progress=False)
    assert not (tmp_path / "a").exists()


def test_onnx_metadata_reads_what_onnx_reads_and_names_a_broken_file(tmp_path):
    path = onnx_dir(SAFM) / "safm.onnx"
    expected = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    assert onnx_metadata(path) == expected and expected["network"] == "safm"
    broken = tmp_path / "safm.onnx"
    broken.write_bytes(path.read_bytes()[:100_000])      # cut inside the graph
    with pytest.raises(OnnxMetadataError, match=f"{broken}: not an ONNX file"):
        onnx_metadata(broken)
    with pytest.raises(SessionError, match="not an ONNX file"):
        exported_onnx(SAFM, tmp_path)
