"""Training data and the SaFM trainer on real face photos: degradations, curation, the dataset,
losses, overfitting one batch, resuming, clear errors for missing loss weights."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from facerestore.cli import main as cli
from runtime.samples import ASTRONAUT, GRACE_HOPPER, NO_FACE
from tests.conftest import assert_same_tensors
from training.cpu import has_bf16, reported_flags
from training.data.degradations import DegradationConfig, degrade
from training.data.faces import AlignedFaces
from training.losses.identity import IResNet
from training.losses.perceptual import VGG19Features
from training.losses.pretrained import MissingWeights
from training.metrics import psnr, ssim
from training.safm.train import SaFMTrainConfig, SaFMTrainer
from training.shipped import DEMO_SAFM


@pytest.fixture(scope="module")
def cache(face_cache):
    """The session's face cache (tests/conftest.py)."""
    return face_cache


def test_curate_reports_what_it_dropped(cache):
    report = json.loads((cache / "report.json").read_text())
    assert sorted(k["face"] for k in report["kept"]) == ["astronaut_f00", "grace_hopper_f00"]
    assert [d["reason"] for d in report["dropped"]] == ["no face found"]
    assert (cache / "grace_hopper_f00.txt").read_text().startswith("portrait")


def test_cache_holds_the_region_maps_inference_sees(cache):
    """The mesh run on degraded copies of each face gives maps a little off the clean one (the
    landmark errors inference has); the trainers read those. Measured IoU of the face 0.96."""
    from training.data.faces import AlignedFaces

    meta = np.load(cache / "astronaut_f00.npz")
    clean, found = meta["label_map"] > 0, meta["label_maps_degraded"] > 0
    assert found.shape == (4, 512, 512)
    iou = [(f & clean).sum() / (f | clean).sum() for f in found]
    assert all(0.85 < v < 1.0 for v in iou), iou
    item = AlignedFaces(cache, flip=False)[0]
    assert any(np.array_equal(item["label_map"][0].numpy(), m) for m in meta["label_maps_degraded"])


def test_curate_drops_small_noisy_and_blurry(tmp_path):
    hq = np.asarray(__import__("PIL.Image", fromlist=["Image"]).open(GRACE_HOPPER).convert("RGB"))
    noisy = np.clip(hq + np.random.default_rng(0).normal(0, 25, hq.shape), 0, 255).astype(np.uint8)
    src = tmp_path / "src"
    src.mkdir()
    from tests.conftest import write_rgb

    write_rgb(src / "noisy.png", noisy)
    write_rgb(src / "clean.png", hq)
    assert cli(["curate", str(src), "--out", str(tmp_path / "c")]) == 0
    report = json.loads((tmp_path / "c" / "report.json").read_text())
    assert [k["face"] for k in report["kept"]] == ["clean_f00"]
    assert [d["reason"] for d in report["dropped"]] == ["noisy"]
    assert cli(["curate", str(src / "clean.png"), "--out", str(tmp_path / "d"), "--min-sharpness", "1e9"]) == 1
    assert cli(["curate", str(src / "clean.png"), "--out", str(tmp_path / "e"), "--min-face", "1e9"]) == 1


def test_degradations_are_deterministic_and_within_range():
    hq = np.asarray(__import__("PIL.Image", fromlist=["Image"]).open(ASTRONAUT).convert("RGB"))
    a, sa = degrade(hq, seed=7)
    b, sb = degrade(hq, seed=7)
    c, _ = degrade(hq, seed=8)
    assert np.array_equal(a, b) and sa == sb and not np.array_equal(a, c)
    cfg = DegradationConfig()
    samples = [degrade(hq[:64, :64], seed=s)[1] for s in range(300)]
    assert 0.05 < np.mean([s.clean for s in samples]) < 0.16  # 10% clean pairs
    live = [s for s in samples if not s.clean]
    assert all(cfg.blur_sigma[0] <= s.sigma <= cfg.blur_sigma[1] and cfg.downscale[0] <= s.scale <= cfg.downscale[1]
               and cfg.noise[0] <= s.noise <= cfg.noise[1] and 70 <= s.quality <= 100 for s in live)
    heavy = next(s for s in range(300) if not degrade(hq, s)[1].clean and degrade(hq, s)[1].scale > 4)
    assert psnr(degrade(hq, heavy)[0], hq) < 28 and ssim(degrade(hq, heavy)[0], hq) < 0.9


