"""The two back ends behind the web page: in-process (the runtime's restore_photo and
restore_video) and a running Triton server (runtime.serving.client, a clip's frames through
runtime/video/served.py). Both take one uploaded photo's bytes, or a clip's file and its target,
and give a PhotoOutcome: the before/after images (a clip's middle frame), the encoded result (a
clip is written to its target), per-face views and the report entry."""
from __future__ import annotations

import contextlib
import io
import time
import threading
from collections import OrderedDict
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Protocol

import cv2
import numpy as np

from runtime.contracts.service import MAX_OUTPUT_PIXELS, MAX_UPLOAD_BYTES, SERVICES
from runtime.face.pipeline import FaceBatch, FaceOptions
from runtime.imageio import DEFAULT_MAX_PIXELS, ImageError, Photo, decode_image, encode_image, to_float, to_uint8
from runtime.job import ONNX_BACKENDS, PhotoResult, choose_backend, face_networks_on_onnxruntime
from runtime.photo_options import offered
from runtime.restore import output_path
from runtime.restorers import RESTORERS, RestorerOption

if TYPE_CHECKING:
    from runtime.contracts.base import NetworkContract
    from training.provenance import Provenance
    from runtime.video.container import Frame

Progress = Callable[[float, str], None]   # (fraction done, what is running)
FACE_TILE = 256                           # side of the per-face images shown


class RestoreFailed(ValueError):
    """A photo the back end could not restore; the message (one line) names the file and the cause."""


@dataclass
class FaceView:
    """One face as shown on the page: uint8 RGB images of one size; mask is None when the back
    end does not return it (a Triton server keeps its crops)."""

    before: np.ndarray
    after: np.ndarray
    mask: np.ndarray | None = None


@dataclass
class PhotoOutcome:
    """One restored photo: before (resized to the result's size) and after as uint8 RGB, the
    result encoded in the input's format (None for a clip: written to its target), per-face
    views, the report entry and notes."""

    before: np.ndarray
    after: np.ndarray
    encoded: bytes | None
    filename: str
    faces: list[FaceView]
    result: PhotoResult
    notes: list[str] = field(default_factory=list)


class Backend(Protocol):
    """What the page calls; `options(restorer)` lists the options the back end accepts; `served`:
    a server restores (its weights' notices say so)."""

    description: str
    served: bool

    def restorers(self) -> list[str]: ...

    def options(self, restorer: str) -> tuple[RestorerOption, ...]: ...

    def provenance(self, restorer: str, settings: dict[str, Any]) -> Provenance | None: ...

    def restore(self, name: str, data: bytes, restorer: str, settings: dict[str, Any], face: FaceOptions,
                progress: Progress) -> PhotoOutcome: ...

    def restore_clip(self, name: str, source: Path, target: Path, restorer: str, settings: dict[str, Any],
                     face: FaceOptions, progress: Progress) -> PhotoOutcome: ...


def failed(name: str, exc: Exception) -> RestoreFailed:
    """A one-line page message for `exc`, naming the uploaded file once."""
    return RestoreFailed(str(exc) if name in str(exc) else f"{name}: {exc}")


def check_upload(name: str, data: bytes) -> None:
    """The CLI's and the server's upload byte cap."""
    if len(data) > MAX_UPLOAD_BYTES:
        raise RestoreFailed(f"{name}: {len(data)} bytes exceeds the upload limit of {MAX_UPLOAD_BYTES // 2**20} MiB")


