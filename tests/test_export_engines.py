"""build-engines: ONNX reuse, external data, manifests, refusal logic; the TensorRT build itself
runs only where a CUDA GPU and TensorRT exist (skipped here with the reason)."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import onnxruntime as ort
import pytest
import torch

from export.cli import main as export_main
from export.networks import NETWORKS
from export.onnx_export import export_onnx
from export.tensorrt_build import build_engine, engine_precision, wanted_manifest
from export.verify import verify_onnx
from runtime.restorers import CONTRACTS
from runtime.contracts.face import FACE_MESH
from runtime.restorers.safm.contracts import SAFM
from runtime.engines import BuildTarget, EngineMismatch, check_loadable, is_up_to_date, manifest_path
from runtime.tensorrt_session import TensorRTSession, TensorRTUnavailable

H100 = BuildTarget(tensorrt="10.13.0", gpu="NVIDIA H100 80GB HBM3", compute_capability="9.0")


@pytest.fixture(scope="module")
def mesh_onnx(tmp_path_factory):
    return export_onnx(FACE_MESH, tmp_path_factory.mktemp("eng")).path


def test_onnxslim_cleans_the_graph(tmp_path):
    report = export_onnx(CONTRACTS["face_detector"], tmp_path)
    assert report.nodes_after < report.nodes_before * 0.6  # 429 -> 184 nodes measured


def test_large_weights_go_to_external_data(tmp_path):
    report = export_onnx(FACE_MESH, tmp_path, external_data_bytes=0)
    assert report.external_data and (tmp_path / "face_mesh.onnx.data").stat().st_size > 1_000_000
    assert report.path.stat().st_size < 200_000
    rows = verify_onnx(FACE_MESH, report.path, batches=(2,))
    assert all(r.ok for r in rows), rows
    assert sorted(p.name for p in tmp_path.iterdir()) == ["face_mesh.onnx", "face_mesh.onnx.data"]


def test_manifest_profiles_precision_and_reuse(mesh_onnx, tmp_path):
    m = wanted_manifest(FACE_MESH, mesh_onnx, None, H100, max_batch=16, opt_level=3, fp16_vae=False)
    assert m.profiles == {"image": [[1, 3, 192, 192], [4, 3, 192, 192], [16, 3, 192, 192]]}
    assert m.precision == "fp16" and m.build_flags["fp16"] and m.source_weights == "default"
    plan = tmp_path / "face_mesh.plan"
    assert not is_up_to_date(plan, m)
    plan.write_bytes(b"engine bytes")
    m.write(manifest_path(plan))
    assert is_up_to_date(plan, m)
    assert not is_up_to_date(plan, dataclasses.replace(m, onnx_sha256="0" * 64))   # ONNX changed
    assert not is_up_to_date(plan, dataclasses.replace(m, profiles={"image": [[1, 3, 192, 192]] * 3}))
    assert not is_up_to_date(plan, dataclasses.replace(m, target=dataclasses.replace(H100, tensorrt="10.14.0")))


def test_what_decides_that_a_plan_loads():
    """The TensorRT release (three or four parts: the bindings report 10.7.0, packages 10.7.0.23)
    and the GPU; a version-compatible plan loads in later runtimes of its major, a hardware-
    compatible one on other GPUs of its level."""
    from runtime.engines import gpu_runs, tensorrt_release, tensorrt_runs

    assert tensorrt_release("10.7.0") == tensorrt_release("10.7.0.23") == (10, 7, 0)
    assert tensorrt_runs("10.7.0.23", "10.7.0") and not tensorrt_runs("10.7.0", "10.8.0.43")
    assert tensorrt_runs("10.7.0", "10.9.0", version_compatible=True)
    assert not tensorrt_runs("10.7.0", "11.0.0", version_compatible=True)
    assert not tensorrt_runs("10.9.0", "10.7.0", version_compatible=True)
    for bad in ("10.7", "ten.7.0", "10.7.0.23.1"):
        with pytest.raises(ValueError, match="not a TensorRT version"):
            tensorrt_release(bad)
    l4 = BuildTarget(tensorrt="10.13.0", gpu="NVIDIA L4", compute_capability="8.9")
    t4 = BuildTarget(tensorrt="10.13.0", gpu="Tesla T4", compute_capability="7.5")
    pcie = dataclasses.replace(H100, gpu="NVIDIA H100 PCIe")
    assert gpu_runs(H100, H100) and not gpu_runs(H100, l4) and not gpu_runs(H100, pcie)
    assert gpu_runs(H100, pcie, "same_compute_capability") and not gpu_runs(H100, l4, "same_compute_capability")
    assert gpu_runs(H100, l4, "ampere_plus") and not gpu_runs(H100, t4, "ampere_plus")


def test_vae_stays_fp32_unless_fp16_safe():
    fp32_net = dataclasses.replace(SAFM, precision="fp32")
    assert engine_precision(fp32_net, fp16_vae=False) == "fp32"
    assert engine_precision(fp32_net, fp16_vae=True) == "fp16"
    assert engine_precision(SAFM, fp16_vae=False) == "fp16"


def test_engine_for_another_gpu_or_tensorrt_is_refused(mesh_onnx, tmp_path):
    plan = tmp_path / "face_mesh.plan"
    plan.write_bytes(b"engine bytes")
    with pytest.raises(EngineMismatch, match=r"face_mesh.manifest.json: missing; an engine without its manifest"):
        check_loadable(plan, H100)
    wanted_manifest(FACE_MESH, mesh_onnx, None, H100, None, 3, False).write(manifest_path(plan))
    assert check_loadable(plan, H100).network == "face_mesh"
    l4 = BuildTarget(tensorrt="10.13.0", gpu="NVIDIA L4", compute_capability="8.9")
    with pytest.raises(EngineMismatch, match=r"built for GPU NVIDIA H100 80GB HBM3 sm_9.0 \(here NVIDIA L4 sm_8.9\)"):
        check_loadable(plan, l4)
    with pytest.raises(EngineMismatch, match=r"built for TensorRT 10.13.0 \(here 10.9.0\)"):
        check_loadable(plan, dataclasses.replace(H100, tensorrt="10.9.0"))
    manifest_path(plan).write_text("{not json")
    with pytest.raises(EngineMismatch, match="unreadable manifest"):
        check_loadable(plan, H100)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without a GPU")
def test_no_tensorrt_object_without_a_gpu(tmp_path):
    with pytest.raises(TensorRTUnavailable, match="no CUDA device"):
        TensorRTSession(tmp_path / "x.plan", FACE_MESH)


def test_build_engines_cli(tmp_path, capsys):
    out = tmp_path / "engines"
    assert export_main(["build-engines", "--model", "face", "--out", str(out), "--onnx-only"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["face_detector.onnx", "face_mesh.onnx"]
    first = capsys.readouterr()
    assert first.out.count("| yes |") == 8
    stamp = (out / "face_mesh.onnx").stat().st_mtime_ns
    assert export_main(["build-engines", "--model", "face_mesh", "--out", str(out), "--onnx-only", "--no-verify"]) == 0
    assert "face_mesh.onnx is up to date" in capsys.readouterr().out
    assert (out / "face_mesh.onnx").stat().st_mtime_ns == stamp
    if not torch.cuda.is_available():
        assert export_main(["build-engines", "--model", "face_mesh", "--out", str(out), "--no-verify"]) == 3
        err = capsys.readouterr().err
        assert "cannot build TensorRT engines here: no CUDA device" in err and "--onnx-only" in err


def test_build_and_run_engine(mesh_onnx, tmp_path):
    try:
        from runtime.tensorrt_session import require_tensorrt

        require_tensorrt()
    except TensorRTUnavailable as exc:
        pytest.skip(f"TensorRT engine build/run needs it: {exc}")
    plan = build_engine(FACE_MESH, mesh_onnx, tmp_path / "face_mesh.plan", max_batch=8)
    session = TensorRTSession(plan, FACE_MESH)
    x = NETWORKS["face_mesh"].sample_inputs(4)
    ref = ort.InferenceSession(str(mesh_onnx)).run(FACE_MESH.output_names, {"image": x[0]})
    for a, b in zip(session(*x), ref):
        assert abs(a - b).max() / abs(b).max() < 1e-2  # fp16 engine vs fp32 ONNX Runtime


def test_polygraphy_build_arguments(mesh_onnx, tmp_path):
    """The engine build's polygraphy loaders are constructed without TensorRT or a GPU, so a
    misspelled argument fails here; the config carries the manifest's precision, profile, level
    and the timing cache beside the engines."""
    from export.tensorrt_build import TIMING_CACHE, polygraphy_build

    m = wanted_manifest(FACE_MESH, mesh_onnx, None, H100, max_batch=8, opt_level=4, fp16_vae=False)
    cache = tmp_path / TIMING_CACHE
    build = polygraphy_build(mesh_onnx, m, cache)
    config = build._config
    assert config.fp16 and config.tf32 and config.builder_optimization_level == 4
    assert config.timing_cache_path is None and build.timing_cache_path == str(cache)   # loaded, saved
    assert [list(s) for s in config.profiles[0]["image"]] == m.profiles["image"]
    cache.write_bytes(b"cache")
    fp32 = wanted_manifest(SAFM, mesh_onnx, None, H100, None, 3, False)
    fp32.precision = "fp32"
    config = polygraphy_build(mesh_onnx, fp32, cache)._config
    assert not config.fp16 and config.timing_cache_path == str(cache)


def test_parity_through_polygraphy_comparator(mesh_onnx):
    """polygraphy's ONNX Runtime runner against PyTorch on the real sample faces (the TensorRT
    runner joins with an engine, on a GPU)."""
    from export.verify import parity_table, verify_onnx

    rows = verify_onnx(FACE_MESH, mesh_onnx, batches=(2,))
    assert [(r.runner, r.output, r.batch) for r in rows] == [("onnxruntime", n, 2) for n in FACE_MESH.output_names]
    assert all(r.ok for r in rows)
    assert "| onnxruntime |" in parity_table(rows)


def test_onnxruntime_gpu_providers():
    from runtime.sessions import ort_providers

    gpu = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    tmp = Path("/tmp/ort-cache")
    trt, cuda, cpu = ort_providers("tensorrt", gpu, tmp)
    assert trt[0] == "TensorrtExecutionProvider" and trt[1]["trt_fp16_enable"]
    assert trt[1]["trt_engine_cache_path"] == str(tmp)
    assert cuda == ("CUDAExecutionProvider", {"device_id": 0}) and cpu == "CPUExecutionProvider"
    assert ort_providers("cuda:1", gpu, tmp) == [("CUDAExecutionProvider", {"device_id": 1}), "CPUExecutionProvider"]
    assert ort_providers("tensorrt", ["CPUExecutionProvider"], tmp) == ["CPUExecutionProvider"]   # the CPU wheel
    assert ort_providers("cpu", gpu, tmp) == ["CPUExecutionProvider"]


def test_build_engines_reports_every_network_and_never_stops_at_one(tmp_path, capsys):
    """Several models in one run: a SaFM checkpoint that is not one fails its network, the face
    networks are still exported and verified, one table reports them all, the exit status says so."""
    out, bad = tmp_path / "engines", tmp_path / "broken.safetensors"
    bad.write_bytes(b"not a safetensors file")
    assert export_main(["build-engines", "--model", "face", "safm", "--safm-checkpoint", str(bad),
                        "--out", str(out), "--onnx-only"]) == 1
    printed = capsys.readouterr()
    assert sorted(p.name for p in out.glob("*.onnx")) == ["face_detector.onnx", "face_mesh.onnx"]
    assert printed.out.count("| yes |") == 8   # both face networks, every output, batches 1 and 4
    assert "| safm | onnx export |" in printed.out and "broken.json: not found" in printed.out
    assert "1 networks failed" in printed.err
    if not torch.cuda.is_available():   # no TensorRT: every ONNX file is still made, then the reason
        assert export_main(["build-engines", "--model", "face_mesh", "face_detector", "--out", str(out),
                            "--no-verify"]) == 3
        assert "cannot build TensorRT engines here: no CUDA device" in capsys.readouterr().err
    assert export_main(["build-engines", "--model", "face", "safm", "--checkpoint", str(bad), "--out", str(out),
                        "--onnx-only"]) == 2
    assert "--safm-checkpoint" in capsys.readouterr().err
