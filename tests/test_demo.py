"""`make demo` (`facerestore demo`): the shipped degraded sample is what its name says, and the
demo shows the face zoomed, degraded | restored | clean, with the PSNR gain of the demo SaFM."""
from __future__ import annotations

import cv2
import numpy as np

from facerestore.cli import main
from runtime.demo import LABEL_HEIGHT, SHEET_TILE
from runtime.samples import ASTRONAUT, DEGRADED_SAMPLE, GRACE_HOPPER, degraded_sample, read_rgb8


def test_the_degraded_sample_is_grace_hopper_through_its_named_preset():
    assert DEGRADED_SAMPLE.name == "grace_hopper_blur2-x4-jpeg60.png"
    np.testing.assert_array_equal(read_rgb8(DEGRADED_SAMPLE), degraded_sample())
    assert not np.array_equal(read_rgb8(DEGRADED_SAMPLE), read_rgb8(GRACE_HOPPER))


def test_demo_writes_the_face_sheet_and_says_the_gain(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "grace_hopper_blur2-x4-jpeg60.png: face PSNR" in printed and "against the clean photo" in printed
    gain = float(printed.split("dB (")[1].split(" dB)")[0])
    assert gain > 0.3, printed   # measured +0.61 dB (demo SaFM, ONNX Runtime, Intel Xeon)
    sheet = cv2.imread(str(out / "compare" / "grace_hopper_blur2-x4-jpeg60_faces.png"))
    assert sheet.shape == (LABEL_HEIGHT + SHEET_TILE, 3 * SHEET_TILE, 3)
    degraded, restored = (sheet[LABEL_HEIGHT:, i * SHEET_TILE:(i + 1) * SHEET_TILE].astype(int) for i in (0, 1))
    assert np.abs(restored - degraded).mean() > 2   # the restored face differs visibly from the degraded one
    for name in (ASTRONAUT.name, GRACE_HOPPER.name, DEGRADED_SAMPLE.name):   # the clean ones too
        assert (out / name).is_file() and (out / "compare" / name).with_suffix(".jpg").is_file()
