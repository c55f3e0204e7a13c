"""The whole job on a real Triton Inference Server (nvidia-pytriton's tritonserver 2.51, CPU,
the `cpu` rendering), on loopback ports chosen free at run time; and the `gpu` rendering as text.

The session's one server and export (`server`, `engines`, tests/conftest.py): the demo safm-tiny
weights and tiny AuthFace exported to ONNX, rendered, started, and always stopped. The photos
go over HTTP and gRPC and must equal the in-process restore (same weights, ONNX Runtime).
"""
from __future__ import annotations

import os
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from export.triton_repo import FACES_MODEL, GATE_MODEL, SOURCE_REPO, model_configs, render_repo
from benchmarks.serving import png_bytes
from runtime.serving.client import ClientError, RestoreClient
from runtime.restorers import CONTRACTS, RESTORERS
from runtime.contracts.service import GATES, MAX_UPLOAD_BYTES, PYTHON_MODELS, SERVICES, TRITON_TYPES, triton_dims
from runtime.face import FaceOptions, FacePipeline
from runtime.imageio import decode_image, encode_image
from runtime.restore import restore_photo
from runtime.samples import ASTRONAUT, GRACE_HOPPER, NO_FACE, read_rgb8
from runtime.serving.serve import ServerError, TritonServer, live_group_members, port_is_free

# Served vs in-process restore, same ONNX files and the same runtime code on both sides.
# Measured on CPU: bit-identical (max |diff| 0). Allowed: one 8-bit rounding step, where a
# float may differ in its last bits (the server's dynamic batcher can run faces of several
# photos as one batch), and a mean far below any visible change.
MAX_ABS = 1 / 255
MEAN_ABS = 1e-4
AUTHFACE_STEPS = 2


# PNG: no JPEG re-quantisation between the two paths
PHOTOS = {"astronaut": png_bytes(read_rgb8(ASTRONAUT)), "grace_hopper": png_bytes(read_rgb8(GRACE_HOPPER))}


def in_process(data: bytes, pipeline: FacePipeline, restorer) -> tuple[np.ndarray, int]:
    """The in-process restore of encoded bytes: (restored photo as written to PNG, faces)."""
    out, batch, _, _ = restore_photo(decode_image(data), pipeline, restorer)
    return decode_image(encode_image(out, ".png")).rgb, len(batch)


def assert_close(served: bytes, expected: np.ndarray) -> tuple[float, float]:
    got = decode_image(served).rgb
    assert got.shape == expected.shape
    diff = np.abs(got - expected)
    assert diff.max() <= MAX_ABS + 1e-6 and diff.mean() <= MEAN_ABS, (diff.max() * 255, diff.mean())
    return float(diff.max() * 255), float(diff.mean())


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_served_safm_equals_in_process(server, engines, face_pipeline, protocol):
    from runtime.restorers.factory import make_restorer

    restorer = make_restorer("safm", None, "onnxruntime", engines)
    with RestoreClient(server.url(protocol), protocol, "safm") as client:
        for name, data in PHOTOS.items():
            result = client.restore(data, name)
            expected, faces = in_process(data, face_pipeline(), restorer)
            assert result.faces == faces == 1 and result.boxes.shape == (1, 4)
            err = assert_close(result.image, expected)
            assert np.abs(expected - decode_image(data).rgb).max() > 0.05   # the face really was restored (0.16 measured)
            print(f"{protocol} {name}: {result.latency_s * 1000:.0f} ms, max |diff| {err[0]:.1f}/255, mean {err[1]:.2e}")


def test_served_options_equal_in_process(server, engines, face_pipeline):
    """upscale, fidelity and the output format go through to the same runtime code."""
    from runtime.restorers.factory import make_restorer

    data = PHOTOS["astronaut"]
    expected, _ = in_process(data, face_pipeline(FaceOptions(upscale=2)), make_restorer("safm", None, "onnxruntime",
                                                                                             engines, fidelity=0.2))
    with RestoreClient(server.http_url, "http", "safm") as client:
        result = client.restore(data, upscale=2.0, fidelity=0.2)
        assert decode_image(result.image).size == (1024, 1024)
        assert_close(result.image, expected)
        jpg = client.restore(data, output_format="jpg")
        assert jpg.image[:3] == b"\xff\xd8\xff"
        # refused by the client before sending, with the server's words (its check: test_serving_bad_inputs.py)
        with pytest.raises(ValueError, match="FIDELITY must be in"):
            client.restore(data, fidelity=2.0)
        with pytest.raises(ValueError, match="UPSCALE must be in"):
            client.restore(data, upscale=100.0)
        with pytest.raises(ValueError, match="no option"):
            client.restore(data, steps=3)


