"""GPEN-BFR from the user's file (training/published/gpen.py, entries gpen_bfr_256/512/1024/2048)
and face templates: a random-weight GPEN saved as a bare state dict (the published layout)
restores a real photo through `facerestore restore`, equal to the torch forward on the aligned
crop; a misshaped key is refused naming it; ONNX Runtime matches torch at a live batch; a 256 px
restorer on the ArcFace template (facefusion's gpen_bfr_256, a foreign ONNX file declaring it in
its JSON) crops the face on that template and pastes it back where the face is."""
from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch

from facerestore.cli import main
from runtime.face.align import template
from runtime.face.regions import five_points
from runtime.imageio import read_image
from runtime.restorers.published import PUBLISHED
from runtime.restorers.published.restorer import load_network, to_range
from runtime.samples import ASTRONAUT
from tests.test_published_restorers import forward, published, read_png, save_published  # noqa: F401 (fixture)

GPEN = ["gpen_bfr_256", "gpen_bfr_512"]


@pytest.fixture(scope="module")
def face_pipeline():
    from runtime.face import torch_face_pipeline

    return torch_face_pipeline()


def test_the_published_layout_is_a_bare_state_dict(published):
    state = torch.load(published("gpen_bfr_256"), weights_only=True)
    assert "params_ema" not in state and "generator.convs.0.conv.blur.kernel" in state and "ecd6.0.1.weight" in state


@pytest.mark.parametrize("name", GPEN)
def test_restore_equals_the_torch_forward(name, published, tmp_path, capsys):
    """`restore --model gpen_bfr_N --checkpoint FILE` on the astronaut: the aligned crop is N px and
    the restored crop is the network's torch forward on it (<= 1/255); the licence is said."""
    out = tmp_path / "out"
    assert main(["restore", str(ASTRONAUT), "--model", name, "--checkpoint", str(published(name)), "--backend",
                 "torch", "--out", str(out), "--save-crops"]) == 0
    crop = read_png(out / "crops" / "astronaut_face00_aligned.png")
    restored = read_png(out / "crops" / "astronaut_face00_restored.png")
    assert crop.shape == (PUBLISHED[name].face_size,) * 2 + (3,)
    expected = forward(load_network(PUBLISHED[name], published(name)), crop[None])[0]
    assert np.abs(restored.astype(int) - expected).max() <= 1
    assert np.abs(restored.astype(int) - crop).mean() > 5   # random weights: not the input back
    origin = json.loads((out / "report.json").read_text())["provenance"]
    assert origin["licence"] == PUBLISHED[name].licence and origin["non_commercial"]
    assert "non-commercial" in origin["licence"]
    said = capsys.readouterr()
    assert "NON-COMMERCIAL" in said.out + said.err


def test_a_misshaped_key_is_refused_naming_it(tmp_path, capsys):
    key = "generator.convs.2.conv.blur.kernel"
    bad = save_published("gpen_bfr_256", tmp_path / "bad.pth", edit=lambda s: s.__setitem__(key, torch.zeros(3, 3)))
    rc = main(["restore", str(ASTRONAUT), "--model", "gpen_bfr_256", "--checkpoint", str(bad), "--backend", "torch",
               "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == 2 and str(bad) in err and key in err and "(3, 3)" in err
    assert not (tmp_path / "out" / "astronaut.png").exists()


@pytest.mark.parametrize("name", ["gpen_bfr_256"])   # 512 is the same network, wider (passed: 305 s here)
def test_onnx_runtime_matches_torch_at_a_live_batch(name, published, face_pipeline, tmp_path):
    """`python -m export onnx` (dynamic batch, polygraphy parity), then ONNX Runtime at batch 2
    (two different faces) against the torch forward."""
    import cv2
    import onnxruntime as ort

    from export.cli import main as export_main

    assert export_main(["onnx", "--model", name, "--checkpoint", str(published(name)), "--out", str(tmp_path)]) == 0
    photo = read_image(ASTRONAUT)
    crop = face_pipeline.align(photo, face_pipeline.find(photo)[0]).crops[0]
    crop = cv2.resize(crop, (PUBLISHED[name].face_size,) * 2, interpolation=cv2.INTER_AREA)
    image = to_range(np.stack([crop, crop[:, ::-1]]), (-1.0, 1.0))
    session = ort.InferenceSession(str(tmp_path / f"{name}.onnx"), providers=["CPUExecutionProvider"])
    (got,) = session.run(["restored"], {"image": image})
    with torch.inference_mode():
        want = load_network(PUBLISHED[name], published(name))(torch.from_numpy(image)).numpy()
    assert got.shape == image.shape
    assert np.abs(got - want).max() <= 1e-3 * max(1.0, np.abs(want).max())
    assert np.abs(want[0] - want[1][:, :, ::-1]).mean() > 1e-2   # the two faces' outputs are their own


class Identity(torch.nn.Module):
    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return image * 1.0


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((a.astype(np.float64) - b) ** 2)))


