"""What the clip tests read back: packets, frames, face boxes and changes. The clips themselves
are made by benchmarks/video.py: make_clip (a real sample photo panned and zoomed, with a
synthesised audio track)."""
from __future__ import annotations

from pathlib import Path

import av
import numpy as np


def stream_packets(path: Path, kind: str) -> list[bytes]:
    """The packets of the first stream of `kind` ('audio', 'video'), demuxed, as bytes."""
    with av.open(str(path)) as c:
        stream = getattr(c.streams, kind)[0]
        return [bytes(p) for p in c.demux(stream) if p.size]


def decoded_frames(path: Path) -> tuple[list[np.ndarray], list[float]]:
    """Every frame (uint8 RGB, as stored) and its time in seconds."""
    with av.open(str(path)) as c:
        frames = [(f.to_ndarray(format="rgb24"), float(f.time)) for f in c.decode(video=0)]
    return [f for f, _ in frames], [t for _, t in frames]


def face_boxes(pipeline, frames: list[np.ndarray]) -> list[tuple[int, int, int, int] | None]:
    """The first face's landmark box (x0, y0, x1, y1) in each frame (None: no face)."""
    from runtime.imageio import Photo

    boxes = []
    for f in frames:
        faces, _ = pipeline.find(Photo(pixels=f))
        if not faces:
            boxes.append(None)
            continue
        lm = faces[0].landmarks[:, :2]
        x0, y0 = np.floor(lm.min(0)).astype(int)
        x1, y1 = np.ceil(lm.max(0)).astype(int)
        boxes.append((max(0, x0), max(0, y0), int(x1), int(y1)))
    return boxes


def face_change(before: np.ndarray, after: np.ndarray, box: tuple[int, int, int, int]) -> tuple[float, float]:
    """Mean absolute difference (8-bit levels) inside the face box and outside it."""
    x0, y0, x1, y1 = box
    face = np.zeros(before.shape[:2], bool)
    face[y0:y1, x0:x1] = True
    change = np.abs(after.astype(np.float64) - before).mean(-1)
    return float(change[face].mean()), float(change[~face].mean())


def changed_away_from_face(before: np.ndarray, after: np.ndarray, box: tuple[int, int, int, int]) -> bool:
    """True when a pixel changed outside the face box grown by a third of its width on every
    side (room for the paste mask: the face oval grown over forehead and jaw, feathered)."""
    x0, y0, x1, y1 = box
    grow = (x1 - x0) // 3
    changed = np.abs(after.astype(int) - before).max(-1) > 0
    changed[max(0, y0 - grow):y1 + grow, max(0, x0 - grow):x1 + grow] = False
    return bool(changed.any())
