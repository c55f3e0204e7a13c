"""AuthFace training (the AuthFace paper section 3): eq. 2 against diffusers' schedulers, eq. 3's peak
(as written, and the appendix's 0.37), the latent facial loss of eq. 4 (patch positions, lambda
and time weighting), both trainers on a real face cache with the tiny config (finite losses,
what is frozen, overfitting one batch, resuming) and the CLI's errors."""
from __future__ import annotations

import math
import sys

import numpy as np
import pytest
import torch

from tests.conftest import FACE_CACHE_CAPTION
from training.authface.__main__ import main as authface_main
from training.authface.checkpoint import load_checkpoint, make_random_checkpoint
from training.authface.configs import SDXL_SCHEDULER, get_config
from training.authface.losses import (LatentFacialLoss, latent_boxes, normalized_timestep, predict_z0, time_weight,
                                      time_weight_peak)
from training.authface.train import (CaptionEncoderError, HashingCaptionEncoder, SDXLCaptionEncoder, Stage2Config,
                                     Stage2Trainer, encode_captions, make_caption_encoder)

RES = 128   # trainers run at 128x128 (16x16 latents) here to keep the file fast; the default is 512
CAPTION = FACE_CACHE_CAPTION   # grace_hopper's caption in the session's face cache


@pytest.fixture(scope="module")
def cache(face_cache):
    """The session's face cache (tests/conftest.py): astronaut, grace_hopper captioned."""
    return face_cache


@pytest.fixture(scope="module")
def ckpt_dir(tmp_path_factory):
    return make_random_checkpoint("tiny", seed=0).save(tmp_path_factory.mktemp("ckpt") / "tiny")


def _stage2(cache, ckpt_dir, out, **kw) -> Stage2Trainer:
    base = dict(checkpoint=ckpt_dir, data=cache, out=out, batch=1, resolution=RES, log_every=1, save_every=1000)
    return Stage2Trainer(Stage2Config(**{**base, **kw}))


# ----------------------------------------------------------------------------- eq. 2

def test_predict_z0_is_the_schedulers_pred_original_sample():
    from diffusers import DDIMScheduler, DDPMScheduler

    g = torch.Generator().manual_seed(0)
    ddpm = DDPMScheduler.from_config(SDXL_SCHEDULER)
    assert ddpm.config.prediction_type == "epsilon" and not ddpm.config.clip_sample
    for t in (0, 1, 37, 250, 500, 742, 999):
        z_t, eps = torch.randn(2, 4, 8, 8, generator=g), torch.randn(2, 4, 8, 8, generator=g)
        expected = ddpm.step(eps, t, z_t, generator=g).pred_original_sample
        torch.testing.assert_close(predict_z0(z_t, eps, torch.tensor([t, t]), ddpm.alphas_cumprod), expected,
                                   rtol=1e-5, atol=1e-5)
    ddim = DDIMScheduler.from_config(SDXL_SCHEDULER)
    ddim.set_timesteps(20)
    for t in ddim.timesteps[::4].tolist():
        z_t, eps = torch.randn(1, 4, 8, 8, generator=g), torch.randn(1, 4, 8, 8, generator=g)
        expected = ddim.step(eps, t, z_t).pred_original_sample
        torch.testing.assert_close(predict_z0(z_t, eps, torch.tensor([t]), ddim.alphas_cumprod), expected,
                                   rtol=1e-5, atol=1e-5)
    # per-sample timesteps in one batch, and the inverse of the forward process
    z0, eps, t = torch.randn(3, 4, 8, 8, generator=g), torch.randn(3, 4, 8, 8, generator=g), torch.tensor([5, 400, 990])
    torch.testing.assert_close(predict_z0(ddpm.add_noise(z0, eps, t), eps, t, ddpm.alphas_cumprod), z0,
                               rtol=1e-4, atol=1e-4)


# ----------------------------------------------------------------------------- eq. 3

