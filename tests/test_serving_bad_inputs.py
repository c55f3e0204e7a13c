"""The bad-input suite against the real server (the session's CPU tritonserver of
tests/test_triton.py): every client mistake is a 4xx whose message names the problem, the
valid-but-unusual photos come back restored in their own form, the server stays healthy, and
its memory (server + python stubs) comes back to within 20 % of the start after the peaks.

Requests are raw KServe-v2 HTTP (tests/kserve_http.py) so that wrong sizes, lengths, types
and JSON can be sent; the photos are real samples in unusual encodings.
"""
from __future__ import annotations

import base64
import io
import json
import os
import struct
import time
import urllib.request
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from benchmarks.serving import png_bytes
from runtime.contracts.service import MAX_UPLOAD_BYTES, SERVICES
from runtime.imageio import DEFAULT_MAX_PIXELS, decode_image
from runtime.samples import ASTRONAUT, GRACE_HOPPER, NO_FACE, read_rgb8
from runtime.serving.client import RestoreClient
from runtime.serving.serve import SHM_DIR, Supervisor, TritonServer, group_memory, python_stubs
from runtime.serving.shm_recycle import grown_models
from tests.conftest import paste_regions
from tests.kserve_http import element, infer, infer_json, tensor

SAFM, AUTHFACE = SERVICES["safm"].ensemble, SERVICES["authface"].ensemble
OUTPUTS = ("RESTORED", "FACE_COUNT", "BOXES")
ASTRONAUT_PNG = png_bytes(read_rgb8(ASTRONAUT))
STOPPED_WITHIN_S = 15.0   # a TIMEOUT of 2 s: the loop stops at its next UNet call
RETURNED = 0.20   # memory (PSS) once the peaks are given back: within 20 % of the start
RECYCLED_WITHIN_S = 120.0   # the supervisor reloads the grown models (one stub start each) within this
HEAVIEST = ("256 MiB upload", "48 MP", "36 faces")


