"""--backend auto on a CPU with AMX-BF16: SaFM on ONNX Runtime fp32 for the first faces of a run,
then torch bf16 (runtime.sessions.ManyFacesSession), with results close to fp32 on real faces."""
from __future__ import annotations

import numpy as np
import pytest

from export.onnx_cache import onnx_dir
from runtime.imageio import frame_photo
from runtime.restorers.factory import make_restorer
from runtime.restorers.safm.contracts import SAFM
from runtime.sessions import ManyFacesSession, OnnxRuntimeSession
from training.cpu import cpu_flags


def test_auto_hands_over_to_torch_bf16_after_the_set_faces_on_amx(pipeline, group, capsys):
    if "amx_bf16" not in cpu_flags():
        pytest.skip("this CPU has no AMX-BF16: --backend auto keeps ONNX Runtime fp32 (checked below)")
    folders = {SAFM.name: onnx_dir(SAFM)}
    photo = frame_photo(group)
    batch = pipeline.align(photo, pipeline.find(photo)[0])
    assert len(batch) == 3
    fp32 = make_restorer("safm", None, "onnxruntime", folders, progress=False)
    auto = make_restorer("safm", None, "onnxruntime", folders, progress=False, bf16_after=4)
    session = auto.net
    assert isinstance(session, ManyFacesSession) and isinstance(fp32.net, OnnxRuntimeSession)
    first = auto(batch)                      # 3 faces: ONNX Runtime, the same as fp32
    assert session.many is None and np.array_equal(first, fp32(batch))
    second = auto(batch)                     # 6 faces asked for: torch bf16 from here on
    assert session.many is not None and "goes on in torch bf16" in capsys.readouterr().err
    diff = np.abs(second.astype(np.int16) - first.astype(np.int16))
    assert 0 < diff.mean() < 1.0 and np.percentile(diff, 99) <= 6   # bf16 rounding, not another picture


def test_auto_stays_on_onnxruntime_without_amx_or_when_not_asked(monkeypatch):
    import runtime.restorers.factory as factory

    folders = {SAFM.name: onnx_dir(SAFM)}
    assert isinstance(make_restorer("safm", None, "onnxruntime", folders, progress=False).net, OnnxRuntimeSession)
    monkeypatch.setattr(factory, "cpu_flags", lambda: frozenset({"avx512f", "avx512_bf16"}))
    net = make_restorer("safm", None, "onnxruntime", folders, progress=False, bf16_after=4).net
    assert isinstance(net, OnnxRuntimeSession)
