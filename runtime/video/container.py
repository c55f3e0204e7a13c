"""Video in, video out with PyAV (FFmpeg's libraries in a PyPI wheel; no system ffmpeg).

`transcode` reads a clip once, streamed: it demuxes packets in file order, decodes the first
video stream's frames into upright RGB arrays (display rotation applied; uint16 for sources of
more than 8 bits), hands them to a callback in chunks and encodes what comes back with each
frame's own timestamp (so variable frame rates and the frame count are kept); every other
stream (audio, subtitles, data) is stream-copied packet by packet, never re-encoded. The output
is written under a temporary name beside the target and renamed at the end: an error or Ctrl-C
leaves no half file. Codec: the input's where it can be encoded here (ENCODERS) with its pixel
format, else H.264 (libx264, CRF 18, yuv420p or yuv420p10le for deeper sources); the display
rotation is written back on the output stream.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Callable

import av
import cv2
import numpy as np

from runtime.video import VIDEO_SUFFIXES, VideoError   # there: a photo-only run imports no PyAV

# decoder name -> the encoder of the same codec in PyAV's wheel, and its quality options
ENCODERS = {"h264": "libx264", "hevc": "libx265", "vp9": "libvpx-vp9", "av1": "libsvtav1", "mpeg4": "mpeg4",
            "mjpeg": "mjpeg", "ffv1": "ffv1", "png": "png"}
QUALITY = {"libx264": {"crf": "18", "preset": "medium"}, "libx265": {"crf": "20", "preset": "medium"},
           "libvpx-vp9": {"crf": "24", "b": "0"}, "libsvtav1": {"crf": "30"}, "mpeg4": {"qscale": "2"},
           "mjpeg": {"qscale": "2"}}
FALLBACK = "libx264"   # CRF 18 (QUALITY), yuv420p / yuv420p10le


@dataclass
class Frame:
    """One decoded video frame, upright: RGB uint8 (uint16 for sources deeper than 8 bits)."""

    index: int
    time: float           # seconds from the stream's start
    pixels: np.ndarray    # [H, W, 3]


Process = Callable[[list[Frame]], list[np.ndarray]]          # transcode's frame callback
OnFrames = Callable[[list[Frame], list[np.ndarray]], None]   # (frames, their restored pixels) after each chunk


@dataclass
class VideoInfo:
    """What the output is made from and with."""

    width: int                 # stored (before rotation)
    height: int
    rotation: int              # degrees counterclockwise to display (0, 90, 180, 270)
    frames: int                # the container's count (0 when unknown)
    rate: Fraction | None
    codec: str
    pix_fmt: str
    bit_depth: int
    encoder: str = ""
    out_pix_fmt: str = ""
    copied: list[str] = field(default_factory=list)    # "audio aac", ...
    dropped: list[str] = field(default_factory=list)   # streams the output container cannot hold


def choose_encoder(codec: str, pix_fmt: str, bit_depth: int, muxable: set[str]) -> tuple[str, str]:
    """(encoder, pixel format): the input's codec and format where encodable and its codec in
    `muxable` (the output container's), else H.264 in yuv420p (yuv420p10le for deeper sources)."""
    name = ENCODERS.get(codec)
    if name is not None and name in av.codecs_available:
        encoder = av.codec.Codec(name, "w")
        if pix_fmt in [f.name for f in encoder.video_formats or []] and encoder.name in muxable:
            return name, pix_fmt
    return FALLBACK, "yuv420p10le" if bit_depth > 8 else "yuv420p"


def _open_input(path: Path) -> av.container.InputContainer:
    if not path.is_file():
        raise VideoError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise VideoError(f"{path}: empty file (0 bytes)")
    try:
        container = av.open(str(path), metadata_errors="ignore")
    except av.error.FFmpegError as exc:
        raise VideoError(f"{path}: not a readable video, or truncated ({exc.strerror})") from None
    if not container.streams.video:
        kinds = ", ".join(s.type for s in container.streams) or "none"
        container.close()
        raise VideoError(f"{path}: no video stream (streams: {kinds})")
    return container


def probe(path: Path) -> VideoInfo:
    """The first video stream's facts; VideoError for a file that is not a readable video."""
    with _open_input(Path(path)) as container:
        return _info(container.streams.video[0])


def _info(stream: av.video.stream.VideoStream) -> VideoInfo:
    ctx = stream.codec_context
    fmt = ctx.format
    depth = max((c.bits for c in fmt.components), default=8) if fmt is not None else 8
    return VideoInfo(ctx.width, ctx.height, 0, stream.frames, stream.average_rate or stream.guessed_rate,
                     ctx.name, fmt.name if fmt is not None else "yuv420p", depth)


def _rotation(path: Path) -> int:
    """The display rotation of the first video frame (degrees counterclockwise, 0/90/180/270):
    PyAV gives the display matrix with decoded frames, and the output needs it before any packet."""
    with av.open(str(path), metadata_errors="ignore") as container:
        for frame in container.decode(video=0):
            return int(round((frame.rotation or 0) / 90)) * 90 % 360
    return 0


def _even(x: float, subsampled: bool) -> int:
    return max(2, int(round(x / 2)) * 2) if subsampled else max(1, int(round(x)))


def watched(process: Process, on_frames: OnFrames | None) -> Process:
    """`process`, calling `on_frames(frames, restored)` after each chunk when given."""
    if on_frames is None:
        return process

    def chunk(frames: list[Frame]) -> list[np.ndarray]:
        out = process(frames)
        on_frames(frames, out)
        return out
    return chunk


def transcode(path: Path, target: Path, process: Process, chunk: int = 8,
              upscale: float = 1.0, progress: Callable[[int], None] | None = None) -> VideoInfo:
    """Read `path`, pass its frames (upright RGB) to `process` `chunk` at a time and write what it
    returns (same count, upright RGB of the same dtype, `upscale` times the size) to `target`
    with the input's timestamps, its other streams copied. `progress(n)` after each chunk."""
    path, target = Path(path), Path(target)
    container = _open_input(path)
    tmp = target.parent / f".{target.stem}.{os.getpid()}.part{target.suffix}"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with container, av.open(str(tmp), "w") as output:
            info = _transcode(path, container, output, process, chunk, upscale, progress)
        if info.frames == 0:
            raise VideoError(f"{path}: zero-length clip (no video frames decoded)")
        os.replace(tmp, target)
        return info
    except av.error.FFmpegError as exc:
        raise VideoError(f"{path}: {exc.strerror or exc} (while writing {target})") from None
    finally:
        tmp.unlink(missing_ok=True)


def _transcode(path: Path, container: av.container.InputContainer, output: av.container.OutputContainer,
               process: Callable[[list[Frame]], list[np.ndarray]], chunk: int, upscale: float,
               progress: Callable[[int], None] | None) -> VideoInfo:
    src = container.streams.video[0]
    src.thread_type = "AUTO"
    info = _info(src)
    info.encoder, info.out_pix_fmt = choose_encoder(info.codec, info.pix_fmt, info.bit_depth,
                                                     set(output.supported_codecs))
    subsampled = info.out_pix_fmt.startswith(("yuv420", "yuv422", "yuvj420", "yuvj422", "nv12"))
    out_size = (_even(info.width * upscale, subsampled), _even(info.height * upscale, subsampled))
    video = output.add_stream(info.encoder, rate=info.rate, options=QUALITY.get(info.encoder, {}))
    video.width, video.height = out_size
    video.pix_fmt = info.out_pix_fmt
    video.time_base = src.time_base
    video.codec_context.time_base = src.time_base
    for attr in ("color_range", "color_primaries", "color_trc", "colorspace"):
        try:
            setattr(video.codec_context, attr, getattr(src.codec_context, attr))
        except (AttributeError, ValueError, TypeError):
            pass
    copies = {}
    for s in container.streams:
        if s is src or s.type not in ("audio", "subtitle", "data", "attachment"):
            continue
        try:
            copies[s.index] = output.add_stream_from_template(s)
            info.copied.append(f"{s.type} {s.codec_context.name if s.codec_context else ''}".strip())
        except (ValueError, av.error.FFmpegError, TypeError) as exc:
            info.dropped.append(f"{s.type} #{s.index} ({exc})")
    if info.dropped:
        print(f"warning: {path}: streams the output cannot hold are left out: {'; '.join(info.dropped)}", file=sys.stderr)
    info.rotation = _rotation(path)
    if info.rotation:
        video.set_display_rotation(info.rotation)
    pending: list[tuple[Frame, int | None]] = []
    count = 0

    def flush() -> None:
        if not pending:
            return
        results = process([f for f, _ in pending])
        if len(results) != len(pending):
            raise RuntimeError(f"the frame callback returned {len(results)} frames for {len(pending)}")
        for (frame, pts), rgb in zip(pending, results):
            stored = np.rot90(rgb, -(info.rotation // 90)) if info.rotation else rgb
            if (stored.shape[1], stored.shape[0]) != out_size:
                stored = cv2.resize(stored, out_size, interpolation=cv2.INTER_AREA)
            out = av.VideoFrame.from_ndarray(np.ascontiguousarray(stored),
                                             format="rgb48le" if stored.dtype == np.uint16 else "rgb24")
            out.pts, out.time_base = pts, src.time_base
            output.mux(video.encode(out))
        if progress:
            progress(len(pending))
        pending.clear()

    try:
        for packet in container.demux():
            if packet.stream.index in copies:
                if packet.dts is not None:
                    packet.stream = copies[packet.stream.index]
                    output.mux(packet)
                continue
            if packet.stream is not src:
                continue
            for frame in packet.decode():
                pixels = frame.to_ndarray(format="rgb48le" if info.bit_depth > 8 else "rgb24")
                if info.rotation:
                    pixels = np.ascontiguousarray(np.rot90(pixels, info.rotation // 90))
                time = float((frame.pts or 0) * src.time_base) - float((src.start_time or 0) * src.time_base)
                pending.append((Frame(count, time, pixels), frame.pts))
                count += 1
                if len(pending) >= chunk:
                    flush()
    except av.error.FFmpegError as exc:
        raise VideoError(f"{path}: corrupt or truncated at frame {count} ({exc.strerror or exc})") from None
    flush()
    output.mux(video.encode(None))
    info.frames = count
    return info
