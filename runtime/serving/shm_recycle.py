"""Memory back after peaks: a python backend stub passes every tensor through its own
shared-memory region (/dev/shm/triton_python_backend_shm_region_*), which grows to the largest
request it has seen (a 256 MiB upload, 36 face crops) and never shrinks; the pages stay
resident. The rest of the server's memory comes back by itself (glibc returns blocks over
1 MiB: runtime/serve.py MALLOC_ENV; ONNX Runtime's arena shrinks after each run).

A model whose stubs' regions grew past a limit is reloaded once it is idle: tritonserver (in
explicit model-control mode) starts new stubs with fresh regions, moves new requests to them,
lets the old stubs finish what they hold and removes them with their regions: nothing is
refused meanwhile. Triton reloads a model only when its config changed, so each reload passes
the served config with a counter parameter (``recycled``) raised.
"""
from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path

SHM_DIR = Path("/dev/shm")
SHM_LIMIT = 64 * 2**20   # a model whose stubs' regions hold more is reloaded
IDLE_S = 2.0             # ... once no request reached it for this long


class RecycleError(RuntimeError):
    """tritonserver refused to reload a model; the message carries its answer."""


def region_bytes(region: str) -> int:
    """Resident bytes of a shared-memory region (the tmpfs pages it has touched); 0 if gone."""
    try:
        return (SHM_DIR / region).stat().st_blocks * 512
    except OSError:
        return 0


def _get(http_url: str, path: str) -> dict:
    with urllib.request.urlopen(f"http://{http_url}{path}", timeout=10) as r:
        return json.loads(r.read())


def idle_for(http_url: str, model: str) -> float:
    """Seconds since the model's last inference (Triton's statistics; a large number if never)."""
    stats = _get(http_url, f"/v2/models/{model}/stats")["model_stats"]
    last_ms = max((int(s.get("last_inference", 0)) for s in stats), default=0)
    return time.time() - last_ms / 1000


def reload_model(http_url: str, model: str, headers: dict[str, str]) -> None:
    """Reload `model` with new stubs (its served config, `recycled` counter raised), or load it
    from the repository when it is not loaded. `headers` open the restricted repository API."""
    try:
        config = _get(http_url, f"/v2/models/{model}/config")
    except urllib.error.HTTPError:   # not loaded: no served config to raise
        body = b"{}"
    else:
        parameters = config.setdefault("parameters", {})
        count = int(parameters.get("recycled", {}).get("string_value", "0")) + 1
        parameters["recycled"] = {"string_value": str(count)}
        body = json.dumps({"parameters": {"config": json.dumps(config)}}).encode()
    request = urllib.request.Request(f"http://{http_url}/v2/repository/models/{model}/load", body, method="POST",
                                     headers={"Content-Type": "application/json", **headers})
    try:
        with urllib.request.urlopen(request, timeout=300):
            pass
    except urllib.error.HTTPError as exc:
        raise RecycleError(f"reloading {model}: HTTP {exc.code} {exc.read().decode(errors='replace')}") from None


def grown_models(stubs: dict[int, tuple[str, str]], limit: int = SHM_LIMIT) -> dict[str, int]:
    """Models whose stubs' regions together hold more than `limit` bytes -> those bytes.
    stubs: pid -> (model, region), as runtime.serve.python_stubs gives them."""
    held: dict[str, int] = {}
    for model, region in stubs.values():
        held[model] = held.get(model, 0) + region_bytes(region)
    return {m: b for m, b in held.items() if b > limit}
