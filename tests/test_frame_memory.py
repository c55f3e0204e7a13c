"""uint8 frames end to end (issue 31): the restored photo is the float path's picture, 16 bits
stay 16 bits, and peak memory follows the photo's 8-bit size and not its number of faces
(`facerestore restore` in a child process, its peak RSS from getrusage)."""
from __future__ import annotations

import subprocess
import sys
from dataclasses import replace

import cv2
import numpy as np
import pytest

from runtime.face import FaceOptions
from runtime.face.align import warp_face
from runtime.face.paste import colour_fix, paste_faces
from runtime.face.pipeline import paste, paste_masks
from runtime.imageio import Photo, decode_image, encode_image, from_float, read_image, to_float
from runtime.samples import ASTRONAUT, GRACE_HOPPER, crowd_photo, large_photo
from tests.conftest import subprocess_env

PEAK = ("import resource, sys\nfrom facerestore.cli import main\ncode = main(sys.argv[1:])\n"
        "print('peak_mb', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)\nsys.exit(code)")


def float_path(photo: Photo, batch, restored: np.ndarray, options: FaceOptions) -> np.ndarray:
    """The paste-back as it was before issue 31, on a float32 copy of the whole frame: the
    reference the uint8 path is held to."""
    rgb = to_float(photo.pixels)
    w, h = photo.size
    if options.upscale != 1:
        size = (round(w * options.upscale), round(h * options.upscale))
        rgb = np.clip(cv2.resize(rgb, size, interpolation=cv2.INTER_LANCZOS4), 0, 1)
    fixed = np.stack([colour_fix(to_float(face), warp_face(to_float(photo.pixels), a, face.shape[0]), options.colour_fix)
                      for face, a in zip(restored, batch.affines)])
    affines = batch.affines.copy()
    affines[:, :, :2] /= options.upscale
    return from_float(paste_faces(rgb, fixed, affines, paste_masks(batch, options)), photo.pixels.dtype)


@pytest.mark.parametrize("fix, upscale, deep", [("wavelet", 1.0, False), ("adain", 1.0, True), ("wavelet", 2.0, False)])
def test_restored_photo_is_the_float_paths(pipeline, fix, upscale, deep):
    """Grace Hopper's face replaced by its negative (a change the colour fix and the mask must
    carry): the uint8 (uint16) paste gives the float path's picture, exactly at scale 1 and
    within one step where the frame is resized (integer Lanczos)."""
    photo = read_image(GRACE_HOPPER)
    if deep:   # 16 bits with samples between the 8-bit steps
        photo = Photo(pixels=photo.pixels.astype(np.uint16) * 257 + np.arange(photo.pixels.size, dtype=np.uint16)
                      .reshape(photo.pixels.shape) % 200)
    options = replace(pipeline.options, colour_fix=fix, upscale=upscale)
    batch = pipeline.align(photo, pipeline.find(photo)[0])
    restored = 255 - batch.crops
    out = paste(photo, batch, restored, options)
    expected = float_path(photo, batch, restored, options)
    assert len(batch) == 1 and out.pixels.dtype == photo.pixels.dtype and out.pixels.shape == expected.shape
    diff = np.abs(out.pixels.astype(np.int64) - expected)
    assert diff.max() <= (0 if upscale == 1 else 1), diff.max()
    assert (np.abs(out.pixels.astype(np.int64) - cv2.resize(photo.pixels, out.size, interpolation=cv2.INTER_LANCZOS4))
            .max() > (20000 if deep else 80))   # the face really was replaced


