"""Request cancellation in the python-backend models: a network wrapper that stops the face
loop (SaFM chunks) or the AuthFace denoising loop at its next network call once Triton marks
the request cancelled (the client cancelled it, or its gRPC deadline passed), so no work is
spent on an answer nobody waits for.

Importable only inside Triton's python-backend stub (``triton_python_backend_utils``)."""
from __future__ import annotations

import triton_python_backend_utils as pb_utils


class RequestCancelled(Exception):
    """The request was cancelled while its model worked on it."""


class StopWhenCancelled:
    """`net` (session interface, optional ``run_torch``) that raises RequestCancelled before a
    call once `request` is cancelled."""

    def __init__(self, net, request) -> None:
        self.net, self.request = net, request

    def check(self) -> None:
        if self.request.is_cancelled():
            raise RequestCancelled("request cancelled (client gone or deadline passed)")

    def __call__(self, *inputs):
        self.check()
        return self.net(*inputs)

    def __getattr__(self, name: str):
        attr = getattr(self.net, name)
        if not callable(attr):
            return attr

        def checked(*args, **kwargs):
            self.check()
            return attr(*args, **kwargs)
        return checked


def cancelled_response(model: str, exc: RequestCancelled):
    """The error answer of a cancelled request (Triton's CANCELLED code where the stub has it)."""
    code = getattr(pb_utils.TritonError, "CANCELLED", None)
    message = f"{model}: {exc}"
    return pb_utils.InferenceResponse(error=pb_utils.TritonError(message, code) if code is not None
                                      else pb_utils.TritonError(message))
