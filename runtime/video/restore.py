"""Restore the faces of a clip, streamed: frames come from `transcode` a chunk at a time, faces
are followed and smoothed through the clip (tracking.py), the faces of the whole chunk go to the
restorer together in calls of at most `batch_faces`, and each frame is pasted back (on the
background upsampler's output when one is given) and encoded before the next chunk is read.
Memory holds one chunk of frames, never the clip."""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from runtime.face.pipeline import FaceBatch, FacePipeline
from runtime.imageio import Photo
from runtime.restorers import Restorer
from runtime.restorers.base import restore_in_batches
from runtime.upsampler import BackgroundUpsampler
from runtime.video.container import Frame, OnFrames, VideoInfo, probe, transcode, watched
from runtime.video.tracking import FaceTracker


@dataclass
class VideoResult:
    """What happened to one clip (a report.json entry)."""

    input: str
    output: str | None = None
    frames: int = 0
    faces: int = 0            # faces restored, over all frames
    tracks: int = 0           # faces that came into view
    seconds: float = 0.0
    fps: float = 0.0
    encoder: str = ""
    copied: list[str] = field(default_factory=list)
    error: str | None = None

    def report(self) -> dict:
        """The clip's entry under `video` in report.json."""
        return {k: getattr(self, k) for k in ("frames", "tracks", "seconds", "fps", "encoder", "copied")}

    def note(self) -> str:
        """One line: frames, faces, speed, encoder and the streams copied."""
        return (f"note: {self.input}: {self.frames} frames, {self.faces} faces ({self.tracks} face tracks) in "
                f"{self.seconds:.1f} s ({self.fps:.2f} frames/s), {self.encoder}, copied: "
                f"{', '.join(self.copied) or 'no other streams'}")


class ClipRestorer:
    """The frame callback of `transcode` for one clip (it keeps the clip's face tracks)."""

    def __init__(self, pipeline: FacePipeline, restorer: Restorer, batch_faces: int = 8, detect_every: int = 1,
                 upsampler: BackgroundUpsampler | None = None, smooth: bool = True) -> None:
        if batch_faces < 1:
            raise ValueError(f"--batch-faces must be >= 1, not {batch_faces}")
        self.pipeline, self.restorer, self.batch_faces, self.upsampler = pipeline, restorer, batch_faces, upsampler
        self.tracker = FaceTracker(pipeline, detect_every, smooth)
        self.faces = 0

    def __call__(self, frames: list[Frame]) -> list[np.ndarray]:
        photos = [Photo(pixels=f.pixels) for f in frames]   # 16 bits for deeper sources
        batches = [self.pipeline.align(p, self.tracker.faces(p, f.time)[0]) for p, f in zip(photos, frames)]
        counts = [len(b) for b in batches]
        every = FaceBatch.join(batches)
        restored = restore_in_batches(self.restorer, every, self.batch_faces)   # faces of many frames per call
        self.faces += len(every)
        out, start = [], 0
        up = self.pipeline.options.upscale
        for photo, batch, n in zip(photos, batches, counts):
            background = self.upsampler(photo.pixels, up) if self.upsampler is not None else None
            out.append(self.pipeline.paste(photo, batch, restored[start:start + n], background).pixels)
            start += n
        return out


def restore_video(path: Path, target: Path, pipeline: FacePipeline, restorer: Restorer, batch_faces: int = 8,
                  detect_every: int = 1, upsampler: BackgroundUpsampler | None = None,
                  on_frames: OnFrames | None = None) -> VideoResult:
    """Restore the faces of clip `path` into `target` (VideoError for a bad clip); progress
    (frames/s, ETA) on stderr, and `on_frames(frames, restored)` after each chunk (the web page)."""
    result = VideoResult(input=str(path))
    info: VideoInfo = probe(path)
    clip = ClipRestorer(pipeline, restorer, batch_faces, detect_every, upsampler)
    start = time.perf_counter()
    with tqdm(total=info.frames or None, desc=f"{Path(path).name} ({restorer.name})", unit="frame",
              file=sys.stderr, disable=None) as bar:
        info = transcode(path, target, watched(clip, on_frames), chunk=batch_faces, upscale=pipeline.options.upscale,
                         progress=bar.update)
    result.seconds = time.perf_counter() - start
    result.output, result.frames, result.faces, result.tracks = str(target), info.frames, clip.faces, clip.tracker.started
    result.fps, result.encoder, result.copied = info.frames / max(result.seconds, 1e-9), info.encoder, info.copied
    return result
