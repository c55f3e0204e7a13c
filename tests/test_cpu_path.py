"""The in-process CPU path: face networks and SaFM on ONNX Runtime by default (ONNX exported
once into the cache), a start-up without torch, tiling only when --min-face-size needs it,
uint8 pixels kept from decoding, bf16 on CPUs that compute it."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from export.onnx_cache import cache_root, onnx_dir
from facerestore.cli import main
from runtime.contracts.face import FACE_DETECTOR, FACE_MESH
from runtime.face import FaceOptions, FacePipeline, onnx_face_pipeline
from runtime.face.detect import INPUT_SIZE, MIN_FACE_AT_INPUT, TILE_SIDE, tile_side_for
from runtime.imageio import Photo, read_image, to_float
from runtime.samples import ASTRONAUT, GRACE_HOPPER, crowd_photo
from runtime.sessions import onnx_session
from tests.conftest import subprocess_env
from tests.golden import golden_photos, landmarks_of
from training.cpu import has_bf16, native_bf16, reported_flags


@pytest.fixture(scope="module")
def ort_pipeline() -> FacePipeline:
    return onnx_face_pipeline(onnx_dir(FACE_DETECTOR), onnx_dir(FACE_MESH))


def _imports(argv: list[str], tmp_path: Path) -> tuple[subprocess.CompletedProcess, set[str]]:
    """Run `python -X importtime -m facerestore ARGV` (this checkout's code, the test's working
    directory and the session's cache); the modules it imported."""
    env = subprocess_env(PYTHONWARNINGS="ignore")
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "facerestore", *argv], env=env,
                          capture_output=True, text=True, timeout=300)
    modules = {line.rsplit("|", 1)[1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    return proc, modules


def test_the_cache_is_exported_once_and_the_default_weights_file_is_the_default(tmp_path):
    folder = onnx_dir(FACE_DETECTOR)
    path = folder / "face_detector.onnx"
    stamp = path.stat().st_mtime_ns
    assert onnx_dir(FACE_DETECTOR) == folder and path.stat().st_mtime_ns == stamp  # reused, not re-exported
    assert folder.parent.parent == cache_root() and folder.name.startswith("face_detector-")
    onnx_session(FACE_DETECTOR, folder, None)   # exported from the weights file by path: accepted as the default
    own = tmp_path / "mine"
    own.mkdir()
    (own / "face_detector.onnx").write_bytes(path.read_bytes())
    assert onnx_dir(FACE_DETECTOR, None, own) == own   # a folder that has the file wins over the cache


def test_restore_on_onnxruntime_imports_no_torch(tmp_path, ort_pipeline):
    from runtime.restorers.safm.contracts import SAFM

    onnx_dir(SAFM)  # the cache holds every network: this run must not need torch to export
    proc, modules = _imports(["restore", str(ASTRONAUT), "--out", str(tmp_path / "out")], tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "1/1 photos written" in proc.stdout and (tmp_path / "out" / "astronaut.png").is_file()
    assert "onnxruntime" in modules and "torch" not in modules
    changed = np.abs(read_image(tmp_path / "out" / "astronaut.png").rgb - read_image(ASTRONAUT).rgb).max()
    assert changed > 0.05  # SaFM really ran (0.16 measured with the demo weights)


@pytest.mark.parametrize("argv, code", [(["--help"], 0), (["restore", "--help"], 0),
                                        (["restore", "--model", "nope"], 2), (["restore", "--upscale", "0"], 2)])
def test_help_and_argument_errors_import_no_torch(tmp_path, argv, code):
    proc, modules = _imports(argv, tmp_path)
    assert proc.returncode == code and "torch" not in modules
    assert ("usage: facerestore" in proc.stdout) if code == 0 else ("error:" in proc.stderr)


def test_onnxruntime_and_torch_pipelines_find_the_same_faces(pipeline, ort_pipeline):
    for name, photo in golden_photos().items():
        ort, ref = landmarks_of(ort_pipeline, photo), landmarks_of(pipeline, photo)
        assert len(ort["boxes"]) == len(ref["boxes"]) > 0, name
        np.testing.assert_allclose(ort["landmarks"], ref["landmarks"], atol=0.05)  # fp32 kernels: same points
        np.testing.assert_allclose(ort["affines"], ref["affines"], rtol=2e-3, atol=1e-3)  # the same alignment


def test_tile_side_follows_the_smallest_face_asked_for():
    assert tile_side_for(1200, 1380, 20) == TILE_SIDE               # the default: as fine as ever
    assert tile_side_for(1200, 1380, 0) == TILE_SIDE
    assert tile_side_for(500, 600, 20) is None                        # about one tile: the whole photo only
    side = tile_side_for(4000, 3000, 200)
    assert side == int(200 * INPUT_SIZE / MIN_FACE_AT_INPUT) > TILE_SIDE  # 200 px faces: coarser tiles
    assert tile_side_for(1200, 1380, 1380 * MIN_FACE_AT_INPUT / INPUT_SIZE) is None  # seen in one view


def _counting(pipeline: FacePipeline, options: FaceOptions) -> tuple[FacePipeline, list[int]]:
    views: list[int] = []

    def detector(**inputs):   # its one input, by name
        views.append(len(next(iter(inputs.values()))))
        return pipeline.detector(**inputs)

    return FacePipeline(detector, pipeline.mesh, options), views


def test_one_view_when_enough_and_the_same_face(ort_pipeline):
    big = cv2.resize(cv2.imread(str(GRACE_HOPPER)), None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC)[..., ::-1]
    photo = Photo(pixels=np.ascontiguousarray(big))  # 1024x1200, one face
    tiled, tiled_views = _counting(ort_pipeline, FaceOptions())
    single, single_views = _counting(ort_pipeline, FaceOptions(min_face_size=150))
    (a,), _ = tiled.find(photo)
    (b,), _ = single.find(photo)
    assert tiled_views == [4, 3] and single_views == [1]   # whole photo + 2x3 tiles (VIEWS_PER_CALL a call) vs the whole photo only
    x0, y0 = np.maximum(a.detection.box[:2], b.detection.box[:2])
    x1, y1 = np.minimum(a.detection.box[2:], b.detection.box[2:])
    area = lambda d: np.prod(d.box[2:] - d.box[:2])  # noqa: E731
    iou = (x1 - x0) * (y1 - y0) / (area(a.detection) + area(b.detection) - (x1 - x0) * (y1 - y0))
    assert iou > 0.85 and np.abs(a.landmarks[:, :2] - b.landmarks[:, :2]).mean() < 3.0


def test_crowd_recall_on_onnxruntime(ort_pipeline):
    rgb8 = crowd_photo()
    faces, skipped = ort_pipeline.find(Photo(pixels=rgb8))
    assert len(faces) == 36 and not skipped
    centres = np.array([f.detection.center for f in faces])
    cells = {(int(x // 200), int(y // 230)) for x, y in centres}
    assert len(cells) == 36   # one face in every cell of the 6x6 grid


def test_decoded_8bit_photo_keeps_its_pixels():
    photo = read_image(ASTRONAUT)
    assert photo.rgb8() is photo.pixels and photo.pixels.dtype == np.uint8
    np.testing.assert_array_equal(photo.rgb8(), cv2.imread(str(ASTRONAUT))[..., ::-1])
    np.testing.assert_array_equal(photo.rgb, photo.pixels.astype(np.float32) / 255)


@pytest.mark.skipif(not has_bf16(), reason=f"this CPU computes no bf16 (flags: {reported_flags()})")
def test_bf16_on_this_cpu_is_close_to_fp32(capsys):
    from runtime.restorers.factory import make_restorer

    photo = read_image(GRACE_HOPPER)
    pipeline = onnx_face_pipeline(onnx_dir(FACE_DETECTOR), onnx_dir(FACE_MESH))
    batch = pipeline.align(photo, pipeline.find(photo)[0])
    fp32 = make_restorer("safm", None, "torch", precision="fp32")(batch)
    bf16 = make_restorer("safm", None, "torch", precision="bf16")(batch)
    err = np.abs(to_float(bf16) - to_float(fp32))   # uint8 crops
    assert 0 < err.mean() < 0.01 and np.percentile(err, 99) < 0.05, (err.mean(), np.percentile(err, 99))


def test_trainers_autocast_where_bf16_is_native():
    import torch

    assert native_bf16("cuda") and native_bf16("cuda:1") and native_bf16(torch.device("cuda", 0))
    assert native_bf16("cpu") == native_bf16(torch.device("cpu")) == has_bf16()
    assert not native_bf16("mps")


def test_auto_backend_refuses_fp16_on_a_cpu(tmp_path, capsys):
    assert main(["restore", str(ASTRONAUT), "--out", str(tmp_path), "--precision", "fp16"]) == 2
    assert "--precision fp16 needs a CUDA device" in capsys.readouterr().err
