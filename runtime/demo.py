"""`make demo` / `facerestore demo`: what a restorer does, shown on the shipped samples.

The two clean sample photos are restored as they are (they show that nothing is harmed), and the
degraded sample (Grace Hopper through the `blur2-x4-jpeg60` evaluation preset, named so) is
restored and compared with its clean original: a face sheet per face, zoomed, degraded | restored
| clean, with the PSNR over the face (inside the face-shaped paste mask) before and after.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from runtime.face.align import warp_face
from runtime.face.paste import face_mask
from runtime.face.pipeline import FacePipeline
from runtime.files import write_atomic
from runtime.imageio import frame_photo, read_image
from runtime.restore import restore_files
from runtime.restorers import Restorer
from runtime.samples import DEGRADED_SAMPLE, FACE_PHOTOS, GRACE_HOPPER

SHEET_TILE = 448    # side of each zoomed face on the sheet
ZOOM = (0.19, 0.81)  # the part of the aligned crop shown: brows to chin (share of the side)
LABEL_HEIGHT = 36   # the caption band above the tiles


@dataclass
class FaceGain:
    """PSNR over one face (inside its paste mask) against the clean photo, degraded and restored."""

    psnr_degraded: float
    psnr_restored: float

    @property
    def gain(self) -> float:
        return self.psnr_restored - self.psnr_degraded


def face_sheet(degraded: np.ndarray, restored: np.ndarray, clean: np.ndarray,
               pipeline: FacePipeline) -> tuple[np.ndarray, list[FaceGain]]:
    """The sheet (uint8 RGB: one row per face, degraded | restored | clean zoomed to SHEET_TILE,
    captioned with the PSNR) and the gains; each face aligned as the pipeline aligns it on the
    degraded photo (the crop it restored)."""
    from training.metrics import psnr

    photo = frame_photo(degraded)
    batch = pipeline.align(photo, pipeline.find(photo)[0])
    size = pipeline.options.size
    rows, gains = [], []
    for affine, labels in zip(batch.affines, batch.label_maps):
        d, r, c = (warp_face(x, affine, size) for x in (degraded, restored, clean))
        inside = face_mask(labels) >= 0.5
        gain = FaceGain(psnr(d, c, inside), psnr(r, c, inside))
        gains.append(gain)
        lo, hi = round(ZOOM[0] * size), round(ZOOM[1] * size)   # brows to chin, zoomed
        tiles = [cv2.resize(x[lo:hi, lo:hi], (SHEET_TILE, SHEET_TILE), interpolation=cv2.INTER_CUBIC)
                 for x in (d, r, c)]
        captions = (f"degraded  {gain.psnr_degraded:.2f} dB", f"restored  {gain.psnr_restored:.2f} dB "
                    f"({gain.gain:+.2f})", "clean")
        rows.append(np.concatenate([_captioned(t, text) for t, text in zip(tiles, captions)], axis=1))
    return (np.concatenate(rows) if rows else np.zeros((1, 1, 3), np.uint8)), gains


def _captioned(tile: np.ndarray, text: str) -> np.ndarray:
    """A tile with a white caption band above it."""
    band = np.full((LABEL_HEIGHT, tile.shape[1], 3), 255, np.uint8)
    cv2.putText(band, text, (8, LABEL_HEIGHT - 12), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([band, tile])


def run_demo(out_dir: Path, pipeline: FacePipeline, restorer: Restorer) -> list[FaceGain]:
    """Restore the clean samples and the degraded one into `out_dir` (before | after images under
    compare/), write compare/<degraded>_faces.png and return the face gains."""
    restore_files([*FACE_PHOTOS, DEGRADED_SAMPLE], out_dir, pipeline, restorer, compare=True)
    degraded = read_image(DEGRADED_SAMPLE).rgb8()
    restored = read_image(out_dir / DEGRADED_SAMPLE.name).rgb8()
    sheet, gains = face_sheet(degraded, restored, read_image(GRACE_HOPPER).rgb8(), pipeline)
    write_atomic(out_dir / "compare" / f"{DEGRADED_SAMPLE.stem}_faces.png",
                 cv2.imencode(".png", sheet[..., ::-1])[1].tobytes())
    return gains
