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

Control APIs closed (``restricted_api_args``): tritonserver accepts a model's files inside a
repository load request, so an open model-repository API runs any client's code on the server.
The model-repository, shared-memory (system and CUDA), logging and trace APIs of HTTP and gRPC
are restricted to requests that carry the header ``facerestore-admin-key`` with the server's
admin key (tritonserver's ``--http-restricted-api`` / ``--grpc-restricted-protocol``, format
``<apis>:<header>=<key>``, checked on 2.51: HTTP answers 403; gRPC answers UNAVAILABLE "This
protocol is restricted" and expects the header as ``triton-grpc-protocol-<header>``). The key is
made per start (``secrets``) or read from a file (a Kubernetes secret); only the supervisor uses
it; it is never in a URL, and a log line that holds it is masked. It is on tritonserver's
command line, which other local users can read in /proc unless /proc is mounted hidepid=2 (a
container has no other users).

Supervision (``serve_forever``, i.e. `facerestore serve`): tritonserver 2.51 never restarts a
python backend stub that died and keeps reporting its model ready while every request fails
with "Stub process is not healthy", and a model unloaded through the repository API stays
unloaded while /v2/health/ready says 200. A Supervisor thread checks every second: a model
whose stub died or that is not ready is reloaded alone (new stubs, within a second; the other
models keep serving), and only a dead server is restarted, on the same ports, retried with a
backoff (1 s doubling to 60 s) for as long as it takes: it never gives up. Restarts and
reloads are counted in the log and in the metrics (``facerestore_supervisor_*``, published by
face_preprocess: runtime/serving/triton_backend.py). ``is_ready`` means every model of the
repository can answer: the server ready, each model ready, no stub dead.

The python stubs' shared-memory regions (photos in flight) are created 0644 by the python
backend; the server makes them 0600 as soon as it sees them (start and every reload).

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
import json
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

from runtime.serving.admin_key import ADMIN_HEADER, new_admin_key, restricted_api_args
from runtime.serving.shm_recycle import IDLE_S, SHM_DIR, SHM_LIMIT, RecycleError, grown_models, idle_for, reload_model

STATE_ENV = "FACERESTORE_SUPERVISOR_STATE"   # the supervisor's counters, read by face_preprocess for metrics

# glibc malloc of the server and its stubs: every block over 1 MiB (photos, uploads, face
# batches) is its own mapping, returned to the system when freed, so memory comes back after a
# peak instead of staying in the heap (a fixed threshold also stops glibc raising it to 32 MiB)
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": str(2**20), "MALLOC_TRIM_THRESHOLD_": str(8 * 2**20), "MALLOC_ARENA_MAX": "4"}
HARMLESS = ("NVML", "CUDA", "Cuda", "cuda", "DCGM", "pinned memory")   # log lines of a GPU-less machine


class ServerError(RuntimeError):
    """The server could not be started or died; the message carries the end of its log."""


def repository_models(repository: Path) -> list[str]:
    """The models of a model repository (folders with a config.pbtxt), sorted."""
    return sorted(p.parent.name for p in Path(repository).glob("*/config.pbtxt"))


def repository_notices(repository: Path) -> list[str]:
    """The licence notices of the weights a repository serves: each model's 'provenance' parameter
    (written by the renderer) whose licence forbids commercial use, one line per model."""
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    from training.provenance import Provenance

    notices = []
    for path in sorted(Path(repository).glob("*/config.pbtxt")):
        try:
            config = text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())
        except text_format.ParseError:
            continue   # tritonserver says what is wrong with it
        if "provenance" in config.parameters:
            origin = Provenance.from_dict(json.loads(config.parameters["provenance"].string_value))
            if notice := origin.licence_notice(f"served {path.parent.name.removesuffix('_faces')}"):
                notices.append(notice)
    return notices


