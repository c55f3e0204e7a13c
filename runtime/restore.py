"""The main job: restore every face of every photo in files/folders into an output folder."""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import cv2
import numpy as np

from runtime.face.pipeline import FacePipeline
from runtime.files import write_atomic
from runtime.imageio import DEFAULT_MAX_PIXELS, ENCODERS, ImageError, Photo, encode_image, read_image
from runtime.job import JobReport, PhotoResult
from runtime.restorers import Restorer
from runtime.restorers.base import DEFAULT_BATCH_FACES, restore_in_batches
from runtime.video import VIDEO_SUFFIXES, VideoError

if TYPE_CHECKING:
    from runtime.upsampler import BackgroundUpsampler

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"}


@dataclass
class VideoOptions:
    """How clips are restored (runtime/video/restore.py)."""

    detect_every: int = 1     # run the detector on every k-th frame, track faces in between


def collect_inputs(paths: list[Path]) -> list[tuple[Path, Path]]:
    """(file, path relative to the output folder) for files given directly and image and video
    files found (recursively) in folders. Raises FileNotFoundError for a path that does not exist."""
    found = []
    for p in paths:
        if p.is_dir():
            found += [(f, f.relative_to(p)) for f in sorted(p.rglob("*"))
                      if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES]
        elif p.exists():
            found.append((p, Path(p.name)))
        else:
            raise FileNotFoundError(f"{p}: no such file or folder")
    return found


def output_path(out_dir: Path, rel: Path) -> Path:
    """Where a restored photo or clip goes: same relative path and format; PNG if a photo's
    format can't be written."""
    suffix = rel.suffix.lower() if rel.suffix.lower() in set(ENCODERS) | VIDEO_SUFFIXES else ".png"
    return out_dir / rel.with_suffix(suffix)


def comparison(before: Photo, after: Photo) -> np.ndarray:
    """Before | after side by side (uint8 RGB), the before image resized to the after's size."""
    a = after.rgb8()
    b = cv2.resize(before.rgb8(), (a.shape[1], a.shape[0]), interpolation=cv2.INTER_LANCZOS4)
    return np.concatenate([b, np.full((a.shape[0], 8, 3), 255, np.uint8), a], axis=1)


def restore_photo(photo: Photo, pipeline: FacePipeline, restorer: Restorer, upsampler: BackgroundUpsampler | None = None,
                  batch_faces: int = DEFAULT_BATCH_FACES):
    """Find, align, restore (at most `batch_faces` faces per restorer call) and paste back the
    faces of one photo, on the background upsampler's output of the photo when one is given.
    Returns (restored photo, face batch, restored crops, skipped detections)."""
    faces, skipped = pipeline.find(photo)
    batch = pipeline.align(photo, faces)
    restored = restore_in_batches(restorer, batch, batch_faces)
    background = None if upsampler is None else upsampler(photo.pixels, pipeline.options.upscale)
    return pipeline.paste(photo, batch, restored, background), batch, restored, skipped


class _NoBar:
    """The progress bar where tqdm would draw none (stderr is no terminal: a pipe, a log file):
    then tqdm is not imported at all (with importlib.metadata and a multiprocessing lock, 35 ms
    of a one-photo run's start)."""

    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def _progress_bar(total: int, desc: str):
    """tqdm's bar over `total` files on stderr when it is a terminal, else _NoBar."""
    if not sys.stderr.isatty():
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="photo", file=sys.stderr)


def note(line: str) -> None:
    """A line on stderr, above the progress bar when one is drawn."""
    bars = sys.modules.get("tqdm")
    if bars is None:
        print(line, file=sys.stderr)
    else:
        bars.tqdm.write(line, file=sys.stderr)


def run_job(inputs: list[Path], out_dir: Path, report: JobReport,
            restore_one: Callable[[Path, Path, Path, PhotoResult], None],
            errors: tuple[type[Exception], ...], concurrency: int = 1) -> JobReport:
    """The job of every front end that writes a folder (`restore` in-process, the client): every
    photo and clip of `inputs` (files/folders) is given to `restore_one(path, relative path,
    target, result)`, which writes `target` (same relative path and format under `out_dir`, never
    an input) and fills `result`; one of `errors` is the file's one-line error and the rest go on.
    `concurrency` > 1: clips one at a time first, then photos that many at once. The report's
    notices are shown first, every file's result and seconds go into it, and it is written as
    report.json."""
    files = collect_inputs(inputs)
    input_set = {f.resolve() for f, _ in files}
    for line in report.notices():
        note(line)
    bar = _progress_bar(len(files), f"restore ({report.restorer})")

    def one(item: tuple[Path, Path]) -> PhotoResult:
        path, rel = item
        result = PhotoResult(input=str(path))
        target = output_path(out_dir, rel)
        t0 = time.perf_counter()
        try:
            if target.resolve() in input_set:
                raise ImageError(f"{path}: output {target} would overwrite an input; choose another --out")
            restore_one(path, rel, target, result)
            result.seconds = result.seconds or time.perf_counter() - t0
        except errors as exc:
            result.error = str(exc)
            note(f"error: {exc}")
        bar.update(1)
        return result

    start = time.perf_counter()
    try:
        if concurrency <= 1:
            report.photos = [one(f) for f in files]
        else:
            clips = [f for f in files if f[0].suffix.lower() in VIDEO_SUFFIXES]   # their frames in parallel
            report.photos = [one(c) for c in clips]
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(concurrency) as pool:
                report.photos += list(pool.map(one, [f for f in files if f not in clips]))
    finally:
        bar.close()
    report.wall_s = time.perf_counter() - start
    report.write(out_dir)
    return report


