"""Published restorers from the user's files (runtime/restorers/published/): for each architecture a
random-weight instance saved as .pth in the published key layout restores a real photo through
`facerestore restore`, equal to the network's torch forward on the same crop; files with a
missing, extra or misshaped key are refused naming the key; ONNX export with a dynamic batch
matches torch on ONNX Runtime; CodeFormer's fidelity is a live input; the non-commercial licence
is said. No published weights exist here: these are our networks with random weights."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from facerestore.cli import main
from runtime.restorers.published import PUBLISHED
from runtime.restorers.published.restorer import load_network, save_random, to_range
from runtime.samples import ASTRONAUT

ARCHS = ["gfpgan", "codeformer", "restoreformer", "restoreformerpp"]


def save_published(name: str, path: Path, seed: int = 0, edit=None) -> Path:
    """A random-weight instance of `name` saved in its published key layout."""
    return save_random(PUBLISHED[name], path, seed, edit)


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """name -> its random-weight published file (made on first use)."""
    folder = tmp_path_factory.mktemp("published")
    files: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in files:
            files[name] = save_published(name, folder / f"{name}.pth")
        return files[name]

    return get


def read_png(path: Path) -> np.ndarray:
    return cv2.imread(str(path))[..., ::-1].copy()


def forward(module: torch.nn.Module, crops: np.ndarray, *extra: torch.Tensor) -> np.ndarray:
    """The module's output for uint8 crops, back to uint8 NHWC (the restorers' rounding)."""
    with torch.inference_mode():
        out = module(torch.from_numpy(to_range(crops, (-1.0, 1.0))), *extra).numpy()
    return np.clip(np.round((out.transpose(0, 2, 3, 1) + 1) * 127.5), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("name", ARCHS)
def test_restore_equals_the_torch_forward(name, published, tmp_path, capsys):
    """`restore --model NAME --checkpoint FILE` on the astronaut: the restored aligned crop is the
    network's torch forward on the aligned crop (<= 1/255), params_ema preferred over params."""
    out = tmp_path / "out"
    argv = ["restore", str(ASTRONAUT), "--model", name, "--checkpoint", str(published(name)), "--backend", "torch",
            "--out", str(out), "--save-crops"]
    assert main(argv) == 0
    crop = read_png(out / "crops" / "astronaut_face00_aligned.png")
    restored = read_png(out / "crops" / "astronaut_face00_restored.png")
    extra = (torch.full((1, 1), 0.5),) if PUBLISHED[name].fidelity else ()
    expected = forward(load_network(PUBLISHED[name], published(name)), crop[None], *extra)[0]
    assert np.abs(restored.astype(int) - expected).max() <= 1
    assert np.abs(restored.astype(int) - crop).mean() > 5   # random weights: not the input back
    report = json.loads((out / "report.json").read_text())
    origin = report["provenance"]
    assert report["restorer"] == name and origin["trained"] and "the user's published weights" in origin["text"]
    assert origin["licence"] == PUBLISHED[name].licence and origin["non_commercial"] == PUBLISHED[name].non_commercial
    said = capsys.readouterr()
    assert ("NON-COMMERCIAL" in said.out + said.err) == PUBLISHED[name].non_commercial


