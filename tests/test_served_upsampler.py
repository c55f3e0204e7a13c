"""The background upsampler as an optional step of the served ensemble (`serve --bg-upsampler`):
a real tritonserver (one start, CPU rendering of the SaFM ensemble with the bg_upsampler network
model) gives the same pictures as the in-process `restore --bg-upsampler` on the same ONNX files:
faces pasted on the upsampled photo, tiled, and a photo without faces upsampled too."""
from __future__ import annotations

import os

import numpy as np
import pytest

from benchmarks.serving import png_bytes
from runtime.face import FaceOptions
from runtime.imageio import decode_image, encode_image
from runtime.restore import restore_photo
from runtime.samples import ASTRONAUT, NO_FACE, read_rgb8
from runtime.serving.client import RestoreClient
from runtime.upsampler import onnx_upsampler
from tests.conftest import started_server
from training.shipped import DEMO_UPSAMPLER

TILE = 128   # several tiles a photo: the served step tiles as the in-process one does
# as tests/test_triton.py: one 8-bit rounding step at most, a mean far below any visible change
MAX_ABS = 1 / 255
MEAN_ABS = 1e-4


@pytest.fixture(scope="module")
def upsampler_server(engines, tmp_path_factory):
    """The SaFM ensemble with the upsampler step, on the session's ONNX files (linked) plus the
    demo upsampler's; always stopped."""
    from export.onnx_export import export_onnx
    from export.triton_repo import render_repo
    from runtime.contracts.upsampler import BG_UPSAMPLER

    work = tmp_path_factory.mktemp("served-upsampler")
    onnx = work / "engines"
    onnx.mkdir()
    for f in engines.iterdir():
        os.link(f, onnx / f.name)
    export_onnx(BG_UPSAMPLER, onnx, DEMO_UPSAMPLER)
    models = render_repo("cpu", work / "repo", onnx, ["safm"], {"bg_upsampler": DEMO_UPSAMPLER}, bg_tile=TILE)
    assert "bg_upsampler" in models
    assert f'key: "bg_upsampler_tile"\n  value {{\n    string_value: "{TILE}"' in \
        (work / "repo" / "face_postprocess" / "config.pbtxt").read_text()
    server = started_server(work / "repo", ready_timeout=300)
    yield server, onnx
    server.stop()


def expected(data: bytes, pipeline, restorer, upsampler) -> np.ndarray:
    """The in-process restore (as written to PNG), float RGB."""
    out = restore_photo(decode_image(data), pipeline, restorer, upsampler)[0]
    return decode_image(encode_image(out, ".png")).rgb


def test_served_upsampler_step_equals_in_process(upsampler_server, engines, face_pipeline):
    from runtime.restorers.factory import make_restorer

    server, onnx = upsampler_server
    restorer = make_restorer("safm", None, "onnxruntime", engines)
    upsampler = onnx_upsampler(onnx, DEMO_UPSAMPLER, tile=TILE)
    face, no_face = png_bytes(read_rgb8(ASTRONAUT)), png_bytes(read_rgb8(NO_FACE))
    with RestoreClient(server.grpc_url, "grpc", "safm") as client:
        for name, data, upscale, faces in (("astronaut", face, 2.0, 1), ("coffee", no_face, 1.0, 0)):
            answer = client.restore(data, name, upscale=upscale)
            assert answer.faces == faces
            got = decode_image(answer.image).rgb
            pipeline = face_pipeline(FaceOptions(upscale=upscale))
            want = expected(data, pipeline, restorer, upsampler)
            assert got.shape == want.shape
            diff = np.abs(got - want)
            print(f"{name} x{upscale:g}: served vs in-process max |diff| {diff.max() * 255:.1f}/255, mean {diff.mean():.2e}")
            assert diff.max() <= MAX_ABS + 1e-6 and diff.mean() <= MEAN_ABS, (name, diff.max() * 255, diff.mean())
            resized = expected(data, pipeline, restorer, None)   # the step ran: not the plain resize
            assert np.abs(got - resized).mean() > 1e-3, name


def test_gpu_rendering_serves_the_upsampler_plan_of_the_tile(tmp_path):
    """The gpu rendering: the bg_upsampler TensorRT model with open height and width (warm-up at
    the full tile), face_postprocess told the tile; a plan whose profile stops below the tile is
    refused, and tile 0 too (TensorRT itself is not run here)."""
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2 as mc

    from export.ngc import ngc_release
    from export.triton_repo import RepoError, render_repo
    from runtime.contracts.service import SERVICES
    from runtime.contracts.upsampler import BG_UPSAMPLER, tile_axes
    from runtime.engines import BuildTarget, Manifest, manifest_path
    from runtime.weights import source_id
    from tests.test_deploy import H100, fake_engines

    engines = fake_engines(tmp_path / "engines", SERVICES["safm"].networks, ngc_release().tensorrt)

    def upsampler_plan(tile: int) -> None:
        plan = engines / "bg_upsampler.plan"
        plan.write_bytes(b"not a real engine")
        Manifest(network=BG_UPSAMPLER.name, onnx_sha256="0" * 64, source_weights=source_id(None),
                 target=BuildTarget(tensorrt=ngc_release().tensorrt, gpu=H100, compute_capability="9.0"),
                 precision="fp16", profiles={k: [list(s) for s in v] for k, v in
                                             BG_UPSAMPLER.profile(None, tile_axes(tile)).items()}).write(manifest_path(plan))

    upsampler_plan(256)
    out = tmp_path / "repo"
    assert "bg_upsampler" in render_repo("gpu", out, engines, ["safm"], gpu=H100, bg_tile=256)
    config = text_format.Parse((out / "bg_upsampler" / "config.pbtxt").read_text(), mc.ModelConfig())
    assert config.platform == "tensorrt_plan" and config.max_batch_size == BG_UPSAMPLER.max_batch
    assert list(config.input[0].dims) == [3, -1, -1] and list(config.output[0].dims) == [3, -1, -1]
    assert [list(w.inputs["image"].dims) for w in config.model_warmup] == [[3, 288, 288], [3, 288, 288]]
    post = text_format.Parse((out / "face_postprocess" / "config.pbtxt").read_text(), mc.ModelConfig())
    assert post.parameters["bg_upsampler_tile"].string_value == "256"
    with pytest.raises(RepoError, match="tiles of 400 need"):
        render_repo("gpu", tmp_path / "repo2", engines, ["safm"], gpu=H100, bg_tile=400)
    with pytest.raises(RepoError, match="tile side >= 1"):
        render_repo("gpu", tmp_path / "repo3", engines, ["safm"], gpu=H100, bg_tile=0)
    plain = render_repo("gpu", tmp_path / "repo4", engines, ["safm"], gpu=H100)   # no step: no upsampler model
    assert "bg_upsampler" not in plain
