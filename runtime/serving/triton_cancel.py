"""Request cancellation in the python-backend models: a network wrapper that stops the face
loop (a restorer's micro-batches) or the AuthFace denoising loop at its next network call once the request's
DEADLINE (its TIMEOUT, set by face_preprocess) has passed, Triton marks the request
cancelled, or the request's cancel flag exists, so no work is spent on an answer nobody waits
for.

Why three: Triton 2.51 propagates a cancelled ensemble request only to the steps scheduled
after the cancellation, never to the step already running (its ``is_cancelled()`` stays
False). The gate in front of the ensemble (triton_repo/gate_model.py) sees its gRPC client
cancel and creates the flag file it named in CANCEL_FLAG (a CancelFlag in /dev/shm); HTTP
clients that disconnect are seen by nobody, only through the deadline.

Used inside Triton's python-backend stubs (``StopWhenCancelled.watch`` and ``cancelled_response``
import ``triton_python_backend_utils``)."""
from __future__ import annotations

import math
import os
import re
import time
import uuid
from pathlib import Path

from runtime.serving.shm_recycle import SHM_DIR

FLAG_PREFIX = "facerestore-cancel-"
POLL_S = 0.2   # how often the gate asks Triton whether its client cancelled


class CancelFlag:
    """The cancel flag of one request: a file name in /dev/shm, created (0600) by `raise_` when
    the client cancelled, removed when the request ends (leaving the `with` block)."""

    def __init__(self) -> None:
        self.path = SHM_DIR / f"{FLAG_PREFIX}{uuid.uuid4().hex}"
        self.raised = False

    def __enter__(self) -> "CancelFlag":
        return self

    def __exit__(self, *exc) -> None:
        self.path.unlink(missing_ok=True)

    def raise_(self) -> None:
        os.close(os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        self.raised = True


def flag_path(value: bytes | None) -> Path | None:
    """The cancel flag a request names (its CANCEL_FLAG input), None when it names none;
    ValueError for anything but a flag the gate could have made."""
    if not value:
        return None
    path = Path(value.decode(errors="replace"))
    if path.parent != SHM_DIR or not re.fullmatch(re.escape(FLAG_PREFIX) + "[0-9a-f]{32}", path.name):
        raise ValueError("CANCEL_FLAG: not a cancel flag of this server")
    return path


class RequestCancelled(Exception):
    """The request was cancelled while its model worked on it: by its client, or (`timed_out`)
    because its TIMEOUT passed."""

    def __init__(self, message: str, timed_out: bool = False) -> None:
        super().__init__(message)
        self.timed_out = timed_out


class StopWhenCancelled:
    """`net` (session interface, optional ``run_torch``) that raises RequestCancelled before a
    call once the request it watches is cancelled, its cancel `flag` exists or `deadline` (UNIX
    time) has passed. Made once per network of a model instance; `watch` points it at the
    request being served (an instance serves one request at a time)."""

    def __init__(self, net, request=None, deadline: float = math.inf, flag: Path | None = None) -> None:
        self.net, self.request, self.deadline, self.flag = net, request, deadline, flag

    def watch(self, request) -> "StopWhenCancelled":
        """Watch `request`: stopped by its own DEADLINE and CANCEL_FLAG inputs."""
        from runtime.contracts.service import CANCEL_FLAG, DEADLINE
        from runtime.serving.triton_backend import scalar

        self.request, self.deadline = request, float(scalar(request, DEADLINE))
        self.flag = flag_path(scalar(request, CANCEL_FLAG))
        return self

    def check(self) -> None:
        if time.time() > self.deadline:
            raise RequestCancelled("the request's TIMEOUT passed; restoration stopped", timed_out=True)
        if (self.request is not None and self.request.is_cancelled()) or (self.flag is not None and self.flag.exists()):
            raise RequestCancelled("request cancelled by the client")

    def __call__(self, *args, **inputs):
        self.check()
        return self.net(*args, **inputs)

    def __getattr__(self, name: str):
        attr = getattr(self.net, name)
        if not callable(attr):
            return attr

        def checked(*args, **kwargs):
            self.check()
            return attr(*args, **kwargs)
        return checked


def cancelled_response(model: str, exc: RequestCancelled):
    """The error answer of a stopped request: UNAVAILABLE (HTTP 503, not a bad input's 400) when
    its TIMEOUT passed, CANCELLED when its client cancelled it."""
    from runtime.serving.triton_backend import error_response

    return error_response(f"{model}: {exc}", "UNAVAILABLE" if exc.timed_out else "CANCELLED")