@pytest.mark.parametrize("kind", ["missing", "extra", "misshaped"])
def test_a_file_that_does_not_fit_is_refused_naming_the_key(kind, tmp_path, capsys):
    key = "stylegan_decoder.noises.noise3"
    edits = {"missing": lambda s: s.pop(key),
             "extra": lambda s: s.__setitem__("stylegan_decoder.noises.noise99", torch.zeros(1, 1, 8, 8)),
             "misshaped": lambda s: s.__setitem__(key, torch.zeros(1, 1, 9, 9))}
    bad = save_published("gfpgan", tmp_path / "bad.pth", edit=edits[kind])
    rc = main(["restore", str(ASTRONAUT), "--model", "gfpgan", "--checkpoint", str(bad), "--backend", "torch",
               "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == 2 and str(bad) in err
    assert ("noise99" if kind == "extra" else key) in err
    assert {"missing": "missing key", "extra": "unexpected key", "misshaped": "(1, 1, 9, 9)"}[kind] in err
    assert not (tmp_path / "out" / "astronaut.png").exists()


def test_without_a_checkpoint_says_which_file(tmp_path, capsys):
    assert main(["restore", str(ASTRONAUT), "--model", "codeformer", "--out", str(tmp_path)]) == 2
    assert "codeformer.pth" in capsys.readouterr().err


@pytest.mark.parametrize("name", ARCHS)
def test_onnx_export_has_a_dynamic_batch_and_matches_torch(name, published, tmp_path):
    """ONNX export (`python -m export onnx`, parity checked by polygraphy) and then ONNX Runtime
    at batch 2 against the torch forward; CodeFormer's w changes the output on both."""
    import onnxruntime as ort

    from export.cli import main as export_main
    from runtime.face import torch_face_pipeline
    from runtime.imageio import read_image

    assert export_main(["onnx", "--model", name, "--checkpoint", str(published(name)), "--out", str(tmp_path)]) == 0
    pipeline = torch_face_pipeline()
    photo = read_image(ASTRONAUT)
    crop = pipeline.align(photo, pipeline.find(photo)[0]).crops[:1]
    crops = np.concatenate([crop, crop[:, :, ::-1]])   # two different faces: the batch axis is live
    session = ort.InferenceSession(str(tmp_path / f"{name}.onnx"), providers=["CPUExecutionProvider"])
    module = load_network(PUBLISHED[name], published(name))
    feeds = [{"image": to_range(crops, (-1.0, 1.0))}]
    if PUBLISHED[name].fidelity:
        feeds = [{**feeds[0], "fidelity": np.full((2, 1), w, np.float32)} for w in (0.0, 1.0)]
    outputs = []
    for feed in feeds:
        (got,) = session.run(["restored"], feed)
        with torch.inference_mode():
            want = module(*(torch.from_numpy(v) for v in feed.values())).numpy()
        assert got.shape == (2, 3, 512, 512)
        assert np.abs(got - want).max() <= 1e-3 * max(1.0, np.abs(want).max())
        outputs.append((got, want))
    if len(outputs) == 2:   # CodeFormer: w = 0 and w = 1 differ, in ONNX Runtime as in torch
        (ort0, torch0), (ort1, torch1) = outputs
        assert np.abs(ort0 - ort1).mean() > 1e-2 and np.abs(torch0 - torch1).mean() > 1e-2


def test_codeformer_fidelity_changes_the_restored_photo(published, tmp_path):
    """--fidelity reaches CodeFormer's w through `restore` (torch backend)."""
    crops = {}
    for w in ("0", "1"):
        out = tmp_path / w
        assert main(["restore", str(ASTRONAUT), "--model", "codeformer", "--checkpoint", str(published("codeformer")),
                     "--backend", "torch", "--fidelity", w, "--out", str(out), "--save-crops"]) == 0
        crops[w] = read_png(out / "crops" / "astronaut_face00_restored.png").astype(int)
    assert np.abs(crops["0"] - crops["1"]).mean() > 2


FOURTH = '''
import json, sys
from pathlib import Path

from runtime.restorers import register
from runtime.restorers.published import PublishedArch, published_spec

# the one data entry: GFPGANv1Clean at 256 px on ArcFace's template, channel multiplier 1, as a "fourth" architecture
register(published_spec(PublishedArch("gfpgan256", "GFPGAN 256", "training.published.gfpgan:GFPGANv1Clean",
                                      "Apache-2.0", kwargs=(("out_size", 256), ("channel_multiplier", 1)),
                                      face_size=256, face_template="arcface_128", files="gfpgan256.pth")))

from tests.test_published_restorers import save_published
from export.cli import main as export_main
from facerestore.cli import build_parser, main

out, photo = Path(sys.argv[1]), sys.argv[2]
weights = save_published("gfpgan256", out / "gfpgan256.pth")
args = build_parser().parse_args(["restore", "--model", "gfpgan256", "--checkpoint", str(weights)])
result = {"parsed": args.model,
          "restore_rc": main(["restore", photo, "--model", "gfpgan256", "--checkpoint", str(weights), "--backend",
                              "torch", "--out", str(out / "restored"), "--save-crops"]),
          "export_rc": export_main(["onnx", "--model", "gfpgan256", "--checkpoint", str(weights), "--out",
                                    str(out / "engines")]),
          "ort_rc": main(["restore", photo, "--model", "gfpgan256", "--checkpoint", str(weights), "--backend",
                          "onnxruntime", "--engines", str(out / "engines"), "--out", str(out / "ort")]),
          "repo_rc": export_main(["triton-repo", "--target", "cpu", "--configs-only", "--restorers", "gfpgan256",
                                  "--weights", f"gfpgan256={weights}", "--out", str(out / "repo")])}
print(json.dumps(result))
'''


def test_a_fourth_architecture_is_one_data_entry(tmp_path):
    """Registered in a fresh interpreter by one PublishedArch entry: its --model choice, a 256 px
    restore on torch, ONNX export with parity, a restore on ONNX Runtime from that export, and
    its served ensemble rendered (`python -m export triton-repo --weights gfpgan256=FILE`)."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    run = subprocess.run([sys.executable, "-c", FOURTH, str(tmp_path), str(ASTRONAUT)], cwd=root, capture_output=True,
                         text=True, timeout=900, env={**__import__("os").environ, "PYTHONPATH": str(root)})
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result == {"parsed": "gfpgan256", "restore_rc": 0, "export_rc": 0, "ort_rc": 0, "repo_rc": 0}
    # its served ensemble, rendered from the entry: network, the generic faces model, the job and its gate
    repo = tmp_path / "repo"
    assert {p.parent.name for p in repo.glob("*/config.pbtxt")} == {
        "face_detector", "face_mesh", "face_preprocess", "face_postprocess", "gfpgan256", "gfpgan256_faces",
        "face_restore_gfpgan256_job", "face_restore_gfpgan256"}
    gate = (repo / "face_restore_gfpgan256" / "config.pbtxt").read_text()   # the gate sends its crop to face_preprocess
    for key, value in (("face_size", "256"), ("face_template", "arcface_128")):
        assert f'key: "{key}"\n  value {{\n    string_value: "{value}"' in gate, gate
    faces_model = (Path(__file__).resolve().parents[1] / "triton_repo" / "faces_model.py").read_text()
    assert (repo / "gfpgan256_faces" / "1" / "model.py").read_text() == faces_model
    crop = read_png(tmp_path / "restored" / "crops" / "astronaut_face00_restored.png")
    assert crop.shape == (256, 256, 3)
    assert (tmp_path / "engines" / "gfpgan256.onnx").is_file() and (tmp_path / "ort" / "astronaut.png").is_file()


def test_the_page_offers_published_restorers_given_their_weights(tmp_path, capsys):
    """`ui --weights gfpgan=PATH`: the in-process page offers gfpgan (and not codeformer, whose
    weights were not given); `serve` refuses weights of a restorer it does not serve (the classical baseline)."""
    from runtime.ui.backends import LocalBackend

    weights = tmp_path / "gfpgan.pth"
    offered = LocalBackend({"gfpgan": weights}).restorers()
    assert "gfpgan" in offered and "codeformer" not in offered and {"safm", "classical"} <= set(offered)
    assert main(["serve", "--weights", f"classical={tmp_path / 'x'}", "--render", "cpu", "--repo",
                 str(tmp_path / "r")]) == 2
    assert "classical: not served" in capsys.readouterr().err
