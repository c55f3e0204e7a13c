"""The whole-photo face pipeline: detect -> mesh -> align -> region maps, and paste back.

Both restorers, the CLI and the Triton pre/post-processing models call this one implementation.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields

import cv2
import numpy as np

from runtime.face.align import template, similarity, transform_points, warp_face
from runtime.face.detect import Detection, Net, detect_faces, to_model_range
from runtime.face.mesh import PRESENCE_THRESHOLD, mesh_faces
from runtime.face.paste import colour_fix, face_mask, feather_mask, paste_face
from runtime.face.regions import five_points, label_map, region_boxes
from runtime.imageio import Photo, to_float, to_uint8


@dataclass
class FaceOptions:
    """User-facing knobs of the face pipeline (facexlib's FaceRestoreHelper has the same ones)."""

    size: int = 512                 # aligned crop side
    template: str = "ffhq"          # 5-point template the crop is aligned on (runtime.face.align.TEMPLATES)
    min_score: float = 0.5          # detector score threshold
    min_face_size: float = 20.0     # faces whose detection box is narrower (photo pixels) are skipped
    only_center_face: bool = False  # keep only the face nearest the photo centre
    aligned: bool = False           # input photos are already aligned faces: skip detection
    upscale: float = 1.0            # output photo is this many times larger
    paste_mask: str = "face"        # "face": a soft mask shaped from the mesh's face oval; "square": the crop
    colour_fix: str = "wavelet"     # restored faces keep the input's colours: "wavelet", "adain" or "none"


@dataclass
class Face:
    """One face found in a photo (photo pixels)."""

    detection: Detection
    landmarks: np.ndarray   # [468, 3]
    presence: float


@dataclass
class FaceBatch:
    """All faces of one photo, aligned: what both restorers and the losses consume."""

    crops: np.ndarray       # uint8 [N, S, S, 3] RGB, warped from the photo's 8-bit pixels
    affines: np.ndarray     # float64 [N, 2, 3], photo -> crop
    points5: np.ndarray     # float32 [N, 5, 2], aligned pixels
    landmarks: np.ndarray   # float32 [N, 468, 2], aligned pixels
    label_maps: np.ndarray  # uint8 [N, S, S], ids in runtime.face.regions.LABELS
    boxes: np.ndarray       # float32 [N, 3, 4], left eye, right eye, mouth (x0, y0, x1, y1)
    faces: list[Face] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.crops)

    def part(self, start: int, stop: int) -> FaceBatch:
        """Faces start..stop of this batch."""
        return FaceBatch(**{n: getattr(self, n)[start:stop] for n in _ARRAYS}, faces=self.faces[start:stop])

    @staticmethod
    def join(batches: list[FaceBatch]) -> FaceBatch:
        """The faces of several batches (e.g. of several frames) as one (a frame without faces adds empty arrays)."""
        return FaceBatch(**{n: np.concatenate([getattr(b, n) for b in batches]) for n in _ARRAYS},
                         faces=[f for b in batches for f in b.faces])

    def model_input(self) -> np.ndarray:
        """The crops as float32 NCHW in [-1, 1]."""
        return to_model_range(self.crops)

    def require_size(self, size: int, restorer: str) -> None:
        """ValueError unless the crops are size x size (the restorer's fixed input)."""
        if self.crops.shape[1] != size:
            raise ValueError(f"{restorer} restores {size}x{size} faces; got {self.crops.shape[1]} (use --size {size})")


_ARRAYS = [f.name for f in fields(FaceBatch) if f.name != "faces"]


def to_crops(restored: np.ndarray) -> np.ndarray:
    """Network output NCHW in [-1, 1] -> crops uint8 NHWC RGB, clipped and rounded
    (model_input's inverse): every restorer, in-process or served, quantizes here."""
    return to_uint8((restored.transpose(0, 2, 3, 1) + 1.0) / 2.0)


@dataclass
class Skipped:
    """A detection that was not restored, and why."""

    detection: Detection
    reason: str


