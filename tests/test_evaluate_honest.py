"""Evaluation that does not hide what the pipeline missed: a face of the clean photo that is not
found after the degradation is reported (per photo, in the table) and scored unrestored in the
means; the min-face-size note never rounds a face up to the threshold."""
from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest

from facerestore.cli import main
from runtime.face import FaceOptions, FacePipeline
from runtime.imageio import frame_photo
from runtime.samples import GRACE_HOPPER, read_rgb8
from tests.conftest import write_rgb


def test_faces_missed_after_the_degradation_are_reported_and_counted(group, tmp_path, capsys):
    """The group photo (three real faces), two copies under the `bfr` preset: on the second, two
    faces are not found (measured: all three found on the first, one on the second)."""
    write_rgb(tmp_path / "group.png", group)
    out = tmp_path / "eval"
    assert main(["evaluate", str(tmp_path / "group.png"), "--preset", "bfr", "--copies", "2", "--model", "identity",
                 "--out", str(out)]) == 0
    result = json.loads((out / "evaluation.json").read_text())
    assert result["faces"] == 6 and result["missed"] == 2
    assert [(r["faces"], r["missed"]) for r in result["per_photo"]] == [(3, 0), (1, 2)]
    missed = [f for f in result["per_face"] if not f["found"]]
    assert len(missed) == 2 and all(f["copy"] == 1 for f in missed)
    for f in missed:   # left as degraded: the restored photo there is the degraded one
        assert f["psnr_face_restored"] == pytest.approx(f["psnr_face_degraded"], abs=1e-9)
    mean = np.mean([f["psnr_face_restored"] for f in result["per_face"]])   # all six faces, not four
    assert result["mean"]["psnr_face_restored"] == pytest.approx(mean, abs=1e-4)
    report = (out / "evaluation.md").read_text()
    assert "6 faces in 1 photos x 2 degraded copies. 2 of them not found after the degradation" in report
    assert "| group.png | 1 | 1 | 2 |" in report and report in capsys.readouterr().out


def test_min_face_size_note_does_not_round_up(pipeline):
    photo = frame_photo(read_rgb8(GRACE_HOPPER))
    width = pipeline.find(photo)[0][0].detection.width
    threshold = math.floor(width) + 1   # just above the face: it is skipped
    skipped = FacePipeline(pipeline.detector, pipeline.mesh, replace(FaceOptions(), min_face_size=threshold))
    faces, notes = skipped.find(photo)
    shown = math.floor(width * 10) / 10
    assert not faces and [n.reason for n in notes] == [f"face {shown:g}px wide < --min-face-size {threshold}"]
    assert shown < threshold