def test_served_fidelity_reaches_the_network(server, engines, face_pipeline):
    """w = 0 and w = 1 served equal in-process, and differ from each other: a server (or an
    export) that dropped FIDELITY would give one picture for both. (The ONNX file itself follows
    w as torch does: tests/test_safm_runtime.py.)"""
    from runtime.restorers.factory import make_restorer

    data, served = PHOTOS["grace_hopper"], {}
    with RestoreClient(server.grpc_url, "grpc", "safm") as client:
        for w in (0.0, 1.0):
            served[w] = client.restore(data, fidelity=w).image
            expected, _ = in_process(data, face_pipeline(), make_restorer("safm", None, "onnxruntime", engines, fidelity=w))
            assert_close(served[w], expected)
    apart = np.abs(decode_image(served[0.0]).rgb - decode_image(served[1.0]).rgb)
    assert apart.max() > 2 / 255, apart.max() * 255   # measured 5/255 (the demo's w changes a clean face a little)


def test_served_face_options_equal_in_process(server, engines, face_pipeline):
    """only_center_face on a 3-face photo (one face restored), the square paste mask, and the
    AdaIN colour fix on random-init AuthFace (its colours are wrong, so the fix shows): each
    served picture equals the in-process one with the same FaceOptions, and each option changes
    the picture."""
    from runtime.restorers.factory import make_restorer
    from runtime.samples import group_photo

    restorers = {"safm": make_restorer("safm", None, "onnxruntime", engines),
                 "authface": make_restorer("authface", None, "onnxruntime", engines, steps=1, progress=False,
                                             allow_untrained=True)}
    group = png_bytes(group_photo())
    cases = [("safm", group, {"only_center_face": True}, FaceOptions(only_center_face=True), 1),
             ("safm", PHOTOS["astronaut"], {"paste_mask": b"square"}, FaceOptions(paste_mask="square"), 1),
             ("authface", PHOTOS["astronaut"], {"colour_fix": b"adain", "steps": 1}, FaceOptions(colour_fix="adain"), 1)]
    for name, data, options, face_options, faces in cases:
        with RestoreClient(server.http_url, "http", name) as client:
            result = client.restore(data, **options)
        expected, expected_faces = in_process(data, face_pipeline(face_options), restorers[name])
        assert result.faces == expected_faces == faces, options
        assert_close(result.image, expected)
        default, default_faces = in_process(data, face_pipeline(), restorers[name])
        assert np.abs(default - expected).max() > 10 / 255, options   # the option changed the picture
    assert default_faces == 1 and in_process(group, face_pipeline(), restorers["safm"])[1] == 3


def test_served_authface_equals_in_process(server, engines, face_pipeline):
    from runtime.restorers.factory import make_restorer

    data, pictures = PHOTOS["grace_hopper"], []
    for strength in (None, 0.5):   # faithful mode (pure noise) and the strength mode
        restorer = make_restorer("authface", None, "onnxruntime", engines, steps=AUTHFACE_STEPS, seed=7,
                                 strength=strength, progress=False, allow_untrained=True)
        expected, faces = in_process(data, face_pipeline(), restorer)
        with RestoreClient(server.grpc_url, "grpc", "authface") as client:
            result = client.restore(data, steps=AUTHFACE_STEPS, seed=7, strength=strength)
        assert result.faces == faces == 1
        err = assert_close(result.image, expected)
        pictures.append(expected)
        print(f"authface ({AUTHFACE_STEPS} steps, strength {strength}): {result.latency_s * 1000:.0f} ms, "
              f"max |diff| {err[0]:.1f}/255")
    assert np.abs(pictures[0] - pictures[1]).max() > 10 / 255   # STRENGTH reached the sampler


