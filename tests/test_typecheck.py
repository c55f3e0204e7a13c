"""`make typecheck` bites: the TensorRT-touching modules pass mypy against TensorRT's real API
(tensorrt-stubs) and polygraphy's source, and a copy with one TensorRT call misspelled fails."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.typecheck import ROOT, TYPECHECKED, run_mypy

# (module, the call as written, a misspelling, what mypy must say about it)
MISSPELLED = [
    ("runtime/tensorrt_session.py", "execute_async_v3(self.stream.cuda_stream)",
     "execute_async_v2(self.stream.cuda_stream)",   # the TensorRT 8 name, removed in TensorRT 10
     '"IExecutionContext" has no attribute "execute_async_v2"'),
    ("runtime/tensorrt_session.py", "set_tensor_address(name, tensor.data_ptr())",
     "set_tensor_address(name)", 'Missing positional argument "memory" in call to "set_tensor_address"'),
    ("export/tensorrt_build.py", "def step_complete(self, phase_name: str, step: int) -> bool:",
     "def step_complete(self, phase_name: str, step: str) -> bool:",
     'Argument 2 of "step_complete" is incompatible with supertype'),
]


def test_modules_pass():
    result = run_mypy(list(TYPECHECKED))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("module, call, wrong, message", MISSPELLED, ids=[m[2].split("(")[0] for m in MISSPELLED])
def test_misspelled_tensorrt_call_fails(tmp_path, module, call, wrong, message):
    source = (ROOT / module).read_text()
    assert call in source, f"{module} no longer has `{call}`: update this test"
    copy = tmp_path / Path(module).name
    copy.write_text(source.replace(call, wrong, 1))
    result = run_mypy([str(copy)])
    assert result.returncode == 1 and message in result.stdout, result.stdout + result.stderr