def test_dataset_items_and_flip(cache):
    data = AlignedFaces(cache, seed=1)
    item = data[0]
    assert item["hq"].shape == item["lq"].shape == (3, 512, 512) and item["label_map"].shape == (1, 512, 512)
    assert item["boxes"].shape == (3, 4) and item["points5"].shape == (5, 2)
    for i in range(8):  # whichever way it was flipped, the image-left eye box stays on the left
        it = data[i % len(data)]
        boxes, labels = it["boxes"], it["label_map"][0]
        assert boxes[0, 0] < 256 < boxes[1, 2]
        ys, xs = torch.nonzero(labels == 4, as_tuple=True)
        assert xs.float().mean() < 256  # label 4 is the eye on the image's left
    assert data[0]["caption"] in ("", "portrait, woman, uniform, glasses, high quality")


def _trainer(cache, out, **kw) -> SaFMTrainer:
    base = dict(data=cache, out=out, config="safm-tiny", batch=1, lr=1e-3, perceptual=False, identity=False,
                adversarial=False, log_every=1, save_every=1000, degradation=DegradationConfig(clean_fraction=0.0))
    return SaFMTrainer(SaFMTrainConfig(**{**base, **kw}))


def test_overfit_one_batch_loss_decreases(cache, tmp_path):
    trainer = _trainer(cache, tmp_path)
    batch = next(trainer._batches())
    losses = []
    for _ in range(12):
        trainer.opt_g.zero_grad()
        total, _, _ = trainer.losses(batch)
        total.backward()
        trainer.opt_g.step()
        losses.append(float(total.detach()))
    assert all(np.isfinite(losses)) and losses[-1] < 0.7 * losses[0], losses


@pytest.mark.skipif(not has_bf16(), reason=f"this CPU computes no bf16 (flags: {reported_flags()}): training stays fp32")
def test_training_on_a_native_bf16_cpu_autocasts_and_keeps_the_fp32_loss(cache, tmp_path):
    """On a CPU with AVX512-BF16 or AMX the trainer runs the network in bf16 (about 1.8x faster a
    step on a 2-core Xeon); the shipped weights, one batch: the output differs from fp32 (bf16
    ran) by a little, and the loss by under 1 %."""
    fast, exact = (_trainer(cache, tmp_path / name, init=DEMO_SAFM, amp=amp) for name, amp in (("bf16", True),
                                                                                            ("fp32", False)))
    batch = next(exact._batches())
    with torch.no_grad():
        torch.manual_seed(0)  # the fidelity weight w is drawn per batch
        loss_fast, _, out_fast = fast.losses(batch)
        torch.manual_seed(0)
        loss_exact, _, out_exact = exact.losses(batch)
    diff = (out_fast - out_exact).abs()
    # measured on a Xeon with AMX: max 0.009, mean 0.0004 (of the [-1, 1] range), loss 0.01 %
    assert 0 < float(diff.max()) < 0.05 and float(diff.mean()) < 0.002, (float(diff.max()), float(diff.mean()))
    assert abs(float(loss_fast) / float(loss_exact) - 1) < 0.01, (float(loss_fast), float(loss_exact))


