"""Client of the served job (``face_restore_<restorer>`` ensembles) over gRPC or HTTP.

    with RestoreClient("127.0.0.1:8001", "grpc", "safm") as client:
        result = client.restore(Path("photo.png").read_bytes(), fidelity=0.7)
        Path("restored.png").write_bytes(result.image)   # result.faces, result.boxes, result.latency_s

Size limit: an encoded photo may have at most MAX_UPLOAD_BYTES (64 MiB); larger ones are
refused here before sending (and by the server's face_preprocess). The transports allow more:
Triton's gRPC server accepts messages up to INT32_MAX bytes (2 GiB, not configurable in 2.51)
and this client's gRPC channel is set to send MAX_UPLOAD_BYTES + 1 MiB and to receive up to
INT32_MAX (a restored photo is at most MAX_OUTPUT_PIXELS pixels, --upscale included); the
HTTP client sends tensors as binary data (no JSON/base64 blow-up).
"""
from __future__ import annotations

import itertools
import json
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from training.provenance import Provenance
from runtime.contracts.service import BOXES, FACE_COUNT, IMAGE, MAX_TIMEOUT_S, MAX_UPLOAD_BYTES, OUTPUT_FORMAT, \
    RESTORED, SERVICES, TIMEOUT, ServiceTensor
from runtime.files import write_atomic
from runtime.job import JobReport, PhotoResult
from runtime.serving.request_checks import check_options

PROTOCOLS = ("grpc", "http")
DEFAULT_URLS = {"grpc": "127.0.0.1:8001", "http": "127.0.0.1:8000"}
INT32_MAX = 2**31 - 1


class ClientError(RuntimeError):
    """A photo the server could not restore (or that was not sent); the message says why.
    unavailable: the server could not take it (down, restarting, overloaded); worth another try."""

    def __init__(self, message: str, unavailable: bool = False) -> None:
        super().__init__(message)
        self.unavailable = unavailable


# answers meaning "not now" rather than "not this request": the server is down or restarting
# (connection refused, gRPC UNAVAILABLE, HTTP 503), overloaded (a step's queue full, or the
# request waited there longer than its queue timeout: runtime.contracts.service.Capacity), or a
# python stub died (Triton's 500 "Stub process ... is not healthy"), or a model was unloaded
# ("... has no available versions", a 400), until the supervisor has reloaded it. Not: the
# request's own TIMEOUT passed (a 503 too, but the same request would time out again).
OVERLOADED = ("Exceeds maximum queue size", "Request timeout expired")
UNAVAILABLE = ("StatusCode.UNAVAILABLE", "503", "not healthy", *OVERLOADED, "failed to connect",
               "Socket closed", "Connection reset", "Connection refused", "has no available versions")
FINAL = ("TIMEOUT passed",)


def is_unavailable(exc: BaseException) -> bool:
    """True for an error of the server's state, not of the request (retrying is safe: a
    restoration has no side effect)."""
    from tritonclient.utils import InferenceServerException

    if isinstance(exc, InferenceServerException):
        text = f"{exc.status()} {exc.message()}"
        return any(u in text for u in UNAVAILABLE) and not any(f in text for f in FINAL)
    return isinstance(exc, OSError) or type(exc).__module__.startswith(("geventhttpclient", "gevent"))


@dataclass
class Restored:
    """The server's answer for one photo."""

    image: bytes             # the encoded restored photo
    faces: int
    boxes: np.ndarray        # [faces, 4] x0, y0, x1, y1 in input photo pixels
    latency_s: float         # request round trip


