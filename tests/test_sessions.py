"""Sessions honour the contract: inputs by name (or all in contract order), each in the dtype
the contract declares, on torch and on ONNX Runtime alike."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from runtime.contracts.base import BATCH, NetworkContract, TensorSpec
from runtime.sessions import OnnxRuntimeSession, TorchSession

SCALED = NetworkContract("scaled", inputs=(TensorSpec("x", (BATCH, 4)), TensorSpec("times", (BATCH,), dtype="int64")),
                         outputs=(TensorSpec("y", (BATCH, 4)),))


class Scaled(torch.nn.Module):
    """x * times, refusing inputs of another dtype than the contract's."""

    def forward(self, x: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
        if not torch.jit.is_tracing() and not torch.onnx.is_in_onnx_export():
            assert times.dtype == torch.int64 and x.is_floating_point(), (x.dtype, times.dtype)
        return x * times[:, None].to(x.dtype)


def test_bind_by_name_or_in_contract_order():
    x, times = np.ones((2, 4), np.float32), np.array([2, 3])
    assert list(SCALED.bind((), {"times": times, "x": x})) == ["x", "times"]
    assert SCALED.bind((x, times), {})["times"] is times
    for args, named, problem in [((x,), {}, "1 inputs given"), ((), {"x": x}, r"inputs \['x'\] given"),
                                 ((), {"x": x, "times": times, "y": x}, "it takes"), ((x,), {"times": times}, "not both")]:
        with pytest.raises(ValueError, match=problem):
            SCALED.bind(args, named)


def test_torch_and_onnxruntime_sessions_feed_the_declared_dtypes(tmp_path):
    x = np.arange(8, dtype=np.float64).reshape(2, 4)   # float64 in: the contract says float32
    times = np.array([2, 3], np.int32)                  # int32 in: the contract says int64
    expected = (x * times[:, None]).astype(np.float32)
    (got,) = TorchSession(Scaled(), SCALED)(times=times, x=x)
    np.testing.assert_array_equal(got, expected)
    path = tmp_path / "scaled.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # the TorchScript exporter warns about itself
        torch.onnx.export(Scaled(), (torch.ones(2, 4), torch.ones(2, dtype=torch.int64)), str(path), dynamo=False,
                          input_names=SCALED.input_names, output_names=SCALED.output_names,
                          dynamic_axes=SCALED.dynamic_axes())
    session = OnnxRuntimeSession(str(path), SCALED)
    assert {k: v.dtype for k, v in session.feed(times=times, x=x).items()} == {"x": np.float32, "times": np.int64}
    (got,) = session(x=x, times=times)
    np.testing.assert_array_equal(got, expected)