def test_time_weight_peak_as_written_and_the_appendix_037():
    m, s = -0.5, 1.0
    grid = torch.linspace(1e-6, 1 - 1e-6, 2_000_001, dtype=torch.float64)
    w = time_weight(grid, m, s)
    # eq. 3 as written peaks where 2t - 1 = logit(t) - m: t = 0.2815, weight 1.793
    peak = time_weight_peak(m, s)
    assert abs(peak - 0.28151) < 1e-5
    assert abs(float(grid[w.argmax()]) - peak) < 1e-6
    assert abs((2 * peak - 1) - (math.log(peak / (1 - peak)) - m)) < 1e-9
    assert abs(float(w.max()) - 1.7928) < 1e-4
    # the appendix's "peaks at t=0.37" is sigmoid(m) = 0.3775: the peak of the Gaussian in logit
    # space and the median of eq. 3's density - not the maximum of eq. 3 itself
    sig = 1 / (1 + math.exp(-m))
    assert abs(sig - 0.37754) < 1e-5
    gauss = torch.exp(-(torch.log(grid / (1 - grid)) - m) ** 2 / (2 * s * s))
    assert abs(float(grid[gauss.argmax()]) - sig) < 1e-6
    assert abs(float(torch.trapezoid(w[grid <= sig], grid[grid <= sig])) - 0.5) < 1e-4
    assert abs(float(time_weight(torch.tensor(sig, dtype=torch.float64))) - 1.6976) < 1e-4 < float(w.max()) - 1.6976
    # a density: mean weight 1 over uniform timesteps; finite and positive over all 1000 DDPM steps
    assert abs(float(torch.trapezoid(w, grid)) - 1) < 1e-4
    tw = time_weight(normalized_timestep(torch.arange(1000)))
    assert tw.dtype == torch.float32 and torch.isfinite(tw).all() and (tw > 0).all()
    assert abs(float(tw.mean()) - 1) < 0.01


# ----------------------------------------------------------------------------- eq. 4

def _boxes(latent: list[list[float]]) -> torch.Tensor:
    """Pixel boxes whose latent positions (box/8, pixel-centre convention) are `latent`."""
    return torch.tensor(latent, dtype=torch.float32)[None] * 8 + 3.5


def test_latent_patches_come_from_the_boxes_over_8():
    loss = LatentFacialLoss(eye_size=8, mouth_size=12)
    where = [[10, 20, 17, 27], [40, 20, 47, 27], [25, 40, 36, 51]]   # left eye, right eye, mouth (latent px)
    boxes = _boxes(where)
    torch.testing.assert_close(latent_boxes(boxes), torch.tensor(where, dtype=torch.float32)[None])
    # a ramp latent: every patch holds exactly the latent values at its box's positions
    c, y, x = torch.meshgrid(torch.arange(4.0), torch.arange(64.0), torch.arange(64.0), indexing="ij")
    ramp = (x + 100 * y + 10_000 * c)[None]
    patches = loss.patches(ramp, boxes)
    for (x0, y0, x1, y1), (name, size) in zip(where, (("left_eye", 8), ("right_eye", 8), ("mouth", 12))):
        assert patches[name].shape == (1, 4, size, size)
        xs, ys = torch.linspace(x0, x1, size), torch.linspace(y0, y1, size)
        want = xs[None, None, :] + 100 * ys[None, :, None] + 10_000 * torch.arange(4.0)[:, None, None]
        torch.testing.assert_close(patches[name][0], want, atol=0.05, rtol=0)
    # a marker on the mouth's latent block shows up in the mouth patch only
    marked = torch.zeros(1, 4, 64, 64)
    marked[..., 40:52, 25:37] = 1.0
    patches = loss.patches(marked, boxes)
    assert torch.allclose(patches["mouth"], torch.ones(1, 4, 12, 12))
    assert patches["left_eye"].abs().max() == 0 and patches["right_eye"].abs().max() == 0