class RestoreClient:
    """One connection to the server; not thread-safe (use one per thread)."""

    def __init__(self, url: str | None = None, protocol: str = "grpc", restorer: str = "safm",
                 timeout: float = 600.0, retry_s: float = 0.0) -> None:
        if protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {PROTOCOLS}, not {protocol!r}")
        if restorer not in SERVICES:
            raise ValueError(f"unknown restorer '{restorer}'; choose from {sorted(SERVICES)}")
        self.url, self.protocol, self.timeout = url or DEFAULT_URLS[protocol], protocol, timeout
        self.retry_s, self.retries = retry_s, 0   # keep retrying an unavailable server this long; retries made
        self.service = SERVICES[restorer]
        self.options: dict[str, ServiceTensor] = {t.name.lower(): t for t in self.service.inputs
                                                if t.optional and t not in (IMAGE, TIMEOUT)}
        self._connect()

    def _connect(self) -> None:
        if self.protocol == "grpc":
            import tritonclient.grpc as client

            self._client = client.InferenceServerClient(self.url, channel_args=[
                ("grpc.max_send_message_length", MAX_UPLOAD_BYTES + 2**20),
                ("grpc.max_receive_message_length", INT32_MAX)])
        else:
            import tritonclient.http as client

            self._client = client.InferenceServerClient(self.url, connection_timeout=self.timeout,
                                                        network_timeout=self.timeout)
        self._module = client

    def __enter__(self) -> "RestoreClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    def is_ready(self) -> bool:
        """The server and the restorer's ensemble are ready."""
        from tritonclient.utils import InferenceServerException

        try:
            return bool(self._client.is_server_ready() and self._client.is_model_ready(self.service.ensemble))
        except (InferenceServerException, OSError):
            return False

    def provenance(self) -> Provenance | None:
        """What the served restorer's weights are (its model config's 'provenance' parameter, written
        by the renderer); None when the server does not say or cannot be asked."""
        from tritonclient.utils import InferenceServerException

        try:
            config = self._client.get_model_config(self.service.faces.name)
        except (InferenceServerException, OSError):
            return None
        params = config["parameters"] if isinstance(config, dict) else config.config.parameters
        if "provenance" not in params:
            return None
        value = params["provenance"]
        return Provenance.from_dict(json.loads(value["string_value"] if isinstance(value, dict) else value.string_value))

    def _input(self, spec: ServiceTensor, value):
        from tritonclient.utils import np_to_triton_dtype

        array = np.array([value.encode() if isinstance(value, str) else value], dtype=spec.numpy_dtype).reshape(spec.shape)
        tensor = self._module.InferInput(spec.name, list(array.shape), np_to_triton_dtype(array.dtype))
        tensor.set_data_from_numpy(array)
        return tensor

    def _why(self, text: str) -> str:
        """What an unavailable answer means for the user."""
        if any(o in text for o in OVERLOADED):
            return (f" (the server at {self.url} is busy: it refuses requests beyond its queue instead of letting "
                    "them wait for minutes; retry later (--retry-s), send to more replicas (--url A,B), or serve "
                    "with more --python-instances / a larger --max-queue-size)")
        return f" (no server answers at {self.url}, {self.protocol}; start one with `facerestore serve` or pass --url)"

    def restore(self, data: bytes, name: str = "<bytes>", output_format: str = "png", **options) -> Restored:
        """Restore the faces of one encoded photo. Options (None = the server's default):
        only_center_face, upscale, and the restorer's own (safm: fidelity; authface: steps,
        seed, strength). An unavailable server is retried for up to retry_s seconds. Raises
        ClientError on a refused or failed request."""
        if len(data) > MAX_UPLOAD_BYTES:
            raise ClientError(f"{name}: {len(data)} bytes exceeds the upload limit of {MAX_UPLOAD_BYTES} bytes "
                              f"({MAX_UPLOAD_BYTES // 2**20} MiB)")
        unknown = set(options) - set(self.options)
        if unknown:
            raise ValueError(f"{self.service.ensemble} has no option {sorted(unknown)}; it takes {sorted(self.options)}")
        check_options({self.options[k].name: v for k, v in options.items() if v is not None})   # the server's checks
        inputs = [self._input(IMAGE, data), self._input(OUTPUT_FORMAT, output_format.lstrip(".").encode()),
                  self._input(TIMEOUT, min(self.timeout, MAX_TIMEOUT_S))]   # the server stops when we stop waiting
        inputs += [self._input(self.options[k], v) for k, v in options.items() if v is not None]
        outputs = [self._module.InferRequestedOutput(t.name) for t in self.service.outputs]
        kwargs = {"client_timeout": self.timeout} if self.protocol == "grpc" else {}
        start = time.perf_counter()
        deadline, pause = time.monotonic() + self.retry_s, 0.25
        while True:
            try:
                result = self._client.infer(self.service.ensemble, inputs, outputs=outputs, **kwargs)
                break
            except Exception as exc:   # noqa: BLE001 - transport errors differ per protocol; sorted below
                unavailable = is_unavailable(exc)
                if not unavailable and not hasattr(exc, "message"):
                    raise
                if not unavailable or time.monotonic() + pause > deadline:
                    text = exc.message() if hasattr(exc, "message") and exc.message() else str(exc)
                    raise ClientError(f"{name}: {text or type(exc).__name__}{self._why(text) if unavailable else ''}",
                                      unavailable) from None
                time.sleep(pause)
                pause, self.retries = min(pause * 2, 2.0), self.retries + 1
                if self.protocol == "http":   # a fresh connection pool after the server restarted
                    self._client.close()
                    self._connect()
        latency = time.perf_counter() - start
        return Restored(image=bytes(result.as_numpy(RESTORED.name).reshape(-1)[0]),
                        faces=int(result.as_numpy(FACE_COUNT.name).reshape(-1)[0]),
                        boxes=result.as_numpy(BOXES.name).reshape(-1, 4), latency_s=latency)


