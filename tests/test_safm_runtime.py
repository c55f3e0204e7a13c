"""SaFM through export and the runtime: ONNX parity (tiny and base), torch vs onnxruntime restore."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from export.networks import NETWORKS
from export.onnx_export import export_onnx
from export.verify import verify_onnx
from runtime.sessions import OnnxRuntimeSession
from facerestore.cli import main
from runtime.restorers.safm.contracts import SAFM
from runtime.imageio import read_image
from runtime.samples import ASTRONAUT, GRACE_HOPPER
from tests.conftest import assert_same_tensors
from training.safm import load_checkpoint, random_init, save_checkpoint
from training.safm.ties import forced_codes, near_ties, resolve_ties


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ckpt")
    return {name: save_checkpoint(random_init(name, seed=3), folder / name) for name in ("safm-tiny", "safm-base")}


@pytest.mark.parametrize("config", ["safm-tiny", "safm-base"])
def test_onnx_matches_torch_on_real_faces(config, checkpoints, tmp_path):
    """fp32 parity of ONNX Runtime and torch, judged away from nearest-code ties.

    The codebook lookup is discontinuous: at a near-tie (training/safm/ties.py) two correct fp32
    backends may pick different codes; on Intel Xeon (AMX) ONNX Runtime did so at batch 4 on these
    random weights (max rel 3e-3), on AMD EPYC it did not. So each face is compared with torch
    run on the codes ONNX Runtime must have picked: torch's own codes, with near-tie positions
    switched to the runner-up only where that brings torch closer to ONNX Runtime. The bound is
    then the fp32 one on both CPU families: 5e-4 of the output scale (random weights grow outputs
    to about +-8 through ~70 layers; measured 5e-5..2.2e-4 on AMD EPYC)."""
    path = export_onnx(SAFM, tmp_path, checkpoints[config]).path
    model = load_checkpoint(checkpoints[config])
    ort = OnnxRuntimeSession(path, SAFM)
    tol = SAFM.parity_tolerance
    for batch in (1, 4):
        inputs = NETWORKS["safm"].sample_inputs(batch)
        (got,) = ort(*inputs)
        codes, ties = near_ties(model, torch.from_numpy(inputs[0]), tol)
        for item in range(batch):
            one = tuple(torch.from_numpy(a[item:item + 1]) for a in inputs)
            mine = [t[1:] for t in ties if t[0] == item]
            err, used = resolve_ties(model, one, torch.from_numpy(got[item]), codes[item], mine, tol)
            print(config, batch, item, f"rel {err:.2e}", f"switched {int((used != codes[item]).sum())} of {len(mine)} near-ties")
            assert err <= tol, (config, batch, item, err)


def test_tie_resolution_finds_a_switched_code(checkpoints):
    """The judge above is not blind: a backend that picked the runner-up at one near-tie differs
    from torch by far more than fp32 error, and resolve_ties finds that switch."""
    model = load_checkpoint(checkpoints["safm-tiny"])
    one = tuple(torch.from_numpy(a) for a in NETWORKS["safm"].sample_inputs(1))
    codes, ties = near_ties(model, one[0], SAFM.parity_tolerance)
    _, y, x, other = ties[0]
    switched = codes[0].clone()
    switched[y, x] = other
    with forced_codes(model, switched[None]), torch.no_grad():
        other_backend = model(*one)[0]
    with torch.no_grad():
        plain = model(*one)[0]
    assert float((plain - other_backend).abs().max() / plain.abs().max()) > SAFM.parity_tolerance
    err, used = resolve_ties(model, one, other_backend, codes[0], [t[1:] for t in ties], SAFM.parity_tolerance)
    assert err < 1e-6 and torch.equal(used, switched)


def test_restore_on_openvino_fp32_and_onnxruntime_give_the_same_picture(checkpoints, tmp_path, capsys):
    """The same exported file and face networks: only the restorer's runtime differs (torch against
    ONNX Runtime on real faces: test_onnx_matches_torch_on_real_faces; the CLI's torch path runs the face
    networks on torch too)."""
    ckpt = checkpoints["safm-tiny"]
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(ASTRONAUT, src / "astronaut.png")
    shutil.copy(GRACE_HOPPER, src / "grace.png")  # PNG: no JPEG re-quantisation between the two runs
    export_onnx(SAFM, tmp_path / "engines", ckpt)
    common = ["restore", str(src), "--model", "safm", "--checkpoint", str(ckpt), "--allow-untrained",
              "--onnx-dir", str(tmp_path / "engines")]
    assert main(common + ["--out", str(tmp_path / "ov"), "--backend", "openvino", "--precision", "fp32"]) == 0
    assert main(common + ["--out", str(tmp_path / "ort"), "--backend", "onnxruntime"]) == 0
    for name in ("astronaut.png", "grace.png"):
        a, b = read_image(tmp_path / "ov" / name).rgb, read_image(tmp_path / "ort" / name).rgb
        assert np.abs(a - b).max() <= 1 / 255 + 1e-6  # 8-bit rounding of outputs equal to ~1e-5
        assert np.abs(a - read_image(src / name).rgb).max() > 0.2  # the faces were really replaced
    assert "DEMO weights" not in capsys.readouterr().err


def test_refusals_are_clear(checkpoints, tmp_path, capsys):
    export_onnx(SAFM, tmp_path / "engines")  # default weights, not the checkpoint's
    args = ["restore", str(ASTRONAUT), "--out", str(tmp_path / "o"), "--model", "safm"]
    assert main(args + ["--backend", "onnxruntime", "--onnx-dir", str(tmp_path / "engines"),
                        "--checkpoint", str(checkpoints["safm-tiny"]), "--allow-untrained"]) == 2
    assert "exported from other weights" in capsys.readouterr().err
    assert main(args + ["--backend", "onnxruntime", "--onnx-dir", str(tmp_path / "none")]) == 2
    assert "none/safm.onnx: not found; run `python -m export onnx --model safm" in capsys.readouterr().err
    assert main(args + ["--precision", "fp16"]) == 2
    assert "--precision fp16 needs a CUDA device" in capsys.readouterr().err
    assert main(args + ["--size", "256"]) == 2
    assert "SaFM restores 512x512 faces; got 256 (use --size 512)" in capsys.readouterr().err
    assert main(args + ["--checkpoint", str(tmp_path / "missing.safetensors")]) == 2
    assert "missing.safetensors: not found" in capsys.readouterr().err


def test_default_is_the_shipped_demo_checkpoint(tmp_path, capsys):
    from training.safm import DEMO_CHECKPOINT, load_checkpoint

    assert main(["restore", str(ASTRONAUT), "--out", str(tmp_path), "--model", "safm"]) == 0
    assert "SaFM runs the shipped DEMO weights" in capsys.readouterr().err
    demo = load_checkpoint(DEMO_CHECKPOINT)
    assert demo.config.name == "safm-small" and demo.config.residual
    assert_same_tensors(NETWORKS["safm"].build_module(None).state_dict(), demo.state_dict())


@pytest.mark.parametrize("fidelity", [0.0, 0.5, 1.0])
def test_demo_never_makes_a_non_face(fidelity):
    """Safe by construction: the demo's output is its input plus a learned correction, so at any
    fidelity the restored faces stay the faces that went in, colours included (measured on these
    real faces: PSNR against the input 47 dB at w = 0, 38-39 dB at w = 0.5 and 1)."""
    from training.metrics import delta_e76, psnr

    images, labels, _ = NETWORKS["safm"].sample_inputs(3)
    with torch.no_grad():
        out = NETWORKS["safm"].build_module(None)(torch.from_numpy(images), torch.from_numpy(labels),
                                      torch.full((3, 1), fidelity)).numpy()
    to8 = lambda x: np.clip((x.transpose(0, 2, 3, 1) + 1) * 127.5, 0, 255).round().astype(np.uint8)  # noqa: E731
    for a, b in zip(to8(images), to8(out)):
        assert psnr(b, a) > 32 and delta_e76(b, a, sigma=16) < 1.0


def test_tensorrt_backend_refuses_clearly_without_an_engine(tmp_path, capsys):
    args = ["restore", str(ASTRONAUT), "--out", str(tmp_path / "o"), "--model", "safm", "--backend", "tensorrt",
            "--engines", str(tmp_path)]
    assert main(args) == 2
    # this machine has no CUDA: the message says so instead of sending the user to build-engines
    assert "safm.plan: not found, and this machine has no CUDA GPU" in capsys.readouterr().err


@pytest.fixture(scope="module")
def demo_onnx(tmp_path_factory):
    """The shipped demo weights exported to ONNX."""
    return export_onnx(SAFM, tmp_path_factory.mktemp("demo-onnx")).path


def test_trained_weights_meet_the_absolute_bound(demo_onnx):
    """With trained weights (the demo checkpoint, outputs in [-1, 1]) the issue's bound holds:
    max abs error <= 1e-4 at batch 1 and 4 (measured 5.5e-6 and 1.5e-5)."""
    rows = verify_onnx(SAFM, demo_onnx, None, batches=(1, 4))
    assert [r.batch for r in rows] == [1, 4] and all(r.max_abs <= 1e-4 for r in rows), rows


@pytest.mark.parametrize("fidelity", [[0.0, 0.0], [1.0, 1.0], [0.0, 1.0, 0.25, 0.75]], ids=["w0", "w1", "mixed"])
def test_onnx_follows_the_fidelity_input_as_torch_does(demo_onnx, fidelity):
    """Parity at the ends of w and for a batch of mixed w, face by face (the demo weights; the
    sample inputs elsewhere all have w = 0.5): an export that baked w in, or used one w for the
    whole batch, fails here, since w = 0 and w = 1 differ by far more than the bound."""
    images, labels, _ = NETWORKS["safm"].sample_inputs(len(fidelity))
    w = np.array(fidelity, np.float32)[:, None]
    (got,) = OnnxRuntimeSession(demo_onnx, SAFM)(images, labels, w)
    module = NETWORKS["safm"].build_module(None)
    with torch.no_grad():
        expected = module(torch.from_numpy(images), torch.from_numpy(labels), torch.from_numpy(w)).numpy()
        other = module(torch.from_numpy(images), torch.from_numpy(labels), torch.from_numpy(1 - w)).numpy()
    assert np.abs(got - expected).max() <= 1e-4   # measured 1e-5
    assert np.abs(expected - other).max() > 0.05   # w matters on every face (measured ...)


def test_channels_last_session_matches_the_written_layout():
    """The restorers' torch backend runs channels_last (faster convolutions, benchmarks/NOTES.md):
    same results as the NCHW layout on real faces with the demo weights (measured 3e-5 at batch 1,
    1.6e-4 at batch 4: other convolution algorithms, same network)."""
    from runtime.restorers.factory import make_restorer
    from runtime.sessions import TorchSession

    inputs = NETWORKS["safm"].sample_inputs(4)
    fast = make_restorer("safm", None, "torch").net   # the restorer's own torch session
    conv = next(m for m in fast.module.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    (got,), (ref,) = fast(*inputs), TorchSession(NETWORKS["safm"].build_module(None), SAFM)(*inputs)
    assert np.abs(got - ref).max() < 5e-4 and np.abs(got - ref).mean() < 5e-5   # measured 1.7e-5
