"""Shared fixtures: real photos, the face pipeline on the committed MediaPipe ports, and the
session's one export of every served network (`engines`) and one tritonserver (`server`) on it.

Hermetic: every test runs in a fresh temporary working directory (so the product's relative
defaults, `engines/` and `out/`, are never the checkout's) and the session's caches
($FACERESTORE_CACHE, $XDG_CACHE_HOME) are temporary folders, never the user's ~/.cache."""
from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from runtime.samples import ASTRONAUT, GRACE_HOPPER, group_photo, read_rgb8

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session", autouse=True)
def onnx_cache(tmp_path_factory) -> Iterator[Path]:
    """The ONNX cache of `restore --backend auto` ($FACERESTORE_CACHE) and $XDG_CACHE_HOME in
    session folders, not the user's ~/.cache."""
    folder = tmp_path_factory.mktemp("facerestore-cache")
    saved = {key: os.environ.get(key) for key in ("FACERESTORE_CACHE", "XDG_CACHE_HOME")}
    os.environ["FACERESTORE_CACHE"] = str(folder)
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("xdg-cache"))
    yield folder
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(autouse=True)
def own_working_dir(tmp_path_factory, monkeypatch) -> Path:
    """Each test in an empty working directory of its own (not its tmp_path, which tests fill)."""
    cwd = tmp_path_factory.mktemp("cwd")
    monkeypatch.chdir(cwd)
    return cwd


def subprocess_env(**extra: str) -> dict[str, str]:
    """The environment for a `python -m ...` child run outside the checkout: this checkout first on
    its import path, the session's caches (already in os.environ)."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PYTHONPATH": path, **extra}


@pytest.fixture(scope="session")
def pipeline():
    """The face pipeline (torch CPU) with default options."""
    from runtime.face import torch_face_pipeline

    return torch_face_pipeline()


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    return read_rgb8(ASTRONAUT)


@pytest.fixture(scope="session")
def grace_hopper() -> np.ndarray:
    return read_rgb8(GRACE_HOPPER)


@pytest.fixture(scope="session")
def group() -> np.ndarray:
    return group_photo()


def write_rgb(path, rgb8: np.ndarray) -> None:
    """Save a uint8 RGB array as an image file (format by suffix)."""
    assert cv2.imwrite(str(path), rgb8[..., ::-1])


def export_networks(names: Iterable[str], out: Path, slim: bool = True) -> Path:
    """ONNX files of the named networks (their default weights) in `out`; returns `out`."""
    from export.onnx_export import export_onnx
    from runtime.restorers import CONTRACTS

    for name in names:
        export_onnx(CONTRACTS[name], out, slim=slim)
    return out


@pytest.fixture(scope="session")
def engines(tmp_path_factory) -> Path:
    """The session's one export: ONNX files of every served network with default weights (demo
    safm-tiny, random-init tiny AuthFace, the committed MediaPipe ports); no onnxslim pass, to
    keep it quick. Read-only for tests (copy what you change)."""
    from runtime.contracts.service import SERVICES
    from runtime.restorers import RESTORERS

    served = dict.fromkeys(name for service in SERVICES.values() for name in service.networks
                           if not RESTORERS[service.restorer].needs_checkpoint)   # the published: the user's files
    return export_networks(served, tmp_path_factory.mktemp("engines"), slim=False)


@pytest.fixture(scope="session")
def server(engines, tmp_path_factory, request):
    """The session's one tritonserver (bundled, CPU rendering of every restorer) on `engines`, on
    loopback ports free at run time; always stopped (its process group killed) by a finalizer."""
    from export.triton_repo import render_repo
    from runtime.serving.serve import ServerError, TritonServer

    repo = tmp_path_factory.mktemp("triton") / "repo"
    render_repo("cpu", repo, engines, allow_untrained=True)   # the random-init AuthFace too
    log = repo.parent / "tritonserver.log"
    triton = TritonServer(repo, server="bundled", log=log, exit_timeout=5, ready_timeout=240)
    request.addfinalizer(triton.stop)   # always: kills the process group even if a test failed
    try:
        triton.start()
    except ServerError:
        print(log.read_text()[-5000:])
        raise
    return triton


def started_server(repo: Path, ready_timeout: float = 240):
    """A bundled tritonserver on the rendered `repo` (its log beside it), started; a failed start
    stops it and fails the test with the log's end. The caller stops it."""
    from runtime.serving.serve import ServerError, TritonServer

    log = repo.parent / "tritonserver.log"
    server = TritonServer(repo, server="bundled", log=log, exit_timeout=5, ready_timeout=ready_timeout)
    try:
        server.start()
    except ServerError:
        server.stop()
        pytest.fail(log.read_text()[-5000:])
    return server