def test_served_jpeg_keeps_its_tables_subsampling_exif_and_icc(server, face_pipeline):
    from tests.test_jpeg_outputs import check_kept, q99_444_jpeg

    data = q99_444_jpeg()
    with RestoreClient(server.grpc_url, "grpc", "safm") as client:
        out = client.restore(data, "astronaut.jpg", "jpg").image
    assert check_kept(data, out, face_pipeline()) >= 45.0   # outside the faces, dB against the input



@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_photo_without_faces_comes_back_unchanged(server, protocol):
    data = NO_FACE.read_bytes()
    for restorer in (r for r in SERVICES if not RESTORERS[r].needs_checkpoint):   # those the session's server has
        with RestoreClient(server.url(protocol), protocol, restorer) as client:
            result = client.restore(data, "coffee.png")
        assert result.faces == 0 and result.boxes.shape == (0, 4)
        assert result.image == data


def test_corrupt_upload_is_an_error_and_the_server_keeps_serving(server):
    truncated = PHOTOS["astronaut"][:2000]
    with RestoreClient(server.grpc_url, "grpc") as grpc_client, RestoreClient(server.http_url, "http") as http_client:
        for client in (grpc_client, http_client):
            with pytest.raises(ClientError, match="not a readable image"):
                client.restore(b"this is not a photo", "junk.png")
            with pytest.raises(ClientError, match="truncated or corrupt|not a readable image"):
                client.restore(truncated, "truncated.png")
            with pytest.raises(ClientError, match="empty"):
                client.restore(b"", "empty.png")
        assert server.alive()
        assert grpc_client.restore(PHOTOS["astronaut"]).faces == 1


def test_upload_limit_is_refused_before_sending(server):
    with RestoreClient(server.grpc_url, "grpc") as client:
        with pytest.raises(ClientError, match="exceeds the upload limit"):
            client.restore(b"\0" * (MAX_UPLOAD_BYTES + 1), "huge.png")


def test_concurrent_requests_all_succeed(server, engines, face_pipeline):
    """8 clients (half gRPC, half HTTP) x 4 photos at once; every answer is its own photo's
    in-process restore (faces of several requests batched together come back to their photo)."""
    from runtime.restorers.factory import make_restorer

    photos = [PHOTOS["astronaut"], PHOTOS["grace_hopper"], NO_FACE.read_bytes(), PHOTOS["grace_hopper"]]
    results, errors = [], []

    def worker(i: int) -> None:
        protocol = "grpc" if i % 2 else "http"
        try:
            with RestoreClient(server.url(protocol), protocol, "safm") as client:
                for k, data in enumerate(photos):
                    results.append((k, client.restore(data, f"client{i}")))
        except Exception as exc:   # noqa: BLE001 - reported below
            errors.append(exc)

    start = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    assert not errors, errors
    assert len(results) == 32 and sorted(r.faces for _, r in results) == [0] * 8 + [1] * 24
    restorer = make_restorer("safm", None, "onnxruntime", engines)
    expected = {k: in_process(data, face_pipeline(), restorer)[0] for k, data in enumerate(photos[:2])}
    expected[3] = expected[1]
    for k, result in results:
        if k in expected:
            assert_close(result.image, expected[k])
        else:
            assert result.image == photos[k]
    lat = sorted(r.latency_s for _, r in results)
    print(f"32 requests, 8 clients: {wall:.1f} s wall, latency p50 {lat[16] * 1000:.0f} ms, max {lat[-1] * 1000:.0f} ms")


def test_health_and_metrics(server):
    for path in ("/v2/health/ready", "/v2/health/live", f"/v2/models/{SERVICES['safm'].ensemble}/ready"):
        with urllib.request.urlopen(f"http://{server.http_url}{path}", timeout=10) as r:
            assert r.status == 200
    with RestoreClient(server.grpc_url, "grpc") as client:
        assert client.is_ready()
    with urllib.request.urlopen(server.metrics_url, timeout=10) as r:
        text = r.read().decode()
    assert 'nv_inference_request_success{model="face_restore_safm",version="1"}' in text