def test_16bit_png_stays_16bit(tmp_path):
    """A 16-bit PNG (samples between the 8-bit steps) is held, pasted and written in 16 bits:
    outside the face the output is the input sample for sample, and decode -> encode is lossless."""
    from facerestore.cli import main

    deep = cv2.imread(str(ASTRONAUT)).astype(np.uint16) * 257 + np.random.default_rng(0).integers(0, 257, (512, 512, 3),
                                                                                                    dtype=np.uint16)
    src = tmp_path / "deep.png"
    cv2.imwrite(str(src), deep)
    photo = read_image(src)
    assert photo.pixels.dtype == np.uint16 and photo.bit_depth == 16 and photo.rgb8().dtype == np.uint8
    again = cv2.imread(str(src), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(decode_image(encode_image(photo, ".png")).pixels, photo.pixels)
    assert main(["restore", str(src), "--model", "identity", "--out", str(tmp_path / "out")]) == 0
    out = cv2.imread(str(tmp_path / "out" / "deep.png"), cv2.IMREAD_UNCHANGED)
    assert out.dtype == np.uint16 and out.shape == again.shape
    changed = np.abs(out.astype(np.int64) - again).max(axis=2)
    assert 0 < changed.mean() and (changed == 0).mean() > 0.5       # the face pasted back, the rest untouched
    assert np.abs(out.astype(np.int64) - again)[changed > 0].mean() < 257 * 3   # the identity round trip: close


def _peak_mb(args: list[str]) -> float:
    """Peak RSS (MB) of `facerestore ARGS` in a fresh child process."""
    run = subprocess.run([sys.executable, "-c", PEAK, *args], capture_output=True, text=True, env=subprocess_env())
    assert run.returncode == 0, run.stderr[-2000:]
    return float(run.stdout.split("peak_mb")[-1])


@pytest.mark.parametrize("model", ["identity", "safm"])
def test_12mp_photo_costs_a_small_multiple_of_its_8bit_size(tmp_path, model):
    """A 12 MP one-face photo against a 1 MP one: the peak grows by a few times the photo's uint8
    size (measured: identity 304 vs 184 MB, the SaFM demo 552 vs 444 MB; the float32 frames of
    6308b0f made it 1.34 GB for SaFM)."""
    big, small = tmp_path / "big.jpg", tmp_path / "small.jpg"
    cv2.imwrite(str(big), large_photo()[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
    cv2.imwrite(str(small), large_photo(1024, 1000)[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
    args = ["restore", "--model", model, "--out", str(tmp_path / "out")]
    _peak_mb([*args, str(small)])     # the first run exports the ONNX cache
    peaks = {name: _peak_mb([*args, str(path)]) for name, path in (("small", small), ("big", big))}
    growth = (4000 * 3000 - 1024 * 1000) * 3 / 2**20
    assert peaks["big"] - peaks["small"] < 5 * growth, (peaks, growth)
    assert read_image(tmp_path / "out" / "big.jpg").size == (4000, 3000)


def _faces_kept(n: int) -> np.ndarray:
    """The crowd photo (36 faces in a 6x6 grid) with all but the first `n` cells grey: the same
    size whatever the number of faces."""
    crowd = crowd_photo()
    for cell in range(n, 36):
        r, c = divmod(cell, 6)
        crowd[r * 230:(r + 1) * 230, c * 200:(c + 1) * 200] = 128
    return crowd


@pytest.mark.parametrize("model, few, many", [("identity", 9, 36), ("safm", 2, 8)])
def test_peak_memory_does_not_grow_with_faces(tmp_path, model, few, many):
    """Photos of one size with few and many faces: the mesh and the restorer take a few faces a
    call (the restorer --batch-faces, the spec's default) and faces are pasted one by one, so a
    face adds only its arrays (aligned crop, region map, restored crop: 1.75 MB) to the peak;
    at 6308b0f the float paste added 4 MB a face, the one mesh call 5 MB and the one SaFM call
    ~200 MB (with the mesh in one call: identity 9 -> 36 faces 228 -> 345 MB)."""
    paths = {n: tmp_path / f"{n}.png" for n in (few, many)}
    for n, path in paths.items():
        cv2.imwrite(str(path), _faces_kept(n)[..., ::-1])
    _peak_mb(["restore", str(paths[few]), "--model", model, "--out", str(tmp_path / "warm")])   # the ONNX cache
    peaks = {n: _peak_mb(["restore", str(path), "--model", model, "--out", str(tmp_path / "out")])
             for n, path in paths.items()}
    report = (tmp_path / "out" / "report.json").read_text()
    assert f'"faces": {many}' in report
    assert peaks[many] - peaks[few] < 3 * (many - few) + 20, peaks
