"""Supervision against the real server: a python stub killed (SIGKILL) under load makes
readiness fail within seconds, the supervisor reloads that model alone (the server and the
other models go on) with the dead stub's shared memory removed, and clients that retry on
"unavailable" lose no request; unloads and kills in a storm never make it give up.

Its own small server (the safm ensemble only), so the session's server is not disturbed.
"""
from __future__ import annotations

import io
import os
import signal
import threading
import time
import urllib.request

import pytest

from export.triton_repo import render_repo
from benchmarks.serving import png_bytes
from runtime.contracts.service import SERVICES
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
    assert server.restarts == 0 and supervisor.restores >= 1 and supervisor.error is None   # one model, not the server
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
    assert server.answers("/v2/health/ready")              # Triton: still "ready" ...
    assert not server.is_ready()                           # ... ours: not
    problem = probe(server.http_url, timeout=30)
    assert problem is not None and "not healthy" in problem, problem
    assert probe_main(["--url", server.http_url, "--timeout", "30"]) == 1
    assert server.dead_models() == ["face_postprocess"]
    server.restart()
    assert probe(server.http_url) is None and server.dead_models() == []


def test_readiness_is_false_while_an_ensemble_is_unloaded(supervised):
    """Triton's /v2/health/ready stays 200 after an ensemble was unloaded (every request then
    gets "has no available versions"); our readiness says so until the supervisor has loaded it
    again, and a client that retries meanwhile is answered once it is back."""
    server, supervisor = supervised
    supervisor.stop()
    unload(server, SERVICES["safm"].ensemble)
    wait_until(lambda: server.answers("/v2/health/ready"), 10)   # Triton: ready again once unloaded
    assert not server.is_ready()
    assert server.unready_models() == [SERVICES["safm"].ensemble]
    answered = []
    with RestoreClient(server.http_url, "http", "safm", timeout=120, retry_s=60) as client:
        waiting = threading.Thread(target=lambda: answered.append(client.restore(PHOTO).faces))
        waiting.start()
        time.sleep(2)   # it was refused and is retrying
        Supervisor(server).check()
        waiting.join(timeout=120)
        assert client.retries >= 1
    assert answered == [1]
    assert server.is_ready() and server.unready_models() == []


def test_the_supervisor_never_gives_up(supervised_storm):
    """Ten unloads and kills within a minute (each model unloaded with the admin key, stubs and
    the server itself killed): the supervisor restores each, never gives up, counts them in the
    log and in the metrics, and the ensemble serves again."""
    server, supervisor, log = supervised_storm
    ensemble = SERVICES["safm"].ensemble
    faults = [lambda: unload(server, ensemble), lambda: unload(server, "safm"), lambda: kill_stub(server, "safm_faces"),
              lambda: unload(server, "face_preprocess"), lambda: kill_stub(server, "face_postprocess"),
              lambda: kill_server(server), lambda: unload(server, ensemble),
              lambda: kill_stub(server, "safm"), lambda: unload(server, "face_detector"), lambda: unload(server, ensemble)]
    start = time.monotonic()
    for i, fault in enumerate(faults):   # one every 5 s, whether the last one was mended or not
        time.sleep(max(0.0, start + 5 * i - time.monotonic()))
        fault()
    assert time.monotonic() - start < 60
    wait_until(server.is_ready, 120)
    took = time.monotonic() - start
    with RestoreClient(server.http_url, "http", "safm", timeout=120, retry_s=30) as client:
        assert client.restore(PHOTO).faces == 1
    text = log.getvalue()
    print(f"10 faults in 45 s, serving again after {took:.0f} s: {supervisor.restores} models reloaded, {server.restarts} server restarts")
    assert supervisor.is_alive() and supervisor.error is None
    assert server.restarts == 1 and supervisor.restores >= 6   # faults that meet while one is mended count once
    assert f"restore #{supervisor.restores}" in text and "restart #1" in text
    wait_until(lambda: metric(server, "facerestore_supervisor_model_restores") == supervisor.restores, 10)
    assert metric(server, "facerestore_supervisor_server_restarts") == 1


def unload(server: TritonServer, model: str) -> None:
    """Unload `model` with the admin key (a server that is restarting refuses: the fault is lost)."""
    request = urllib.request.Request(f"http://{server.http_url}/v2/repository/models/{model}/unload", b"{}",
                                     method="POST", headers=server.admin_headers)
    try:
        with urllib.request.urlopen(request, timeout=60):
            pass
    except OSError:
        pass


def kill_stub(server: TritonServer, model: str) -> None:
    for pid, (name, _) in list(server.stubs.items()):
        if name == model:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def kill_server(server: TritonServer) -> None:
    process = server.process
    if process is not None:
        process.kill()


def wait_until(condition, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"not within {seconds} s: {condition}"
        time.sleep(0.2)


def metric(server: TritonServer, name: str) -> float | None:
    with urllib.request.urlopen(server.metrics_url, timeout=10) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                return float(line.rsplit(" ", 1)[1])
    return None


@pytest.fixture
def supervised_storm(engines, tmp_path_factory, request):
    """A fresh supervised server (the safm ensemble) whose supervisor logs into a buffer."""
    repo = tmp_path_factory.mktemp("storm") / "repo"
    render_repo("cpu", repo, engines, restorers=["safm"])
    server = TritonServer(repo, server="bundled", log=repo.parent / "tritonserver.log", exit_timeout=5,
                          ready_timeout=240)
    request.addfinalizer(server.stop)
    server.start()
    log = io.StringIO()
    supervisor = Supervisor(server, interval=0.5, log=log)
    supervisor.start()
    request.addfinalizer(supervisor.stop)
    return server, supervisor, log