def test_serving_benchmark_compares_with_the_direct_call(server):
    """`facerestore bench --triton-repo`: the same photo served over HTTP and gRPC and restored
    in-process on the repository's own ONNX files; overheads are the differences of medians."""
    from benchmarks.serving import DIRECT, bench_serving, serving_table

    result = bench_serving(server, repeats=2, photos={"astronaut": PHOTOS["astronaut"]})
    rows = result["rows"]
    assert [r["path"] for r in rows] == [DIRECT, "triton http", "triton grpc"]
    assert all(r["faces"] == 1 and r["runs"] == 2 and r["median_ms"] > 0 for r in rows)
    for served in rows[1:]:
        assert served["overhead_ms"] == pytest.approx(served["median_ms"] - rows[0]["median_ms"], abs=0.1)
    assert "| astronaut | 1 | triton grpc | 2 |" in serving_table(result)


def test_client_cli_writes_restored_photos(server, tmp_path, capsys):
    from facerestore.cli import main

    src = tmp_path / "in"
    src.mkdir()
    (src / "astronaut.png").write_bytes(PHOTOS["astronaut"])
    (src / "coffee.png").write_bytes(NO_FACE.read_bytes())
    out = tmp_path / "out"
    assert main(["client", str(src), "--out", str(out), "--url", server.grpc_url, "--concurrency", "2"]) == 0
    assert (out / "coffee.png").read_bytes() == NO_FACE.read_bytes()
    assert decode_image((out / "astronaut.png").read_bytes()).size == (512, 512)
    captured = capsys.readouterr()
    assert "1 faces" in captured.out and "2/2 photos written" in captured.out and "latency ms" in captured.out
    assert "UNTRAINED" not in captured.err   # the demo SaFM is trained
    assert main(["client", str(src / "astronaut.png"), "--out", str(src), "--url", server.grpc_url]) == 1
    assert "would overwrite an input" in capsys.readouterr().err


def test_client_warns_when_the_served_weights_are_untrained(server, tmp_path, capsys):
    """The session serves random-init tiny AuthFace: the client says so, from the served model's
    provenance parameter, before sending the photo."""
    from facerestore.cli import main

    assert main(["client", str(GRACE_HOPPER), "--restorer", "authface", "--steps", "1", "--out", str(tmp_path),
                 "--url", server.grpc_url]) == 0
    assert "warning: served authface weights are UNTRAINED (random init" in capsys.readouterr().err
    assert (tmp_path / GRACE_HOPPER.name).is_file()


def test_server_stops_its_process_group_and_frees_its_ports(server, tmp_path):
    """A second, small server (postprocess model only) on free ports: stop() leaves nothing."""
    repo = tmp_path / "repo"
    src = server.repository / "face_postprocess"
    (repo / "face_postprocess" / "1").mkdir(parents=True)
    for f in ("config.pbtxt", "1/model.py"):
        (repo / "face_postprocess" / f).write_bytes((src / f).read_bytes())
    small = TritonServer(repo, server="bundled", log=tmp_path / "log.txt", exit_timeout=2)
    with small:
        ports, pgid = (small.http_port, small.grpc_port, small.metrics_port), small.process.pid
        assert not any(port_is_free(p) for p in ports)
    assert all(port_is_free(p) for p in ports)
    assert live_group_members(pgid) == []
    (repo / "face_postprocess" / "config.pbtxt").write_text("name: \"face_postprocess\"\nbackend: \"nope\"\n")
    with pytest.raises(ServerError, match="exited"):
        TritonServer(repo, server="bundled", log=tmp_path / "log2.txt").start()


def test_serve_cli_renders_serves_and_stops_on_sigterm(engines, tmp_path):
    """`facerestore serve --render cpu` as a user runs it (free ports): it renders, serves a
    restore, and SIGTERM stops the server and its python models, leaving the ports free."""
    import re
    import signal
    import subprocess
    import sys

    from tests.conftest import subprocess_env

    log = tmp_path / "serve.log"
    argv = [sys.executable, "-m", "facerestore", "serve", "--render", "cpu", "--restorers", "safm", "--engines",
            str(engines), "--repo", str(tmp_path / "repo"), "--server", "bundled", "--http-port", "0",
            "--grpc-port", "0", "--metrics-port", "0", "--python-instances", "1"]
    with open(log, "w") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=subprocess_env(), start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while not (found := re.search(r"serving .*: HTTP (\S+), gRPC (\S+), metrics", log.read_text())):
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.5)
        http, grpc = found.group(1).rstrip(","), found.group(2).rstrip(",")
        with RestoreClient(grpc, "grpc", "safm") as client:
            assert client.restore(PHOTOS["astronaut"]).faces == 1
        ports = [int(u.rsplit(":", 1)[1]) for u in (http, grpc)]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert "stopping tritonserver" in log.read_text() and all(port_is_free(p) for p in ports)
    assert live_group_members(proc.pid) == []


