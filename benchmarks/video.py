"""Clips per second on this machine: a real sample photo panned and zoomed into a short clip
(with a synthesised audio track), restored end to end (decode, faces, restorer, paste, encode,
audio copied) with each setting in one run, saved as JSON + Markdown under
benchmarks/results/<device>/video.*: `python -m benchmarks.video`. The machine's load average is
recorded with the numbers (a shared machine gives other numbers from one minute to the next).
The clip maker is the tests' too (tests/test_video.py)."""
from __future__ import annotations

import argparse
import os
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from benchmarks.report import save
from benchmarks.timing import device_name, device_slug
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


@dataclass(frozen=True)
class Setting:
    label: str
    restorer: str = "identity"     # identity: the face pipeline alone
    detect_every: int = 1
    batch_faces: int = 8
    upsampler: bool = False        # the shipped compact x4 (training/weights/upsampler/)
    upscale: float = 1.0


# the face pipeline alone, the shipped SaFM, detection on every frame vs every 5th with tracking,
# and the shipped background upsampler; every network on ONNX Runtime (what `restore` runs on a CPU)
SETTINGS = (Setting("face pipeline only, detect every frame"),
            Setting("face pipeline only, detect every 5th", detect_every=5),
            Setting("SaFM demo, 8 faces a call", restorer="safm"),
            Setting("SaFM demo, detect every 5th", restorer="safm", detect_every=5),
            Setting("face pipeline + demo upsampler, x2", detect_every=5, upsampler=True, upscale=2.0))


def _job(setting: Setting):
    """(face pipeline, restorer, upsampler) of a setting, on ONNX Runtime from the ONNX cache."""
    from export.onnx_cache import onnx_dir
    from runtime.contracts.face import FACE_DETECTOR, FACE_MESH
    from runtime.contracts.upsampler import BG_UPSAMPLER
    from runtime.face import FaceOptions, onnx_face_pipeline
    from runtime.restorers import RESTORERS
    from runtime.restorers.factory import make_restorer
    from runtime.upsampler import onnx_upsampler
    from training.shipped import DEMO_UPSAMPLER

    pipeline = onnx_face_pipeline(onnx_dir(FACE_DETECTOR), onnx_dir(FACE_MESH), FaceOptions(upscale=setting.upscale))
    spec = RESTORERS[setting.restorer]
    restorer = make_restorer(setting.restorer, None, "onnxruntime", {c.name: onnx_dir(c) for c in spec.networks})
    upsampler = onnx_upsampler(onnx_dir(BG_UPSAMPLER, DEMO_UPSAMPLER), DEMO_UPSAMPLER) if setting.upsampler else None
    return pipeline, restorer, upsampler


def bench_video(out_dir: Path, frames: int = 24, size: tuple[int, int] = (320, 240)) -> dict:
    """frames/s of the clip job on a Grace Hopper clip for each of SETTINGS; writes video.json/.md."""
    import tempfile

    from runtime.samples import GRACE_HOPPER
    from runtime.video.restore import restore_video

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        clip = make_clip(Path(tmp) / "clip.mp4", GRACE_HOPPER, frames=frames, size=size)
        for setting in SETTINGS:
            pipeline, restorer, upsampler = _job(setting)
            load = os.getloadavg()[0]
            result = restore_video(clip, Path(tmp) / "out.mp4", pipeline, restorer, setting.batch_faces,
                                   setting.detect_every, upsampler)
            rows.append({**asdict(setting), "frames": result.frames, "faces": result.faces,
                         "seconds": round(result.seconds, 2), "frames_per_s": round(result.fps, 3),
                         "load_average_1min": round(load, 1)})
    result = {"device": device_name(), "cpu_count": os.cpu_count(), "clip": f"{frames} frames {size[0]}x{size[1]} "
              "H.264 + AAC (Grace Hopper panned and zoomed)", "rows": rows}
    lines = [f"# Clips on {device_name()} ({os.cpu_count()} CPUs, shared: load average per row)", "",
             f"Clip: {result['clip']}; end to end (decode, faces, restorer, paste, encode, audio copied); "
             "every network on ONNX Runtime.", "",
             "| setting | frames/s | s | load avg |", "|---|---|---|---|"]
    lines += [f"| {r['label']} | {r['frames_per_s']:.2f} | {r['seconds']:.1f} | {r['load_average_1min']} |"
              for r in rows]
    save(out_dir, "video", result, "\n".join(lines) + "\n")
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.video", description=__doc__)
    p.add_argument("--out", type=Path, default=None, help="results folder (default: benchmarks/results/<device>)")
    p.add_argument("--frames", type=int, default=24, help="clip length (default: %(default)s)")
    args = p.parse_args(argv)
    bench_video(args.out or Path("benchmarks/results") / device_slug(), args.frames)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