def test_facial_loss_lambdas_and_time_weight():
    torch.manual_seed(0)
    boxes = _boxes([[10, 20, 22, 32], [40, 20, 52, 32], [25, 40, 40, 55]])
    z0, z0_pred = torch.randn(1, 4, 64, 64), torch.randn(1, 4, 64, 64, requires_grad=True)
    t = normalized_timestep(torch.tensor([300]))
    off = LatentFacialLoss(lambda_d=0.0, lambda_s=0.0)
    total, terms = off.generator_loss(z0_pred, z0, boxes, t)
    assert not off.enabled and float(total) == 0 and not total.requires_grad
    assert float(terms["facial_adv"]) == float(terms["facial_style"]) == 0

    loss = LatentFacialLoss()
    state = {k: v.clone() for k, v in loss.state_dict().items()}
    total, terms = loss.generator_loss(z0_pred, z0, boxes, t)
    assert all(torch.equal(v, state[k]) for k, v in loss.state_dict().items())   # D (and its sn state) untouched
    assert loss.training
    assert float(terms["facial_adv"].detach()) > 0 and float(terms["facial_style"].detach()) > 0
    total.backward()
    assert z0_pred.grad.abs().sum() > 0                         # the gradient reaches z0_pred ...
    assert all(p.grad is None for p in loss.parameters())      # ... not the discriminators
    assert all(p.requires_grad for p in loss.parameters())
    # each sample is weighted by eq. 3 at its own timestep
    two = loss.generator_loss(torch.cat([z0_pred, z0_pred]).detach(), torch.cat([z0, z0]), torch.cat([boxes, boxes]),
                              normalized_timestep(torch.tensor([100, 600])))[0]
    a, b = (loss.generator_loss(z0_pred.detach(), z0, boxes, normalized_timestep(torch.tensor([k])))[0] for k in (100, 600))
    torch.testing.assert_close(two, (a + b) / 2)
    wa, wb = time_weight(normalized_timestep(torch.tensor([100, 600])))
    torch.testing.assert_close(a / b, wa / wb)
    only_d = LatentFacialLoss(lambda_s=0.0)
    assert float(only_d.generator_loss(z0_pred.detach(), z0, boxes, t)[1]["facial_style"]) == 0
    # the discriminators' loss: z0 patches real, z0_pred patches fake, gradient to D only
    d = loss.discriminator_loss(z0_pred, z0, boxes)
    d.backward()
    assert torch.isfinite(d) and all(p.grad is not None for p in loss.nets.parameters() if p.requires_grad)


# ----------------------------------------------------------------------------- stage II

def test_stage2_trains_only_the_controlnet_and_resumes(cache, ckpt_dir, tmp_path):
    out = tmp_path / "run"
    trainer = _stage2(cache, ckpt_dir, out, save_every=2)
    rows = trainer.train(steps=2)
    assert [r["step"] for r in rows] == [1, 2]
    assert {"total", "noise", "facial_adv", "facial_style", "d", "seconds"} <= set(rows[-1])
    assert all(np.isfinite([v for k, v in r.items()]).all() for r in rows)
    before, after = load_checkpoint(ckpt_dir), load_checkpoint(out / "checkpoint")
    for name in ("unet", "vae"):
        a, b = getattr(before, name).state_dict(), getattr(after, name).state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a), f"stage II changed the {name}"
    cn_a, cn_b = before.controlnet.state_dict(), after.controlnet.state_dict()
    assert any(not torch.equal(cn_a[k], cn_b[k]) for k in cn_a)
    assert after.notes["stage2"]["step"] == 2 and torch.equal(after.prompt_embeds, before.prompt_embeds)

    resumed = _stage2(cache, ckpt_dir, out, save_every=2)
    assert resumed.step == 2
    assert all(torch.equal(v, cn_b[k]) for k, v in resumed.controlnet.state_dict().items())
    assert resumed.opt.state_dict()["state"][0]["exp_avg"].abs().sum() > 0
    resumed.train(steps=3)
    assert [int(r.split(",")[0]) for r in (out / "losses.csv").read_text().splitlines()[1:]] == [1, 2, 3]
    assert load_checkpoint(out / "checkpoint").notes["stage2"]["step"] == 3


