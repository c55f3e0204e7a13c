"""Paste-back through the face-shaped mask and the colour fix, on real photos; `evaluate`."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from runtime.face.paste import LOW_PASS, face_mask
from runtime.face.pipeline import FaceOptions, FacePipeline
from runtime.imageio import read_image, to_float, to_uint8
from runtime.restore import restore_photo
from runtime.samples import ASTRONAUT, GRACE_HOPPER
from training.metrics import delta_e76


class Tinted:
    """A stand-in restorer with a known fault: the aligned face, sharpened, with a blue cast of
    `cast` (what the old demo model did to black hats). The pipeline around it is the real one."""

    name = "tinted"

    def __init__(self, cast: float) -> None:
        self.cast = cast

    def __call__(self, batch):
        crops = to_float(batch.crops)
        sharp = np.stack([cv2.addWeighted(c, 1.8, cv2.GaussianBlur(c, (0, 0), 2), -0.8, 0) for c in crops])
        return to_uint8(sharp + np.array([0, 0, self.cast], np.float32))


def _run(pipeline: FacePipeline, path, options: FaceOptions, cast: float = 0.15):
    photo = read_image(path)
    pipe = FacePipeline(pipeline.detector, pipeline.mesh, options)
    out, batch, restored, _ = restore_photo(photo, pipe, Tinted(cast))
    return photo, out, batch, restored


@pytest.mark.parametrize("path", [ASTRONAUT, GRACE_HOPPER], ids=["astronaut", "grace_hopper"])
def test_face_mask_leaves_everything_outside_the_face_untouched(pipeline, path):
    photo, out, batch, _ = _run(pipeline, path, FaceOptions())
    before, after = to_uint8(photo.rgb), to_uint8(out.rgb)
    changed = np.abs(after.astype(int) - before).max(axis=2) > 0
    # where the face mask is 0 (warped back to the photo), every pixel is the input's, bit for bit
    size = batch.crops.shape[1]
    mask = face_mask(batch.label_maps[0])
    inv = cv2.invertAffineTransform(batch.affines[0])
    reach = cv2.warpAffine(mask, inv, photo.size, flags=cv2.INTER_LINEAR) > 0
    assert changed.any() and not changed[~reach].any()
    # the mask is the face, not the square: the crop's corners (background) are not pasted
    corners = np.zeros((size, size), np.float32)
    corners[:size // 8, :size // 8] = corners[:size // 8, -size // 8:] = 1
    corner_px = cv2.warpAffine(corners, inv, photo.size, flags=cv2.INTER_NEAREST) > 0
    assert corner_px.any() and not changed[corner_px].any()
    # the square option still pastes the whole crop, corners included
    _, square, _, _ = _run(pipeline, path, FaceOptions(paste_mask="square"))
    assert (np.abs(to_uint8(square.rgb).astype(int) - before).max(axis=2)[corner_px] > 0).any()


def test_colour_fix_keeps_the_input_colours(pipeline):
    """A restorer with a blue cast: without the fix the pasted face is off by a clear colour
    difference; the wavelet fix (default) and AdaIN bring the low-passed face back to the input's
    colours (CIE76 in CIELAB, Gaussian low-pass sigma = crop/32)."""
    shifts = {}
    for fix in ("none", "wavelet", "adain"):
        photo, out, batch, _ = _run(pipeline, ASTRONAUT, FaceOptions(colour_fix=fix, paste_mask="square"))
        a = to_uint8(cv2.warpAffine(photo.rgb, batch.affines[0], (512, 512)))
        b = to_uint8(cv2.warpAffine(out.rgb, batch.affines[0], (512, 512)))
        shifts[fix] = delta_e76(b[64:-64, 64:-64], a[64:-64, 64:-64], LOW_PASS * 512)
    assert shifts["none"] > 8, shifts
    assert shifts["wavelet"] < 1.5 and shifts["adain"] < 3, shifts


def test_evaluate_scores_a_known_degradation(pipeline, tmp_path, capsys):
    """`facerestore evaluate` on a real face with the fixed blur2-x4-jpeg60 preset: the identity
    restorer scores exactly as the degraded input, and nothing outside the face changes."""
    from facerestore.cli import main

    out = tmp_path / "eval"
    assert main(["evaluate", str(GRACE_HOPPER), "--model", "identity", "--out", str(out)]) == 0
    result = json.loads((out / "evaluation.json").read_text())
    m = result["mean"]
    assert result["faces"] == 1 and result["preset"] == "blur2-x4-jpeg60"
    assert 18 < m["psnr_degraded"] < 30 and m["ssim_degraded"] < 0.9  # the degradation is real
    assert m["psnr_restored"] == pytest.approx(m["psnr_degraded"], abs=0.05)
    assert m["psnr_face_restored"] == pytest.approx(m["psnr_face_degraded"], abs=0.05)
    assert m["psnr_face_degraded"] != m["psnr_degraded"]  # the face is a part of the crop, not all of it
    assert m["colour_shift"] < 0.2 and result["per_photo"][0]["max_change_outside_faces"] == 0
    sheet = cv2.imread(str(out / "contact_sheet.png"))
    assert sheet.shape == (192, 3 * 192, 3)
    row = "| PSNR dB, face (inside the face-shaped mask) |"
    assert row in (out / "evaluation.md").read_text() and row in capsys.readouterr().out
    assert main(["evaluate", str(tmp_path / "missing"), "--model", "identity", "--out", str(out)]) == 2


def test_shipped_demo_improves_faces_it_never_saw(tmp_path):
    """The shipped demo SaFM on whole photos of the two held-out faces (never in its training
    data), degraded with blur2-x4-jpeg60: the faces come out closer to the clean ones (measured
    on an Intel Xeon: PSNR 22.54 -> 22.89 dB inside the face masks, SSIM 0.632 -> 0.646) with
    their colours kept and every pixel outside the faces untouched."""
    from facerestore.cli import main

    out = tmp_path / "eval"
    assert main(["evaluate", str(ASTRONAUT), str(GRACE_HOPPER), "--out", str(out)]) == 0
    result = json.loads((out / "evaluation.json").read_text())
    m = result["mean"]
    assert result["faces"] == 2
    assert m["psnr_face_restored"] > m["psnr_face_degraded"] + 0.2, m
    assert m["ssim_face_restored"] > m["ssim_face_degraded"] and m["psnr_restored"] > m["psnr_degraded"], m
    assert m["colour_shift"] < 0.5
    assert all(p["max_change_outside_faces"] == 0 for p in result["per_photo"])
