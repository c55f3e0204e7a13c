"""The OpenVINO session: an ONNX file compiled for this CPU by OpenVINO, in fp32 or in bf16 on a
CPU that computes bf16 natively (AMX-BF16 or AVX512-BF16). On a 2-core Xeon with AMX the SaFM demo
runs a face in ~0.27 s in bf16 against ~0.6 s on ONNX Runtime fp32 (benchmarks/NOTES.md), which is
why `--backend auto` picks it there (runtime/job.py: choose_backend).

The compiled model is cached under <cache>/openvino (OpenVINO's own cache, keyed to the model, the
CPU and the OpenVINO version): a later process compiles SaFM in ~0.15 s instead of ~1 s."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from runtime.contracts.base import NetworkContract
from runtime.files import cache_root
from runtime.sessions import SessionError, contract_feed, exported_onnx

OPENVINO_PRECISIONS = {"fp32": "f32", "bf16": "bf16"}   # ours -> OpenVINO's INFERENCE_PRECISION_HINT


def openvino_available() -> bool:
    """True when the `openvino` package is installed (a dependency on x86-64)."""
    from importlib.util import find_spec

    return find_spec("openvino") is not None


class OpenVinoSession:
    """Runs an ONNX file with OpenVINO on the CPU, binding inputs and outputs by the contract's
    names. precision: 'fp32' (OpenVINO's f32: matches ONNX Runtime to ~1e-5) or 'bf16' (bf16
    matmuls and convolutions, fp32 accumulation). threads: inference threads (None: one per core).
    cache_dir: where OpenVINO keeps the compiled model (None: no cache)."""

    def __init__(self, path: str | Path, contract: NetworkContract, precision: str = "fp32",
                 threads: int | None = None, cache_dir: Path | None = None) -> None:
        import openvino as ov

        if precision not in OPENVINO_PRECISIONS:
            raise ValueError(f"OpenVINO runs fp32 or bf16 on a CPU, not {precision}")
        core = ov.Core()
        if cache_dir is not None:
            core.set_property({"CACHE_DIR": str(cache_dir)})
        config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": OPENVINO_PRECISIONS[precision],
                                  "PERFORMANCE_HINT": "LATENCY"}
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        self.compiled = core.compile_model(str(path), "CPU", config)
        self.request = self.compiled.create_infer_request()
        self.contract, self.precision = contract, precision
        self.outputs = [self.compiled.output(name) for name in contract.output_names]

    def __call__(self, *args: np.ndarray, **named: np.ndarray) -> tuple[np.ndarray, ...]:
        result = self.request.infer(contract_feed(self.contract, args, named))   # outputs: copies
        return tuple(result[o] for o in self.outputs)


def openvino_session(contract: NetworkContract, onnx_dir: Path, checkpoint: Path | None = None,
                     precision: str = "fp32", threads: int | None = None) -> OpenVinoSession:
    """An OpenVINO session of `<onnx_dir>/<contract name>.onnx` (checked: exported_onnx), refused
    (SessionError) when OpenVINO is not installed. Compiled models are cached under <cache>/openvino."""
    path = exported_onnx(contract, onnx_dir, checkpoint)
    if not openvino_available():
        raise SessionError("--backend openvino: OpenVINO is not installed (pip install openvino; x86-64 CPUs)")
    cache: Path | None = cache_root() / "openvino"
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError:   # a read-only cache: compile every time
        cache = None
    return OpenVinoSession(path, contract, precision, threads, cache)
