"""The main job: restore every face of every photo in files/folders into an output folder."""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from runtime.face.pipeline import FacePipeline
from runtime.files import write_atomic
from runtime.imageio import DEFAULT_MAX_PIXELS, ENCODERS, ImageError, Photo, encode_image, read_image
from runtime.restorers import Restorer
from runtime.upsampler import BackgroundUpsampler
from runtime.video import VIDEO_SUFFIXES, VideoError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"}


@dataclass
class VideoOptions:
    """How clips are restored (runtime/video/restore.py)."""

    batch_faces: int = 8      # faces (of many frames) per restorer call; also frames per chunk
    detect_every: int = 1     # run the detector on every k-th frame, track faces in between


@dataclass
class PhotoResult:
    """What happened to one input photo."""

    input: str
    output: str | None = None
    faces: int = 0
    skipped: list[str] = field(default_factory=list)
    error: str | None = None
    video: dict | None = None     # a clip's frames, faces, face tracks, speed, encoder, copied streams


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


def restore_photo(photo: Photo, pipeline: FacePipeline, restorer: Restorer, upsampler: BackgroundUpsampler | None = None):
    """Find, align, restore (one batch) and paste back the faces of one photo, on the
    background upsampler's output of the photo when one is given.
    Returns (restored photo, face batch, restored crops, skipped detections)."""
    faces, skipped = pipeline.find(photo)
    batch = pipeline.align(photo, faces)
    restored = restorer(batch) if len(batch) else batch.crops
    background = None if upsampler is None else upsampler(photo.rgb, pipeline.options.upscale)
    return pipeline.paste(photo, batch, restored, background), batch, restored, skipped


def restore_files(inputs: list[Path], out_dir: Path, pipeline: FacePipeline, restorer: Restorer,
                  save_crops: bool = False, compare: bool = False, max_pixels: int = DEFAULT_MAX_PIXELS,
                  jpeg_quality: int | None = None, upsampler: BackgroundUpsampler | None = None,
                  video: VideoOptions = VideoOptions()) -> list[PhotoResult]:
    """Restore every photo and clip; a bad file is reported (one line on stderr) and the batch
    goes on. Outputs are written atomically and never over an input; a JPEG is written with the
    input's quantisation tables, subsampling, EXIF and ICC, or at `jpeg_quality` when given. A
    report.json lists every file."""
    files = collect_inputs(inputs)
    input_set = {f.resolve() for f, _ in files}
    results = []
    origin = restorer.provenance
    if origin is not None and (warning := origin.warning(restorer.name)):
        tqdm.write(warning, file=sys.stderr)
    if origin is not None and (notice := origin.licence_notice(restorer.name)):
        tqdm.write(notice, file=sys.stderr)
    for path, rel in tqdm(files, desc=f"restore ({restorer.name})", unit="photo", disable=None):
        result = PhotoResult(input=str(path))
        results.append(result)
        target = output_path(out_dir, rel)
        try:
            if target.resolve() in input_set:
                raise ImageError(f"{path}: output {target} would overwrite an input; choose another --out")
            if path.suffix.lower() in VIDEO_SUFFIXES:
                _restore_clip(path, target, pipeline, restorer, upsampler, video, result)
                continue
            photo = read_image(path, max_pixels)
            out, batch, restored, skipped = restore_photo(photo, pipeline, restorer, upsampler)
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
                tqdm.write(f"note: {path}: no face found, copied through", file=sys.stderr)
        except (ImageError, VideoError) as exc:
            result.error = str(exc)
            tqdm.write(f"error: {exc}", file=sys.stderr)
    report = {"restorer": restorer.name, "provenance": None if origin is None else origin.to_dict(),
              "untrained": origin is not None and not origin.trained,
              "photos": [r.__dict__ for r in results]}
    write_atomic(out_dir / "report.json", json.dumps(report, indent=2).encode())
    return results


def _restore_clip(path: Path, target: Path, pipeline: FacePipeline, restorer: Restorer,
                  upsampler: BackgroundUpsampler | None, video: VideoOptions, result: PhotoResult) -> None:
    """One clip into `target` (same container); its frames, faces and speed go into `result`."""
    from runtime.video.restore import restore_video

    clip = restore_video(path, target, pipeline, restorer, video.batch_faces, video.detect_every, upsampler)
    result.output, result.faces = clip.output, clip.faces
    result.video = {k: getattr(clip, k) for k in ("frames", "tracks", "seconds", "fps", "encoder", "copied")}
    tqdm.write(f"note: {path}: {clip.frames} frames, {clip.faces} faces ({clip.tracks} face tracks) in "
               f"{clip.seconds:.1f} s ({clip.fps:.2f} frames/s), {clip.encoder}, copied: "
               f"{', '.join(clip.copied) or 'no other streams'}", file=sys.stderr)


def _write_crops(folder: Path, stem: str, crops: np.ndarray, restored: np.ndarray) -> None:
    """The aligned input crop and the restored crop of each face (uint8 RGB), as PNG."""
    for i, (crop, res) in enumerate(zip(crops, restored)):
        for tag, img in (("aligned", crop), ("restored", res)):
            ok, buf = cv2.imencode(".png", img[..., ::-1])
            write_atomic(folder / f"{stem}_face{i:02d}_{tag}.png", buf.tobytes())

