"""The face pipeline with the PyTorch ports on real photos: detection counts, golden landmarks
(from the original .tflite graphs), region maps, boxes, one batch per photo, paste-back."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from runtime.face import FaceOptions, FacePipeline
from runtime.face.align import template, warp_face
from runtime.face.regions import LABELS
from runtime.imageio import decode_image, read_image, to_uint8
from runtime.samples import GRACE_HOPPER, NO_FACE, read_rgb8
from tests.conftest import paste_regions
from tests.golden import GOLDEN, golden_photos, landmarks_of

PIXEL_TOLERANCE = 0.5  # port vs original .tflite, photo pixels
AFFINE_LINEAR_TOLERANCE = 1e-3  # the photo -> crop affines fitted to them: linear part (measured 6e-6)
AFFINE_SHIFT_TOLERANCE = 0.25   # and shift, crop pixels (measured 0.003)
INSIDE_MEAN = 0.6 / 255         # identity paste-back inside the masks: resampling only (measured 0.41/255)


@pytest.fixture(scope="module")
def golden() -> dict:
    return json.loads(GOLDEN.read_text())


@pytest.fixture(scope="module")
def measured(pipeline) -> dict:
    return {name: landmarks_of(pipeline, photo) for name, photo in golden_photos().items()}


@pytest.mark.parametrize("name,count", [("astronaut", 1), ("grace_hopper", 1), ("group", 3)])
def test_detection_count_and_golden_landmarks(name, count, golden, measured):
    got, want = measured[name], golden[name]
    assert len(got["boxes"]) == len(want["boxes"]) == count
    np.testing.assert_allclose(got["boxes"], want["boxes"], atol=PIXEL_TOLERANCE)
    np.testing.assert_allclose(got["landmarks"], want["landmarks"], atol=PIXEL_TOLERANCE)
    np.testing.assert_allclose(got["points5"], want["points5"], atol=PIXEL_TOLERANCE)
    got_affines, want_affines = np.array(got["affines"]), np.array(want["affines"])
    np.testing.assert_allclose(got_affines[:, :, :2], want_affines[:, :, :2], atol=AFFINE_LINEAR_TOLERANCE)
    np.testing.assert_allclose(got_affines[:, :, 2], want_affines[:, :, 2], atol=AFFINE_SHIFT_TOLERANCE)


def test_group_faces_are_where_the_photos_are(measured):
    centres = [(b[0] + b[2]) / 2 for b in measured["group"]["boxes"]]
    assert centres[0] < 560 < centres[1] < 1040 < centres[2]  # one face per pasted photo


def test_alignment_puts_the_points_on_the_template(pipeline):
    photo = golden_photos()["grace_hopper"]
    batch = pipeline.align(photo, pipeline.find(photo)[0])
    err = np.linalg.norm(batch.points5[0] - template(512), axis=1)
    assert err.max() < 12.0, err  # a similarity fit of 5 real points: a few pixels off each


def test_region_map_and_boxes(pipeline):
    photo = golden_photos()["astronaut"]
    batch = pipeline.align(photo, pipeline.find(photo)[0])
    labels = batch.label_maps[0]
    counts = np.bincount(labels.ravel(), minlength=len(LABELS))
    assert (counts > 200).all(), counts  # every region is present on a frontal face
    centroid = {k: np.argwhere(labels == v).mean(0)[::-1] for k, v in LABELS.items() if v}
    assert centroid["eye_l"][0] < 256 < centroid["eye_r"][0]
    assert centroid["brow_l"][1] < centroid["eye_l"][1] < centroid["nose"][1] < centroid["lips"][1]
    for (x0, y0, x1, y1), key in zip(batch.boxes[0], ("eye_l", "eye_r", "lips")):
        cx, cy = centroid[key]
        assert x0 < cx < x1 and y0 < cy < y1


def test_all_faces_of_a_photo_go_through_the_mesh_as_one_batch(pipeline):
    calls = []

    def mesh(**inputs):   # its one input, by name
        calls.append(len(next(iter(inputs.values()))))
        return pipeline.mesh(**inputs)

    counting = FacePipeline(pipeline.detector, mesh)
    faces, _ = counting.find(golden_photos()["group"])
    assert len(faces) == 3 and calls == [3]


def test_photo_without_face(pipeline):
    photo = read_image(NO_FACE)
    faces, skipped = pipeline.find(photo)
    batch = pipeline.align(photo, faces)
    assert len(batch) == 0 and batch.crops.shape == (0, 512, 512, 3) and batch.crops.dtype == np.uint8
    np.testing.assert_array_equal(pipeline.paste(photo, batch, batch.crops).rgb, photo.rgb)


def test_identity_paste_back_reproduces_the_group_photo(pipeline):
    """Outside the masks the photo's pixels bit for bit; inside, only the warp-in/warp-out
    resampling of the unchanged crops."""
    photo = golden_photos()["group"]
    batch = pipeline.align(photo, pipeline.find(photo)[0])
    before = photo.rgb.copy()
    out = pipeline.paste(photo, batch, batch.crops)
    np.testing.assert_array_equal(photo.rgb, before)   # pasted into a new frame, the photo untouched
    inside, outside = paste_regions(pipeline, photo)
    assert inside.sum() > 3 * 10_000 and outside.mean() > 0.5   # three faces, most of the photo outside
    np.testing.assert_array_equal(out.rgb[outside], photo.rgb[outside])
    err = np.abs(out.rgb - photo.rgb)[inside]
    assert err.mean() < INSIDE_MEAN and np.percentile(err, 99.9) < 32 / 255, (err.mean() * 255,)


def test_output_crop_size_is_configurable(pipeline):
    small = FacePipeline(pipeline.detector, pipeline.mesh, FaceOptions(size=256))
    photo = golden_photos()["astronaut"]
    batch = small.align(photo, small.find(photo)[0])
    assert batch.crops.shape == (1, 256, 256, 3) and batch.label_maps.shape == (1, 256, 256)
    assert batch.crops.dtype == np.uint8 and batch.model_input().dtype == np.float32
    full = pipeline.align(photo, pipeline.find(photo)[0])
    np.testing.assert_allclose(batch.points5, full.points5 / 2, atol=0.05)  # the same alignment, half size
    assert batch.model_input().shape == (1, 3, 256, 256)
    assert -1.0 <= batch.model_input().min() and batch.model_input().max() <= 1.0


def test_crops_are_uint8_warped_from_the_8_bit_pixels(pipeline):
    """The aligned crops are warped from the photo's 8-bit pixels, the ones the face networks
    read: for a 16-bit photo too, at most one step off rounding the warp of its 16-bit samples."""
    deep = read_rgb8(GRACE_HOPPER)[..., ::-1].astype(np.uint16) * 257
    deep += np.random.default_rng(0).integers(0, 257, deep.shape, np.uint16)   # not 8 bits in 16
    photo = decode_image(cv2.imencode(".png", deep)[1].tobytes())
    assert photo.bit_depth == 16
    batch = pipeline.align(photo, pipeline.find(photo)[0])
    assert len(batch) == 1 and batch.crops.dtype == np.uint8
    affine = batch.affines[0]
    np.testing.assert_array_equal(batch.crops[0], warp_face(photo.rgb8(), affine, 512))
    off = np.abs(batch.crops[0].astype(int) - to_uint8(warp_face(photo.rgb, affine, 512)))
    assert off.max() <= 1, off.max()
