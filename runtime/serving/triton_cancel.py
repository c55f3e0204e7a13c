"""Request cancellation in the python-backend models: a network wrapper that stops the face
loop (SaFM chunks) or the AuthFace denoising loop at its next network call once the request's
DEADLINE (its TIMEOUT, set by face_preprocess) has passed or Triton marks the request
cancelled, so no work is spent on an answer nobody waits for.

Why both: Triton 2.51 propagates a cancelled ensemble request only to the steps scheduled
after the cancellation, never to the step already running (its ``is_cancelled()`` stays
False), so a client that gives up during the AuthFace loop is only seen through the deadline.

Importable only inside Triton's python-backend stub (``triton_python_backend_utils``)."""
from __future__ import annotations

import time

import triton_python_backend_utils as pb_utils


class RequestCancelled(Exception):
    """The request was cancelled while its model worked on it: by its client, or (`timed_out`)
    because its TIMEOUT passed."""

    def __init__(self, message: str, timed_out: bool = False) -> None:
        super().__init__(message)
        self.timed_out = timed_out


class StopWhenCancelled:
    """`net` (session interface, optional ``run_torch``) that raises RequestCancelled before a
    call once `request` is cancelled or `deadline` (UNIX time) has passed."""

    def __init__(self, net, request, deadline: float) -> None:
        self.net, self.request, self.deadline = net, request, deadline

    def check(self) -> None:
        if time.time() > self.deadline:
            raise RequestCancelled("the request's TIMEOUT passed; restoration stopped", timed_out=True)
        if self.request.is_cancelled():
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
    code = getattr(pb_utils.TritonError, "UNAVAILABLE" if exc.timed_out else "CANCELLED", None)
    message = f"{model}: {exc}"
    return pb_utils.InferenceResponse(error=pb_utils.TritonError(message, code) if code is not None
                                      else pb_utils.TritonError(message))