def test_all_losses_run_and_training_resumes(cache, tmp_path):
    vgg, arc = tmp_path / "vgg19.safetensors", tmp_path / "arcface.safetensors"
    torch.manual_seed(0)
    save_file(VGG19Features().state_dict(), str(vgg))  # stand-ins of the user's pretrained files
    save_file(IResNet().state_dict(), str(arc))
    kw = dict(perceptual=True, identity=True, adversarial=True, vgg=vgg, arcface=arc, save_every=2)
    rows = _trainer(cache, tmp_path / "run", **kw).train(steps=2)
    assert {"l1", "perceptual", "adv_global", "adv_local", "style", "identity", "d"} <= set(rows[-1])
    assert all(np.isfinite(list(r.values())).all() for r in rows)
    resumed = _trainer(cache, tmp_path / "run", **kw)
    assert resumed.step == 2
    first = _trainer(cache, tmp_path / "run", **kw)
    assert_same_tensors(first.model.state_dict(), resumed.model.state_dict())
    assert resumed.opt_g.state_dict()["state"][0]["exp_avg"].abs().sum() > 0
    resumed.train(steps=3)
    assert [int(r.split(",")[0]) for r in (tmp_path / "run/losses.csv").read_text().splitlines()[1:]] == [1, 2, 3]
    assert (tmp_path / "run/safm.safetensors").is_file()


def test_resume_continues_exactly_as_an_uninterrupted_run(cache, tmp_path):
    """2 steps, a new trainer on the saved state, 1 more step: the same weights, optimiser moments,
    losses and RNG as 3 steps in one run (batch 1 on a 2-face cache: the resume lands mid-epoch)."""
    whole = _trainer(cache, tmp_path / "whole")
    rows = whole.train(steps=3)
    whole_rng = torch.get_rng_state()
    _trainer(cache, tmp_path / "split", save_every=2).train(steps=2)
    resumed = _trainer(cache, tmp_path / "split")
    assert resumed.step == 2
    assert resumed.train(steps=3)[-1] == rows[-1]
    assert torch.equal(torch.get_rng_state(), whole_rng)
    assert_same_tensors(resumed.model.state_dict(), whole.model.state_dict())
    got, expected = resumed.opt_g.state_dict(), whole.opt_g.state_dict()
    as_json = lambda groups: json.loads(json.dumps(groups))   # noqa: E731 - the saved state is JSON: betas a list
    assert as_json(got["param_groups"]) == as_json(expected["param_groups"])
    assert sorted(got["state"]) == sorted(expected["state"])   # loaded in the saved file's order
    for pid, state in expected["state"].items():
        assert_same_tensors(got["state"][pid], state)


def test_missing_loss_weights_are_a_clear_error(cache, tmp_path, capsys):
    with pytest.raises(MissingWeights, match=r"perceptual loss needs pretrained weights: pass --vgg"):
        _trainer(cache, tmp_path, perceptual=True)
    with pytest.raises(MissingWeights, match=r"nope.safetensors: not found \(ArcFace identity weights"):
        _trainer(cache, tmp_path, identity=True, arcface=tmp_path / "nope.safetensors")
    from training.safm.__main__ import main as safm_main

    assert safm_main(["train", "--data", str(cache), "--out", str(tmp_path / "r"), "--steps", "1"]) == 2
    assert "--vgg" in capsys.readouterr().err


def test_codebook_pretraining_then_restoration_on_the_frozen_codebook(cache, tmp_path):
    """The SaFM paper's pre-trained codebook: stage `codebook` trains E, the codebook and D as a
    VQGAN on HQ faces (reconstruction + codebook/commitment loss); restoration then starts from
    it with the codebook fixed. A residual config has no codebook to pre-train."""
    pre = _trainer(cache, tmp_path / "vq", stage="codebook", save_every=2)
    codes0 = pre.model.quantize.embedding.weight.detach().clone()
    rows = pre.train(steps=2)
    assert {"l1", "vq"} <= set(rows[-1]) and all(np.isfinite(list(r.values())).all() for r in rows)
    codes1 = pre.model.quantize.embedding.weight.detach().clone()
    assert not torch.equal(codes0, codes1)  # the codebook learned
    restore = _trainer(cache, tmp_path / "restore", init=tmp_path / "vq/safm.safetensors", freeze_codebook=True)
    assert torch.equal(restore.model.quantize.embedding.weight, codes1)
    restore.train(steps=2)
    assert torch.equal(restore.model.quantize.embedding.weight.detach(), codes1)  # kept fixed
    with pytest.raises(ValueError, match="residual output"):
        _trainer(cache, tmp_path / "bad", config="safm-small", stage="codebook")


