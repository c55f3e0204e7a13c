"""Supervision against the real server: a python stub killed (SIGKILL) under load makes
readiness fail within seconds, the supervisor restarts the server on the same ports with the
dead stub's shared memory removed, and clients that retry on "unavailable" lose no request.

Its own small server (the safm ensemble only), so the session's server is not disturbed.
"""
from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from export.triton_repo import render_repo
from benchmarks.serving import png_bytes
from runtime.serving.client import ClientError, RestoreClient
from runtime.samples import ASTRONAUT, read_rgb8
from runtime.serving.serve import SHM_DIR, Supervisor, TritonServer, live_group_members

RECOVERY_S = 30.0        # kill -> the first request answered again
READY_FAILS_S = 5.0      # kill -> readiness reports it
PHOTO = png_bytes(read_rgb8(ASTRONAUT))


@pytest.fixture(scope="module")
def supervised(engines, tmp_path_factory, request):
    repo = tmp_path_factory.mktemp("supervised") / "repo"
    render_repo("cpu", repo, engines, restorers=["safm"])
    server = TritonServer(repo, server="bundled", log=repo.parent / "tritonserver.log", exit_timeout=5,
                          ready_timeout=240)
    request.addfinalizer(server.stop)   # always: the process group dies even if a test failed
    server.start()
    supervisor = Supervisor(server, interval=0.5)
    supervisor.start()
    request.addfinalizer(supervisor.stop)
    return server, supervisor


def test_killed_stub_under_load_recovers_and_loses_nothing(supervised):
    server, supervisor = supervised
    urls = {"grpc": server.grpc_url, "http": server.http_url}
    ports = (server.http_port, server.grpc_port, server.metrics_port)
    results, errors, retries = [], [], []
    stop_load = threading.Event()

    def client_loop(protocol: str) -> None:
        with RestoreClient(urls[protocol], protocol, "safm", timeout=120, retry_s=60) as client:
            try:
                while not stop_load.is_set():
                    sent = time.monotonic()
                    faces = client.restore(PHOTO).faces
                    results.append((sent, time.monotonic(), faces))
            except Exception as exc:   # noqa: BLE001 - every lost request is reported below
                errors.append(exc)
            retries.append(client.retries)

    threads = [threading.Thread(target=client_loop, args=(p,)) for p in ("grpc", "http", "grpc", "http")]
    for t in threads:
        t.start()
    time.sleep(3)
    (victim, (model, region)), = [(pid, info) for pid, info in server.stubs.items() if info[0] == "safm_faces"]
    assert (SHM_DIR / region).exists()
    killed = time.monotonic()
    os.kill(victim, signal.SIGKILL)
    not_ready_after = None
    while time.monotonic() - killed < RECOVERY_S:
        if not_ready_after is None and not server.is_ready():
            not_ready_after = time.monotonic() - killed
        answered_after = [done - killed for sent, done, _ in results if sent > killed]
        if answered_after:
            break
        time.sleep(0.1)
    time.sleep(2)   # the load goes on a little on the restarted server
    stop_load.set()
    for t in threads:
        t.join(timeout=180)
    first_new = min((done - killed for sent, done, _ in results if sent > killed), default=None)
    print(f"stub killed: readiness failed after {not_ready_after:.2f} s; the first request sent after the kill "
          f"was answered after {first_new:.1f} s; {len(results)} requests, {sum(retries)} retries, "
          f"server restart took {supervisor.recoveries} s")
    assert not errors, errors
    assert not_ready_after is not None and not_ready_after <= READY_FAILS_S
    assert first_new is not None and first_new <= RECOVERY_S
    assert all(faces == 1 for *_, faces in results) and sum(retries) > 0   # the fault was met and retried
    assert server.restarts == 1 and supervisor.error is None
    assert (server.http_port, server.grpc_port, server.metrics_port) == ports
    assert not (SHM_DIR / region).exists()          # the dead stub's shared memory is gone
    assert victim not in server.stubs and "safm_faces" in {m for m, _ in server.stubs.values()}
    assert server.is_ready()


def test_models_reloaded_for_their_memory_under_load_refuse_nothing(supervised):
    """Every python model reloaded for its shared memory (what the supervisor does once a
    region grew past its limit) while clients send photos without retrying: every request is
    answered, the old stubs leave with their regions, and the supervisor does not take them for
    dead ones."""
    server, supervisor = supervised
    old, restarts = dict(server.stubs), server.restarts
    results, errors = [], []
    stop_load = threading.Event()

    def client_loop(protocol: str) -> None:
        url = server.grpc_url if protocol == "grpc" else server.http_url
        with RestoreClient(url, protocol, "safm", timeout=120) as client:   # retry_s 0: one try each
            while not stop_load.is_set():
                try:
                    results.append(client.restore(PHOTO).faces)
                except ClientError as exc:
                    errors.append(str(exc))

    threads = [threading.Thread(target=client_loop, args=(p,)) for p in ("grpc", "http")]
    for t in threads:
        t.start()
    time.sleep(2)
    start = time.monotonic()
    recycled = server.recycle(limit=0, idle_s=0)   # every python model, under load
    took = time.monotonic() - start
    time.sleep(2)
    stop_load.set()
    for t in threads:
        t.join(timeout=180)
    deadline = time.monotonic() + 30
    while set(old) & set(live_group_members(server.process.pid)) and time.monotonic() < deadline:
        time.sleep(0.2)
    print(f"{len(recycled)} models reloaded under load in {took:.1f} s; {len(results)} requests, {len(errors)} failed")
    assert set(recycled) == {model for model, _ in old.values()}
    assert not errors, errors[:3]
    assert results and all(faces == 1 for faces in results)
    assert not set(old) & set(live_group_members(server.process.pid))   # the old stubs left ...
    assert not any((SHM_DIR / region).exists() for _, region in old.values())   # ... with their regions
    assert not set(old) & set(server.stubs) and len(server.stubs) == len(old)
    time.sleep(2)   # the supervisor watched the new stubs: nothing dead, no restart
    assert server.restarts == restarts and supervisor.error is None and server.is_ready()


def test_probe_tells_the_truth_where_triton_health_does_not(supervised):
    """Unsupervised, a dead stub leaves Triton's readiness at 200 while runtime/serving/probe.py (the
    Kubernetes probes of deploy/k8s) reports the ensemble broken; after a restart both agree."""
    from runtime.serving.probe import main as probe_main, probe

    server, supervisor = supervised
    supervisor.stop()
    assert probe(server.http_url) is None
    (victim,) = [pid for pid, (model, _) in server.stubs.items() if model == "face_postprocess"]
    os.kill(victim, signal.SIGKILL)
    time.sleep(1)
    assert server.is_ready()                               # Triton: still "ready"
    problem = probe(server.http_url, timeout=30)
    assert problem is not None and "not healthy" in problem, problem
    assert probe_main(["--url", server.http_url, "--timeout", "30"]) == 1
    assert server.dead_models() == ["face_postprocess"]
    server.restart()
    assert probe(server.http_url) is None and server.dead_models() == []