def test_a_256_px_arcface_restorer_crops_on_its_template_and_pastes_where_the_face_is(face_pipeline, tmp_path):
    """A facefusion-style 256 px enhancer (identity) whose JSON declares the ArcFace template:
    `restore` aligns the astronaut's face on that template (the face found again on the saved
    crop has ArcFace's eye spacing and height, not FFHQ's) and pastes it back where it was (the
    face region of the output is the input's; pasted with the FFHQ template's affine it would not be)."""
    from runtime.face.align import similarity
    from runtime.face.paste import paste_faces

    onnx = tmp_path / "gpen_like_256.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(Identity(), (torch.zeros(1, 3, 256, 256),), str(onnx), input_names=["input"],
                          output_names=["output"], opset_version=17, dynamo=False)
    onnx.with_suffix(".json").write_text(json.dumps({"template": "arcface_128"}))
    out = tmp_path / "out"
    assert main(["restore", str(ASTRONAUT), "--checkpoint", str(onnx), "--out", str(out), "--save-crops",
                 "--paste-mask", "square", "--colour-fix", "none"]) == 0
    crop = read_png(out / "crops" / "astronaut_face00_aligned.png")
    assert crop.shape == (256, 256, 3)

    # the face on the crop: eyes where ArcFace's template puts them (FFHQ's: 13 % closer together, 17 px lower)
    faces, _ = face_pipeline.find(read_image(out / "crops" / "astronaut_face00_aligned.png"))
    eyes = five_points(faces[0].landmarks)[:2]
    spacing = float(np.linalg.norm(eyes[0] - eyes[1]))
    arcface, ffhq = template(256, "arcface_128"), template(256, "ffhq")
    assert abs(spacing / np.linalg.norm(arcface[0] - arcface[1]) - 1) < 0.06, spacing
    assert abs(spacing / np.linalg.norm(ffhq[0] - ffhq[1]) - 1) > 0.1, spacing
    assert abs(eyes[:, 1].mean() - arcface[:2, 1].mean()) < abs(eyes[:, 1].mean() - ffhq[:2, 1].mean())

    # pasted back where the face is: the face region of the output is the input's
    photo = read_image(ASTRONAUT)
    found = face_pipeline.find(photo)[0][0]
    x0, y0, x1, y1 = np.round(found.detection.box).astype(int)
    before = photo.rgb[y0:y1, x0:x1]
    after = read_image(out / "astronaut.png").rgb[y0:y1, x0:x1]
    assert psnr(after, before) > 33, psnr(after, before)
    wrong = similarity(five_points(found.landmarks), ffhq)   # the same crop pasted on FFHQ's affine
    misplaced = paste_faces(photo.rgb.astype(np.float32), crop[None].astype(np.float32) / 255, wrong[None])
    assert psnr(misplaced[y0:y1, x0:x1], before) < psnr(after, before) - 10


def test_the_page_crops_at_the_restorers_size_and_template(published):
    """The in-process page back end, given the page's default face options (512, FFHQ), aligns
    for gpen_bfr_256 at its own crop (256 px, ArcFace's template: RestorerSpec.face_crop, as the
    CLI): with the page's 512 px crop GPEN-256 would refuse the faces."""
    from export.onnx_cache import onnx_dir
    from runtime.face import FaceOptions
    from runtime.job import JobReport
    from runtime.ui.backends import LocalBackend

    local = LocalBackend({"gpen_bfr_256": published("gpen_bfr_256")}, locate=onnx_dir)   # as `ui`: --backend auto
    assert "gpen_bfr_256" in local.restorers()
    assert local.options("gpen_bfr_256") == ()
    outcome = local.restore(ASTRONAUT.name, ASTRONAUT.read_bytes(), "gpen_bfr_256", {}, FaceOptions(), lambda *a: None)
    assert outcome.result.faces == 1
    report = JobReport("gpen_bfr_256", local.description, local.provenance("gpen_bfr_256", {}))
    assert any("NON-COMMERCIAL" in n for n in report.notices())   # the page's report says the licence


def test_an_unknown_template_in_the_json_is_refused_naming_it(tmp_path, capsys):
    onnx = tmp_path / "enhancer.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(Identity(), (torch.zeros(1, 3, 256, 256),), str(onnx), input_names=["input"],
                          output_names=["output"], opset_version=17, dynamo=False)
    onnx.with_suffix(".json").write_text(json.dumps({"template": "arcface_112"}))
    assert main(["restore", str(ASTRONAUT), "--checkpoint", str(onnx), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "enhancer.json" in err and "arcface_112" in err and "arcface_128" in err
    assert not (tmp_path / "out" / "astronaut.png").exists()
