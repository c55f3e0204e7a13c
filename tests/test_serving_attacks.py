"""Attacks on the control APIs of the real server (the session's CPU tritonserver), as a
client on the network would send them with a raw KServe-v2 client: each is refused without the
admin key (HTTP 403; gRPC UNAVAILABLE "This protocol is restricted", tritonserver 2.51's status), does nothing, and leaves the server serving.

Before the fix (6308b0f) the first one ran any Python on the server: tritonserver accepts a
python model's files inside a repository load request.
"""
from __future__ import annotations

import base64
import json
import stat
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from benchmarks.serving import png_bytes
from runtime.contracts.service import SERVICES
from runtime.samples import ASTRONAUT, read_rgb8
from runtime.serving.client import RestoreClient
from runtime.serving.admin_key import ADMIN_HEADER
from runtime.serving.serve import SHM_DIR, TritonServer, python_stubs

SAFM = SERVICES["safm"].ensemble
MARKER = Path("/tmp/facerestore-attack-marker")   # what the injected model would write
INJECTED_CONFIG = 'name: "p"\nbackend: "python"\nmax_batch_size: 0\n' \
                  'input [{name: "X", data_type: TYPE_FP32, dims: [1]}]\noutput [{name: "Y", data_type: TYPE_FP32, dims: [1]}]\n'
INJECTED_MODEL = f"open({str(MARKER)!r}, 'w').write('owned')\nclass TritonPythonModel:\n    pass\n"


def http(server: TritonServer, method: str, path: str, body: dict | str | None = None,
         headers: dict[str, str] | None = None, content_type: str = "application/json") -> tuple[int, str]:
    data = None if body is None else (body if isinstance(body, str) else json.dumps(body)).encode()
    request = urllib.request.Request(f"http://{server.http_url}{path}", data, method=method,
                                     headers={"Content-Type": content_type, **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=60) as r:
            return r.status, r.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def stub_region(server: TritonServer) -> str:
    """The shared-memory region of a live python stub (visible to anyone in `ps` and /dev/shm)."""
    return next(iter(python_stubs(server.process.pid).values()))[1]


LOAD_WITH_FILES = {"parameters": {"config": INJECTED_CONFIG,
                                  "file:1/model.py": base64.b64encode(INJECTED_MODEL.encode()).decode()}}

# name -> (method, path, body, content type); the path's {region} is a live stub's region
HTTP_ATTACKS = {
    "model load with files (code execution)": ("POST", "/v2/repository/models/p/load", LOAD_WITH_FILES, "application/json"),
    "the same as text/plain (from a web page)": ("POST", "/v2/repository/models/p/load", LOAD_WITH_FILES, "text/plain"),
    "unload of the ensemble": ("POST", f"/v2/repository/models/{SAFM}/unload", {}, "application/json"),
    "unload of a network": ("POST", "/v2/repository/models/safm/unload", {}, "application/json"),
    "repository index": ("POST", "/v2/repository/index", {}, "application/json"),
    "system shm: a stub's region registered": (
        "POST", "/v2/systemsharedmemory/region/evil/register",
        {"key": "/{region}", "offset": 0, "byte_size": 4096}, "application/json"),
    "system shm status": ("GET", "/v2/systemsharedmemory/status", None, "application/json"),
    "cuda shm register": ("POST", "/v2/cudasharedmemory/region/evil/register",
                          {"raw_handle": {"b64": "AAAA"}, "device_id": 0, "byte_size": 4096}, "application/json"),
    "log settings change": ("POST", "/v2/logging", {"log_verbose_level": 3, "log_file": "/tmp/triton-evil.log"},
                            "application/json"),
    "log settings read": ("GET", "/v2/logging", None, "application/json"),
    "trace settings change": ("POST", "/v2/trace/setting", {"trace_level": ["TIMESTAMPS"], "trace_file": "/tmp/evil"},
                              "application/json"),
}


def serves_a_photo(server: TritonServer) -> None:
    with RestoreClient(server.http_url, "http", "safm", timeout=120) as client:
        assert client.restore(png_bytes(read_rgb8(ASTRONAUT))).faces == 1


@pytest.mark.parametrize("attack", HTTP_ATTACKS)
def test_http_control_api_refused_without_the_key(server, attack):
    MARKER.unlink(missing_ok=True)
    method, path, body, content_type = HTTP_ATTACKS[attack]
    if isinstance(body, dict) and "key" in body:
        body = {**body, "key": body["key"].format(region=stub_region(server))}
    status, text = http(server, method, path, body, content_type=content_type)
    assert status == 403 and ADMIN_HEADER in text, (status, text)
    status, _ = http(server, method, path, body, {ADMIN_HEADER: "wrong-key"}, content_type)
    assert status == 403
    assert not MARKER.exists()
    assert server.alive() and server.is_ready()   # every model still loaded, every stub alive


def test_grpc_control_api_refused_without_the_key(server):
    client = grpcclient.InferenceServerClient(server.grpc_url)
    attacks = {
        "model load with files": lambda: client.load_model(
            "p", config=INJECTED_CONFIG.replace("\n", " "), files={"file:1/model.py": INJECTED_MODEL.encode()}),
        "unload": lambda: client.unload_model(SAFM),
        "repository index": lambda: client.get_model_repository_index(),
        "system shm register": lambda: client.register_system_shared_memory("evil", "/" + stub_region(server), 4096),
        "cuda shm register": lambda: client.register_cuda_shared_memory("evil", b"AAAA", 0, 4096),
        "log settings change": lambda: client.update_log_settings({"log_verbose_level": 3}),
        "trace settings change": lambda: client.update_trace_settings(settings={"trace_level": ["TIMESTAMPS"]}),
    }
    MARKER.unlink(missing_ok=True)
    for name, attack in attacks.items():
        with pytest.raises(InferenceServerException) as refused:
            attack()
        # tritonserver 2.51 answers UNAVAILABLE (not PERMISSION_DENIED) with this message
        assert "protocol is restricted" in refused.value.message(), (name, refused.value)
    client.close()
    assert not MARKER.exists()
    assert server.alive() and server.is_ready()
    serves_a_photo(server)


def test_the_admin_key_opens_the_repository_api_and_stays_out_of_the_log(server):
    status, text = http(server, "POST", "/v2/repository/index", {}, server.admin_headers)
    assert status == 200 and {m["name"] for m in json.loads(text)} == set(server.models)
    with grpcclient.InferenceServerClient(server.grpc_url) as client:
        index = client.get_model_repository_index(headers=server.grpc_admin_headers)
        assert {m.name for m in index.models} == set(server.models)
    log = Path(server.log).read_text()
    assert server.admin_key not in log


def test_the_stubs_shared_memory_is_private(server):
    """The python stubs' regions hold the photos in flight: readable by the server's user only."""
    stubs = python_stubs(server.process.pid)
    assert stubs
    for _, region in stubs.values():
        assert stat.S_IMODE((SHM_DIR / region).stat().st_mode) == 0o600, region


def test_served_after_the_attacks(server):
    serves_a_photo(server)
