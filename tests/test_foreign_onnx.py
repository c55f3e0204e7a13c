"""Any ONNX face enhancer (runtime/restorers/onnx/): synthetic facefusion-style files made here
(`input` -> output at a fixed batch of 1; one with a float64 [1] `weight`) restore a real photo
through `facerestore restore --checkpoint FILE.onnx`, equal to ONNX Runtime on the aligned crop;
a file whose tensors cannot be told apart is refused until a JSON beside it declares them."""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import torch

from facerestore.cli import main
from runtime.files import sha256_file
from runtime.samples import ASTRONAUT


class Sharpen(torch.nn.Module):
    """A fixed unsharp kernel; with a weight, input + weight x (sharpened - input)."""

    def __init__(self, weighted: bool) -> None:
        super().__init__()
        kernel = -torch.ones(3, 1, 3, 3) / 8
        kernel[:, :, 1, 1] = 2.0
        self.register_buffer("kernel", kernel)
        self.weighted = weighted

    def forward(self, image: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        sharp = torch.nn.functional.conv2d(image, self.kernel, padding=1, groups=3)
        return (image + weight.float() * (sharp - image) if self.weighted else sharp).clamp(-1, 1)


def make_onnx(path: Path, names: tuple[str, ...] = ("input",), weight_dtype=torch.float64) -> Path:
    """A facefusion-style enhancer: static [1, 3, 512, 512] input in [-1, 1], output [0]."""
    image = torch.zeros(1, 3, 512, 512)
    args = (image,) if len(names) == 1 else (image, torch.ones(1, dtype=weight_dtype))
    with warnings.catch_warnings():   # the TorchScript exporter warns about its own deprecation
        warnings.simplefilter("ignore")
        torch.onnx.export(Sharpen(len(names) == 2), args, str(path), input_names=list(names), output_names=["output"],
                          opset_version=17, dynamo=False)
    return path


def restored_crop(tmp_path: Path, onnx: Path, *extra: str) -> tuple[np.ndarray, np.ndarray, dict]:
    """`restore --checkpoint onnx` on the astronaut: (aligned crop, restored crop, report)."""
    out = tmp_path / f"out-{onnx.stem}-{'-'.join(extra)}"
    assert main(["restore", str(ASTRONAUT), "--checkpoint", str(onnx), "--out", str(out), "--save-crops", *extra]) == 0
    read = lambda tag: cv2.imread(str(out / "crops" / f"astronaut_face00_{tag}.png"))[..., ::-1].copy()
    return read("aligned"), read("restored"), json.loads((out / "report.json").read_text())


def run_ort(onnx: Path, crop: np.ndarray, **extra: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(onnx), providers=["CPUExecutionProvider"])
    x = (crop.transpose(2, 0, 1)[None].astype(np.float32) / 255.0 - 0.5) / 0.5
    (out,) = session.run(None, {session.get_inputs()[0].name: x, **extra})
    return np.clip(np.round((out[0].transpose(1, 2, 0) + 1) * 127.5), 0, 255).astype(np.uint8)


def test_an_input_to_output_enhancer_restores_through_restore(tmp_path):
    onnx = make_onnx(tmp_path / "enhancer.onnx")
    crop, restored, report = restored_crop(tmp_path, onnx)
    assert np.abs(restored.astype(int) - run_ort(onnx, crop)).max() <= 1
    assert np.abs(restored.astype(int) - crop).mean() > 1   # it did sharpen
    assert report["restorer"] == "onnx"
    assert report["provenance"]["text"].startswith("foreign ONNX enhancer.onnx, sha256 " + sha256_file(onnx))


def test_a_weight_input_in_float64_is_fed_the_fidelity(tmp_path):
    onnx = make_onnx(tmp_path / "codeformer_like.onnx", ("input", "weight"))
    crop, full, _ = restored_crop(tmp_path, onnx, "--model", "onnx", "--fidelity", "1")
    _, none, _ = restored_crop(tmp_path, onnx, "--model", "onnx", "--fidelity", "0")
    assert np.abs(full.astype(int) - run_ort(onnx, crop, weight=np.ones(1))).max() <= 1
    assert np.abs(none.astype(int) - crop).max() <= 1          # weight 0: the input back
    assert np.abs(full.astype(int) - none).mean() > 1


def test_unknown_tensors_are_refused_until_declared_in_json(tmp_path, capsys):
    onnx = make_onnx(tmp_path / "odd.onnx", ("lq", "strength"), torch.float32)
    assert main(["restore", str(ASTRONAUT), "--checkpoint", str(onnx), "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err
    assert str(onnx) in err and "strength" in err and "odd.json" in err
    (tmp_path / "odd.json").write_text(json.dumps({"image": "lq", "weight": "strength"}))
    crop, restored, _ = restored_crop(tmp_path, onnx, "--fidelity", "1")
    assert np.abs(restored.astype(int) - run_ort(onnx, crop, strength=np.ones(1, np.float32))).max() <= 1


def test_evaluate_side_by_side_with_the_classical_baseline(tmp_path, capsys):
    """`evaluate --also classical onnx=FILE`: identity, the NLM + unsharp baseline and a foreign
    ONNX enhancer on the same degraded copy, one table row and one contact-sheet column each."""
    onnx = make_onnx(tmp_path / "enhancer.onnx")
    out = tmp_path / "eval"
    assert main(["evaluate", str(ASTRONAUT), "--model", "identity", "--also", "classical", f"onnx={onnx}",
                 "--out", str(out)]) == 0
    table = (out / "evaluation.md").read_text()
    rows = {line.split("|")[1].strip(): line for line in table.splitlines() if line.startswith("| ")}
    assert {"(degraded input)", "identity", "classical", "onnx"} <= set(rows)
    summary = json.loads((out / "evaluation.json").read_text())["restorers"]
    psnr = {r["restorer"]: r["mean"]["psnr_face_restored"] for r in summary}
    degraded = json.loads((out / "identity" / "evaluation.json").read_text())["mean"]["psnr_face_degraded"]
    assert abs(psnr["identity"] - degraded) < 0.1            # identity gives the degraded face back
    for name in ("identity", "classical", "onnx"):           # each one's full report beside
        assert (out / name / "evaluation.json").is_file()
    sheet = cv2.imread(str(out / "contact_sheet.png")).astype(int)
    assert sheet.shape[1] == 5 * 192                         # clean | degraded | three restorers
    column = [sheet[:, i * 192:(i + 1) * 192] for i in range(5)]
    # measured on the 192 px tiles: identity 0.03 from the degraded face, classical 0.59, the sharpener 0.12
    assert np.abs(column[2] - column[1]).mean() < 0.1
    assert np.abs(column[3] - column[2]).mean() > 0.3 and np.abs(column[4] - column[2]).mean() > 0.06
    assert "foreign ONNX enhancer.onnx" in rows["onnx"]