@pytest.fixture(scope="session")
def face_pipeline(engines):
    """The in-process face pipeline on the same ONNX files as the served face models."""
    from runtime.face import FacePipeline
    from runtime.restorers import CONTRACTS
    from runtime.sessions import onnx_session

    return lambda options=None: FacePipeline(onnx_session(CONTRACTS["face_detector"], engines),
                                             onnx_session(CONTRACTS["face_mesh"], engines), options)


FACE_CACHE_CAPTION = "portrait, woman, uniform, glasses, high quality"


@pytest.fixture(scope="session")
def face_cache(tmp_path_factory) -> Path:
    """The session's one training face cache, made by `facerestore curate` from real photos (two
    faces and a photo without one; a caption for grace_hopper). Read-only for tests."""
    import shutil

    from facerestore.cli import main as cli
    from runtime.samples import NO_FACE

    src = tmp_path_factory.mktemp("photos")
    for p in (ASTRONAUT, GRACE_HOPPER, NO_FACE):
        shutil.copy(p, src / p.name)
    (src / "grace_hopper.txt").write_text(FACE_CACHE_CAPTION)
    out = tmp_path_factory.mktemp("face-cache")
    assert cli(["curate", str(src), "--out", str(out), "--min-face", "60", "--min-sharpness", "5"]) == 0
    return out


def assert_same_tensors(got: dict, expected: dict) -> None:
    """Two state dicts hold the same names and bit-identical tensors (a missing, extra or
    different tensor is named)."""
    import torch

    assert sorted(got) == sorted(expected), (sorted(set(got) ^ set(expected)))   # names, in any order
    differ = [k for k in expected if not torch.equal(torch.as_tensor(got[k]), torch.as_tensor(expected[k]))]
    assert not differ, f"tensors differ: {differ[:10]}"


def cli_face_pipeline(options=None):
    """The face pipeline `restore --backend auto` runs: ONNX Runtime on the cached ONNX files."""
    from export.onnx_cache import onnx_dir
    from runtime.contracts.face import FACE_DETECTOR, FACE_MESH
    from runtime.face import onnx_face_pipeline

    return onnx_face_pipeline(onnx_dir(FACE_DETECTOR), onnx_dir(FACE_MESH), options)


def paste_regions(pipeline, photo) -> tuple[np.ndarray, np.ndarray]:
    """(inside, outside): boolean [H, W] maps of where `pipeline` (its options, scale 1) pastes the
    faces it finds in `photo`: inside, every pixel a face's mask fully covers (the restored face
    alone); outside, the pixels no mask reaches, with a 2-pixel margin for the warp's
    interpolation (the photo's own pixels there, bit for bit, as the README promises)."""
    batch = pipeline.align(photo, pipeline.find(photo)[0])
    size = batch.crops.shape[1]
    masks = pipeline.paste_masks(batch)
    masks = np.ones((len(batch), size, size), np.float32) if masks is None else masks
    w, h = photo.size
    cover = np.zeros((h, w), np.float32)
    for mask, affine in zip(masks, batch.affines):
        warped = cv2.warpAffine(mask.astype(np.float32), cv2.invertAffineTransform(affine), (w, h),
                                flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        cover = np.maximum(cover, warped)
    reached = cv2.dilate((cover > 0).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    return cover >= 1 - 1e-6, ~reached
