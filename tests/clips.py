"""Short clips made in the tests: a real sample photo panned and zoomed (a slow camera move over
its faces), optionally with a synthesised audio track, written with PyAV."""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from runtime.imageio import read_image


def camera_move(photo: np.ndarray, frames: int, size: tuple[int, int]) -> list[np.ndarray]:
    """`frames` views (uint8 RGB, `size` = (w, h)) of `photo`: a window of 85% -> 70% of the
    photo's short side sliding left to right, so faces move and grow between frames."""
    h, w = photo.shape[:2]
    views = []
    for i in range(frames):
        t = i / max(1, frames - 1)
        side = min(h, w) * (0.85 - 0.15 * t)
        win_w, win_h = side * size[0] / max(size), side * size[1] / max(size)
        x0 = (w - win_w) * (0.3 + 0.4 * t)
        y0 = (h - win_h) * 0.4
        src = np.float32([[x0, y0], [x0 + win_w, y0], [x0, y0 + win_h]])
        dst = np.float32([[0, 0], [size[0], 0], [0, size[1]]])
        views.append(cv2.warpAffine(photo, cv2.getAffineTransform(src, dst), size, flags=cv2.INTER_AREA))
    return views


def sine_audio(seconds: float, rate: int = 48000) -> np.ndarray:
    """A stereo chord (220/330/440 Hz) with a slow tremolo, float32 [2, n]."""
    t = np.arange(int(seconds * rate)) / rate
    wave = sum(np.sin(2 * np.pi * f * t) for f in (220, 330, 440)) / 4 * (0.6 + 0.4 * np.sin(2 * np.pi * 0.5 * t))
    return np.stack([wave, wave * 0.8]).astype(np.float32)


def make_clip(path: Path, photo: Path, frames: int = 60, size: tuple[int, int] = (320, 240), fps: int = 24,
              audio: bool = True, codec: str = "libx264", pix_fmt: str = "yuv420p", rotation: int = 0,
              timestamps: list[int] | None = None) -> Path:
    """Write a clip of `photo` panned and zoomed; `timestamps` (in 1/fps/10 units) for a variable
    rate; `rotation`: the display rotation stored (the frames are stored rotated back)."""
    rgb = read_image(Path(photo)).rgb8()
    views = camera_move(rgb, frames, size)
    with av.open(str(path), "w") as out:
        v = out.add_stream(codec, rate=fps, options={"crf": "20"} if codec.startswith("libx26") else {})
        v.width, v.height = (size[1], size[0]) if rotation in (90, 270) else size
        v.pix_fmt = pix_fmt
        tb = Fraction(1, fps * 10)
        v.codec_context.time_base = tb
        if rotation:
            v.set_display_rotation(rotation)
        a = None
        if audio:
            a = out.add_stream("aac", rate=48000, layout="stereo")
        for i, view in enumerate(views):
            stored = np.ascontiguousarray(np.rot90(view, -(rotation // 90))) if rotation else view
            f = av.VideoFrame.from_ndarray(stored, format="rgb24")
            f.pts, f.time_base = (timestamps[i] if timestamps else i * 10), tb
            out.mux(v.encode(f))
        out.mux(v.encode(None))
        if a is not None:
            samples = sine_audio(frames / fps)
            step = 1024
            for j in range(0, samples.shape[1] - step + 1, step):
                af = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples[:, j:j + step]), format="fltp", layout="stereo")
                af.sample_rate, af.pts = 48000, j
                out.mux(a.encode(af))
            out.mux(a.encode(None))
    return path


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
        faces, _ = pipeline.find(Photo(rgb=f.astype(np.float32) / 255, pixels8=f))
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
