"""Saving benchmark results: JSON + Markdown table (+ PNG chart) per benchmark, atomically."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from benchmarks.timing import machine_line, machine_record
from runtime.files import write_atomic


def latency_table(result: dict) -> str:
    """Restorer rows (benchmarks.restorers.measure) as a Markdown table under their context."""
    flags = f" ({', '.join(result['cpu_flags'])})" if result.get("cpu_flags") else ""
    lines = [f"{result['title']} on {result['device']}{flags}, torch {result['torch']}, onnxruntime {result['onnxruntime']}, "
             f"{result['threads']} threads; measured matmul peak {result['matmul_peak_gflops']} GFLOP/s; "
             f"{result['weights']}; {result['inputs']}; paths timed in interleaved rounds", "",
             "| model | GFLOP/face | path | batch | runs | median ms | p90 ms | p99 ms | ms/face | faces/s | "
             "speed-up vs eager | % of peak | peak MB |",
             "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['model']} | {r['gflop_per_face']} | {r['path']} | {r['batch']} | {r['runs']} | {r['median_ms']} | "
              f"{r['p90_ms']} | {r['p99_ms']} | {r['ms_per_face']} | {r['faces_per_s']} | {r['speedup_vs_eager']}x | "
              f"{100 * r['peak_fraction']:.1f} | {r['peak_memory_mb']} |" for r in result["rows"]]
    return "\n".join(lines) + "\n"


def bar_chart(rows: list[dict], title: str) -> np.ndarray:
    """A grouped bar chart (uint8 BGR image) of ms/face per (model, path) for each batch size."""
    groups = sorted({(r["model"], r["path"]) for r in rows})
    batches = sorted({r["batch"] for r in rows})
    colors = [(180, 119, 31), (14, 127, 255), (44, 160, 44), (40, 39, 214), (189, 103, 148)]
    width, bar, gap, left = 1200, 18, 28, 420
    height = 80 + len(groups) * (len(batches) * bar + gap)
    img = np.full((height, width, 3), 255, np.uint8)
    cv2.putText(img, title[:120], (10, 25), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    top = max(r["ms_per_face"] for r in rows)
    y = 50
    for model, path in groups:
        cv2.putText(img, f"{model} | {path}", (10, y + 12), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (0, 0, 0), 1, cv2.LINE_AA)
        for i, b in enumerate(batches):
            r = next((r for r in rows if (r["model"], r["path"], r["batch"]) == (model, path, b)), None)
            if r is None:
                continue
            length = int(600 * np.log1p(r["ms_per_face"]) / np.log1p(top))
            y0 = y + 18 + i * bar
            cv2.rectangle(img, (left, y0), (left + max(length, 1), y0 + bar - 4), colors[i % len(colors)], -1)
            cv2.putText(img, f"b{b}: {r['ms_per_face']} ms/face", (left + 6 + length, y0 + bar - 6),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.38, (0, 0, 0), 1, cv2.LINE_AA)
        y += len(batches) * bar + gap
    return img


def save(folder: Path, stem: str, result: dict, table: str, chart: np.ndarray | None = None) -> None:
    """Write <stem>.json, <stem>.md (and <stem>.png) into folder and print the table, both with
    the machine's state at the run (timing.machine_record: matmul peak, load average; flagged
    when loaded) unless the result already holds it."""
    machine = result.setdefault("machine", machine_record())
    table = f"{table.rstrip()}\n\n{machine_line(machine)}\n"
    write_atomic(folder / f"{stem}.json", json.dumps(result, indent=2).encode())
    write_atomic(folder / f"{stem}.md", table.encode())
    if chart is not None:
        write_atomic(folder / f"{stem}.png", cv2.imencode(".png", chart)[1].tobytes())
    print(table)
