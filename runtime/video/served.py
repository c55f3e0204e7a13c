"""Clips through the served ensemble: the server stays photo in / photo out, so the client
decodes the clip (`transcode`), sends each frame as a lossless PNG, `concurrency` frames at a
time over the fleet's connections, decodes the restored frames and encodes them with the
clip's own timestamps, muxed with its original audio and other streams (stream copy). Faces are
found on each frame by the server: no tracking or temporal smoothing (the in-process `restore`
has both)."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from runtime.imageio import decode_frame
from runtime.video.container import Frame, OnFrames, VideoInfo, transcode, watched

# (encoded frame, name for messages) -> (restored photo bytes, faces)
SendFrame = Callable[[bytes, str], tuple[bytes, int]]


def png_bytes(pixels: np.ndarray) -> bytes:
    """A frame (uint8 or uint16 RGB) as PNG, fast compression: lossless, and what the server reads."""
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(pixels[..., ::-1]), [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise ValueError("PNG encoding of a frame failed")
    return buf.tobytes()


def restore_clip_served(path: Path, target: Path, send: SendFrame, concurrency: int = 4, upscale: float = 1.0,
                        progress: Callable[[int], None] | None = None,
                        on_frames: OnFrames | None = None) -> tuple[VideoInfo, int]:
    """Restore clip `path` into `target` through `send` (one served request per frame,
    `concurrency` in flight); returns the clip's facts and the faces restored over all frames.
    `on_frames(frames, restored)` after each chunk (the web page)."""
    faces: list[int] = []

    def one(frame: Frame) -> np.ndarray:
        image, n = send(png_bytes(frame.pixels), f"{path} frame {frame.index}")
        rgb = decode_frame(image, f"{path} frame {frame.index} (restored)")
        if rgb.dtype != frame.pixels.dtype or rgb.ndim != 3 or rgb.shape[2] != 3:
            raise ValueError(f"{path} frame {frame.index}: the server gave back {rgb.dtype} {rgb.shape}, "
                             f"not RGB like the frame sent ({frame.pixels.dtype})")
        faces.append(n)   # list.append is atomic under the GIL
        return rgb

    with ThreadPoolExecutor(max(1, concurrency)) as pool:
        info = transcode(path, target, watched(lambda frames: list(pool.map(one, frames)), on_frames),
                         chunk=2 * max(1, concurrency), upscale=upscale, progress=progress)
    return info, sum(faces)
