"""Commands and flags through their CLIs on real data, each once: `facerestore export`,
`evaluate --aligned --checkpoint`, `restore --min-score / --paste-mask / --colour-fix`,
the SaFM trainer's `--photos --face-share` (the shipped recipe's), `plot-losses` and
`python -m training.safm evaluate`."""
from __future__ import annotations

import json
import shutil

import cv2
import numpy as np
import onnx
import pytest

from facerestore.cli import main
from runtime.contracts.base import SOURCE_KEY
from runtime.face import FaceOptions
from runtime.imageio import read_image
from runtime.samples import CAMERA, GRACE_HOPPER, NO_FACE, group_photo, read_rgb8
from runtime.weights import source_id
from tests.conftest import cli_face_pipeline, paste_regions, write_rgb
from training.provenance import safm_provenance
from training.safm.__main__ import main as safm_main


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A random safm-tiny checkpoint made by `python -m training.safm init`."""
    out = tmp_path_factory.mktemp("tiny") / "tiny"
    assert safm_main(["init", "--config", "safm-tiny", "--seed", "5", "--out", str(out)]) == 0
    return out.with_suffix(".safetensors")


def _faces(out, name: str) -> int:
    return next(p["faces"] for p in json.loads((out / "report.json").read_text())["photos"] if p["input"].endswith(name))


def test_export_cli_exports_and_verifies(tiny, tmp_path, capsys):
    out = tmp_path / "engines"
    assert main(["export", "onnx", "--model", "safm", "--checkpoint", str(tiny), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "| safm |" in text and "ok" in text.lower()            # the parity table of the verification
    model = onnx.load(str(out / "safm.onnx"), load_external_data=False)
    assert {p.key: p.value for p in model.metadata_props}[SOURCE_KEY] == source_id(tiny)   # the weights it came from
    assert main(["export", "verify", "--model", "safm", "--checkpoint", str(tiny), "--out", str(out)]) == 0
    assert main(["export", "verify", "--model", "safm", "--out", str(tmp_path / "none")]) == 2
    assert "safm.onnx: not found" in capsys.readouterr().err


def test_evaluate_aligned_faces_with_a_checkpoint(pipeline, tiny, tmp_path):
    """--aligned: the inputs are aligned 512 faces (no detection); --checkpoint: these (random)
    weights, not the demo's, restore them."""
    photo = read_image(GRACE_HOPPER)
    crop = pipeline.align(photo, pipeline.find(photo)[0]).crops[0]
    write_rgb(tmp_path / "face.png", crop)
    out = tmp_path / "eval"
    assert main(["evaluate", str(tmp_path / "face.png"), "--aligned", "--checkpoint", str(tiny), "--allow-untrained",
                 "--out", str(out)]) == 0
    result = json.loads((out / "evaluation.json").read_text())
    assert result["faces"] == 1 and result["mean"]["psnr_degraded"] > 15
    # random weights: the "restored" face is far worse than the degraded one it was given
    assert result["mean"]["psnr_restored"] < result["mean"]["psnr_degraded"] - 3


def test_min_score_drops_the_faces_scored_below_it(tmp_path):
    """The group photo's three faces score 0.87, 0.93 and 0.96 (measured)."""
    write_rgb(tmp_path / "group.png", group_photo())
    for min_score, faces in ((0.5, 3), (0.9, 2), (0.99, 0)):
        out = tmp_path / f"out{min_score}"
        assert main(["restore", str(tmp_path / "group.png"), "--model", "identity", "--min-score", str(min_score),
                     "--out", str(out)]) == 0
        assert _faces(out, "group.png") == faces, min_score


