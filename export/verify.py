"""Parity of exported networks through polygraphy's Comparator: its ONNX Runtime runner (CPU)
and, given an engine, its TensorRT runner, each against PyTorch (fp32) on the contract's real
sample inputs."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from export.networks import NETWORKS
from runtime.contracts import NetworkContract
from runtime.sessions import TorchSession

# TensorRT engine vs PyTorch fp32, max |err| / max |output|, by engine precision (TF32 in both).
# Not measured yet (no GPU here): first numbers from `make bench-gpu` should replace these.
ENGINE_TOLERANCE = {"fp16": 2e-2, "fp32": 5e-3}


@dataclass
class Parity:
    """Errors of one output at one batch size, for one runner."""

    network: str
    output: str
    batch: int
    max_abs: float
    max_rel: float          # max |a - b| / max |b|: the error relative to the output's scale
    tolerance: float        # on max_rel
    runner: str = "onnxruntime"

    @property
    def ok(self) -> bool:
        return self.max_rel <= self.tolerance


def verify_onnx(contract: NetworkContract, onnx_path: Path, checkpoint: Path | None = None,
                batches: tuple[int, ...] = (1, 4), plan: Path | None = None, precision: str = "fp16") -> list[Parity]:
    """Run polygraphy's ONNX Runtime runner (CPU) and, when `plan` is given, its TensorRT runner
    on real sample inputs, and compare each with PyTorch (fp32): errors per runner, output and
    batch, judged against the contract's tolerance (ONNX Runtime) or ENGINE_TOLERANCE[precision]."""
    from polygraphy.backend.onnxrt import OnnxrtRunner, SessionFromOnnx
    from polygraphy.comparator import Comparator
    from polygraphy.logger import G_LOGGER

    runners: list = [OnnxrtRunner(SessionFromOnnx(str(onnx_path), providers=["cpu"]), name="onnxruntime")]
    tolerance = {"onnxruntime": contract.parity_tolerance}
    if plan is not None:
        from polygraphy.backend.trt import EngineFromBytes, TrtRunner

        runners.append(TrtRunner(EngineFromBytes(Path(plan).read_bytes()), name="tensorrt"))
        tolerance["tensorrt"] = ENGINE_TOLERANCE[precision]
    network = NETWORKS[contract.name]
    feeds = [dict(zip(contract.input_names, network.sample_inputs(batch))) for batch in batches]
    with G_LOGGER.verbosity(G_LOGGER.WARNING):   # not one log block per inference
        results = Comparator.run(runners, data_loader=feeds)
    torch_run = TorchSession(network.build_module(checkpoint), contract)
    references = [dict(zip(contract.output_names, torch_run(*feed.values()))) for feed in feeds]
    rows = []
    for runner, iterations in results:
        for batch, ref, got in zip(batches, references, iterations):
            for name in contract.output_names:
                diff = float(np.abs(ref[name] - np.asarray(got[name], np.float32)).max())
                rows.append(Parity(contract.name, name, batch, diff, diff / max(float(np.abs(ref[name]).max()), 1e-12),
                                   tolerance[runner], runner))
    return rows


def parity_table(rows: list[Parity]) -> str:
    """Markdown table of parity rows."""
    lines = ["| network | output | batch | max abs err | max rel err | rel tolerance | ok | runner |",
             "|---|---|---:|---:|---:|---:|---|---|"]
    lines += [f"| {r.network} | {r.output} | {r.batch} | {r.max_abs:.2e} | {r.max_rel:.2e} | {r.tolerance:g} | "
              f"{'yes' if r.ok else 'NO'} | {r.runner} |" for r in rows]
    return "\n".join(lines)