def test_stage2_overfits_one_batch(cache, ckpt_dir, tmp_path):
    """Fixed batch, timestep and noise (and discriminators): L_noise + L_facial falls every step."""
    trainer = _stage2(cache, ckpt_dir, tmp_path, lr=1e-3)
    batch = next(trainer._batches())
    t, noise = torch.tensor([400]), torch.randn(1, 4, RES // 8, RES // 8, generator=torch.Generator().manual_seed(0))
    totals, noises = [], []
    for _ in range(6):
        trainer.opt.zero_grad(set_to_none=True)
        total, terms, _ = trainer.losses(batch, t, noise)
        total.backward()
        trainer.opt.step()
        totals.append(float(total.detach()))
        noises.append(float(terms["noise"]))
    assert all(b < a for a, b in zip(totals, totals[1:])), totals
    assert totals[-1] < 0.9 * totals[0] and noises[-1] < noises[0], (totals, noises)


# ----------------------------------------------------------------------------- stage I

def test_caption_encoders():
    cfg = get_config("tiny")
    enc = make_caption_encoder(cfg, None, torch.device("cpu"))
    assert isinstance(enc, HashingCaptionEncoder)
    p1, q1 = enc.encode([CAPTION, "a man, smiling"])
    p2, q2 = HashingCaptionEncoder(cfg.prompt_tokens, cfg.cross_attention_dim, cfg.pooled_dim).encode([CAPTION])
    assert p1.shape == (2, cfg.prompt_tokens, cfg.cross_attention_dim) and q1.shape == (2, cfg.pooled_dim)
    assert torch.equal(p1[:1], p2) and torch.equal(q1[:1], q2) and not torch.equal(p1[0], p1[1])
    ck = make_random_checkpoint("tiny", seed=0)
    prompt, pooled = encode_captions(enc, ["", CAPTION, "  "], ck.prompt_embeds, ck.pooled_prompt_embeds)
    assert torch.equal(prompt[0], ck.prompt_embeds) and torch.equal(prompt[2], ck.prompt_embeds)
    assert torch.equal(pooled[0], ck.pooled_prompt_embeds) and torch.equal(prompt[1], p2[0])
    with pytest.raises(CaptionEncoderError, match="--text-encoders"):
        make_caption_encoder(get_config("sdxl"), None, torch.device("cpu"))


def test_sdxl_caption_encoder_errors_name_the_folder_and_package(tmp_path, monkeypatch):
    with pytest.raises(CaptionEncoderError, match="nope: no such folder"):
        SDXLCaptionEncoder(tmp_path / "nope")
    (tmp_path / "text_encoder").mkdir()
    with pytest.raises(CaptionEncoderError, match=r"missing: \['tokenizer', 'tokenizer_2', 'text_encoder_2'\]"):
        SDXLCaptionEncoder(tmp_path)
    for part in SDXLCaptionEncoder.PARTS:
        (tmp_path / part).mkdir(exist_ok=True)
    monkeypatch.setitem(sys.modules, "transformers", None)   # as if not installed, whether it is or not
    with pytest.raises(CaptionEncoderError, match=r"needs the `transformers` package"):
        SDXLCaptionEncoder(tmp_path)


def test_stage1_cli_fine_tunes_the_unet(cache, ckpt_dir, tmp_path, capsys):
    out = tmp_path / "s1"
    args = ["train-stage1", "--checkpoint", str(ckpt_dir), "--data", str(cache), "--out", str(out), "--steps", "2",
            "--batch", "2", "--lr", "1e-4", "--resolution", str(RES), "--log-every", "1"]
    assert authface_main(args) == 0
    assert "step 2: loss" in capsys.readouterr().out
    lines = (out / "losses.csv").read_text().splitlines()
    assert lines[0].startswith("step,total,noise") and len(lines) == 3
    assert all(math.isfinite(float(v)) for line in lines[1:] for v in line.split(","))
    before, after = load_checkpoint(ckpt_dir), load_checkpoint(out / "checkpoint")
    ua, ub = before.unet.state_dict(), after.unet.state_dict()
    assert any(not torch.equal(ua[k], ub[k]) for k in ua)
    assert all(torch.equal(v, after.vae.state_dict()[k]) for k, v in before.vae.state_dict().items())
    # the saved ControlNet is re-initialised from the fine-tuned UNet's encoder (zero convs at zero)
    assert torch.equal(after.controlnet.conv_in.weight, after.unet.conv_in.weight)
    assert after.controlnet.controlnet_mid_block.weight.abs().max() == 0
    assert after.notes["stage1"]["step"] == 2
    assert authface_main(args) == 0 and "already at step 2" in capsys.readouterr().out   # resumes


def test_cli_errors_for_bad_folders(cache, ckpt_dir, tmp_path, capsys):
    for stage in ("train-stage1", "train-stage2"):
        assert authface_main([stage, "--checkpoint", str(tmp_path / "nope"), "--data", str(cache),
                              "--out", str(tmp_path / "o")]) == 2
        assert "nope: not an AuthFace checkpoint folder" in capsys.readouterr().err
        assert authface_main([stage, "--checkpoint", str(ckpt_dir), "--data", str(tmp_path),
                              "--out", str(tmp_path / "o")]) == 2
        assert "facerestore curate" in capsys.readouterr().err
    sdxl = ["train-stage1", "--checkpoint", str(ckpt_dir), "--data", str(cache), "--out", str(tmp_path / "o"),
            "--text-encoders", str(tmp_path / "sdxl")]
    assert authface_main(sdxl) == 2 and "sdxl: no such folder" in capsys.readouterr().err
