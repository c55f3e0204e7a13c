"""Parity of exported ONNX graphs: ONNX Runtime vs PyTorch on the contract's real sample inputs."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from runtime.contracts import NetworkContract
from runtime.sessions import OnnxRuntimeSession, TorchSession


@dataclass
class Parity:
    """Errors of one output at one batch size."""

    network: str
    output: str
    batch: int
    max_abs: float
    max_rel: float          # max |a - b| / max |b|: the error relative to the output's scale
    tolerance: float        # on max_rel

    @property
    def ok(self) -> bool:
        return self.max_rel <= self.tolerance


def verify_onnx(contract: NetworkContract, onnx_path: Path, checkpoint: Path | None = None,
                batches: tuple[int, ...] = (1, 4)) -> list[Parity]:
    """Run torch (fp32) and ONNX Runtime (CPU) on real sample inputs; errors per output and batch,
    judged against the contract's relative parity tolerance."""
    torch_run = TorchSession(contract.build_module(checkpoint))
    ort_run = OnnxRuntimeSession(onnx_path, contract.input_names, contract.output_names)
    rows = []
    for batch in batches:
        inputs = contract.sample_inputs(batch)
        for name, ref, got in zip(contract.output_names, torch_run(*inputs), ort_run(*inputs)):
            diff = float(np.abs(ref - got).max())
            rows.append(Parity(contract.name, name, batch, diff, diff / max(float(np.abs(ref).max()), 1e-12),
                               contract.parity_tolerance))
    return rows


def parity_table(rows: list[Parity]) -> str:
    """Markdown table of parity rows."""
    lines = ["| network | output | batch | max abs err | max rel err | rel tolerance | ok |", "|---|---|---:|---:|---:|---:|---|"]
    lines += [f"| {r.network} | {r.output} | {r.batch} | {r.max_abs:.2e} | {r.max_rel:.2e} | {r.tolerance:g} | "
              f"{'yes' if r.ok else 'NO'} |" for r in rows]
    return "\n".join(lines)
