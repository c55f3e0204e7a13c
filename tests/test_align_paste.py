"""Alignment math and the warp -> paste-back round trip on a real photo (no networks)."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from runtime.face.align import FFHQ_TEMPLATE_512, similarity, source_box, template, transform_points, warp_face
from runtime.face.detect import tiles, weighted_nms
from runtime.face.paste import PASTE_ROWS, face_mask, face_strips, feather_mask, paste_face, paste_faces
from runtime.imageio import frame_photo, to_float


def _similarity(angle_deg: float, scale: float, tx: float, ty: float) -> np.ndarray:
    a = np.deg2rad(angle_deg)
    return np.array([[scale * np.cos(a), -scale * np.sin(a), tx], [scale * np.sin(a), scale * np.cos(a), ty]])


def test_similarity_recovers_a_known_transform():
    truth = _similarity(17.0, 0.8, 40.0, -25.0)
    src = np.random.default_rng(0).uniform(0, 500, (5, 2))
    np.testing.assert_allclose(similarity(src, transform_points(truth, src)), truth, atol=1e-9)


def test_similarity_maps_template_to_scaled_template():
    m = similarity(FFHQ_TEMPLATE_512, template(256))
    np.testing.assert_allclose(m, [[0.5, 0, 0], [0, 0.5, 0]], atol=1e-9)


def test_warp_then_paste_reproduces_the_photo(astronaut):
    image = astronaut.astype(np.float32) / 255
    affine = _similarity(12.0, 1.4, -120.0, -40.0)  # a face-sized region, rotated
    crop = warp_face(image, affine, 512)
    restored = paste_faces(image.copy(), crop[None], affine[None])
    inside = cv2.warpAffine(feather_mask(512), cv2.invertAffineTransform(affine), (512, 512)) > 0.999
    err = np.abs(restored - image)[inside]
    assert inside.sum() > 50_000
    # two bicubic resamplings (in and out): measured mean 0.43/255, 99th percentile 3.1/255
    # (bilinear both ways: 1.6/255 on average, a visible blur)
    assert err.mean() < 0.8 / 255 and np.percentile(err, 99) < 6 / 255, (err.mean() * 255, np.percentile(err, 99) * 255)


def test_large_face_is_pre_shrunk_not_aliased(astronaut):
    image = astronaut.astype(np.float32) / 255
    affine = _similarity(0.0, 0.25, 0.0, 0.0)  # 512 photo -> 128 crop: shrink by 4
    crop = warp_face(image, affine, 128)
    naive = cv2.warpAffine(image, affine, (128, 128), flags=cv2.INTER_LINEAR)
    smooth = cv2.warpAffine(cv2.GaussianBlur(image, (0, 0), 1.6), affine, (128, 128), flags=cv2.INTER_LINEAR)
    assert np.abs(crop - smooth).mean() < 0.5 * np.abs(naive - smooth).mean()


def test_paste_touches_only_the_face_region(grace_hopper):
    image = grace_hopper.astype(np.float32) / 255
    affine = _similarity(0.0, 4.0, -600.0, -500.0)  # crop covers photo x 150..278, y 125..253
    x0, y0, x1, y1 = source_box(affine, 512, image.shape[1], image.shape[0])
    out = paste_faces(image.copy(), np.zeros((1, 512, 512, 3), np.float32), affine[None])
    changed = np.argwhere(np.abs(out - image).max(axis=2) > 0)
    assert changed[:, 1].min() >= x0 and changed[:, 1].max() < x1
    assert changed[:, 0].min() >= y0 and changed[:, 0].max() < y1


def test_weighted_nms_merges_overlaps_and_keeps_separate_faces():
    a = np.array([10, 10, 50, 50] + [0] * 12, float)
    b = np.array([12, 12, 52, 52] + [2] * 12, float)
    c = np.array([100, 100, 140, 140] + [5] * 12, float)
    out = weighted_nms([(a, 0.9), (b, 0.6), (c, 0.8)])
    assert len(out) == 2
    merged, score = out[0]
    assert score == 0.9
    np.testing.assert_allclose(merged, (a * 0.9 + b * 0.6) / 1.5)
    np.testing.assert_array_equal(out[1][0], c)


def test_tiles_cover_large_photos_only():
    assert tiles(660, 600) == [] and tiles(512, 600) == []
    boxes = tiles(2400, 1600)
    assert len(boxes) == 5 * 3  # 640-pixel windows, 25% overlap
    covered = np.zeros((1600, 2400), bool)
    for x0, y0, x1, y1 in boxes:
        assert x1 - x0 == 640 and y1 - y0 == 640
        covered[y0:y1, x0:x1] = True
    assert covered.all()
    assert [(y0, y1) for _, y0, _, y1 in tiles(1808, 648)] == [(0, 648)] * 4  # one row for a wide strip


def _blend_as_before(image: np.ndarray, face: np.ndarray, affine: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """paste_face's blend as it was before it ran in place (main at 3b7ba6a), over the same
    strips: samples + alpha * (face - samples) in new float arrays, clipped, rounded by NumPy,
    copied only where alpha > 0. The reference the in-place blend is held to."""
    out = image.copy()
    for region, warped, alpha in face_strips(out, face, affine, mask):
        top_value = 1.0 if region.dtype.kind == "f" else float(np.iinfo(region.dtype).max)
        samples = region.astype(np.float32) / np.float32(top_value)
        blended = np.clip(samples + alpha * (warped - samples), 0.0, 1.0)
        if region.dtype.kind != "f":
            blended = np.clip(np.rint(blended * top_value), 0, top_value).astype(region.dtype)
        np.copyto(region, blended, where=np.broadcast_to(alpha > 0, region.shape))
    return out


@pytest.fixture(scope="module")
def big_face(pipeline, grace_hopper):
    """Grace Hopper at 4x (her face region 1.5k rows: three strips) and her one face's batch."""
    big = cv2.resize(grace_hopper, None, fx=4, fy=4, interpolation=cv2.INTER_CUBIC)
    batch = pipeline.align(frame_photo(big), pipeline.find(frame_photo(big))[0])
    assert len(batch) == 1
    x0, y0, x1, y1 = source_box(batch.affines[0], 512, big.shape[1], big.shape[0])
    assert y1 - y0 > 2 * PASTE_ROWS
    return big, batch


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_paste_face_is_the_blend_as_before(big_face, dtype):
    """A large face replaced by its colour-fixed negative through the real face-shaped mask: the
    in-place blend gives the old formula's photo sample for sample, in 8 and 16 bits and in float."""
    big, batch = big_face
    image = {np.uint8: big, np.uint16: big.astype(np.uint16) * 257 + 99, np.float32: to_float(big)}[dtype]
    face = to_float(255 - batch.crops[0])
    mask = face_mask(batch.label_maps[0])
    out = image.copy()
    paste_face(out, face, batch.affines[0], mask)
    expected = _blend_as_before(image, face, batch.affines[0], mask)
    assert not np.array_equal(out, image)
    np.testing.assert_array_equal(out, expected)