def read_ahead(inputs: list[Path], max_pixels: int) -> Callable[[Path, int], Photo]:
    """read_image, with the first photo file of `inputs` already being read and decoded in a
    thread: started before the restorer and the face networks load, it runs while they do
    (OpenCV decodes outside the GIL, as OpenVINO compiles and ONNX Runtime builds its sessions).
    Any other path is read when asked for; a failed read raises when asked for, as read_image."""
    import threading   # (not concurrent.futures: it imports logging, 6 ms of a 0.35 s start)

    first = next((p for p in inputs if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()), None)
    ahead: dict[Path, tuple[threading.Thread, list]] = {}
    if first is not None:
        box: list = []   # [(photo, None)] or [(None, the exception)] once the read ends

        def work() -> None:
            try:
                box.append((read_image(first, max_pixels), None))
            except BaseException as exc:   # raised again where the photo is asked for
                box.append((None, exc))

        thread = threading.Thread(target=work, name="read-ahead", daemon=True)
        thread.start()
        ahead[first] = (thread, box)

    def read(path: Path, max_photo_pixels: int) -> Photo:
        entry = ahead.pop(path, None) if max_photo_pixels == max_pixels else None
        if entry is None:
            return read_image(path, max_photo_pixels)
        entry[0].join()
        photo, exc = entry[1][0]
        if exc is not None:
            raise exc
        return photo

    return read


def restore_files(inputs: list[Path], out_dir: Path, pipeline: FacePipeline, restorer: Restorer,
                  save_crops: bool = False, compare: bool = False, max_pixels: int = DEFAULT_MAX_PIXELS,
                  jpeg_quality: int | None = None, upsampler: BackgroundUpsampler | None = None,
                  video: VideoOptions = VideoOptions(), report: JobReport | None = None,
                  batch_faces: int = DEFAULT_BATCH_FACES,
                  read: Callable[[Path, int], Photo] = read_image) -> JobReport:
    """Restore every photo and clip in-process (run_job), at most `batch_faces` faces per restorer
    call (a clip's chunk is as many frames); a photo without faces is copied through.
    A JPEG is written with the input's quantisation tables, subsampling, EXIF and ICC, or at
    `jpeg_quality` when given. `report` (backend, settings) gets the restorer's provenance.
    Photos are read with `read(path, max_pixels)` (read_image, or read_ahead's)."""
    report = report or JobReport(restorer.name, "in-process")
    report.provenance = restorer.provenance

    def restore_one(path: Path, rel: Path, target: Path, result: PhotoResult) -> None:
        if path.suffix.lower() in VIDEO_SUFFIXES:
            _restore_clip(path, target, pipeline, restorer, upsampler, video, batch_faces, result)
            return
        photo = read(path, max_pixels)
        out, batch, restored, skipped = restore_photo(photo, pipeline, restorer, upsampler, batch_faces)
        result.faces, result.skipped = len(batch), [s.reason for s in skipped]
        if not len(batch) and pipeline.options.upscale == 1 and upsampler is None and target.suffix == path.suffix.lower():
            target.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(target, path.read_bytes())  # no face: the photo is copied through
        else:
            write_atomic(target, encode_image(out, target.suffix, jpeg_quality))
        result.output = str(target)
        if save_crops:
            _write_crops(out_dir / "crops" / rel.parent, rel.stem, batch.crops, restored)
        if compare:
            write_atomic(out_dir / "compare" / rel.with_suffix(".jpg"),
                         cv2.imencode(".jpg", comparison(photo, out)[..., ::-1])[1].tobytes())
        if not len(batch):
            note(f"note: {path}: no face found, copied through")

    return run_job(inputs, out_dir, report, restore_one, (ImageError, VideoError))


def _restore_clip(path: Path, target: Path, pipeline: FacePipeline, restorer: Restorer,
                  upsampler: BackgroundUpsampler | None, video: VideoOptions, batch_faces: int,
                  result: PhotoResult) -> None:
    """One clip into `target` (same container); its frames, faces and speed go into `result`."""
    from runtime.video.restore import restore_video

    clip = restore_video(path, target, pipeline, restorer, batch_faces, video.detect_every, upsampler)
    result.output, result.faces, result.seconds = clip.output, clip.faces, clip.seconds
    result.video = clip.report()
    note(clip.note())


def _write_crops(folder: Path, stem: str, crops: np.ndarray, restored: np.ndarray) -> None:
    """The aligned input crop and the restored crop of each face (uint8 RGB), as PNG."""
    for i, (crop, res) in enumerate(zip(crops, restored)):
        for tag, img in (("aligned", crop), ("restored", res)):
            ok, buf = cv2.imencode(".png", img[..., ::-1])
            write_atomic(folder / f"{stem}_face{i:02d}_{tag}.png", buf.tobytes())