class FacePipeline:
    """Detect, mesh, align and paste back, with the detector and mesh given as networks
    (callables: float32 NCHW batch -> tuple of arrays), whatever backend runs them."""

    def __init__(self, detector: Net, mesh: Net, options: FaceOptions | None = None) -> None:
        self.detector, self.mesh = detector, mesh
        self.options = options or FaceOptions()

    def find(self, photo: Photo) -> tuple[list[Face], list[Skipped]]:
        """Faces of a photo (the mesh a few faces a call) and the detections left out, with reasons."""
        opts = self.options
        rgb8 = photo.rgb8()
        if opts.aligned:
            detections = [_aligned_detection(*photo.size)]
        else:
            detections = detect_faces(self.detector, rgb8, opts.min_score, opts.min_face_size)
        skipped = [Skipped(d, f"face {np.floor(d.width * 10) / 10:g}px wide < --min-face-size {opts.min_face_size:g}")
                   for d in detections if d.width < opts.min_face_size and not opts.aligned]
        detections = [d for d in detections if d.width >= opts.min_face_size or opts.aligned]
        if opts.only_center_face and len(detections) > 1:
            centre = np.array(photo.size) / 2
            best = min(detections, key=lambda d: float(np.linalg.norm(d.center - centre)))
            skipped += [Skipped(d, "not the centre face (--only-center-face)") for d in detections if d is not best]
            detections = [best]
        landmarks, presence = mesh_faces(self.mesh, rgb8, detections)
        faces = []
        for d, lm, p in zip(detections, landmarks, presence):
            if p < PRESENCE_THRESHOLD and not opts.aligned:
                skipped.append(Skipped(d, f"face mesh presence {p:.2f} < {PRESENCE_THRESHOLD}"))
            else:
                faces.append(Face(d, lm, float(p)))
        return faces, skipped

    def align(self, photo: Photo, faces: list[Face]) -> FaceBatch:
        """Aligned crops, affines, points, region maps and eye/mouth boxes of `faces`."""
        size = self.options.size
        n = len(faces)
        crops = np.zeros((n, size, size, 3), np.uint8)
        affines = np.zeros((n, 2, 3), np.float64)
        points5 = np.zeros((n, 5, 2), np.float32)
        landmarks = np.zeros((n, 468, 2), np.float32)
        label_maps = np.zeros((n, size, size), np.uint8)
        boxes = np.zeros((n, 3, 4), np.float32)
        for i, face in enumerate(faces):
            if self.options.aligned:
                w, h = photo.size
                affines[i] = [[size / w, 0, 0], [0, size / h, 0]]
            else:
                affines[i] = similarity(five_points(face.landmarks), template(size, self.options.template))
            crops[i] = warp_face(photo.rgb8(), affines[i], size)
            landmarks[i] = transform_points(affines[i], face.landmarks[:, :2])
            points5[i] = five_points(landmarks[i])
            label_maps[i] = label_map(landmarks[i], size)
            boxes[i] = region_boxes(landmarks[i])
        return FaceBatch(crops, affines, points5, landmarks, label_maps, boxes, faces)

    def paste_masks(self, batch: FaceBatch) -> np.ndarray | None:
        """The soft masks this pipeline's options paste through (paste_masks)."""
        return paste_masks(batch, self.options)

    def paste(self, photo: Photo, batch: FaceBatch, restored: np.ndarray, background: np.ndarray | None = None) -> Photo:
        """`restored` pasted back with this pipeline's options (paste)."""
        return paste(photo, batch, restored, self.options, background)


def paste_masks(batch: FaceBatch, options: FaceOptions) -> np.ndarray | None:
    """The soft masks [N, S, S] the faces are pasted through (face-shaped, from the region
    maps); None for the square (paste_faces' default)."""
    return np.stack([face_mask(m) for m in batch.label_maps]) if options.paste_mask == "face" else None


def paste(photo: Photo, batch: FaceBatch, restored: np.ndarray, options: FaceOptions,
          background: np.ndarray | None = None) -> Photo:
    """The photo with restored faces [N, S, S, 3] (uint8 RGB) blended back, upscaled by
    the options' factor; grayscale, alpha and bit depth of the input are kept. Each face is
    first colour-fixed against the photo's own aligned face, then pasted through the face
    mask (from batch.label_maps) or the square. Outside the masks the photo is untouched, and
    its SourceFormat goes with it (a JPEG is encoded with its own tables).
    The frame stays in the photo's samples (uint8 / uint16): one face at a time, only its crop
    and its own region of the photo are float (runtime/face/paste.py: paste_face).
    `background` (RGB at the output size in the photo's sample dtype, e.g. from a background
    upsampler) replaces the Lanczos-resized photo the faces are pasted on.
    Needs no networks: the Triton postprocess model calls it as the in-process path does."""
    up = options.upscale
    w, h = photo.size
    dsize = (round(w * up), round(h * up))
    if background is not None:
        if background.shape[:2] != dsize[::-1] or background.dtype != photo.pixels.dtype:
            raise ValueError(f"background is {background.shape[1]}x{background.shape[0]} {background.dtype}, "
                             f"the output {dsize[0]}x{dsize[1]} {photo.pixels.dtype}")
        out = background.copy()   # the faces are pasted in place
    elif up != 1:   # saturated to the sample range (Lanczos overshoots)
        out = cv2.resize(photo.pixels, dsize, interpolation=cv2.INTER_LANCZOS4)
    else:         # the output starts as the photo's own pixels (the photo is not modified)
        out = photo.pixels.copy()
    alpha = photo.alpha
    if alpha is not None and up != 1:
        alpha = cv2.resize(alpha, dsize, interpolation=cv2.INTER_LINEAR)
    size = restored.shape[1] if len(restored) else options.size
    for face, affine, labels in zip(restored, batch.affines, batch.label_maps):
        fixed = colour_fix(to_float(face), warp_face(photo.pixels, affine, size, as_float=True), options.colour_fix)
        mask = face_mask(labels) if options.paste_mask == "face" else feather_mask(size)
        scaled = affine.copy()
        scaled[:, :2] /= up
        paste_face(out, fixed, scaled, mask)
    return Photo(pixels=out, alpha=alpha, grayscale=photo.grayscale, source=photo.source)


def _aligned_detection(width: int, height: int) -> Detection:
    """A detection standing for an already aligned face: the template's eyes, and a box that
    makes the mesh crop (1.5x its long side) cover the face."""
    sx, sy = width / 512, height / 512
    eyes = template(512)[:2] * (sx, sy)
    box = np.array([136 * sx, 150 * sy, 376 * sx, 450 * sy])
    keypoints = np.vstack([eyes, np.zeros((4, 2))])
    return Detection(box=box, keypoints=keypoints, score=1.0)
