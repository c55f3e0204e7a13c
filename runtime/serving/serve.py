"""Run a real tritonserver on a rendered model repository, on loopback, as a context manager.

Which server:
- ``server="auto"``: a ``tritonserver`` on PATH (production: the NGC container, which serves
  the ``gpu`` rendering's TensorRT plans), else the one bundled in nvidia-pytriton.
- ``"bundled"``: nvidia-pytriton 0.7.0's tritonserver 2.51 (python backend only: serves the
  ``cpu`` rendering). It runs here on CPU when (docs/ARCHITECTURE.md) its tree is copied to a
  work dir, the python backend stub built for the running Python is put into
  ``backends/python/``, LD_LIBRARY_PATH holds the wheel's ``nvidia_pytriton.libs`` and the
  interpreter's libpython dir, and this venv's ``bin`` leads PATH (the stub runs the models
  with this interpreter's packages, ``runtime`` included). Its log has CUDA/NVML/DCGM errors
  on a machine without a GPU: they are harmless.
- a path: that tritonserver binary.

Supervision (``serve_forever``, i.e. `facerestore serve`): tritonserver 2.51 never restarts a
python backend stub that died and keeps reporting its model ready while every request fails
with "Stub process is not healthy". A Supervisor thread checks the stubs and the server every
second and restarts the server on the same ports when one died, removing the dead stubs'
shared-memory regions; readiness fails only while it restarts, and a client that retries on
"unavailable" (runtime/serving/client.py) loses no request.

Memory back after peaks (runtime/serving/shm_recycle.py): the server runs in explicit model-control
mode (every model loaded at start), and the Supervisor reloads an idle model whose stubs'
shared-memory regions grew past SHM_LIMIT, which gives those regions back without refusing a
request.

Every address is 127.0.0.1; a port of 0 is replaced by a free one. The server runs in its own
process group; stop() (also on leaving the ``with`` block, on garbage collection and at
interpreter exit) sends SIGTERM to the server, waits, then SIGKILL to its group, so the python
backend stubs die with it and the ports are freed.
"""
from __future__ import annotations

import collections
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
import urllib.error
import urllib.request
import weakref
from pathlib import Path
from typing import TextIO

from runtime.serving.shm_recycle import IDLE_S, SHM_DIR, SHM_LIMIT, RecycleError, grown_models, idle_for, reload_model

# glibc malloc of the server and its stubs: every block over 1 MiB (photos, uploads, face
# batches) is its own mapping, returned to the system when freed, so memory comes back after a
# peak instead of staying in the heap (a fixed threshold also stops glibc raising it to 32 MiB)
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": str(2**20), "MALLOC_TRIM_THRESHOLD_": str(8 * 2**20), "MALLOC_ARENA_MAX": "4"}
HARMLESS = ("NVML", "CUDA", "Cuda", "cuda", "DCGM", "pinned memory")   # log lines of a GPU-less machine


class ServerError(RuntimeError):
    """The server could not be started or died; the message carries the end of its log."""


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_is_free(port: int) -> bool:
    """True when a server could listen on 127.0.0.1:`port` now (connections of a stopped server
    left in TIME_WAIT do not count: servers bind with SO_REUSEADDR)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def bundled_server(work_dir: Path) -> tuple[Path, dict[str, str], list[str]]:
    """Lay out nvidia-pytriton's tritonserver in `work_dir` for this Python. Returns the binary,
    the environment it needs and its extra arguments (backend and cache folders)."""
    try:
        import pytriton
    except ImportError:
        raise ServerError("no tritonserver on PATH and nvidia-pytriton is not installed "
                          "(pip install nvidia-pytriton==0.7.0)") from None
    package = Path(pytriton.__file__).resolve().parent
    src = package / "tritonserver"
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    stub = src / "python_backend_stubs" / version / "triton_python_backend_stub"
    if not stub.is_file():
        raise ServerError(f"nvidia-pytriton has no python backend stub for Python {version} ({stub})")
    root = Path(work_dir) / "tritonserver"
    shutil.copytree(src, root, ignore=shutil.ignore_patterns("python_backend_stubs", "__pycache__"))
    shutil.copy2(stub, root / "backends" / "python" / "triton_python_backend_stub")
    libs = [str(package.parent / "nvidia_pytriton.libs"), sysconfig.get_config_var("LIBDIR") or ""]
    env = {"LD_LIBRARY_PATH": os.pathsep.join([p for p in libs if p] + [os.environ.get("LD_LIBRARY_PATH", "")]),
           "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}
    args = [f"--backend-directory={root / 'backends'}", f"--cache-directory={root / 'caches'}"]
    return root / "bin" / "tritonserver", env, args


def _project_root() -> str:
    """The folder holding the `runtime` package, for the python models' imports."""
    return str(Path(__file__).resolve().parents[1])


