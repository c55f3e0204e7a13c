"""The GPU paths that need no TensorRT, checked where there is no GPU: the in-process AuthFace loop
calls its torch sessions with tensors on the loop's device (no host round trip per step), the
torch modes refuse what cannot run, and the prepared GPU check (`make gpu-check`) runs in its tiny
mode and writes its results. On CUDA the same tests run on the GPU."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from export.networks.authface import real_faces
from runtime.restorers.factory import make_restorer
from runtime.sessions import TORCH_MODES, CudaGraphSession, TorchSession, torch_mode

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


class DeviceOnly:
    """A torch session that counts its calls and refuses numpy (a host round trip)."""

    def __init__(self, session: TorchSession, device: torch.device) -> None:
        self.session, self.device, self.calls = session, device, 0

    def run_torch(self, **inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        assert all(isinstance(t, torch.Tensor) and t.device.type == self.device.type for t in inputs.values())
        self.calls += 1
        out = self.session.run_torch(**inputs)
        assert all(o.device.type == self.device.type for o in out)
        return out

    def __call__(self, **inputs):
        raise AssertionError("numpy call: the loop left the device")


def test_in_process_authface_loop_stays_on_the_device():
    """The torch backend's AuthFace restores through run_torch only (every step, the decoder, the
    encoder in strength mode), and gives what the numpy path through the same sessions gives."""
    faces = real_faces(1)
    for strength in (None, 0.5):
        restorer = make_restorer("authface", device=DEVICE, steps=4, strength=strength, progress=False,
                                 allow_untrained=True)
        sessions = (restorer.vae_encoder, restorer.unet_controlnet, restorer.vae_decoder)
        numpy_path = make_restorer("authface", device=DEVICE, steps=4, strength=strength, progress=False,
                                 allow_untrained=True)
        numpy_path.vae_encoder, numpy_path.unet_controlnet, numpy_path.vae_decoder = (
            (lambda s=s, **a: s(**a)) for s in sessions)   # no run_torch: numpy in and out, per step
        expected = numpy_path.restore(faces)
        spies = [DeviceOnly(s, restorer.device) for s in sessions]
        restorer.vae_encoder, restorer.unet_controlnet, restorer.vae_decoder = spies
        got = restorer.restore(faces)
        assert [s.calls for s in spies] == ([0, 4, 1] if strength is None else [1, 2, 1])
        assert got.shape == (1, 3, 512, 512) and np.abs(got - expected).max() < 1e-4


def test_torch_modes_refuse_what_cannot_run_here():
    from export.networks import NETWORKS

    mesh = NETWORKS["face_mesh"]
    session = TorchSession(mesh.build_module(None), mesh.contract, DEVICE)
    assert torch_mode(session, "eager") is session and set(TORCH_MODES) == {"eager", "cuda-graph", "compile"}
    with pytest.raises(ValueError, match="unknown torch mode 'graphs'"):
        torch_mode(session, "graphs")
    with pytest.raises(ValueError, match="is for the torch backend, not onnxruntime"):
        make_restorer("authface", backend="onnxruntime", torch_mode="compile", allow_untrained=True)
    if DEVICE == "cpu":
        with pytest.raises(ValueError, match="CUDA graphs need a CUDA device"):
            make_restorer("authface", torch_mode="cuda-graph", progress=False, allow_untrained=True)
    else:   # replayed from a graph: the eager numbers
        x = mesh.sample_inputs(3)
        graphed = CudaGraphSession(session)
        for want, got in zip(session(*x), graphed(*x)):
            assert np.abs(want - got).max() <= 1e-5 * np.abs(want).max()


def test_gpu_check_tiny_measures_every_part(tmp_path):
    """`python -m benchmarks.gpu_check --tiny` (torch.compile left out: minutes on a CPU): every
    network's half-precision error with the tolerance it needs, SaFM and the AuthFace loop timed,
    all in OUT/<device>/gpu_check.json and .md; the full check refuses a machine without CUDA."""
    from benchmarks.gpu_check import main, needed_tolerance
    from benchmarks.timing import device_slug
    from runtime.contracts.service import SERVICES
    from runtime.restorers import RESTORERS

    assert main(["--tiny", "--no-compile", "--out", str(tmp_path)]) == 0
    folder = tmp_path / device_slug()
    result = json.loads((folder / "gpu_check.json").read_text())
    assert not [n for n in result["notes"] if "not measured" in n], result["notes"]
    parity = result["parity"]
    # the served networks (face, SaFM, AuthFace); the published restorers and the background
    # upsampler (issues 27, 29) are not in the check yet
    served = {n for service in SERVICES.values() if not RESTORERS[service.restorer].needs_checkpoint
              for n in service.networks}   # the published ones are served only from the user's files
    assert {r["network"] for r in parity} == served
    for r in parity:
        assert r["finite"] and 0 < r["max_rel"] < 1 and r["needed_tolerance"] >= 2 * r["max_rel"]
    assert {r["path"] for r in result["safm"]} >= {"torch eager fp32"}
    assert [r["path"] for r in result["authface"]][0] == "torch eager" and result["authface"][0]["median_ms"] > 0
    markdown = (folder / "gpu_check.md").read_text()
    assert "| unet_controlnet | noise_pred |" in markdown and "AuthFace in-process restorer" in markdown
    assert [needed_tolerance(x) for x in (3e-3, 1e-2, 0.04)] == [0.01, 0.02, 0.1]
    if DEVICE == "cpu":
        assert main(["--out", str(tmp_path)]) == 2