def protect_regions(stubs: dict[int, tuple[str, str]]) -> None:
    """Make the stubs' shared-memory regions readable by their owner only (the python backend
    creates them 0644: other local users could read the photos in flight)."""
    for _, region in stubs.values():
        try:
            os.chmod(SHM_DIR / region, 0o600)
        except OSError:   # the stub left meanwhile
            pass


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
    ports 0 = pick free ones; ready_timeout: seconds to wait for every model to load;
    admin_key: the key of the restricted APIs (default: a new random one)."""

    def __init__(self, repository: Path, http_port: int = 0, grpc_port: int = 0, metrics_port: int = 0,
                 server: str = "auto", log: Path | TextIO | None = None, ready_timeout: float = 300.0,
                 exit_timeout: int = 10, extra_args: list[str] | None = None, admin_key: str | None = None) -> None:
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
        self._retired: set[int] = set()   # stubs of reloaded models, left to finish
        self.admin_key = admin_key or new_admin_key()
        self.restricted = restricted_api_args(self.admin_key)
        self.models = repository_models(self.repository)
        self._state = tempfile.TemporaryDirectory(prefix="facerestore-serve-")
        self.state_file = Path(self._state.name) / "supervisor.json"

    @property
    def admin_headers(self) -> dict[str, str]:
        """The HTTP header that opens the restricted APIs (for the supervisor's own calls)."""
        return {ADMIN_HEADER: self.admin_key}

    @property
    def grpc_admin_headers(self) -> dict[str, str]:
        """The same over gRPC: tritonserver 2.51 expects the header name prefixed with
        'triton-grpc-protocol-' there (its refusal says so)."""
        return {f"triton-grpc-protocol-{ADMIN_HEADER}": self.admin_key}

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
        if not Path(self.server).is_file():
            raise ServerError(f"--server {self.server}: no such file (auto, bundled, or a tritonserver path)")
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
                *self.restricted, *extra, *self.extra_args]

    def start(self) -> "TritonServer":
        """Start the server and wait until it and every model are ready (ServerError if not)."""
        if self.process is not None:
            raise ServerError("already started")
        if self._spec is None:   # kept across restarts (the bundled server's work dir is made once)
            self._spec = self._binary()
        binary, env_extra, extra = self._spec
        env = {**os.environ, **env_extra}
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_project_root(), os.environ.get("PYTHONPATH")) if p)
        env[STATE_ENV] = str(self.state_file)
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
                protect_regions(self.stubs)
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
                line = raw.decode("utf-8", "replace").rstrip().replace(self.admin_key, "<admin key>")
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

    def answers(self, path: str) -> bool:
        """True when GET `path` of the HTTP endpoint answers 200."""
        try:
            with urllib.request.urlopen(f"http://{self.http_url}{path}", timeout=2) as r:
                return r.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def unready_models(self) -> list[str]:
        """Models of the repository that tritonserver does not report ready (unloaded, failed)."""
        return [m for m in self.models if not self.answers(f"/v2/models/{m}/ready")]

    def is_ready(self) -> bool:
        """True when every model of the repository can answer: /v2/health/ready, each model's
        ready endpoint, and no python stub dead (Triton keeps a model with a dead stub 'ready')."""
        return (self.answers("/v2/health/ready") and not self.dead_models() and not self.unready_models())

    def wait_ready(self) -> None:
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise ServerError(f"tritonserver exited with {self.process.returncode} before it was ready:\n"
                                  + self._log_tail())
            if self.answers("/v2/health/ready"):
                return
            time.sleep(0.5)
        raise ServerError(f"tritonserver not ready after {self.ready_timeout:.0f} s:\n" + self._log_tail())

    def _log_tail(self) -> str:
        return "\n".join(line for line in self.tail if not any(h in line for h in HARMLESS))

    def stop(self) -> None:
        """SIGTERM the server, wait for it, then SIGKILL its process group (stubs left behind); idempotent."""
        self._terminate()
        self._spec = None
        self._state.cleanup()
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
        self.stubs, self._retired = {}, set()

    def dead_models(self) -> list[str]:
        """Models whose python stub died since the server was ready (Triton keeps reporting them
        ready and fails each request with 'Stub process is not healthy'); ['tritonserver'] when
        the server itself exited."""
        if not self.alive():
            return ["tritonserver"]
        live = set(live_group_members(self.process.pid))
        return sorted({model for pid, (model, _) in self.stubs.items() if pid not in live})

    def reload(self, model: str) -> None:
        """Load `model` again with new stubs (tritonserver's repository API, the served config
        with its `recycled` counter raised; an unloaded model is loaded from the repository, and
        loading an ensemble loads its steps again too): the old stubs of every model that got
        new ones finish what they hold and leave, dead ones' regions are removed, the new ones
        are watched and protected. RecycleError if tritonserver refuses."""
        reload_model(self.http_url, model, self.admin_headers)
        fresh = {pid: v for pid, v in python_stubs(self.process.pid).items()
                 if pid not in self.stubs and pid not in self._retired}
        renewed = {m for m, _ in fresh.values()}
        old = {pid: v for pid, v in self.stubs.items() if v[0] in renewed}
        self._retired |= set(old)   # still finishing their requests: never taken for new ones
        protect_regions(fresh)
        live = set(live_group_members(self.process.pid))
        for pid, (_, region) in old.items():
            if pid not in live:   # a dead stub's region would stay behind
                (SHM_DIR / region).unlink(missing_ok=True)
        # one swap: the supervisor thread may be reading the old dict
        self.stubs = {**{pid: v for pid, v in self.stubs.items() if pid not in old}, **fresh}

    def recycle(self, limit: int = SHM_LIMIT, idle_s: float = IDLE_S) -> dict[str, int]:
        """Reload each model idle for `idle_s` whose stubs' shared-memory regions hold more than
        `limit` bytes (runtime/serving/shm_recycle.py); the bytes each held."""
        recycled = {}
        for model, held in grown_models(self.stubs, limit).items():
            if idle_for(self.http_url, model) < idle_s:
                continue
            self.reload(model)
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
    """Watches a started server every `interval` seconds and never gives up on it:
    - a model whose python stub died, or that is not ready (unloaded through the repository
      API, failed), is reloaded alone (TritonServer.reload); the others keep serving;
    - a server that exited, or a reload that fails, restarts the server on the same ports,
      retried after `backoff` seconds doubling up to `max_backoff` until it serves again;
    - otherwise idle models whose shared memory grew past `shm_limit` bytes are reloaded to
      give it back (None: never).
    Counts are kept (`restores`, the server's `restarts`, `recycled`), logged, and written to
    the server's state file for the metrics; `error` is the last failure (None once serving)."""

    def __init__(self, server: TritonServer, interval: float = 1.0, log: TextIO | None = None,
                 shm_limit: int | None = SHM_LIMIT, backoff: float = 1.0, max_backoff: float = 60.0) -> None:
        super().__init__(name="triton-supervisor", daemon=True)
        self.server, self.interval, self.backoff, self.max_backoff = server, interval, backoff, max_backoff
        self.log = log or sys.stderr
        self.error: str | None = None
        self.recoveries: list[float] = []   # seconds each server restart took
        self.restores = 0                   # models reloaded because they died or were unloaded
        self.shm_limit, self.recycled = shm_limit, 0   # models reloaded for their shared memory
        self._halt = threading.Event()

    def say(self, text: str) -> None:
        print(f"supervisor: {text}", file=self.log, flush=True)

    def run(self) -> None:
        self._publish()
        while not self._halt.wait(self.interval):
            self.check()

    def check(self) -> None:
        """One round: restore what is broken, else give memory back."""
        if not self.server.alive():
            self._restart("tritonserver exited")
            return
        broken = sorted(set(self.server.dead_models()) | set(self.server.unready_models()))
        for model in broken:
            if self._halt.is_set():
                return
            try:
                self.server.reload(model)
            except (RecycleError, OSError) as exc:   # OSError: urllib's errors
                self._restart(f"reloading {model} failed ({exc})")
                return
            self.restores += 1
            self.say(f"{model} had died or was unloaded; reloaded it (restore #{self.restores})")
            self._publish()
        if not broken and self.shm_limit is not None and not self._halt.is_set():
            self._recycle()

    def _restart(self, why: str) -> None:
        """Restart the server until it serves (or the supervisor is stopped), backing off."""
        delay = self.backoff
        while not self._halt.is_set():
            self.say(f"{why}; restarting tritonserver (restart #{self.server.restarts + 1})")
            try:
                self.recoveries.append(self.server.restart())
            except ServerError as exc:
                self.error = f"restart failed: {str(exc).splitlines()[0]}"
                self.say(f"{self.error}; trying again in {delay:.0f} s")
                self._halt.wait(delay)
                delay, why = min(delay * 2, self.max_backoff), "the last restart failed"
                continue
            self.error = None
            self.say(f"serving again after {self.recoveries[-1]:.1f} s ({self.server.restarts} restarts so far)")
            self._publish()
            return

    def _recycle(self) -> None:
        try:
            recycled = self.server.recycle(self.shm_limit)
        except (RecycleError, OSError) as exc:   # OSError: urllib's errors; the next round tries again
            self.say(f"reloading a model for its memory failed: {exc}")
            return
        for model, held in recycled.items():
            self.recycled += 1
            self.say(f"{model}'s shared memory grew to {held / 2**20:.0f} MiB; reloaded it with fresh stubs")
        if recycled:
            self._publish()

    def _publish(self) -> None:
        """Write the counters where face_preprocess reads them for the metrics (atomically)."""
        state = {"server_restarts": self.server.restarts, "model_restores": self.restores,
                 "memory_reloads": self.recycled}
        tmp = self.server.state_file.with_suffix(".tmp")
        try:
            tmp.write_text(json.dumps(state))
            tmp.replace(self.server.state_file)
        except OSError:   # the server was stopped and its state folder removed
            pass

    def stop(self) -> None:
        """Stop watching (the server keeps running); waits for a restart under way."""
        self._halt.set()
        if self.is_alive():
            self.join()


def serve_forever(server: TritonServer, supervise: bool = True) -> int:
    """Run until Ctrl-C / SIGTERM (then stop the server cleanly). With `supervise`, broken
    models and a dead server are restored for as long as it takes (Supervisor); without,
    return 1 when the server dies."""
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
                return 1   # not reached: the supervisor ends only when stopped
            finally:
                supervisor.stop()
    except KeyboardInterrupt:
        print("stopping tritonserver", file=sys.stderr)
        return 0
    finally:
        signal.signal(signal.SIGTERM, previous)