def test_paste_mask_and_colour_fix_flags_reach_the_paste(tiny, tmp_path):
    """--paste-mask square pastes the whole crop (more pixels change than through the face mask,
    and only inside the square); --colour-fix none keeps the network's colours (random weights:
    wrong ones), wavelet and adain bring the photo's back, each its own way."""
    src = tmp_path / "grace.png"   # PNG: no JPEG re-encoding outside the faces
    write_rgb(src, read_rgb8(GRACE_HOPPER))
    photo = read_image(src).rgb
    runs = {}
    for name, flags in (("face", []), ("square", ["--paste-mask", "square"]), ("wavelet", ["--checkpoint", str(tiny), "--allow-untrained"]),
                        ("none", ["--checkpoint", str(tiny), "--allow-untrained", "--colour-fix", "none"]),
                        ("adain", ["--checkpoint", str(tiny), "--allow-untrained", "--colour-fix", "adain"])):
        assert main(["restore", str(src), "--out", str(tmp_path / name), *flags]) == 0
        runs[name] = read_image(tmp_path / name / "grace.png").rgb
    changed = {k: (np.abs(v - photo).max(axis=2) > 0) for k, v in runs.items()}
    assert changed["square"].sum() > 1.3 * changed["face"].sum()
    _, outside_square = paste_regions(cli_face_pipeline(FaceOptions(paste_mask="square")), read_image(src))
    assert not changed["square"][outside_square].any()
    # random weights get the colours wrong: each fix (or none) gives another picture
    mean_rgb = {k: runs[k][changed[k]].mean(axis=0) for k in ("wavelet", "none", "adain")}
    for a, b in (("wavelet", "none"), ("adain", "none"), ("wavelet", "adain")):
        assert np.abs(runs[a] - runs[b]).max() > 10 / 255, (a, b)
    assert max(abs(mean_rgb["wavelet"] - photo[changed["wavelet"]].mean(axis=0))) < \
        max(abs(mean_rgb["none"] - photo[changed["none"]].mean(axis=0)))   # the fix brings the colours back


def test_safm_trainer_mixes_photographs_then_plots_and_evaluates(face_cache, tmp_path, capsys):
    """The shipped recipe's flags: --photos (random crops of general photographs) with
    --face-share; then `plot-losses` of the run and `python -m training.safm evaluate` on it."""
    photos = tmp_path / "photos"
    photos.mkdir()
    for p in (CAMERA, NO_FACE):
        shutil.copy(p, photos / p.name)
    run = tmp_path / "run"
    argv = ["train", "--data", str(face_cache), "--photos", str(photos), "--face-share", "0.5", "--out", str(run),
            "--config", "safm-tiny", "--steps", "2", "--batch", "2", "--crop", "128", "--no-perceptual",
            "--no-identity", "--no-adversarial", "--log-every", "1", "--workers", "0", "--no-amp"]
    assert safm_main(argv) == 0
    meta = json.loads((run / "safm.json").read_text())
    assert meta["train"]["photos"] == str(photos) and meta["train"]["face_share"] == 0.5
    origin = safm_provenance(run / "safm.safetensors")
    assert origin.trained and "photographs" in origin.text
    assert len((run / "losses.csv").read_text().splitlines()) == 3
    png = tmp_path / "losses.png"
    assert safm_main(["plot-losses", str(run), "--out", str(png)]) == 0
    image = cv2.imread(str(png))
    assert image is not None and image.shape[0] > 100 and image.std() > 5   # a drawn chart, not a blank
    assert safm_main(["plot-losses", str(tmp_path), "--out", str(tmp_path / "x.png")]) == 2
    assert "losses.csv" in capsys.readouterr().err and not (tmp_path / "x.png").exists()
    result_json = tmp_path / "eval.json"
    assert safm_main(["evaluate", "--checkpoint", str(run / "safm.safetensors"), "--data", str(face_cache),
                      "--copies", "1", "--json", str(result_json)]) == 0
    result = json.loads(result_json.read_text())
    assert result["faces"] == 2 and result["copies"] == 1
    assert "| restored |" in capsys.readouterr().out
    assert 5 < result["mean"]["psnr_input"] < 50 and 0 < result["mean"]["ssim_restored"] <= 1
