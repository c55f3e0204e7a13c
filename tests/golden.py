"""Golden landmarks: the face pipeline run with the ORIGINAL MediaPipe .tflite graphs (ai-edge-litert)
on the sample photos. Regenerate with `.venv/bin/python -m tests.golden` (needs the wheel that
`make test` downloads); tests compare the PyTorch-port pipeline against the stored file."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from runtime.face import FacePipeline
from runtime.face.regions import five_points
from runtime.files import write_atomic
from runtime.imageio import Photo, read_image
from runtime.samples import ASTRONAUT, GRACE_HOPPER, group_photo
from training.convert_mediapipe import DETECTOR, MESH, read_tflite, run_tflite

GOLDEN = Path(__file__).resolve().parent / "data" / "golden_landmarks.json"


def golden_photos() -> dict[str, Photo]:
    """The photos the golden file covers."""
    return {"astronaut": read_image(ASTRONAUT), "grace_hopper": read_image(GRACE_HOPPER),
            "group": Photo(pixels=group_photo())}


def tflite_pipeline() -> FacePipeline:
    """The face pipeline with the original .tflite networks instead of the ports."""
    def net(spec):
        data = read_tflite(spec)
        return lambda x: run_tflite(data, (x.transpose(0, 2, 3, 1) + 1) / 2, spec)

    return FacePipeline(net(DETECTOR), net(MESH))


def landmarks_of(pipeline: FacePipeline, photo: Photo) -> dict:
    """Boxes, 5 points and 468 mesh points (photo pixels) of every face, sorted left to right."""
    faces, _ = pipeline.find(photo)
    faces.sort(key=lambda f: float(f.detection.box[0]))
    batch = pipeline.align(photo, faces)
    return {"boxes": [f.detection.box.tolist() for f in faces],
            "points5": [five_points(f.landmarks).tolist() for f in faces],
            "landmarks": [np.round(f.landmarks[:, :2], 3).tolist() for f in faces],
            "affines": batch.affines.tolist()}


if __name__ == "__main__":
    pipe = tflite_pipeline()
    data = {name: landmarks_of(pipe, photo) for name, photo in golden_photos().items()}
    write_atomic(GOLDEN, json.dumps(data).encode())
    print(f"wrote {GOLDEN}: " + ", ".join(f"{k}: {len(v['boxes'])} faces" for k, v in data.items()))
