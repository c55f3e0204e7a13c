"""Overload against the real server: the queue policy rendered from the service's Capacity
(max queue size, queue timeout) makes a busy server refuse extra requests at once with
UNAVAILABLE (HTTP 503, gRPC UNAVAILABLE) and a clear message, instead of queueing them for
minutes; the server stays healthy and serves the next request.

Its own small server (the authface ensemble only, one instance per step, a queue of one), so
that a long AuthFace request (9 faces at STEPS 200, the most the server allows: minutes on any CPU,
where one face took under 25 s on an Intel Xeon with AMX) keeps `authface_faces` busy until its TIMEOUT.
"""
from __future__ import annotations

import json
import threading
import time
import urllib.request

import pytest

from export.triton_repo import render_repo
from benchmarks.serving import png_bytes
from runtime.serving.client import ClientError, RestoreClient
from runtime.contracts.service import PREPROCESS, SERVICES, Capacity
from runtime.samples import ASTRONAUT, read_rgb8
from runtime.serving.serve import TritonServer
from tests.kserve_http import infer, tensor
from tests.test_serving_bad_inputs import face_grid

SERVICE = SERVICES["authface"]
CAPACITY = Capacity(python_instances=1, max_queue_size=1, queue_timeout_s=8.0)
BUSY_S = 25.0            # TIMEOUT of the request that keeps authface_faces busy
REFUSED_WITHIN_S = 5.0   # a refused request's round trip (it passes face_preprocess first: ~1 s here)
PHOTO = png_bytes(read_rgb8(ASTRONAUT))
NINE_FACES = png_bytes(face_grid(3))
OUTPUTS = tuple(t.name for t in SERVICE.outputs)


@pytest.fixture(scope="module")
def small_queue(engines, tmp_path_factory, request) -> TritonServer:
    repo = tmp_path_factory.mktemp("overload") / "repo"
    render_repo("cpu", repo, engines, restorers=[SERVICE.restorer], capacity=CAPACITY,
                allow_untrained=True)
    server = TritonServer(repo, server="bundled", log=repo.parent / "tritonserver.log", exit_timeout=5,
                          ready_timeout=240)
    request.addfinalizer(server.stop)   # always: the process group dies even if a test failed
    return server.start()


def preprocessed(server: TritonServer) -> int:
    """Requests face_preprocess has finished (its statistics)."""
    with urllib.request.urlopen(f"http://{server.http_url}/v2/models/{PREPROCESS.name}/stats", timeout=10) as r:
        stats = json.loads(r.read())["model_stats"][0]["inference_stats"]
    return int(stats["success"]["count"]) + int(stats["fail"]["count"])


def wait_preprocessed(server: TritonServer, count: int, within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    while preprocessed(server) < count:
        assert time.monotonic() < deadline, f"face_preprocess did not reach {count} requests"
        time.sleep(0.05)


def send(server: TritonServer, answers: dict, key: str, steps: int, timeout: float | None = None,
         photo: bytes = PHOTO) -> threading.Thread:
    """Send one AuthFace request over HTTP in a thread; answers[key] = (Answer, seconds)."""
    inputs = [tensor("IMAGE", "BYTES", photo), tensor("STEPS", "INT32", steps)]
    if timeout is not None:
        inputs.append(tensor("TIMEOUT", "FP32", timeout))

    def run():
        start = time.monotonic()
        answer = infer(server.http_url, SERVICE.ensemble, inputs, OUTPUTS)
        answers[key] = (answer, time.monotonic() - start)
    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_overload_is_refused_at_once_and_the_server_stays_healthy(small_queue):
    server, answers = small_queue, {}
    done = preprocessed(server)
    busy = send(server, answers, "busy", steps=200, timeout=BUSY_S, photo=NINE_FACES)   # authface_faces busy for BUSY_S
    wait_preprocessed(server, done + 1)
    queued = send(server, answers, "queued", steps=2)                   # waits in authface_faces' queue (1 place)
    wait_preprocessed(server, done + 2)
    refused = send(server, answers, "refused", steps=2)                 # finds that queue full
    refused.join()
    answer, seconds = answers["refused"]
    assert answer.status == 503 and "Exceeds maximum queue size" in answer.error, answer
    assert seconds < REFUSED_WITHIN_S
    with RestoreClient(server.grpc_url, "grpc", SERVICE.restorer) as client:   # retry_s 0: one try
        start = time.monotonic()
        with pytest.raises(ClientError, match="busy: it refuses requests beyond its queue") as info:
            client.restore(PHOTO, steps=2)
        grpc_s = time.monotonic() - start
        assert info.value.unavailable and grpc_s < REFUSED_WITHIN_S
    queued.join()
    answer, waited = answers["queued"]   # waited in the queue for its timeout, then refused
    assert answer.status == 503 and "Request timeout expired" in answer.error, answer
    assert waited < BUSY_S
    busy.join()
    assert answers["busy"][0].status == 503 and "TIMEOUT passed" in answers["busy"][0].error   # not a bad input
    assert server.is_ready() and server.alive()
    answer = infer(server.http_url, SERVICE.ensemble, [tensor("IMAGE", "BYTES", PHOTO), tensor("STEPS", "INT32", 2)],
                   OUTPUTS)
    assert answer.status == 200 and int(answer.outputs["FACE_COUNT"][0]) == 1
    print(f"overload refused in {seconds * 1000:.0f} ms (HTTP), {grpc_s * 1000:.0f} ms (gRPC client); "
          f"queued request refused after {waited:.1f} s (queue timeout {CAPACITY.queue_timeout_s:g} s)")