def png_bomb(side: int) -> bytes:
    """A real PNG of side x side solid grey (8-bit gray), zlib-streamed: a few hundred KB."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    z, row, parts = zlib.compressobj(9), b"\0" + b"\x80" * side, []
    block = row * 256
    for _ in range(side // 256):
        parts.append(z.compress(block))
    parts.append(z.compress(row * (side % 256)) + z.flush())
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", b"".join(parts)) + chunk(b"IEND", b""))


def animated_gif() -> bytes:
    """Three frames of the astronaut (shifted), as an animated GIF."""
    frames = [Image.fromarray(np.roll(read_rgb8(ASTRONAUT), 20 * i, axis=1)) for i in range(3)]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=100)
    return buf.getvalue()


def pil_bytes(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **kwargs)
    return buf.getvalue()


def face_grid(n: int, tile: int = 400) -> np.ndarray:
    """n x n real faces (astronaut and Grace Hopper, alternating) as one photo."""
    faces = [cv2.resize(read_rgb8(p), (tile, tile), interpolation=cv2.INTER_AREA) for p in (ASTRONAUT, GRACE_HOPPER)]
    rows = [np.concatenate([faces[(r + c) % 2] for c in range(n)], axis=1) for r in range(n)]
    return np.concatenate(rows, axis=0)


# --- every client mistake: (model, inputs or JSON body, status, words the message must hold) ------

def photo(data: bytes = ASTRONAUT_PNG):
    return tensor("IMAGE", "BYTES", data)


def with_option(name: str, datatype: str, value, model: str = SAFM):
    return model, [photo(), tensor(name, datatype, value)]


def json_request(*inputs: dict) -> bytes:
    return json.dumps({"inputs": list(inputs)}, allow_nan=True).encode()


JSON_IMAGE = {"name": "IMAGE", "datatype": "BYTES", "shape": [1], "data": [base64.b64encode(ASTRONAUT_PNG).decode()]}

MISTAKES = {
    "zero-byte photo": (SAFM, [photo(b"")], "empty"),
    "random bytes": (SAFM, [photo(np.random.default_rng(0).bytes(5000))], "not a readable image"),
    "text file": (SAFM, [photo(Path(__file__).read_bytes())], "not a readable image"),
    "truncated JPEG": (SAFM, [photo(GRACE_HOPPER.read_bytes()[:20000])], "truncated or corrupt"),
    "PNG bomb 20000x20000": (SAFM, [photo(png_bomb(20000))], "exceeds the cap of 80000000 (decompression-bomb guard: "
                                                             "--max-pixels of facerestore restore / serve)"),
    "animated GIF": (SAFM, [photo(animated_gif())], "an animated image (3 frames); only still images"),
    "IMAGE as FP32": (SAFM, [tensor("IMAGE", "FP32", 1.0)], "data-type is 'FP32'"),
    "IMAGE shape [0]": (SAFM, [("IMAGE", "BYTES", [0], b"")], "Expected [1], got [0]"),
    "IMAGE shape [9]": (SAFM, [("IMAGE", "BYTES", [9], element(ASTRONAUT_PNG) * 9)], "Expected [1], got [9]"),
    "IMAGE shape [1,1]": (SAFM, [("IMAGE", "BYTES", [1, 1], element(ASTRONAUT_PNG))], "Expected [1], got [1,1]"),
    "IMAGE missing": (SAFM, [tensor("FIDELITY", "FP32", 0.5)], "IMAGE is required"),
    "unknown input": (SAFM, [photo(), tensor("COLOR", "FP32", 1.0)], "unexpected inference input 'COLOR'"),
    "FIDELITY -5": (*with_option("FIDELITY", "FP32", -5.0), "FIDELITY must be in [0, 1]"),
    "FIDELITY 1e30": (*with_option("FIDELITY", "FP32", 1e30), "FIDELITY must be in [0, 1]"),
    "FIDELITY NaN": (*with_option("FIDELITY", "FP32", float("nan")), "FIDELITY must be in [0, 1], got nan"),
    "FIDELITY NaN (JSON)": (SAFM, json_request(JSON_IMAGE, {"name": "FIDELITY", "datatype": "FP32", "shape": [1],
                                                            "data": [float("nan")]}), "FIDELITY"),
    "FIDELITY -5 (JSON)": (SAFM, json_request(JSON_IMAGE, {"name": "FIDELITY", "datatype": "FP32", "shape": [1],
                                                           "data": [-5]}), "FIDELITY must be in [0, 1]"),
    **{f"UPSCALE {v}": (*with_option("UPSCALE", "FP32", v), "UPSCALE must be in [0.125, 8]")
       for v in (100.0, 0.0, -1.0, float("nan"), 0.001)},
    **{f"OUTPUT_FORMAT {v!r}": (*with_option("OUTPUT_FORMAT", "BYTES", v), "OUTPUT_FORMAT")
       for v in (b"exe", b"../../x", b"")},
    "MIN_SCORE 2": (*with_option("MIN_SCORE", "FP32", 2.0), "MIN_SCORE must be in [0, 1], got 2.0"),
    "MIN_FACE_SIZE -1": (*with_option("MIN_FACE_SIZE", "FP32", -1.0), "MIN_FACE_SIZE must be in [0, inf), got -1.0"),
    "PASTE_MASK oval": (*with_option("PASTE_MASK", "BYTES", b"oval"),
                        "PASTE_MASK must be one of ['face', 'square'], not 'oval'"),
    **{f"STEPS {v}": (*with_option("STEPS", "INT32", v, AUTHFACE), "STEPS must be in [1, 200]")
       for v in (0, -5, 1000, 100000)},
    **{f"STRENGTH {v}": (*with_option("STRENGTH", "FP32", v, AUTHFACE), "STRENGTH must be in (0, 1]")
       for v in (0.0, 5.0)},
    **{f"TIMEOUT {v}": (*with_option("TIMEOUT", "FP32", v), "TIMEOUT must be in (0, 600]")
       for v in (0.0, -1.0, 1e9, float("nan"))},
    "header length larger than the body": (SAFM, [photo()], "inference header size"),
    "element length prefix larger than the data": (
        SAFM, [("IMAGE", "BYTES", [1], struct.pack("<I", len(ASTRONAUT_PNG) + 100) + ASTRONAUT_PNG)],
        "incomplete string data"),
    "binary size claimed larger than sent": (SAFM, [photo()], "unexpected size"),
    "binary size claimed smaller than sent": (SAFM, [photo()], "unexpected additional input data"),
    "70 MiB upload": (SAFM, [photo(b"\x89PNG" + b"\0" * (70 * 2**20))], "exceeds the limit"),
    "256 MiB upload": (SAFM, [photo(b"\x89PNG" + b"\0" * (256 * 2**20))], "exceeds the limit"),
}
TWEAKS = {"header length larger than the body": {"header_extra": 10 * 2**20},
          "binary size claimed larger than sent": {"claimed": {"IMAGE": len(element(ASTRONAUT_PNG)) + 7}},
          "binary size claimed smaller than sent": {"claimed": {"IMAGE": len(element(ASTRONAUT_PNG)) - 7}}}


@pytest.fixture(scope="module")
def memory_at_start(server) -> int:
    """The server's memory (PSS) (tritonserver + python stubs) after every model served one photo."""
    for model in (SAFM, AUTHFACE):
        assert infer(server.http_url, model, [photo()], OUTPUTS).status == 200
    return group_memory(server.process.pid)


