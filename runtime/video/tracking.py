"""Faces followed through a clip: detection on every `detect_every`-th frame (and whenever no
face is followed), the face mesh on the other frames from each face's previous landmarks (as
MediaPipe's face-mesh graph tracks), detections matched to followed faces by overlap, and each
face's landmarks smoothed over time by a One-Euro filter so that its aligned crop and paste mask
do not jitter. A face that leaves (mesh presence below threshold, or no detection overlaps it on
a detection frame) ends its track; one that comes back starts a new track with a fresh filter."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from runtime.face.detect import Detection
from runtime.face.mesh import PRESENCE_THRESHOLD, mesh_faces
from runtime.face.pipeline import Face, FacePipeline, Skipped
from runtime.face.regions import five_points
from runtime.imageio import Photo
from runtime.video.smoothing import OneEuroFilter

MATCH_IOU = 0.3   # a detection continues a track when their boxes overlap at least this much


def landmark_box(landmarks: np.ndarray) -> np.ndarray:
    """(x0, y0, x1, y1) of the points."""
    return np.concatenate([landmarks[:, :2].min(0), landmarks[:, :2].max(0)])


def iou(a: np.ndarray, b: np.ndarray) -> float:
    inter = np.clip(np.minimum(a[2:], b[2:]) - np.maximum(a[:2], b[:2]), 0, None).prod()
    union = (a[2:] - a[:2]).prod() + (b[2:] - b[:2]).prod() - inter
    return float(inter / union) if union > 0 else 0.0


def tracking_detection(landmarks: np.ndarray, score: float) -> Detection:
    """A detection standing for a followed face: its landmarks' box and eyes, nose and mouth,
    which the mesh's region of interest is built from (runtime/face/mesh.py: roi_affine)."""
    p5 = five_points(landmarks)
    keypoints = np.vstack([p5[0], p5[1], p5[2], p5[3:5].mean(0), np.zeros((2, 2))])
    return Detection(box=landmark_box(landmarks), keypoints=keypoints, score=score)


@dataclass
class Track:
    id: int
    raw: np.ndarray                  # last unsmoothed landmarks [468, 3]: the next frame's region of interest
    detection: Detection
    presence: float
    smoother: OneEuroFilter = field(default_factory=OneEuroFilter)


class FaceTracker:
    """Faces of consecutive frames of one clip (`faces` in frame order)."""

    def __init__(self, pipeline: FacePipeline, detect_every: int = 1, smooth: bool = True) -> None:
        if detect_every < 1:
            raise ValueError(f"detect_every must be >= 1, not {detect_every}")
        self.pipeline, self.detect_every, self.smooth = pipeline, detect_every, smooth
        self.tracks: list[Track] = []
        self.next_id, self.frame = 0, 0
        self.started = 0     # tracks started so far: faces that came into view

    def faces(self, photo: Photo, time: float) -> tuple[list[Face], list[Skipped]]:
        """The faces of the next frame (landmarks smoothed), in track order, and the detections left out."""
        skipped: list[Skipped] = []
        if self.frame % self.detect_every == 0 or not self.tracks:
            found, skipped = self.pipeline.find(photo)
            self._match(found)
        else:
            self._follow(photo)
        self.frame += 1
        out = []
        for t in self.tracks:
            lm = t.raw
            if self.smooth:
                size = float(np.ptp(lm[:, 0]) + np.ptp(lm[:, 1])) / 2
                lm = t.smoother(lm, time, size).astype(np.float32)
            out.append(Face(t.detection, lm, t.presence))
        return out, skipped

    def _match(self, found: list[Face]) -> None:
        """Detected faces continue the track they overlap most (greedy by IoU), or start one."""
        pairs = sorted(((iou(landmark_box(f.landmarks), landmark_box(t.raw)), i, j)
                        for i, f in enumerate(found) for j, t in enumerate(self.tracks)), reverse=True)
        taken_f, taken_t, kept = set(), set(), []
        for score, i, j in pairs:
            if score < MATCH_IOU or i in taken_f or j in taken_t:
                continue
            taken_f.add(i), taken_t.add(j)
            track = self.tracks[j]
            track.raw, track.detection, track.presence = found[i].landmarks, found[i].detection, found[i].presence
            kept.append(track)
        for i, f in enumerate(found):
            if i not in taken_f:
                kept.append(Track(self.next_id, f.landmarks, f.detection, f.presence))
                self.next_id += 1
                self.started += 1
        self.tracks = sorted(kept, key=lambda t: t.id)

    def _follow(self, photo: Photo) -> None:
        """The mesh on each track's previous landmarks (one batch); faces it no longer sees end."""
        rois = [tracking_detection(t.raw, t.detection.score) for t in self.tracks]
        landmarks, presence = mesh_faces(self.pipeline.mesh, photo.rgb8(), rois)
        kept = []
        for t, lm, p, roi in zip(self.tracks, landmarks, presence, rois):
            if p >= PRESENCE_THRESHOLD:
                t.raw, t.detection, t.presence = lm, roi, float(p)
                kept.append(t)
        self.tracks = kept