# --- the gpu rendering, as text ---------------------------------------------------------------

def parse(path: Path):
    return text_format.Parse(path.read_text(), mc.ModelConfig())


@pytest.fixture(scope="module")
def gpu_repo(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("gpu") / "repo"
    render_repo("gpu", out, configs_only=True)
    return out


def test_gpu_rendering_configs_follow_the_contracts(gpu_repo):
    configs = {p.parent.name: parse(p) for p in gpu_repo.glob("*/config.pbtxt")}
    faces = {s.faces.name for s in SERVICES.values()}
    assert set(configs) == set(model_configs("gpu"))
    for name, config in configs.items():
        assert config.name == name
        if name in CONTRACTS:
            contract = CONTRACTS[name]
            assert config.platform == "tensorrt_plan" and config.max_batch_size == contract.max_batch
            assert [g.kind for g in config.instance_group] == [mc.ModelInstanceGroup.KIND_GPU]
            assert (config.dynamic_batching.max_queue_delay_microseconds > 0) != contract.per_step   # no delay per step
            for tensors, specs in ((config.input, contract.inputs), (config.output, contract.outputs)):
                assert [t.name for t in tensors] == [s.name for s in specs]
                for t, spec in zip(tensors, specs):
                    dims, reshape = triton_dims(spec)
                    assert tuple(t.dims) == dims and t.data_type == getattr(mc, TRITON_TYPES[spec.dtype])
                    assert (tuple(t.reshape.shape) if t.HasField("reshape") else None) == reshape
        elif name in PYTHON_MODELS:
            assert config.backend == "python" and config.max_batch_size == 0
            kind = mc.ModelInstanceGroup.KIND_GPU if PYTHON_MODELS[name].gpu else mc.ModelInstanceGroup.KIND_CPU
            assert [g.kind for g in config.instance_group] == [kind]
            assert (config.parameters["FORCE_CPU_ONLY_INPUT_TENSORS"].string_value == "no") == PYTHON_MODELS[name].gpu
            assert (SOURCE_REPO / name / "1" / "model.py").is_file()
            if name in faces:   # every restorer's faces step: the one generic model
                assert (SOURCE_REPO / name / "1" / "model.py").resolve() == FACES_MODEL
        elif name in GATES:   # face_restore_<restorer>: a python model in front of its job ensemble
            assert config.backend == "python" and config.parameters["job"].string_value == name + "_job"
            assert [g.kind for g in config.instance_group] == [mc.ModelInstanceGroup.KIND_CPU]
            assert config.instance_group[0].count == 3 * configs["face_preprocess"].instance_group[0].count
            assert (SOURCE_REPO / name / "1" / "model.py").resolve() == GATE_MODEL
        else:   # ensembles: every step is a model of the repository, every tensor produced before use
            assert config.platform == "ensemble"
            produced = {t.name for t in config.input}
            for step in config.ensemble_scheduling.step:
                assert step.model_name in configs
                assert set(step.input_map.values()) <= produced
                produced |= set(step.output_map.values())
            assert {t.name for t in config.output} <= produced


def test_crops_travel_as_uint8_and_the_frame_goes_from_pre_to_postprocess(gpu_repo):
    """Between the steps: uint8 crops (as FaceBatch.crops), the decoded photo handed on as
    FRAME (face_postprocess decodes nothing, so it has no pixel cap of its own)."""
    configs = {p.parent.name: parse(p) for p in gpu_repo.glob("*/config.pbtxt")}
    between = {(name, t.name): t.data_type for name, c in configs.items() for t in [*c.input, *c.output]
               if t.name in ("CROPS", "RESTORED_CROPS", "FRAME")}
    assert {("face_preprocess", "CROPS"), ("face_preprocess", "FRAME"), ("face_postprocess", "FRAME"),
            ("face_postprocess", "RESTORED_CROPS"), ("safm_faces", "CROPS"),
            ("safm_faces", "RESTORED_CROPS")} <= set(between)
    assert set(between.values()) == {mc.TYPE_UINT8}
    assert "max_pixels" not in configs["face_postprocess"].parameters
    for service in SERVICES.values():
        steps = {s.model_name: s for s in configs[service.job].ensemble_scheduling.step}
        assert steps["face_preprocess"].output_map["FRAME"] == steps["face_postprocess"].input_map["FRAME"] == "FRAME"


def test_cpu_and_gpu_renderings_serve_the_same_tensors():
    cpu, gpu = model_configs("cpu"), model_configs("gpu")
    assert set(cpu) == set(gpu)
    for name in cpu:
        for field in ("input", "output", "max_batch_size", "ensemble_scheduling", "dynamic_batching"):
            if field == "dynamic_batching":
                assert list(getattr(cpu[name], field).preferred_batch_size) == \
                    list(getattr(gpu[name], field).preferred_batch_size)
            else:
                assert getattr(cpu[name], field) == getattr(gpu[name], field), (name, field)


def test_committed_triton_repo_is_the_gpu_rendering(gpu_repo):
    for path in gpu_repo.glob("*/config.pbtxt"):
        committed = SOURCE_REPO / path.relative_to(gpu_repo)
        assert committed.read_text() == path.read_text(), \
            f"{committed} is stale: run `python -m export triton-repo --target gpu --configs-only`"


def test_rendering_refusals(tmp_path, engines):
    from export.triton_repo import RepoError

    with pytest.raises(RepoError, match="committed gpu rendering"):
        render_repo("cpu", SOURCE_REPO, engines)
    with pytest.raises(RepoError, match="TensorRT engines missing"):
        render_repo("gpu", tmp_path / "gpu", engines, restorers=["safm"])
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "mine.txt").write_text("x")
    with pytest.raises(RepoError, match="not empty"):
        render_repo("cpu", tmp_path / "busy", engines)


