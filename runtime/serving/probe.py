"""Health that tells the truth: restore one real photo through the served ensemble.

Triton's /v2/health/ready stays 200 while a python stub is dead and every request fails;
this probe is what the Kubernetes readiness and liveness probes (deploy/k8s) run inside the
pod: it sends the shipped astronaut photo to ``face_restore_<restorer>`` and succeeds only if
a restored photo with its face comes back in time. Exit 0 healthy, 1 not (one line says why).

    python -m runtime.serving.probe --url 127.0.0.1:8000 --restorer safm --timeout 10
"""
from __future__ import annotations

import argparse
import sys

from runtime.contracts.service import SERVICES
from runtime.samples import ASTRONAUT


def probe(url: str, restorer: str = "safm", timeout: float = 10.0) -> str | None:
    """None when the ensemble restored the sample photo's face, else what went wrong."""
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
    parser.add_argument("--restorer", choices=sorted(SERVICES), default="safm", help="(default: %(default)s)")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds (default: %(default)s)")
    args = parser.parse_args(argv)
    problem = probe(args.url, args.restorer, args.timeout)
    if problem:
        print(f"unhealthy: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