class ClipWatch:
    """What the page shows of a clip while it is restored (the `on_frames` of restore_video and
    restore_clip_served): progress by frames, and the middle frame before and after (uint8 RGB)."""

    def __init__(self, name: str, source: Path, progress: Progress) -> None:
        from runtime.video.container import probe

        self.name, self.progress = name, progress
        self.total = probe(source).frames   # 0 when the container does not say
        self.done = 0
        self.before = self.after = np.zeros((1, 1, 3), np.uint8)

    def __call__(self, frames: list[Frame], restored: list[np.ndarray]) -> None:
        for frame, out in zip(frames, restored):
            if frame.index in (0, self.total // 2):
                self.before, self.after = to_uint8(to_float(frame.pixels)), to_uint8(to_float(out))
        self.done += len(frames)
        self.progress(0.05 + 0.9 * self.done / max(self.total, self.done),
                      f"{self.name}: frame {self.done}/{self.total or '?'}")

    def outcome(self, name: str, filename: str, faces: int, video: dict, note: str) -> PhotoOutcome:
        """The page's outcome of the clip written as `filename`."""
        result = PhotoResult(input=name, output=filename, faces=faces, video=video)
        return PhotoOutcome(resized_to(self.before, self.after), self.after, None, filename, [], result, [note])


def resized_to(rgb8: np.ndarray, like: np.ndarray) -> np.ndarray:
    """`rgb8` resized to the height and width of `like` (Lanczos; unchanged when equal)."""
    if rgb8.shape[:2] == like.shape[:2]:
        return rgb8
    return cv2.resize(rgb8, (like.shape[1], like.shape[0]), interpolation=cv2.INTER_LANCZOS4)


def tile(rgb8: np.ndarray) -> np.ndarray:
    """A face image at the page's tile size."""
    return cv2.resize(rgb8, (FACE_TILE, FACE_TILE), interpolation=cv2.INTER_AREA)


def face_subset(batch: FaceBatch, i: int) -> FaceBatch:
    """Face `i` of a batch as a batch of one."""
    return FaceBatch(**{f.name: getattr(batch, f.name)[i:i + 1] for f in fields(batch)})


class LocalBackend:
    """In-process: the face pipeline and restorers of this runtime, built on first use and kept
    (the last two restorers; a change of settings such as the seed or the fidelity binds them to
    the built restorer, nothing is loaded again), run on `device` with `backend` (auto: as
    `facerestore restore` chooses, runtime/job.py: choose_backend; torch, onnxruntime, openvino or
    tensorrt).
    A restorer whose weights are untrained is refused (the page shows why) unless `allow_untrained`.
    engines: a folder of ONNX files / engines used as given; None: `locate(contract, checkpoint)`
    gives each network's ONNX folder (the CLI's ONNX cache), else engines/."""

    def __init__(self, checkpoints: dict[str, Path | None] | None = None, backend: str = "auto",
                 engines: Path | None = None, device: str = "cpu", max_pixels: int = DEFAULT_MAX_PIXELS,
                 allow_untrained: bool = False,
                 locate: Callable[[NetworkContract, Path | None], Path] | None = None) -> None:
        self.checkpoints = checkpoints or {}
        self.backend, self.engines, self.device, self.max_pixels = backend, engines, device, max_pixels
        self.allow_untrained, self.locate = allow_untrained, locate
        self.description, self.served = f"in-process ({backend} on {device})", False
        self._nets = None
        self._restorers: OrderedDict[str, tuple[Any, list[str]]] = OrderedDict()

    def restorers(self) -> list[str]:
        """Every restorer that can run: those that ship without weights and those given weights."""
        return [n for n, spec in RESTORERS.items() if not spec.needs_checkpoint or self.checkpoints.get(n)]

    def options(self, restorer: str) -> tuple[RestorerOption, ...]:
        return RESTORERS[restorer].options

    def provenance(self, restorer: str, settings: dict[str, Any]) -> Provenance | None:
        return getattr(self._restorer(restorer, settings)[0], "provenance", None)

    def _pipeline(self, face: FaceOptions):
        """The face networks as `restore` runs them: ONNX Runtime on a CPU unless --backend torch."""
        from runtime.face import FacePipeline, onnx_face_pipeline, torch_face_pipeline

        if self._nets is None:
            if face_networks_on_onnxruntime(self.backend, self.device) and (self.engines or self.locate):
                from runtime.contracts.face import FACE_DETECTOR, FACE_MESH

                base = onnx_face_pipeline(*(self.locate(c, None) if self.locate else self.engines
                                            for c in (FACE_DETECTOR, FACE_MESH)))
            else:
                base = torch_face_pipeline(device=self.device)
            self._nets = (base.detector, base.mesh)
        return FacePipeline(*self._nets, face)

    def _restorer(self, restorer: str, settings: dict[str, Any]):
        """(restorer bound to `settings`, notes: what it printed when built); built once per
        restorer, the settings checked and bound per call (the report says its notices)."""
        if restorer not in self._restorers:
            notes = io.StringIO()
            with contextlib.redirect_stderr(notes):
                built = self._build(restorer)
            lines = [line for line in notes.getvalue().splitlines() if line.strip()]
            self._restorers[restorer] = (built, lines)
            while len(self._restorers) > 2:
                self._restorers.popitem(last=False)
        self._restorers.move_to_end(restorer)
        built, lines = self._restorers[restorer]
        return RESTORERS[restorer].configure(built, **settings), lines

    def _build(self, restorer: str):
        from runtime.restorers.factory import check_trained, make_restorer

        checkpoint = self.checkpoints.get(restorer)
        check_trained(restorer, checkpoint, self.allow_untrained)   # before any export
        backend, precision = choose_backend(self.backend, restorer, self.device)
        engines: Path | dict[str, Path] = self.engines or Path("engines")
        if self.engines is None and self.locate is not None and backend in ONNX_BACKENDS:
            engines = {c.name: self.locate(c, checkpoint) for c in RESTORERS[restorer].networks}
        return make_restorer(restorer, checkpoint, backend, engines, self.device, precision,
                             progress=False, allow_untrained=self.allow_untrained)

    def restore(self, name: str, data: bytes, restorer: str, settings: dict[str, Any], face: FaceOptions,
                progress: Progress) -> PhotoOutcome:
        from runtime.engines import EngineMismatch
        from runtime.restore import restore_photo
        from runtime.sessions import SessionError
        from runtime.tensorrt_session import TensorRTUnavailable

        check_upload(name, data)
        try:
            photo = decode_image(data, name, self.max_pixels)
            progress(0.0, f"{name}: loading {restorer}")
            model, notes = self._restorer(restorer, settings)
            size, template = RESTORERS[restorer].face_crop(model)   # its crop, whatever the page's options
            pipeline = self._pipeline(replace(face, size=size, template=template))
            progress(0.05, f"{name}: finding faces")
            t0 = time.perf_counter()
            with step_progress(model, lambda i, n: progress(0.1 + 0.85 * i / n, f"{name}: {restorer} step {i}/{n}")):
                out, batch, restored, skipped = restore_photo(photo, pipeline, model)
            seconds = time.perf_counter() - t0
        except (ImageError, ValueError, FileNotFoundError, SessionError, EngineMismatch, TensorRTUnavailable) as exc:
            raise failed(name, exc) from None
        filename = output_path(Path(), Path(name)).name
        result = PhotoResult(input=name, output=filename, faces=len(batch), skipped=[s.reason for s in skipped],
                             seconds=seconds)
        views = [FaceView(tile(batch.crops[i]), tile(restored[i]),
                          tile(paste_mask(photo, pipeline, face_subset(batch, i))))
                 for i in range(len(batch))]
        after = out.rgb8()
        return PhotoOutcome(resized_to(photo.rgb8(), after), after, encode_image(out, Path(filename).suffix),
                            filename, views, result, list(notes))


    def restore_clip(self, name: str, source: Path, target: Path, restorer: str, settings: dict[str, Any],
                     face: FaceOptions, progress: Progress) -> PhotoOutcome:
        """Restore the clip `source` into `target` as `restore` does (tracking, smoothing, faces
        of many frames per restorer call, audio copied)."""
        from runtime.engines import EngineMismatch
        from runtime.sessions import SessionError
        from runtime.tensorrt_session import TensorRTUnavailable
        from runtime.video.restore import restore_video

        try:
            watch = ClipWatch(name, source, progress)
            progress(0.0, f"{name}: loading {restorer}")
            model, notes = self._restorer(restorer, settings)
            clip = restore_video(source, target, self._pipeline(face), model, on_frames=watch)
        except (ValueError, FileNotFoundError, SessionError, EngineMismatch, TensorRTUnavailable) as exc:
            raise failed(name, exc) from None
        clip.input = name
        outcome = watch.outcome(name, target.name, clip.faces, clip.report(), clip.note())
        outcome.notes = list(notes) + outcome.notes
        return outcome


def paste_mask(photo: Photo, pipeline, one: FaceBatch) -> np.ndarray:
    """The blend weight the paste-back gives the restored face, in the face's crop frame (uint8
    RGB): a white face pasted over a black photo by the pipeline's own paste (its mask, no
    colour fix: that would turn white into the black photo's colours), warped back."""
    from runtime.face.align import warp_face
    from runtime.face.pipeline import paste

    black = Photo(pixels=np.zeros_like(photo.rgb8()))
    white = np.full_like(one.crops, 255)
    pasted = paste(black, one, white, replace(pipeline.options, colour_fix="none")).pixels
    affine = one.affines[0].copy()
    affine[:, :2] /= pipeline.options.upscale
    return warp_face(pasted, affine, one.crops.shape[1])


@contextlib.contextmanager
def step_progress(restorer, report: Callable[[int, int], None]):
    """While inside, report (step, steps) after each denoising step of an AuthFace restorer
    (its UNet+ControlNet call); other restorers have no steps to report."""
    net = getattr(restorer, "unet_controlnet", None)
    if net is None:
        yield
        return
    total, done = len(restorer.schedule()[1]), [0]

    def counted(*args, **inputs):
        out = net(*args, **inputs)
        done[0] += 1
        report(done[0], total)
        return out

    restorer.unet_controlnet = counted
    try:
        yield
    finally:
        restorer.unet_controlnet = net


class TritonBackend:
    """A running Triton server's ensembles face_restore_<restorer> (runtime.serving.client); the options
    shown are the restorer options the ensemble takes as inputs."""

    def __init__(self, url: str, protocol: str = "grpc", max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
        scheme, sep, address = url.partition("://")
        if sep:   # http://host:port or grpc://host:port name the protocol; tritonclient takes host:port
            if scheme not in ("http", "grpc"):
                raise ValueError(f"--triton {url}: the scheme must be http:// or grpc://, not {scheme}://")
            url, protocol = address.rstrip("/"), scheme
        self.url, self.protocol, self.max_pixels = url, protocol, max_pixels
        self.description, self.served = f"Triton server {url} ({protocol})", True

    def restorers(self) -> list[str]:
        """The restorers whose ensembles the server has ready (all of them when it answers for none)."""
        return self.ready() or list(SERVICES)

    def ready(self) -> list[str]:
        """The restorers whose ensemble face_restore_<restorer> is ready on the server now."""
        from runtime.serving.client import RestoreClient

        ready = []
        for restorer in SERVICES:
            with RestoreClient(self.url, self.protocol, restorer, timeout=5) as client:
                if client.is_ready():
                    ready.append(restorer)
        return ready

    def provenance(self, restorer: str, settings: dict[str, Any]) -> Provenance | None:
        from runtime.serving.client import served_provenance

        return served_provenance([self.url], self.protocol, restorer)

    def options(self, restorer: str) -> tuple[RestorerOption, ...]:
        served = {t.name.lower() for t in SERVICES[restorer].options}
        return tuple(o for o in RESTORERS[restorer].options if o.name in served)

    def restore(self, name: str, data: bytes, restorer: str, settings: dict[str, Any], face: FaceOptions,
                progress: Progress) -> PhotoOutcome:
        from runtime.serving.client import ClientError, RestoreClient

        check_upload(name, data)
        filename = output_path(Path(), Path(name)).name
        try:
            photo = decode_image(data, name, self.max_pixels)   # the page shows it; a bad file fails here
            progress(0.1, f"{name}: sent to {self.url}, waiting for {restorer}")
            with RestoreClient(self.url, self.protocol, restorer) as client:
                answer = client.restore(data, name, Path(filename).suffix, **settings,
                                        **{o.name: getattr(face, o.name) for o in offered("page") if o.served})
            after = decode_image(answer.image, f"{name} (restored by the server)", MAX_OUTPUT_PIXELS).rgb8()
        except (ImageError, ClientError, ValueError) as exc:
            raise failed(name, exc) from None
        before = photo.rgb8()
        scale = after.shape[1] / before.shape[1]
        views = [FaceView(tile(box_crop(before, box)), tile(box_crop(after, box * scale))) for box in answer.boxes]
        result = PhotoResult(input=name, output=filename, faces=answer.faces, seconds=answer.latency_s)
        return PhotoOutcome(resized_to(before, after), after, answer.image, filename, views, result,
                            [f"note: {name}: {answer.latency_s * 1000:.0f} ms round trip to {self.url}"])


    def restore_clip(self, name: str, source: Path, target: Path, restorer: str, settings: dict[str, Any],
                     face: FaceOptions, progress: Progress, concurrency: int = 4) -> PhotoOutcome:
        """Restore the clip `source` into `target`: its frames sent `concurrency` at a time (one
        connection per thread), muxed back with its audio (runtime/video/served.py)."""
        import time

        from runtime.serving.client import ClientError, RestoreClient
        from runtime.video.served import restore_clip_served

        local, clients = threading.local(), []

        def send(data: bytes, frame: str) -> tuple[bytes, int]:
            if not hasattr(local, "client"):
                local.client = RestoreClient(self.url, self.protocol, restorer)
                clients.append(local.client)
            answer = local.client.restore(data, frame, ".png", upscale=face.upscale,
                                          only_center_face=face.only_center_face, **settings)
            return answer.image, answer.faces

        start = time.perf_counter()
        try:
            watch = ClipWatch(name, source, progress)
            progress(0.05, f"{name}: frames sent to {self.url}, waiting for {restorer}")
            info, faces = restore_clip_served(source, target, send, concurrency, face.upscale, on_frames=watch)
        except (ClientError, ValueError) as exc:
            raise failed(name, exc) from None
        finally:
            for client in clients:
                client.close()
        seconds = time.perf_counter() - start
        video = {"frames": info.frames, "seconds": seconds, "fps": info.frames / seconds, "encoder": info.encoder,
                 "copied": info.copied}
        note = (f"note: {name}: {info.frames} frames, {faces} faces through {self.url} in {seconds:.1f} s "
                f"({info.frames / seconds:.2f} frames/s), {info.encoder}, copied: "
                f"{', '.join(info.copied) or 'no other streams'}")
        return watch.outcome(name, target.name, faces, video, note)


def box_crop(rgb8: np.ndarray, box: np.ndarray, margin: float = 0.25) -> np.ndarray:
    """A square crop around a detection box (x0, y0, x1, y1), `margin` of its side added, clipped."""
    h, w = rgb8.shape[:2]
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    half = max(box[2] - box[0], box[3] - box[1]) * (0.5 + margin)
    x0, y0 = max(0, int(cx - half)), max(0, int(cy - half))
    x1, y1 = min(w, int(cx + half) + 1), min(h, int(cy + half) + 1)
    return rgb8[y0:y1, x0:x1]
