"""Serving on Triton: the server process and its supervision (serve), the client, the checks of
a served request, the helpers of the python-backend models (triton_backend, triton_cancel) and
the health probe."""
