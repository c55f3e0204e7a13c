"""Faces at the photo's edge: their crop mirrors the photo where it runs past the edge (what the
restorers were trained on), so the demo restores them as it restores a centred face, and the
paste-back still writes nothing outside the photo nor outside the face."""
from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import pytest

from runtime.face.align import warp_face
from runtime.face.pipeline import FaceOptions, paste, paste_masks
from runtime.imageio import frame_photo
from runtime.restore import restore_photo
from runtime.restorers.factory import make_restorer
from runtime.samples import GRACE_HOPPER, read_rgb8
from training.data.degradations import PRESETS, degrade


@pytest.fixture(scope="module")
def degraded() -> np.ndarray:
    """Grace Hopper degraded as the evaluation degrades (the demo changes a sharp face little)."""
    photo, _ = degrade(read_rgb8(GRACE_HOPPER), 7, replace(PRESETS["blur2-x4-jpeg60"], clean_fraction=0.0))
    return photo


def _crop_span(pipeline, rgb8: np.ndarray) -> tuple[float, float]:
    """The photo x range the face's aligned crop covers."""
    photo = frame_photo(rgb8)
    batch = pipeline.align(photo, pipeline.find(photo)[0])
    corners = np.array([[0, 0], [512, 0], [0, 512], [512, 512]], np.float64)
    inv = cv2.invertAffineTransform(batch.affines[0])
    xs = (corners @ inv[:, :2].T + inv[:, 2])[:, 0]
    return float(xs.min()), float(xs.max())


@pytest.mark.parametrize("over", [0.10, 0.25])
def test_a_face_whose_crop_hangs_over_the_edge_is_restored(pipeline, degraded, over):
    left, right = _crop_span(pipeline, degraded)
    assert left > 0, "the centred face's crop must lie inside the photo"
    x0 = int(round(left + over * (right - left)))       # cut the photo so the crop hangs `over` past it
    edge = np.ascontiguousarray(degraded[:, x0:])
    restorer = make_restorer("safm", None, "torch", progress=False)
    changes = []
    for rgb8 in (degraded, edge):
        out, batch, _, _ = restore_photo(frame_photo(rgb8), pipeline, restorer)
        assert len(batch) == 1
        changes.append(np.abs(out.rgb8().astype(np.int16) - rgb8).mean(axis=2))
    right_px = int(right)
    centred = changes[0][:, x0:right_px].mean()   # the same photo pixels in both runs
    at_edge = changes[1][:, :right_px - x0].mean()
    assert centred > 0.5, centred
    assert at_edge >= 0.5 * centred, (at_edge, centred)


def test_the_crop_mirrors_the_photo_past_its_edge_and_the_paste_stays_inside(pipeline, degraded):
    left, right = _crop_span(pipeline, degraded)
    edge = np.ascontiguousarray(degraded[:, int(left + 0.25 * (right - left)):])
    photo = frame_photo(edge)
    batch = pipeline.align(photo, pipeline.find(photo)[0])
    # the crop of the mirrored photo (wide enough that nothing runs past its edge) is the crop
    mirrored = cv2.copyMakeBorder(edge, 0, 0, edge.shape[1] - 1, 0, cv2.BORDER_REFLECT_101)
    shifted = batch.affines[0] @ np.array([[1, 0, -(edge.shape[1] - 1)], [0, 1, 0], [0, 0, 1]], np.float64)
    diff = np.abs(batch.crops[0].astype(np.int16) - warp_face(mirrored, shifted, 512)).max()
    assert diff <= 1, diff
    grey = np.all(np.abs(batch.crops[0][:, :64].astype(np.int16) - (135, 133, 132)) <= 2, axis=2).mean()
    assert grey < 0.05, grey   # no flat grey band where the crop runs past the photo
    # white faces pasted over a black photo: only the face mask's pixels inside the photo light up
    white = np.full_like(batch.crops, 255)
    pasted = paste(frame_photo(np.zeros_like(edge)), batch, white, replace(FaceOptions(), colour_fix="none")).rgb
    assert pasted.shape[:2] == edge.shape[:2] and pasted.max() > 0.99
    reach = cv2.warpAffine(paste_masks(batch, FaceOptions())[0], cv2.invertAffineTransform(batch.affines[0]),
                           (edge.shape[1], edge.shape[0]), flags=cv2.INTER_LINEAR) > 0
    assert not pasted.max(axis=2)[~reach].any()