@pytest.mark.skipif(Path("/dev/nvidia0").exists(), reason="this machine has an NVIDIA GPU: its CUDA lines are real")
def test_cpu_server_log_has_one_line_about_gpu_errors(server):
    """On a GPU-less machine the server's CUDA/NVML/DCGM errors are expected: the forwarded log
    says so once instead of printing error-level CUDA lines."""
    text = Path(server.log).read_text()
    assert text.count("no NVIDIA GPU here: its CUDA/NVML/DCGM errors are expected") >= 1
    assert "CudaDriverHelper" not in text and "CUDA driver version is insufficient" not in text


def test_client_restores_a_clip_frame_by_frame_with_its_audio(server, pipeline, tmp_path, capsys):
    """A clip through the served ensemble: its frames sent concurrently, the restored frames
    muxed with the clip's own timestamps and its audio copied bit for bit."""
    from facerestore.cli import main
    from benchmarks.video import make_clip
    from tests.clips import changed_away_from_face, decoded_frames, face_boxes, face_change, stream_packets

    clip = make_clip(tmp_path / "clip.mkv", GRACE_HOPPER, frames=8, fps=8, size=(192, 144), codec="ffv1",
                     pix_fmt="bgr0")   # lossless: pixels compared exactly
    out = tmp_path / "out"
    assert main(["client", str(clip), "--out", str(out), "--url", server.grpc_url, "--concurrency", "3"]) == 0
    (frames_in, times_in), (frames_out, times_out) = decoded_frames(clip), decoded_frames(out / "clip.mkv")
    assert len(frames_out) == len(frames_in) == 8 and times_out == times_in
    assert stream_packets(out / "clip.mkv", "audio") == stream_packets(clip, "audio")
    boxes = face_boxes(pipeline, frames_in)
    for t in range(len(frames_in)):   # restored inside the face, untouched away from it
        assert face_change(frames_in[t], frames_out[t], boxes[t])[0] > 1.0
        assert not changed_away_from_face(frames_in[t], frames_out[t], boxes[t]), f"frame {t}"
    printed = capsys.readouterr().out
    assert "8 frames, 8 faces" in printed and "1/1 clips (8 frames) written to" in printed, printed
