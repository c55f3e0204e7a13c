"""Timing primitives: device naming, synchronised wall-clock runs, statistics, peak memory and
the device's measured matmul rate (the "peak" that restorer throughput is compared with) and
the machine's state at a run (machine_record: that peak and the load average, loaded or not)."""
from __future__ import annotations

import gc
import os
import platform
import re
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch


def device_name() -> str:
    """The GPU's name when CUDA is present, else this CPU's model name."""
    if torch.cuda.is_available():
        return torch.cuda.get_device_name()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "cpu"


def device_slug() -> str:
    """A folder name for this device's results, e.g. 'cpu-amd-epyc' or 'nvidia-h100-80gb-hbm3'."""
    name = re.sub(r"[^a-z0-9]+", "-", device_name().lower()).strip("-")
    return name if torch.cuda.is_available() else f"cpu-{name}"


def _timed_ms(fn: Callable[[], object]) -> float:
    """One call's milliseconds: CUDA events around it on GPU (after a synchronise, so nothing
    queued earlier is counted), the wall clock on CPU."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end)
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1e3


def interleaved_ms(calls: dict[str, Callable[[], object]], repeats: int, warmup: int = 1,
                   max_seconds: float | None = None, min_runs: int = 3) -> dict[str, list[float]]:
    """Milliseconds of up to `repeats` timed calls of each of `calls` (CUDA events on GPU), after
    `warmup` untimed ones each, in rounds of one call each whose order rotates every round, so
    a slow drift of the machine hits every call alike. With `max_seconds` (a budget per call),
    timing stops once a call has used it and at least `min_runs` rounds were timed (slow paths
    get fewer runs)."""
    names = list(calls)
    for name in names:
        for _ in range(warmup):
            calls[name]()
    out: dict[str, list[float]] = {name: [] for name in names}
    for i in range(repeats):
        for name in names[i % len(names):] + names[:i % len(names)]:
            out[name].append(_timed_ms(calls[name]))
        if max_seconds is not None and i + 1 >= min_runs and max(sum(v) for v in out.values()) > max_seconds * 1e3:
            break
    return out


def time_ms(fn: Callable[[], object], repeats: int, warmup: int = 1, max_seconds: float | None = None,
            min_runs: int = 3) -> list[float]:
    """interleaved_ms of one call."""
    return interleaved_ms({"call": fn}, repeats, warmup, max_seconds, min_runs)["call"]


def stats(ms: list[float]) -> dict[str, float]:
    """Number of runs, median, p90, p99 and mean of timings."""
    return {"runs": len(ms), "median_ms": round(float(np.median(ms)), 2),
            "p90_ms": round(float(np.percentile(ms, 90)), 2), "p99_ms": round(float(np.percentile(ms, 99)), 2),
            "mean_ms": round(float(np.mean(ms)), 2)}


def reset_peak_memory() -> None:
    """Free what the last measurement left, then reset the process's peak RSS (Linux clear_refs)
    and CUDA's peak allocation."""
    gc.collect()
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def peak_memory_mb() -> float:
    """Peak CUDA allocation when on GPU, else the process's peak RSS, in MB."""
    if torch.cuda.is_available():
        return round(torch.cuda.max_memory_allocated() / 2 ** 20, 1)
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def matmul_rate_gflops() -> float:
    """The device's measured dense matmul rate (fp16 8192^2 on CUDA, fp32 2048^2 on CPU), GFLOP/s."""
    cuda = torch.cuda.is_available()
    n, dtype, dev = (8192, torch.float16, "cuda") if cuda else (2048, torch.float32, "cpu")
    a, b = torch.randn(n, n, dtype=dtype, device=dev), torch.randn(n, n, dtype=dtype, device=dev)
    ms = float(np.median(time_ms(lambda: a @ b, repeats=10, warmup=3)))
    return 2 * n ** 3 / (ms / 1e3) / 1e9


def machine_record() -> dict:
    """The machine as a run leaves it, saved with every result: its matmul rate measured now
    (GFLOP/s), the load average (1, 5, 15 min), the cores this process may use, and `loaded`
    when the 1- or 5-minute load exceeds them: other work shared the CPUs while it ran, so its
    timings are not this machine's (a shared machine made the matmul peak 56 GFLOP/s instead of
    198 and a detector run 741 ms instead of 60 in one committed run)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    load = [round(x, 2) for x in os.getloadavg()]
    return {"matmul_peak_gflops": round(matmul_rate_gflops(), 1), "load_average": load, "cores": cores,
            "loaded": max(load[:2]) > cores}


def machine_line(record: dict) -> str:
    """machine_record as one Markdown line, flagged in bold when the run was loaded."""
    load = "/".join(f"{x:g}" for x in record["load_average"])
    line = (f"Machine at this run: measured matmul peak {record['matmul_peak_gflops']} GFLOP/s, load average "
            f"{load} (1/5/15 min) on {record['cores']} cores")
    return f"**LOADED: {line}; the load exceeded the cores, so these timings are not the machine's.**" \
        if record["loaded"] else line + "."
