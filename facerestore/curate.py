"""`facerestore curate`: quality-first curation of HQ face photos (the AuthFace paper) into an aligned
face cache the trainers read: `<stem>_fNN.png` (aligned 512 crop), `<stem>_fNN.npz` (468 mesh
points, 5 points, eye/mouth boxes, region label map, all in aligned pixels), `<stem>_fNN.txt`
(the photo's caption, when a `<stem>.txt` lies beside it), and `report.json` saying what was
dropped and why. The npz also holds `label_maps_degraded`: the region maps of the face mesh run
on `degraded_maps` eq. 9 degradations of the crop, so the trainers feed the restorer the maps
inference will give it (found on the degraded photo), landmark errors included.

No-reference quality measures, computed offline on each face's detection box at the photo's own
resolution (the aligned crop is resampled, which would hide noise):
- noise: Immerkaer's fast estimate of the Gaussian noise sigma (8-bit levels) of the gray face;
- sharpness: variance of the Laplacian of the gray face (low = blurry).
"""
from __future__ import annotations

import io
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from runtime.face.pipeline import FaceOptions, FacePipeline
from runtime.files import write_atomic
from runtime.imageio import ImageError, frame_photo, read_image
from runtime.restore import collect_inputs
from training.data.degradations import DegradationConfig, degrade

_IMMERKAER = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)


def noise_sigma(gray: np.ndarray) -> float:
    """Immerkaer (1996) noise standard deviation of a gray image in 0..255."""
    h, w = gray.shape
    conv = cv2.filter2D(gray.astype(np.float32), -1, _IMMERKAER)[1:-1, 1:-1]
    return float(np.sqrt(np.pi / 2) * np.abs(conv).sum() / (6 * (w - 2) * (h - 2)))


def sharpness(gray: np.ndarray) -> float:
    """Variance of the Laplacian of a gray image in 0..255."""
    return float(cv2.Laplacian(gray.astype(np.float32), cv2.CV_32F).var())


@dataclass
class CurateOptions:
    """Thresholds of the curation."""

    min_face: float = 128.0       # detection box width in photo pixels
    max_noise: float = 6.0        # Immerkaer sigma, 8-bit levels
    min_sharpness: float = 30.0   # Laplacian variance
    degraded_maps: int = 4        # region maps from the mesh on this many degraded copies of each face


def degraded_label_maps(pipeline: FacePipeline, crop: np.ndarray, copies: int, seed: int) -> np.ndarray:
    """Region maps [copies, S, S] of an aligned uint8 face, each from the face mesh run on an
    eq. 9 degradation of it (seeded): what inference sees."""
    aligned = FacePipeline(pipeline.detector, pipeline.mesh, FaceOptions(size=crop.shape[0], aligned=True))
    maps = []
    for k in range(copies):
        lq, _ = degrade(crop, 7_000_003 + 1000 * seed + k, DegradationConfig(clean_fraction=0.0))
        photo = frame_photo(lq)
        maps.append(aligned.align(photo, aligned.find(photo)[0]).label_maps[0])
    return np.stack(maps) if maps else np.zeros((0, *crop.shape[:2]), np.uint8)


def curate(inputs: list[Path], out: Path, pipeline: FacePipeline, opts: CurateOptions) -> dict:
    """Align every face of every photo; keep those passing the thresholds; write the cache."""
    report = {"options": opts.__dict__, "kept": [], "dropped": []}
    for path, rel in tqdm(collect_inputs(inputs), desc="curate", unit="photo", disable=None):
        try:
            photo = read_image(path)
        except ImageError as exc:
            report["dropped"].append({"photo": str(path), "reason": str(exc)})
            continue
        faces, skipped = pipeline.find(photo)
        if not faces:
            report["dropped"].append({"photo": str(path), "reason": "no face found"})
        batch = pipeline.align(photo, faces)
        caption = path.with_suffix(".txt")
        gray_photo = cv2.cvtColor(photo.rgb8(), cv2.COLOR_RGB2GRAY)
        for i, face in enumerate(faces):
            name = f"{str(rel.with_suffix('')).replace('/', '__')}_f{i:02d}"
            crop = batch.crops[i]
            x0, y0, x1, y1 = np.clip(np.round(face.detection.box), 0, None).astype(int)
            gray = gray_photo[y0:y1, x0:x1]
            stats = {"face_px": round(face.detection.width, 1), "noise": round(noise_sigma(gray), 2),
                     "sharpness": round(sharpness(gray), 1)}
            reason = ("small face" if stats["face_px"] < opts.min_face else
                      "noisy" if stats["noise"] > opts.max_noise else
                      "blurry" if stats["sharpness"] < opts.min_sharpness else None)
            entry = {"photo": str(path), "face": name, **stats}
            if reason:
                report["dropped"].append({**entry, "reason": reason})
                continue
            write_atomic(out / f"{name}.png", cv2.imencode(".png", crop[..., ::-1])[1].tobytes())
            buf = io.BytesIO()
            np.savez_compressed(buf, landmarks=batch.landmarks[i], points5=batch.points5[i], boxes=batch.boxes[i],
                                label_map=batch.label_maps[i],
                                label_maps_degraded=degraded_label_maps(pipeline, crop, opts.degraded_maps, i))
            write_atomic(out / f"{name}.npz", buf.getvalue())
            if caption.is_file():
                write_atomic(out / f"{name}.txt", caption.read_bytes())
            report["kept"].append(entry)
    write_atomic(out / "report.json", json.dumps(report, indent=2).encode())
    print(f"kept {len(report['kept'])} faces in {out}; dropped {len(report['dropped'])}: "
          + ", ".join(f"{r} {sum(d['reason'] == r for d in report['dropped'])}"
                      for r in sorted({d['reason'] for d in report['dropped']})), file=sys.stderr)
    return report
