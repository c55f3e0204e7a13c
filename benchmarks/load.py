"""Load test of a running server (loopback): `clients` threads, half gRPC and half HTTP, each
sending `requests` photos back to back through the served SaFM ensemble with retries on
"unavailable"; latency p50/p95, throughput and failures, next to the in-process rate of the
same work (one process calling the repository's own ONNX files, photo after photo)."""
from __future__ import annotations

import statistics
import sys
import threading
import time

from benchmarks.serving import served_session
from benchmarks.timing import device_name
from runtime.restorers import CONTRACTS
from runtime.face import FacePipeline
from runtime.imageio import decode_image, encode_image
from runtime.restore import restore_photo
from runtime.restorers.safm.restorer import SaFMRestorer
from runtime.serving.serve import TritonServer


def percentile(values: list[float], q: float) -> float:
    """The q-quantile (0..1) of `values`, nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def in_process_rate(server: TritonServer, photo: bytes, count: int) -> float:
    """Photos per second of the same restoration in one process, photo after photo."""
    repo = server.repository
    pipeline = FacePipeline(served_session(repo, CONTRACTS["face_detector"]), served_session(repo, CONTRACTS["face_mesh"]))
    restorer = SaFMRestorer(served_session(repo, CONTRACTS["safm"]))
    encode_image(restore_photo(decode_image(photo), pipeline, restorer)[0], ".png")   # warm-up
    start = time.perf_counter()
    for _ in range(count):
        encode_image(restore_photo(decode_image(photo), pipeline, restorer)[0], ".png")
    return count / (time.perf_counter() - start)


def load_test(server: TritonServer, photo: bytes, clients: int = 8, requests: int = 50,
              direct_count: int = 10, retry_s: float = 60.0) -> dict:
    """Run the load; the result holds every figure of the load-test table."""
    from runtime.serving.client import ClientError, RestoreClient

    latencies: list[float] = []
    failures: list[str] = []
    retries: list[int] = []
    lock = threading.Lock()

    def client_loop(i: int) -> None:
        protocol = "grpc" if i % 2 else "http"
        with RestoreClient(server.url(protocol), protocol, "safm", retry_s=retry_s) as client:
            client.restore(photo, "warm-up")
            for _ in range(requests):
                try:
                    result = client.restore(photo, f"client {i}")
                    with lock:
                        latencies.append(result.latency_s)
                except ClientError as exc:
                    with lock:
                        failures.append(str(exc))
            with lock:
                retries.append(client.retries)

    threads = [threading.Thread(target=client_loop, args=(i,)) for i in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start   # includes each client's one warm-up request
    done = len(latencies)
    result = {"device": device_name(), "clients": clients, "requests_per_client": requests, "done": done,
              "failures": len(failures), "retries": sum(retries), "wall_s": round(wall, 2),
              "throughput_per_s": round((done + clients) / wall, 2),
              "p50_ms": round(1000 * statistics.median(latencies), 1) if latencies else None,
              "p95_ms": round(1000 * percentile(latencies, 0.95), 1) if latencies else None,
              "in_process_per_s": round(in_process_rate(server, photo, direct_count), 2) if direct_count else None}
    if failures:
        print(f"load test: {len(failures)} failures, first: {failures[0]}", file=sys.stderr)
    return result


def load_table(result: dict) -> str:
    """The load test as a Markdown table."""
    return (f"Load test on {result['device']}: {result['clients']} clients x {result['requests_per_client']} "
            f"requests (half gRPC, half HTTP), loopback\n\n"
            "| done | failures | retries | wall s | throughput photos/s | p50 ms | p95 ms | in-process photos/s |\n"
            "|---:|---:|---:|---:|---:|---:|---:|---:|\n"
            f"| {result['done']} | {result['failures']} | {result['retries']} | {result['wall_s']} | "
            f"{result['throughput_per_s']} | {result['p50_ms']} | {result['p95_ms']} | {result['in_process_per_s']} |\n")


def main(argv: list[str] | None = None) -> int:
    """`python -m benchmarks.load --repo out/triton_repo_cpu`: start the server on the
    rendered repository (loopback, free ports), run the load, print (and --out: write) the table."""
    import argparse
    from pathlib import Path

    from benchmarks.serving import sample_photos
    from runtime.serving.serve import ServerError

    parser = argparse.ArgumentParser(prog="python -m benchmarks.load", description=__doc__)
    parser.add_argument("--repo", type=Path, required=True, help="a cpu-rendered model repository")
    parser.add_argument("--clients", type=int, default=8, help="(default: %(default)s)")
    parser.add_argument("--requests", type=int, default=50, help="per client (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=None, help="write the Markdown table here")
    args = parser.parse_args(argv)
    if args.clients < 1 or args.requests < 1:
        parser.error("--clients and --requests must be >= 1")
    photo = next(iter(sample_photos().values()))   # the astronaut, 512x512, one face
    try:
        with TritonServer(args.repo, server="bundled", log=args.repo.parent / "load-test-tritonserver.log") as server:
            table = load_table(load_test(server, photo, args.clients, args.requests))
    except ServerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(table)
    if args.out:
        args.out.write_text(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