@pytest.mark.parametrize("case", list(MISTAKES))
def test_client_mistake_is_a_4xx_naming_the_problem(server, memory_at_start, case):
    model, request, words = MISTAKES[case]
    if isinstance(request, bytes):
        answer = infer_json(server.http_url, model, request)
    else:
        answer = infer(server.http_url, model, request, OUTPUTS, **TWEAKS.get(case, {}))
    assert 400 <= answer.status < 500, (answer.status, answer.error)
    assert words.lower() in answer.error.lower(), answer.error
    assert server.alive()


@pytest.mark.xfail(strict=True, reason="tritonserver's own HTTP frontend, before any model: in "
                   "triton-inference-server/server v2.51.0 src/http_server.cc, EVBufferToJson (line 1076) parses the "
                   "body with TritonJson, whose parse error is TRITONSERVER_ERROR_INTERNAL (TRITONJSON_STATUSRETURN, "
                   "lines 44-45), and HttpCodeFromError maps INTERNAL to 500 (lines 104-105); still so in 2.73")
def test_malformed_json_is_a_4xx(server):
    answer = infer_json(server.http_url, SAFM, b'{"inputs": [')
    assert 400 <= answer.status < 500, (answer.status, answer.error)


# --- valid photos in unusual forms come back restored, in their own form ---------------------------

def exif_rotated(rgb8: np.ndarray) -> bytes:
    """A JPEG stored sideways with EXIF orientation 6 (rotate 90 degrees clockwise to view)."""
    exif = Image.Exif()
    exif[0x0112] = 6
    return pil_bytes(Image.fromarray(np.ascontiguousarray(np.rot90(rgb8, 1))), "JPEG", quality=95, exif=exif)


