"""The main job end to end through the CLI: real photos, bad inputs, atomic outputs, options."""
from __future__ import annotations

import json
import shutil

import cv2
import numpy as np
import pytest
from PIL import Image

from facerestore.cli import main
from runtime.imageio import DEFAULT_MAX_PIXELS, ImageError, read_image
from runtime.restore import read_ahead
from runtime.samples import ASTRONAUT, CAMERA, GRACE_HOPPER, NO_FACE, crowd_photo
from tests.conftest import cli_face_pipeline, paste_regions, write_rgb


def _report(out) -> dict:
    return {p["input"].rsplit("/", 1)[-1]: p for p in json.loads((out / "report.json").read_text())["photos"]}


def test_identity_restore_reproduces_the_photo(tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(ASTRONAUT, src / "astronaut.png")
    shutil.copy(GRACE_HOPPER, src / "grace.jpg")
    assert main(["restore", "--model", "identity", str(src), "--out", str(tmp_path / "out"), "--save-crops", "--compare"]) == 0
    report = _report(tmp_path / "out")
    assert report["astronaut.png"]["faces"] == 1 and report["grace.jpg"]["faces"] == 1
    photo, after = read_image(ASTRONAUT), read_image(tmp_path / "out" / "astronaut.png").rgb
    inside, outside = paste_regions(cli_face_pipeline(), photo)   # the face networks `restore` ran
    assert inside.sum() > 10_000 and outside.mean() > 0.5
    np.testing.assert_array_equal(after[outside], photo.rgb[outside])   # the photo's own pixels
    err = np.abs(after - photo.rgb)[inside]
    # identity restorer: only the resampling of warp-in/warp-out remains inside (measured mean 0.6/255)
    assert err.mean() < 1 / 255 and np.percentile(err, 99.9) < 40 / 255, (err.mean() * 255,)
    assert (tmp_path / "out/crops/astronaut_face00_aligned.png").exists()
    assert cv2.imread(str(tmp_path / "out/compare/grace.jpg")).shape == (600, 512 * 2 + 8, 3)
    out = capsys.readouterr().out
    assert "2/2 photos written" in out and "2 faces passed through unchanged (identity)" in out


def test_photo_read_ahead_is_the_photo_and_its_errors_come_when_it_is_asked_for(tmp_path, capsys):
    """read_ahead decodes the first photo file in a thread while the networks load: asked for, it
    is read_image's photo; a file that cannot be read raises then (read_image's ImageError), and in
    `restore` it is that file's error line while the next photo is restored."""
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    read = read_ahead([GRACE_HOPPER, bad], DEFAULT_MAX_PIXELS)
    np.testing.assert_array_equal(read(GRACE_HOPPER, DEFAULT_MAX_PIXELS).pixels, read_image(GRACE_HOPPER).pixels)
    read = read_ahead([bad, GRACE_HOPPER], DEFAULT_MAX_PIXELS)
    with pytest.raises(ImageError, match=r"bad.png: not a readable image"):
        read(bad, DEFAULT_MAX_PIXELS)
    assert main(["restore", "--model", "identity", str(bad), str(GRACE_HOPPER), "--out", str(tmp_path / "out")]) == 0
    assert "bad.png: not a readable image" in capsys.readouterr().err
    assert read_image(tmp_path / "out" / "grace_hopper.jpg").size == read_image(GRACE_HOPPER).size


def test_bad_inputs_are_reported_and_the_batch_goes_on(tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(GRACE_HOPPER, src / "good.jpg")
    (src / "empty.png").write_bytes(b"")
    (src / "text.jpg").write_text("not an image")
    (src / "cut.jpg").write_bytes(GRACE_HOPPER.read_bytes()[:15000])
    Image.new("L", (10000, 9000)).save(src / "bomb.png")
    shutil.copy(NO_FACE, src / "coffee.png")
    out = tmp_path / "out"
    assert main(["restore", "--model", "identity", str(src), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "empty.png: empty file" in err
    assert "text.jpg: not a readable image" in err and " at 0x" not in err
    assert "cut.jpg: truncated or corrupt" in err
    assert "bomb.png: 10000x9000 = 90000000 pixels exceeds the cap" in err
    assert "coffee.png: no face found, copied through" in err
    assert (out / "coffee.png").read_bytes() == NO_FACE.read_bytes()
    assert (out / "good.jpg").exists()
    written = sorted(p.name for p in out.iterdir())
    assert written == ["coffee.png", "good.jpg", "report.json"]  # nothing half-written for the bad files
    report = _report(out)
    assert "truncated or corrupt" in report["cut.jpg"]["error"] and report["coffee.png"]["faces"] == 0


def test_nothing_processed_is_a_failure(tmp_path, capsys):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG garbage")
    assert main(["restore", "--model", "identity", str(bad), "--out", str(tmp_path / "out")]) == 1
    assert main(["restore", "--model", "identity", str(tmp_path / "missing.jpg"), "--out", str(tmp_path / "out")]) == 2
    assert "missing.jpg: no such file or folder" in capsys.readouterr().err


def test_output_never_overwrites_an_input(tmp_path, capsys):
    photo = tmp_path / "a.png"
    shutil.copy(ASTRONAUT, photo)
    before = photo.read_bytes()
    assert main(["restore", "--model", "identity", str(photo), "--out", str(tmp_path)]) == 1
    assert "would overwrite an input" in capsys.readouterr().err
    assert photo.read_bytes() == before


def test_grayscale_alpha_16bit_and_upscale(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    bgr = cv2.imread(str(ASTRONAUT))
    cv2.imwrite(str(src / "rgba.png"), np.dstack([bgr, np.full(bgr.shape[:2], 200, np.uint8)]))
    cv2.imwrite(str(src / "deep.png"), bgr.astype(np.uint16) * 257)
    cv2.imwrite(str(src / "gray.png"), cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY))
    out = tmp_path / "out"
    assert main(["restore", "--model", "identity", str(src), "--out", str(out), "--upscale", "2"]) == 0
    assert {k: v["faces"] for k, v in _report(out).items()} == {"deep.png": 1, "gray.png": 1, "rgba.png": 1}
    rgba = cv2.imread(str(out / "rgba.png"), cv2.IMREAD_UNCHANGED)
    assert rgba.shape == (1024, 1024, 4) and (rgba[..., 3] == 200).all()
    deep = cv2.imread(str(out / "deep.png"), cv2.IMREAD_UNCHANGED)
    assert deep.dtype == np.uint16 and deep.shape == (1024, 1024, 3)
    assert Image.open(out / "gray.png").mode == "L"


def test_only_center_face_and_min_face_size(tmp_path, group):
    photo = tmp_path / "group.png"
    write_rgb(photo, group)
    assert main(["restore", "--model", "identity", str(photo), "--out", str(tmp_path / "all")]) == 0
    assert _report(tmp_path / "all")["group.png"]["faces"] == 3
    assert main(["restore", "--model", "identity", str(photo), "--out", str(tmp_path / "one"), "--only-center-face"]) == 0
    one = _report(tmp_path / "one")["group.png"]
    assert one["faces"] == 1 and sum("centre face" in s for s in one["skipped"]) == 2
    assert main(["restore", "--model", "identity", str(photo), "--out", str(tmp_path / "big"), "--min-face-size", "5000"]) == 0
    assert _report(tmp_path / "big")["group.png"]["faces"] == 0


def test_many_faces_in_one_photo(tmp_path):
    photo = tmp_path / "crowd.jpg"
    write_rgb(photo, crowd_photo())  # 36 real faces, 1200x1380
    assert main(["restore", "--model", "identity", str(photo), "--out", str(tmp_path / "out")]) == 0
    assert _report(tmp_path / "out")["crowd.jpg"]["faces"] == 36


def test_aligned_input_skips_detection(tmp_path):
    assert main(["restore", "--model", "identity", str(ASTRONAUT), "--out", str(tmp_path / "a"), "--save-crops"]) == 0
    crop = tmp_path / "a/crops/astronaut_face00_aligned.png"
    assert main(["restore", "--model", "identity", str(crop), "--aligned", "--out", str(tmp_path / "b")]) == 0
    out = read_image(tmp_path / "b" / crop.name).rgb
    np.testing.assert_allclose(out, read_image(crop).rgb, atol=1 / 255)


def test_defaults_are_the_samples_and_the_demo_safm(tmp_path, capsys):
    assert main(["restore", "--out", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["astronaut.png", "grace_hopper.jpg", "report.json"]
    assert "SaFM runs the shipped DEMO weights" in capsys.readouterr().err
    before, after = read_image(ASTRONAUT).rgb, read_image(tmp_path / "astronaut.png").rgb
    changed = np.abs(after - before).max(axis=2) > 1 / 255
    ys, xs = np.nonzero(changed)
    # the face, and only there (measured: 1.6 % of the photo, x 164-289, y 52-190: the face mask;
    # the identity restorer's round trip changes 0.06 % by more than 1/255)
    assert changed.mean() > 0.008 and 100 < xs.min() and xs.max() < 400 and ys.max() < 300


@pytest.mark.parametrize("argv", [["restore", "--help"], ["bench", "--help"], ["--help"]])
def test_help_explains(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 0
    assert "usage: facerestore" in capsys.readouterr().out


def test_grayscale_camera_photo(tmp_path):
    assert main(["restore", "--model", "identity", str(CAMERA), "--out", str(tmp_path)]) == 0
    assert Image.open(tmp_path / "camera.png").mode == "L"


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_client_without_a_server_says_so_in_one_line(protocol, tmp_path, capsys):
    """No server at the URL: one line per photo naming the URL and what to do, no traceback, exit 1."""
    from runtime.serving.serve import free_port

    url = f"127.0.0.1:{free_port()}"
    assert main(["client", str(ASTRONAUT), "--out", str(tmp_path), "--url", url, "--protocol", protocol,
                 "--retry-s", "0.5"]) == 1
    err = capsys.readouterr().err
    assert f"no server answers at {url}, {protocol}" in err and "Traceback" not in err