def served_provenance(urls: list[str | None], protocol: str, restorer: str) -> Provenance | None:
    """What the served restorer's weights are, from the first replica that says (None: none does)."""
    for url in urls:
        with RestoreClient(url, protocol, restorer) as probe:
            if (origin := probe.provenance()) is not None:
                return origin
    return None


def restore_files(inputs: list[Path], out_dir: Path, url: str | list[str] | None = None, protocol: str = "grpc",
                  restorer: str = "safm", concurrency: int = 1, verbose: bool = True, retry_s: float = 60.0,
                  **options) -> JobReport:
    """Send every photo of `inputs` (files/folders) to the server(s) with `concurrency` parallel
    connections (a clip: its frames, `concurrency` at a time, muxed back with its audio:
    runtime/video/served.py), as the in-process job does (runtime/restore.py: run_job: same
    output paths, atomic writes, never over an input, one report.json). Several URLs (replicas of
    a fleet): the connections are spread over them, and a photo one replica cannot take
    (unavailable for retry_s) goes to the next. The report carries the served weights' provenance
    and licence (said first on stderr) and each photo's round trip."""
    from tqdm import tqdm

    from runtime.imageio import ImageError
    from runtime.restore import run_job
    from runtime.video.container import VIDEO_SUFFIXES, VideoError

    urls = list(url) if isinstance(url, (list, tuple)) and url else [url or None]
    check_options({k.upper(): v for k, v in options.items() if v is not None})   # before any request
    report = JobReport(restorer, f"served: {', '.join(u or DEFAULT_URLS[protocol] for u in urls)} ({protocol})",
                       served_provenance(urls, protocol, restorer),
                       {k: v.decode() if isinstance(v, bytes) else v for k, v in options.items() if v is not None},
                       served=True)
    local = threading.local()
    clients: list[RestoreClient] = []
    lock = threading.Lock()
    threads = itertools.count()

    def client(index: int) -> RestoreClient:
        """This thread's connection to urls[index] (threads start on different replicas)."""
        if not hasattr(local, "clients"):
            local.first, local.clients = next(threads), {}
        i = (local.first + index) % len(urls)
        if i not in local.clients:
            local.clients[i] = RestoreClient(urls[i], protocol, restorer, retry_s=retry_s)
            with lock:
                clients.append(local.clients[i])
        return local.clients[i]

    def send(data: bytes, path: Path, suffix: str) -> Restored:
        for attempt in range(len(urls)):
            try:
                return client(attempt).restore(data, str(path), suffix, **options)
            except ClientError as exc:
                if not exc.unavailable or attempt == len(urls) - 1:
                    raise
        raise AssertionError("unreachable")

    def restore_one(path: Path, rel: Path, target: Path, result: PhotoResult) -> None:
        if path.suffix.lower() in VIDEO_SUFFIXES:
            clip(path, target, result)
            return
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ClientError(f"{path}: cannot read ({exc.strerror or exc})") from None
        restored = send(data, path, target.suffix)
        write_atomic(target, restored.image)
        result.output, result.faces, result.seconds = str(target), restored.faces, restored.latency_s
        if verbose:
            tqdm.write(f"{path} -> {target}: {restored.faces} faces, {restored.latency_s * 1000:.0f} ms", file=sys.stdout)

    def clip(path: Path, target: Path, result: PhotoResult) -> None:
        """A clip: its frames sent `concurrency` at a time (runtime/video/served.py)."""
        from runtime.video.served import restore_clip_served

        def frame(data: bytes, name: str) -> tuple[bytes, int]:
            restored = send(data, Path(name), ".png")
            return restored.image, restored.faces

        t0 = time.perf_counter()
        info, result.faces = restore_clip_served(path, target, frame, concurrency, options.get("upscale") or 1.0)
        result.output, result.seconds = str(target), time.perf_counter() - t0
        result.video = {"frames": info.frames, "encoder": info.encoder, "copied": list(info.copied)}
        if verbose:
            tqdm.write(f"{path} -> {target}: {info.frames} frames, {result.faces} faces, "
                       f"{info.frames / result.seconds:.2f} frames/s, {info.encoder}, copied: "
                       f"{', '.join(info.copied) or 'no other streams'}", file=sys.stdout)

    try:
        return run_job(inputs, out_dir, report, restore_one, (ClientError, ImageError, VideoError, ValueError),
                       max(1, concurrency))
    finally:
        for c in clients:
            c.close()