def big_photo(width: int, height: int) -> bytes:
    """The astronaut, height x height, on a grey canvas of width x height, as JPEG."""
    canvas = np.full((height, width, 3), 120, np.uint8)
    canvas[:, :height] = cv2.resize(read_rgb8(ASTRONAUT), (height, height), interpolation=cv2.INTER_CUBIC)
    return cv2.imencode(".jpg", canvas[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes()


def under_the_cap() -> bytes:
    side = int(DEFAULT_MAX_PIXELS ** 0.5)
    return cv2.imencode(".png", np.full((side, side), 200, np.uint8))[1].tobytes()


ASTRO = read_rgb8(ASTRONAUT)
RGBA = np.dstack([ASTRO, np.tile(np.linspace(0, 255, 512, dtype=np.uint8), (512, 1))])
VALID = {   # name -> (photo bytes, faces, (width, height), form checks on the decoded answer)
    "CMYK JPEG": (lambda: pil_bytes(Image.fromarray(ASTRO).convert("CMYK"), "JPEG", quality=95), 1, (512, 512), {}),
    "16-bit PNG": (lambda: cv2.imencode(".png", ASTRO[..., ::-1].astype(np.uint16) * 257)[1].tobytes(), 1, (512, 512),
                   {"bit_depth": 16}),
    "RGBA PNG": (lambda: cv2.imencode(".png", RGBA[..., [2, 1, 0, 3]])[1].tobytes(), 1, (512, 512), {"alpha": True}),
    "grayscale": (lambda: pil_bytes(Image.fromarray(ASTRO).convert("L"), "PNG"), 1, (512, 512), {"grayscale": True}),
    "EXIF orientation 6": (lambda: exif_rotated(read_rgb8(GRACE_HOPPER)), 1,
                           tuple(Image.open(GRACE_HOPPER).size), {}),
    "no face": (lambda: NO_FACE.read_bytes(), 0, tuple(Image.open(NO_FACE).size), {}),
    "36 faces": (lambda: png_bytes(face_grid(6)), 36, (2400, 2400), {}),
    "48 MP": (lambda: big_photo(8000, 6000), 1, (8000, 6000), {}),
    "just under the pixel cap": (under_the_cap, 0, (8944, 8944), {}),
}


@pytest.mark.parametrize("case", list(VALID))
def test_unusual_valid_photo_comes_back_restored(server, face_pipeline, memory_at_start, case):
    make, faces, size, form = VALID[case]
    data = make()
    assert len(data) <= MAX_UPLOAD_BYTES
    answer = infer(server.http_url, SAFM, [photo(data)], OUTPUTS)
    assert answer.status == 200, answer.error
    assert int(answer.outputs["FACE_COUNT"][0]) == faces
    out = decode_image(answer.outputs["RESTORED"][0])
    assert out.size == size
    if "bit_depth" in form:
        assert out.bit_depth == form["bit_depth"]
    if "alpha" in form:
        # alpha kept as samples of the photo's depth: opaque at the right, transparent at the left
        assert out.alpha is not None and out.alpha[0, -1] == np.iinfo(out.alpha.dtype).max and out.alpha[0, 0] == 0
    if "grayscale" in form:
        assert out.grayscale
    if faces:   # every face was restored; outside the paste masks, the photo as it was
        diff = np.abs(out.rgb - decode_image(data).rgb).max(axis=2)
        for x0, y0, x1, y1 in answer.outputs["BOXES"]:
            # the demo changes a clean face little: measured 0.7-0.9/255 on average over the box on the
            # gray astronaut, where the identity restorer's round trip changes 0.1/255
            assert diff[int(y0):int(y1), int(x0):int(x1)].mean() > 0.4 / 255
        _, outside = paste_regions(face_pipeline(), decode_image(data))   # the served face networks' ONNX files
        if data[:2] == b"\xff\xd8":   # JPEG in, JPEG out: re-encoding leaks a face's change into its 8x8 blocks
            outside = cv2.erode(outside.astype(np.uint8), np.ones((33, 33), np.uint8)) > 0
            assert outside.mean() > 0.3 and diff[outside].max() <= 2 / 255 + 1e-6
        else:           # lossless: bit for bit (36 faces: the grid between the faces)
            assert outside.mean() > 0.3 and diff[outside].max() == 0
    else:
        assert answer.outputs["RESTORED"][0] == data


def test_served_face_options_are_the_in_process_ones(server, memory_at_start):
    """MIN_FACE_SIZE and MIN_SCORE (photo options, runtime/photo_options.py) reach the served face
    step: a face narrower than MIN_FACE_SIZE, or scored under MIN_SCORE, is not restored."""
    with RestoreClient(server.grpc_url, "grpc", "safm") as client:
        assert client.restore(ASTRONAUT_PNG).faces == 1
        assert client.restore(ASTRONAUT_PNG, min_face_size=5000.0).faces == 0
        assert client.restore(ASTRONAUT_PNG, min_score=1.0).faces == 0
        with pytest.raises(ValueError, match=r"^UPSCALE must be in \[0\.125, 8\], got 9\.0$"):   # before sending
            client.restore(ASTRONAUT_PNG, upscale=9.0)


def test_json_client_sends_and_gets_base64(server, memory_at_start):
    """A JSON-only client (no binary extension): photo in base64, restored photo back base64."""
    body = json.dumps({"inputs": [JSON_IMAGE], "outputs": [{"name": n} for n in OUTPUTS]}).encode()
    answer = infer_json(server.http_url, SAFM, body)
    assert answer.status == 200, answer.error
    assert answer.outputs["FACE_COUNT"] == [1]
    restored = decode_image(base64.b64decode(answer.outputs["RESTORED"][0]))
    assert restored.size == (512, 512)
    with urllib.request.urlopen(f"http://{server.http_url}/v2/models/{SAFM}/config", timeout=10) as r:
        described = json.loads(r.read())["parameters"]
    assert "base64" in described["IMAGE"]["string_value"] and "binary" in described["RESTORED"]["string_value"]


def test_work_nobody_waits_for_is_stopped(server, memory_at_start):
    """A request's TIMEOUT stops the AuthFace loop (200 steps take about a minute here), and a
    gRPC client that gives up leaves no work behind: the next request is served at once."""
    from runtime.serving.client import ClientError, RestoreClient

    start = time.monotonic()
    answer = infer(server.http_url, AUTHFACE, [photo(), tensor("STEPS", "INT32", 200), tensor("TIMEOUT", "FP32", 2.0)],
                   OUTPUTS)
    assert answer.status == 503 and "TIMEOUT passed" in answer.error, answer.error   # not a bad input (400)
    assert time.monotonic() - start < STOPPED_WITHIN_S
    with RestoreClient(server.grpc_url, "grpc", "authface", timeout=2) as impatient:
        with pytest.raises(ClientError, match="Deadline Exceeded"):
            impatient.restore(ASTRONAUT_PNG, steps=200)
    with RestoreClient(server.grpc_url, "grpc", "authface") as client:
        assert client.restore(ASTRONAUT_PNG, steps=2).latency_s < STOPPED_WITHIN_S


def cpu_seconds(server: TritonServer) -> float:
    """CPU time (user + system) used so far by the server and its python stubs."""
    total = 0.0
    for pid in python_stubs(server.process.pid) | {server.process.pid: None}:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def test_a_grpc_request_cancelled_in_the_faces_step_stops_using_cpu(server, memory_at_start):
    """A raw gRPC client (no TIMEOUT input: the server's most, 600 s) cancels a 200-step AuthFace
    request while its faces step runs: the gate (triton_repo/gate_model.py) raises the request's
    cancel flag and the denoising loop stops at its next UNet call; within 2 s the server uses no
    more CPU than when idle. Before the gate (6308b0f) such a request ran on for its 200 steps."""
    import tritonclient.grpc as grpcclient

    client = grpcclient.InferenceServerClient(server.grpc_url)
    image = grpcclient.InferInput("IMAGE", [1], "BYTES")
    image.set_data_from_numpy(np.array([ASTRONAUT_PNG], np.object_))
    steps = grpcclient.InferInput("STEPS", [1], "INT32")
    steps.set_data_from_numpy(np.array([200], np.int32))
    done = []
    start = preprocessed_count(server)
    call = client.async_infer(AUTHFACE, [image, steps], callback=lambda result, error: done.append(error))
    deadline = time.monotonic() + 60
    while preprocessed_count(server) == start:   # face_preprocess is done: the faces step runs now
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(1.0)
    running = cpu_seconds(server)
    time.sleep(1.0)
    busy = cpu_seconds(server) - running                     # the loop, for a second
    call.cancel()
    time.sleep(2.0)                                          # "stops within 2 s"
    after = cpu_seconds(server)
    time.sleep(3.0)
    idle_rate = (cpu_seconds(server) - after) / 3.0
    client.close()
    print(f"gRPC cancel in the faces step: {busy:.2f} CPU-s/s while running, {idle_rate:.2f} CPU-s/s from 2 s after "
          f"the cancel")
    assert busy > 0.2                                        # it was working
    assert idle_rate < 0.1, idle_rate                        # and stopped
    assert done and done[0] is not None                      # the client got its cancellation
    with RestoreClient(server.grpc_url, "grpc", "authface") as client2:
        assert client2.restore(ASTRONAUT_PNG, steps=2).faces == 1
    assert not list(SHM_DIR.glob("facerestore-cancel-*"))    # every flag removed with its request


def preprocessed_count(server: TritonServer) -> int:
    with urllib.request.urlopen(f"http://{server.http_url}/v2/models/face_preprocess/stats", timeout=10) as r:
        stats = json.loads(r.read())["model_stats"][0]["inference_stats"]
    return int(stats["success"]["count"]) + int(stats["fail"]["count"])


def memory_given_back(server: TritonServer) -> int:
    """The server's memory (PSS) once its supervisor (as `facerestore serve` runs it) reloaded
    the models whose shared-memory regions grew, their old stubs left, and each ensemble
    served a photo again (the fresh stubs warm, as at the start)."""
    supervisor = Supervisor(server, interval=0.5)
    supervisor.start()
    try:
        deadline = time.monotonic() + RECYCLED_WITHIN_S
        while grown_models(server.stubs) or set(python_stubs(server.process.pid)) != set(server.stubs):
            assert time.monotonic() < deadline and supervisor.is_alive(), (grown_models(server.stubs), supervisor.error)
            time.sleep(0.5)
    finally:
        supervisor.stop()
    assert not supervisor.recoveries   # given back by reloading, not by restarting the server
    for model in (SAFM, AUTHFACE):
        assert infer(server.http_url, model, [photo()], OUTPUTS).status == 200
    return group_memory(server.process.pid)


def test_server_healthy_and_memory_given_back_after_the_suite(server: TritonServer, memory_at_start):
    """Last of the module: the server answers a photo, and its memory comes back to within
    RETURNED of the start after the suite and again after its heaviest requests (what the peaks
    leave is the python stubs' shared-memory regions, grown to the largest tensor passed: the
    supervisor reloads those models; everything else is returned by itself)."""
    for path in ("/v2/health/ready", "/v2/health/live", f"/v2/models/{SAFM}/ready"):
        with urllib.request.urlopen(f"http://{server.http_url}{path}", timeout=10) as r:
            assert r.status == 200
    answer = infer(server.http_url, SAFM, [photo()], OUTPUTS)
    assert answer.status == 200 and int(answer.outputs["FACE_COUNT"][0]) == 1
    after_suite = group_memory(server.process.pid)
    given_back = memory_given_back(server)
    for case in HEAVIEST:
        if case in MISTAKES:
            assert infer(server.http_url, SAFM, MISTAKES[case][1], OUTPUTS).status == 400
        else:
            assert infer(server.http_url, SAFM, [photo(VALID[case][0]())], OUTPUTS).status == 200
    peak_again = group_memory(server.process.pid)
    again = memory_given_back(server)
    print(f"server + stubs memory (PSS): {memory_at_start / 2**30:.2f} GiB at the start, {after_suite / 2**30:.2f} GiB "
          f"after the suite ({after_suite / memory_at_start - 1:+.0%}), {given_back / 2**30:.2f} GiB once given back "
          f"({given_back / memory_at_start - 1:+.0%}); its heaviest requests again: {peak_again / 2**30:.2f} GiB, "
          f"then {again / 2**30:.2f} GiB ({again / memory_at_start - 1:+.0%})")
    assert given_back <= memory_at_start * (1 + RETURNED), (memory_at_start, given_back)
    assert again <= memory_at_start * (1 + RETURNED), (memory_at_start, again)
