"""Health checks of a served repository, for Kubernetes (deploy/k8s) and people.

``--ready`` (the readiness probe: cheap, never a restoration): the server answers
/v2/health/ready and every ensemble of the mounted repository answers /v2/models/<name>/ready.
tritonserver runs with --exit-on-error=false (deploy/docker/tritonserver.sh), so a model that
failed to load leaves the server up with that ensemble unavailable: the pod is then not ready
and the readiness line names the ensemble.

Without ``--ready`` (a smoke check, by hand or on a schedule, never a probe: it queues like any
request): restore the shipped astronaut photo through ``face_restore_<restorer>``. It catches
what the ready endpoints cannot: a python stub that died after loading (its model stays READY).

Exit 0 healthy, 1 not (one line says why).

    python -m runtime.serving.probe --ready --repository /models --url 127.0.0.1:8000 --timeout 3
    python -m runtime.serving.probe --url 127.0.0.1:8000 --restorer safm --timeout 10
"""
from __future__ import annotations

import argparse
import sys
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from runtime.contracts.service import SERVICES


def served_ensembles(repository: Path) -> list[str]:
    """The ensembles rendered into a model repository (those with a config.pbtxt)."""
    return [s.ensemble for s in SERVICES.values() if (Path(repository) / s.ensemble / "config.pbtxt").is_file()]


def _status(url: str, path: str, timeout: float) -> int | str:
    """The HTTP status of GET http://url/path, or why there is none."""
    try:
        with urllib.request.urlopen(f"http://{url}{path}", timeout=timeout) as answer:
            return answer.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, OSError) as exc:
        return str(getattr(exc, "reason", exc))


def ready(url: str, repository: Path, timeout: float = 3.0) -> str | None:
    """None when the server and every ensemble of `repository` are ready, else what is not."""
    ensembles = served_ensembles(repository)
    if not ensembles:
        return f"{repository}: no ensemble rendered there (python -m export triton-repo)"
    status = _status(url, "/v2/health/ready", timeout)
    if status != 200:
        return f"server {url} not ready: {status}"
    with ThreadPoolExecutor(len(ensembles)) as pool:   # at once: the probe takes two timeouts at most
        statuses = list(pool.map(lambda name: _status(url, f"/v2/models/{name}/ready", timeout), ensembles))
    down = [f"{name} ({status})" for name, status in zip(ensembles, statuses) if status != 200]
    return f"not ready: {', '.join(down)}" if down else None


def probe(url: str, restorer: str = "safm", timeout: float = 10.0) -> str | None:
    """None when the ensemble restored the sample photo's face, else what went wrong."""
    from runtime.samples import ASTRONAUT
    from runtime.serving.client import ClientError, RestoreClient

    try:
        with RestoreClient(url, "http", restorer, timeout=timeout) as client:
            result = client.restore(ASTRONAUT.read_bytes(), ASTRONAUT.name)
    except (ClientError, OSError) as exc:
        return str(exc)
    if result.faces != 1 or not result.image:
        return f"{SERVICES[restorer].ensemble} answered {result.faces} faces for {ASTRONAUT.name}, expected 1"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runtime.serving.probe", description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="127.0.0.1:8000", help="HTTP address (default: %(default)s)")
    parser.add_argument("--ready", action="store_true", help="readiness: the server and every ensemble of "
                        "--repository answer ready (no restoration)")
    parser.add_argument("--repository", type=Path, default=Path("/models"),
                        help="--ready: the served model repository (default: %(default)s)")
    parser.add_argument("--restorer", choices=sorted(SERVICES), default="safm",
                        help="smoke check: the ensemble to restore the sample photo with (default: %(default)s)")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds (default: %(default)s)")
    args = parser.parse_args(argv)
    problem = ready(args.url, args.repository, args.timeout) if args.ready else probe(args.url, args.restorer, args.timeout)
    if problem:
        print(f"unhealthy: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