def live_group_members(pgid: int) -> list[int]:
    """PIDs of the processes of a process group that still run (zombies, dead but not yet
    reaped by their new parent, are left out). Linux /proc; [] where there is none."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(stat.parent.name))
    return members


def group_memory(pgid: int) -> int:
    """Memory in bytes of the live processes of a process group (the server and its python
    backend stubs): the sum of their proportional set sizes, i.e. resident memory with each
    shared page (the stubs' shared-memory regions are mapped by the server too) counted once.
    Linux /proc."""
    total = 0
    for pid in live_group_members(pgid):
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total


STUB = "triton_python_backend_stub"


def python_stubs(pgid: int) -> dict[int, tuple[str, str]]:
    """The python backend stubs of a server's process group: pid -> (model name, shared-memory
    region name), read from their command lines (stub, model.py path, region, ...)."""
    stubs = {}
    for pid in live_group_members(pgid):
        try:
            args = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if args and args[0].endswith(STUB) and len(args) > 2:
            stubs[pid] = (Path(args[1]).parent.parent.name, args[2])
    return stubs


def _kill_group(pgid: int) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pgid, sig)
        except (ProcessLookupError, PermissionError):
            return
        time.sleep(0.2)


class TritonServer:
    """A tritonserver process serving `repository` on 127.0.0.1.

    with TritonServer("out/triton_repo_cpu") as server:
        print(server.http_url, server.grpc_url, server.metrics_url)

    log: a file path or text stream the server's log is forwarded to (default: stderr);
    ports 0 = pick free ones; ready_timeout: seconds to wait for every model to load."""

    def __init__(self, repository: Path, http_port: int = 0, grpc_port: int = 0, metrics_port: int = 0,
                 server: str = "auto", log: Path | TextIO | None = None, ready_timeout: float = 300.0,
                 exit_timeout: int = 10, extra_args: list[str] | None = None) -> None:
        self.repository = Path(repository).resolve()
        if not (self.repository.is_dir() and any(self.repository.glob("*/config.pbtxt"))):
            raise ServerError(f"{repository}: not a model repository (no */config.pbtxt); render one with "
                              f"`python -m export triton-repo`")
        self.requested = (http_port, grpc_port, metrics_port)
        self.server, self.log, self.ready_timeout = server, log, ready_timeout
        self.exit_timeout, self.extra_args = exit_timeout, list(extra_args or [])
        self.process: subprocess.Popen | None = None
        self.tail: collections.deque[str] = collections.deque(maxlen=60)
        self.http_port = self.grpc_port = self.metrics_port = 0
        self._work: tempfile.TemporaryDirectory | None = None
        self._finalizer = None
        self._pump: threading.Thread | None = None
        self._spec: tuple[Path, dict[str, str], list[str]] | None = None
        self.stubs: dict[int, tuple[str, str]] = {}   # pid -> (model, shm region) once ready
        self.restarts = 0

    # --- addresses ---------------------------------------------------------------------------
    @property
    def http_url(self) -> str:
        return f"127.0.0.1:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def url(self, protocol: str) -> str:
        return self.grpc_url if protocol == "grpc" else self.http_url

    # --- life cycle --------------------------------------------------------------------------
    def __enter__(self) -> "TritonServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _binary(self) -> tuple[Path, dict[str, str], list[str]]:
        if self.server == "auto" and shutil.which("tritonserver"):
            return Path(shutil.which("tritonserver")), {}, []
        if self.server in ("auto", "bundled"):
            self._work = tempfile.TemporaryDirectory(prefix="facerestore-triton-")
            return bundled_server(Path(self._work.name))
        return Path(self.server), {}, []

    def command(self, binary: Path, extra: list[str]) -> list[str]:
        return [str(binary), f"--model-repository={self.repository}",
                "--http-address=127.0.0.1", f"--http-port={self.http_port}",
                "--grpc-address=127.0.0.1", f"--grpc-port={self.grpc_port}",
                "--metrics-address=127.0.0.1", f"--metrics-port={self.metrics_port}",
                f"--exit-timeout-secs={self.exit_timeout}", "--strict-readiness=true",
                # the configs are complete: no python stub started per model just to complete them
                "--disable-auto-complete-config",
                # every model at start; a model can be reloaded (fresh stubs) through the repository API
                "--model-control-mode=explicit", "--load-model=*",
                *extra, *self.extra_args]

    def start(self) -> "TritonServer":
        """Start the server and wait until it and every model are ready (ServerError if not)."""
        if self.process is not None:
            raise ServerError("already started")
        if self._spec is None:   # kept across restarts (the bundled server's work dir is made once)
            self._spec = self._binary()
        binary, env_extra, extra = self._spec
        env = {**os.environ, **env_extra}
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_project_root(), os.environ.get("PYTHONPATH")) if p)
        env.update({k: v for k, v in MALLOC_ENV.items() if k not in os.environ})
        for attempt in range(3):   # a free port can be taken between the check and the bind
            ports = [p or free_port() for p in self.requested]
            while len(set(ports)) < 3:
                ports = [p or free_port() for p in self.requested]
            self.http_port, self.grpc_port, self.metrics_port = ports
            self._launch(binary, env, extra)
            try:
                self.wait_ready()
                self.stubs = python_stubs(self.process.pid)
                return self
            except ServerError:
                text = "\n".join(self.tail)
                self._terminate()
                if attempt < 2 and 0 in self.requested and "ddress already in use" in text:
                    continue
                self.stop()
                raise
        raise AssertionError("unreachable")

    def _launch(self, binary: Path, env: dict[str, str], extra: list[str]) -> None:
        self.tail.clear()
        self.process = subprocess.Popen(self.command(binary, extra), env=env, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
        # the group dies with this object or this interpreter, whatever happens to the caller
        self._finalizer = weakref.finalize(self, _kill_group, self.process.pid)
        self._pump = threading.Thread(target=self._forward, args=(self.process.stdout,), daemon=True)
        self._pump.start()

    def _forward(self, stream) -> None:
        """Copy the server's log lines to the log sink, keeping the last ones for error messages.
        On a machine without an NVIDIA GPU the server's CUDA/NVML/DCGM errors are expected: one
        line says so and they are left out."""
        own = isinstance(self.log, (str, Path))
        sink = open(self.log, "a", encoding="utf-8") if own else (self.log or sys.stderr)
        gpu_less, noted = not Path("/dev/nvidia0").exists(), False
        try:
            for raw in iter(stream.readline, b""):
                line = raw.decode("utf-8", "replace").rstrip()
                self.tail.append(line)
                if gpu_less and any(h in line for h in HARMLESS):
                    if noted:
                        continue
                    noted, line = True, "(no NVIDIA GPU here: its CUDA/NVML/DCGM errors are expected and not shown)"
                try:
                    sink.write(f"[tritonserver] {line}\n")
                    sink.flush()
                except ValueError:   # sink closed
                    pass
        finally:
            if own:
                sink.close()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def is_ready(self) -> bool:
        """True when the server answers HTTP /v2/health/ready with 200."""
        try:
            with urllib.request.urlopen(f"http://{self.http_url}/v2/health/ready", timeout=2) as r:
                return r.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def wait_ready(self) -> None:
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise ServerError(f"tritonserver exited with {self.process.returncode} before it was ready:\n"
                                  + self._log_tail())
            if self.is_ready():
                return
            time.sleep(0.5)
        raise ServerError(f"tritonserver not ready after {self.ready_timeout:.0f} s:\n" + self._log_tail())

    def _log_tail(self) -> str:
        return "\n".join(line for line in self.tail if not any(h in line for h in HARMLESS))

    def stop(self) -> None:
        """SIGTERM the server, wait for it, then SIGKILL its process group (stubs left behind); idempotent."""
        self._terminate()
        self._spec = None
        if self._work is not None:
            self._work.cleanup()
            self._work = None

    def _terminate(self, graceful: bool = True) -> None:
        if self.process is None:
            return
        pgid = self.process.pid
        try:   # the server first: it unloads its models and stops its python stubs itself
            if graceful:
                self.process.send_signal(signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            self.process.wait(timeout=self.exit_timeout + 5 if graceful else 0)
        except subprocess.TimeoutExpired:
            pass
        _kill_group(pgid)  # the server if it hung, and any python stub left behind
        self.process.wait()
        deadline = time.monotonic() + 5
        while live_group_members(pgid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if self._finalizer is not None:
            self._finalizer.detach()
        if self._pump is not None:
            self._pump.join(timeout=5)
        self.process = None
        for _, region in self.stubs.values():   # a killed stub leaves its region behind
            (SHM_DIR / region).unlink(missing_ok=True)
        self.stubs = {}

    def dead_models(self) -> list[str]:
        """Models whose python stub died since the server was ready (Triton keeps reporting them
        ready and fails each request with 'Stub process is not healthy'); ['tritonserver'] when
        the server itself exited."""
        if not self.alive():
            return ["tritonserver"]
        live = set(live_group_members(self.process.pid))
        return sorted({model for pid, (model, _) in self.stubs.items() if pid not in live})

    def recycle(self, limit: int = SHM_LIMIT, idle_s: float = IDLE_S) -> dict[str, int]:
        """Reload each model idle for `idle_s` whose stubs' shared-memory regions hold more than
        `limit` bytes (runtime/serving/shm_recycle.py); the bytes each held. The old stubs leave once
        they finish what they hold; they are no longer watched (dead_models)."""
        recycled = {}
        for model, held in grown_models(self.stubs, limit).items():
            if idle_for(self.http_url, model) < idle_s:
                continue
            old = {pid for pid, (m, _) in self.stubs.items() if m == model}
            reload_model(self.http_url, model)
            fresh = {pid: v for pid, v in python_stubs(self.process.pid).items() if v[0] == model and pid not in old}
            self.stubs = {**{pid: v for pid, v in self.stubs.items() if pid not in old}, **fresh}   # one swap: the
            # supervisor thread may be reading the old dict
            recycled[model] = held
        return recycled

    def restart(self) -> float:
        """Stop the server (its stubs and their shared memory) and start it again on the same
        ports; the seconds it took (ServerError if it does not come back)."""
        start = time.monotonic()
        ports = (self.http_port, self.grpc_port, self.metrics_port)
        # no graceful stop: Triton waits its whole exit timeout on a model whose stub is dead,
        # and the requests in flight are retried by the clients anyway
        self._terminate(graceful=False)
        requested, self.requested = self.requested, ports
        try:
            self.process = None
            self.start()
        finally:
            self.requested = requested
        self.restarts += 1
        return time.monotonic() - start

    def wait(self) -> int:
        """Block until the server exits (for `facerestore serve`); its exit status."""
        return self.process.wait() if self.process else 0


class Supervisor(threading.Thread):
    """Watches a started server every `interval` seconds: when a python stub or the server
    itself died, it restarts the server on the same ports (stubs and their shared memory
    cleaned up), so readiness fails only for the restart and clients that retry lose nothing.
    Gives up (sets `error`, ends) after `max_restarts` restarts within `window` seconds.
    Otherwise it reloads idle models whose shared memory grew past `shm_limit` bytes
    (TritonServer.recycle; None: never)."""

    def __init__(self, server: TritonServer, interval: float = 1.0, max_restarts: int = 5, window: float = 600.0,
                 log: TextIO | None = None, shm_limit: int | None = SHM_LIMIT) -> None:
        super().__init__(name="triton-supervisor", daemon=True)
        self.server, self.interval, self.max_restarts, self.window = server, interval, max_restarts, window
        self.log = log or sys.stderr
        self.error: str | None = None
        self.recoveries: list[float] = []   # seconds each restart took
        self.shm_limit, self.recycled = shm_limit, 0   # models reloaded for their shared memory
        self._restart_times: collections.deque[float] = collections.deque()
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.wait(self.interval):
            dead = self.server.dead_models()
            if not dead and self.shm_limit is not None and not self._halt.is_set():
                self._recycle()
            if not dead or self._halt.is_set():
                continue
            now = time.monotonic()
            while self._restart_times and now - self._restart_times[0] > self.window:
                self._restart_times.popleft()
            if len(self._restart_times) >= self.max_restarts:
                self.error = f"{len(self._restart_times)} restarts in {self.window:.0f} s, last for {', '.join(dead)}"
                return
            self._restart_times.append(now)
            print(f"supervisor: {', '.join(dead)} died; restarting tritonserver", file=self.log, flush=True)
            try:
                self.recoveries.append(self.server.restart())
            except ServerError as exc:
                self.error = f"restart failed: {exc}"
                return
            print(f"supervisor: serving again after {self.recoveries[-1]:.1f} s", file=self.log, flush=True)

    def _recycle(self) -> None:
        try:
            recycled = self.server.recycle(self.shm_limit)
        except (RecycleError, OSError) as exc:   # OSError: urllib's errors; the next round tries again
            print(f"supervisor: reloading a model for its memory failed: {exc}", file=self.log, flush=True)
            return
        for model, held in recycled.items():
            self.recycled += 1
            print(f"supervisor: {model}'s shared memory grew to {held / 2**20:.0f} MiB; reloaded it with fresh "
                  f"stubs", file=self.log, flush=True)

    def stop(self) -> None:
        """Stop watching (the server keeps running); waits for a restart under way."""
        self._halt.set()
        if self.is_alive():
            self.join()


def serve_forever(server: TritonServer, supervise: bool = True) -> int:
    """Run until Ctrl-C / SIGTERM (then stop the server cleanly). With `supervise`, a dead stub
    or server is restarted (Supervisor); without, or when the supervisor gives up, return 1."""
    def on_term(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_term)
    supervisor = Supervisor(server) if supervise else None
    try:
        with server:
            print(f"serving {server.repository}: HTTP {server.http_url}, gRPC {server.grpc_url}, "
                  f"metrics {server.metrics_url} (Ctrl-C stops)", file=sys.stderr, flush=True)
            if supervisor is None:
                code = server.wait()
                print(f"error: tritonserver exited with {code}", file=sys.stderr)
                return 1
            try:   # the supervisor stops before the server does
                supervisor.start()
                while supervisor.is_alive():
                    supervisor.join(1.0)
                print(f"error: supervisor gave up: {supervisor.error}", file=sys.stderr)
                return 1
            finally:
                supervisor.stop()
    except KeyboardInterrupt:
        print("stopping tritonserver", file=sys.stderr)
        return 0
    finally:
        signal.signal(signal.SIGTERM, previous)