def test_photo_crops_above_scale_one_are_enlarged(tmp_path):
    """Photo crops drawn at scales above 1 are enlarged (smoother, as aligned faces of small
    faces are), those below 1 shrunk (denser detail): the scale range reaches the pixels."""
    import cv2

    from training.data.photos import PhotoCrops

    shutil.copy(NO_FACE, tmp_path / NO_FACE.name)
    no_noise = DegradationConfig(clean_fraction=1.0, color_jitter_prob=0.0)

    def detail(lo: float, hi: float) -> float:
        crops = PhotoCrops(tmp_path, 96, no_noise, seed=3, min_scale=lo, max_scale=hi)
        return float(np.mean([np.abs(cv2.Laplacian(crops[i]["hq"].numpy().mean(0), cv2.CV_32F)).mean()
                              for i in range(8)]))

    assert detail(1.8, 2.0) < 0.7 * detail(0.3, 0.5)


def test_budget_fixes_the_step_count_and_init_is_recorded(cache, tmp_path, monkeypatch):
    """--budget-minutes times the steps after the warm-up, then fixes the step count (a budget
    already spent: the run ends right there) and records it; --init names its start and keeps
    the checkpoint's architecture whatever --config says."""
    import training.safm.train as train

    monkeypatch.setattr(train, "WARMUP_STEPS", 1)
    monkeypatch.setattr(train, "CALIBRATION_STEPS", 2)
    trainer = _trainer(cache, tmp_path / "budget", steps=1000, budget_minutes=0.0)
    trainer.train()
    assert trainer.step == 3 and trainer.cfg.steps == 3
    meta = json.loads((tmp_path / "budget" / "safm.json").read_text())
    assert meta["train"]["steps"] == 3 and meta["train"]["budget_minutes"] == 0.0
    resumed = _trainer(cache, tmp_path / "next", config="safm-base", steps=1, init=tmp_path / "budget" / "safm.safetensors")
    resumed.train()
    meta = json.loads((tmp_path / "next" / "safm.json").read_text())
    assert meta["train"]["config"] == "safm-tiny"
    assert meta["provenance"]["text"].endswith(f"starting from {tmp_path / 'budget' / 'safm.safetensors'}")


def test_cuda_training_without_cuda_is_a_one_line_error(cache, tmp_path, capsys):
    from training.safm.__main__ import main as safm_main

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device: the refusal is for machines without one")
    argv = ["train", "--data", str(cache), "--out", str(tmp_path / "run"), "--device", "cuda", "--steps", "1",
            "--no-perceptual", "--no-identity", "--no-adversarial"]
    assert safm_main(argv) == 2
    assert "--device cuda: this machine has no CUDA device" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_portraits_come_out_of_the_source_distribution_byte_for_byte(tmp_path, monkeypatch):
    """`demo_photos --portraits`: the files PORTRAITS names are taken from the downloaded source
    distribution as they are (here a local one stands in for `pip download`), nothing else."""
    import io
    import tarfile

    from training.data import demo_photos

    photo = GRACE_HOPPER.read_bytes()
    sdist = tmp_path / "face_recognition-1.3.0.tar.gz"
    with tarfile.open(sdist, "w:gz") as tar:
        for name, data in (("face_recognition-1.3.0/tests/test_images/obama.jpg", photo),
                           ("face_recognition-1.3.0/tests/test_images/obama_partial_face.jpg", b"x"),
                           ("face_recognition-1.3.0/setup.py", b"")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

    def pip_download(cmd, cwd=None):
        shutil.copy(sdist, cmd[cmd.index("--dest") + 1])
        return ""

    monkeypatch.setattr(demo_photos, "_run", pip_download)
    out = tmp_path / "portraits"
    assert demo_photos.main(["--out", str(out), "--portraits"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["SOURCES.md", "obama.jpg"]
    assert (out / "obama.jpg").read_bytes() == photo
    assert "face_recognition-1.3.0/tests/test_images/obama.jpg" in (out / "SOURCES.md").read_text()
