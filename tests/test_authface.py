"""AuthFace on diffusers building blocks (tiny config, CPU): fused network, checkpoints,
restorer (seeds, batching, schedulers, strength), end to end on a real photo, ONNX parity."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from runtime.restorers.authface.pipeline import SCHEDULERS
from runtime.restorers.factory import make_restorer
from runtime.restorers import CONTRACTS, MODEL_GROUPS
from export.networks import NETWORKS
from export.networks.authface import real_faces
from runtime.restorers.authface.contracts import UNET_CONTROLNET
from training.authface import (CheckpointError, load_checkpoint, make_checkpoint_from_diffusers,
                               make_random_checkpoint)
from training.authface.__main__ import main as authface_main
from tests.conftest import export_networks

STEPS = 3


@pytest.fixture(scope="module")
def ckpt():
    return make_random_checkpoint("tiny", seed=0)


@pytest.fixture(scope="module")
def faces() -> np.ndarray:
    """Three real aligned faces (astronaut, Grace Hopper, astronaut), NCHW in [-1, 1]."""
    return real_faces(3)


@pytest.fixture(scope="module")
def restorer():
    return make_restorer("authface", allow_untrained=True, steps=STEPS, seed=0, progress=False)


@pytest.fixture(scope="module")
def onnx_dir(tmp_path_factory):
    return export_networks(MODEL_GROUPS["authface"], tmp_path_factory.mktemp("authface_onnx"))


def test_fused_module_equals_controlnet_then_unet(ckpt, faces):
    fused = ckpt.unet_controlnet()
    sample, timestep, control, _ = (torch.from_numpy(x) for x in NETWORKS[UNET_CONTROLNET.name].sample_inputs(2))
    scale = torch.tensor([1.0, 0.5])
    b = 2
    enc = ckpt.prompt_embeds[None].expand(b, -1, -1)
    added = {"text_embeds": ckpt.pooled_prompt_embeds[None].expand(b, -1), "time_ids": ckpt.time_ids[None].expand(b, -1)}
    with torch.inference_mode():
        got = fused(sample, timestep, control, scale)
        down, mid = ckpt.controlnet(sample, timestep, encoder_hidden_states=enc, controlnet_cond=(control + 1) / 2,
                                    added_cond_kwargs=added, return_dict=False)
        s = scale.view(-1, 1, 1, 1)
        ref = ckpt.unet(sample, timestep, encoder_hidden_states=enc, added_cond_kwargs=added,
                        down_block_additional_residuals=[d * s for d in down],
                        mid_block_additional_residual=mid * s).sample
        bare = ckpt.unet(sample, timestep, encoder_hidden_states=enc, added_cond_kwargs=added).sample
    assert float((got - ref).abs().max()) < 1e-5
    assert float((got - bare).abs().max()) > 1e-3  # the control path does something


def test_checkpoint_round_trip_and_cli(ckpt, tmp_path, capsys):
    assert authface_main(["make-checkpoint", "--config", "tiny", "--out", str(tmp_path / "tiny")]) == 0
    loaded = load_checkpoint(tmp_path / "tiny")
    for a, b in ((ckpt.unet, loaded.unet), (ckpt.controlnet, loaded.controlnet), (ckpt.vae, loaded.vae)):
        sa, sb = a.state_dict(), b.state_dict()
        assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    assert torch.equal(loaded.prompt_embeds, ckpt.prompt_embeds) and loaded.time_ids.tolist() == [512, 512, 0, 0, 512, 512]
    assert authface_main(["make-checkpoint", "--config", "sdxl", "--sdxl-dir", str(tmp_path / "nope"),
                          "--out", str(tmp_path / "x")]) == 2
    assert str(tmp_path / "nope") in capsys.readouterr().err
    with pytest.raises(CheckpointError, match="config.json"):
        load_checkpoint(tmp_path)


def test_checkpoint_from_a_diffusers_folder(ckpt, tmp_path):
    """The SDXL assembly path, run on a diffusers-format folder of the tiny architecture."""
    from safetensors.torch import save_file

    src = tmp_path / "diffusers"
    ckpt.unet.save_pretrained(src / "unet", safe_serialization=True)
    ckpt.vae.save_pretrained(src / "vae", safe_serialization=True)
    save_file(ckpt.controlnet.state_dict(), str(tmp_path / "cn.safetensors"))
    made = make_checkpoint_from_diffusers(src, "tiny", controlnet=tmp_path / "cn.safetensors")
    assert made.notes["null_prompt"].startswith("zeros") and not made.prompt_embeds.any()
    assert all(torch.equal(v, made.controlnet.state_dict()[k]) for k, v in ckpt.controlnet.state_dict().items())
    init = make_checkpoint_from_diffusers(src, "tiny")  # ControlNet from_unet: zero convs are zero
    assert not init.controlnet.controlnet_mid_block.weight.any()
    with pytest.raises(CheckpointError, match="architecture differs"):
        make_checkpoint_from_diffusers(src, "sdxl")


def test_sdxl_config_is_the_real_architecture():
    from diffusers import AutoencoderKL, UNet2DConditionModel

    from training.authface import get_config

    cfg = get_config("sdxl")
    with torch.device("meta"):
        unet, vae = UNet2DConditionModel(**cfg.copy_unet()), AutoencoderKL(**cfg.copy_vae())
    assert sum(p.numel() for p in unet.parameters()) == 2_567_463_684   # SDXL-base 1.0 UNet
    assert sum(p.numel() for p in vae.parameters()) == 83_653_863
    assert cfg.latent_size == 64 and cfg.time_ids == [512, 512, 0, 0, 512, 512]


def test_same_seed_same_image_other_seed_other_image(restorer, faces):
    a = restorer.restore(faces[:1])
    assert np.array_equal(a, restorer.restore(faces[:1]))
    other = make_restorer("authface", allow_untrained=True, steps=STEPS, seed=1, progress=False).restore(faces[:1])
    assert np.abs(a - other).max() > 1e-2


def test_batch_of_three_equals_three_single_runs(restorer, faces):
    batch = restorer.restore(faces)
    singles = np.concatenate([restorer.restore(faces[i:i + 1]) for i in range(3)])
    err = float(np.abs(batch - singles).max())
    print(f"batch vs singles max abs err {err:.2e}")
    assert err < 1e-3


@pytest.mark.parametrize("scheduler", sorted(SCHEDULERS))
def test_every_scheduler_runs(scheduler, faces):
    for strength in (None, 0.5):
        out = make_restorer("authface", allow_untrained=True, scheduler=scheduler, steps=2, strength=strength, progress=False).restore(faces[:1])
        assert out.shape == (1, 3, 512, 512) and np.isfinite(out).all()


def exact_noise_predictor(x0: torch.Tensor, scheduler_config: dict):
    """A UNet+ControlNet stand-in that knows the clean latent x0 of every face: at timestep t it
    returns the exact noise of its (variance-preserving) input, eps = (x - sqrt(a_t) x0) /
    sqrt(1 - a_t), a_t the training schedule's alpha-bar written out here from the config (not
    diffusers'). Every sampler driven by it must end at x0: its fixed point."""
    from runtime.restorers.authface.contracts import SAMPLE, TIMESTEP

    betas = np.linspace(scheduler_config["beta_start"] ** 0.5, scheduler_config["beta_end"] ** 0.5,
                        scheduler_config["num_train_timesteps"], dtype=np.float64) ** 2   # "scaled_linear"
    alpha_bar = np.cumprod(1 - betas)
    clean = x0.numpy().astype(np.float64)

    def net(**inputs: np.ndarray) -> tuple[np.ndarray]:
        t = inputs[TIMESTEP.name].astype(np.float64)
        assert np.array_equal(t, np.round(t)), t   # the "leading" schedule's timesteps are integers
        a = alpha_bar[t.astype(int)].reshape(-1, 1, 1, 1)
        return (((inputs[SAMPLE.name] - np.sqrt(a) * clean) / np.sqrt(1 - a)).astype(np.float32),)

    return net


@pytest.mark.parametrize("scheduler", sorted(SCHEDULERS))
def test_every_scheduler_reaches_the_clean_latent_of_an_exact_noise_predictor(scheduler):
    """Each sampler (faithful mode from pure noise, and from the noised encoder latent at
    strength 0.5) on the exact noise predictor ends at its clean latents: a sampler whose
    sigmas, input scaling, timesteps or begin index disagree with the schedule it was trained
    on (and this predictor follows) ends elsewhere. Final noise level zero for all
    (set_alpha_to_one: DDIM's last step goes to alpha-bar 1 as the others' to sigma 0)."""
    from runtime.restorers.authface.contracts import DECODER_LATENT
    from runtime.restorers.authface.pipeline import AuthFaceRestorer
    from training.authface.configs import SDXL_SCHEDULER

    config = {**SDXL_SCHEDULER, "set_alpha_to_one": True}
    x0 = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(3))
    encoded = lambda **inputs: (np.full((2, 4, 8, 8), 0.3, np.float32),)   # noqa: E731 - z0 of the strength mode
    decoded = lambda **inputs: (inputs[DECODER_LATENT.name],)              # noqa: E731 - the final latents
    for strength in (None, 0.5):
        restorer = AuthFaceRestorer(encoded, exact_noise_predictor(x0, config), decoded, config, progress=False)
        got = torch.from_numpy(restorer.restore(np.zeros((2, 3, 64, 64), np.float32), scheduler=scheduler, steps=6,
                                                seed=1, strength=strength))
        err = float((got - x0).abs().max())
        print(f"{scheduler} strength {strength}: max |latent - x0| {err:.1e}")
        assert err < 1e-4, (scheduler, strength, err)   # measured at most 2.3e-6


def test_strength_runs_fewer_unet_calls(faces):
    def counted(r):
        calls = {"unet": 0, "encoder": 0}
        unet, enc = r.unet_controlnet, r.vae_encoder
        r.unet_controlnet = lambda **a: (calls.__setitem__("unet", calls["unet"] + 1), unet(**a))[1]
        r.vae_encoder = lambda **a: (calls.__setitem__("encoder", calls["encoder"] + 1), enc(**a))[1]
        r.restore(faces[:1])
        return calls

    assert counted(make_restorer("authface", allow_untrained=True, steps=6, progress=False)) == {"unet": 6, "encoder": 0}
    assert counted(make_restorer("authface", allow_untrained=True, steps=6, strength=0.5, progress=False)) == {"unet": 3, "encoder": 1}
    with pytest.raises(ValueError, match="strength"):
        make_restorer("authface", allow_untrained=True, strength=1.5)


def test_restores_a_real_photo_only_around_the_face(restorer, pipeline):
    from runtime.face.align import source_box
    from runtime.imageio import read_image
    from runtime.restore import restore_photo
    from runtime.samples import ASTRONAUT

    photo = read_image(ASTRONAUT)
    out, batch, restored, _ = restore_photo(photo, pipeline, restorer)
    assert out.rgb.shape == photo.rgb.shape and len(batch) == 1 and restored.shape == (1, 512, 512, 3)
    changed = np.abs(out.rgb - photo.rgb).max(axis=2) > 1e-6
    assert changed.any()
    x0, y0, x1, y1 = source_box(batch.affines[0], 512, *photo.size)
    outside = changed.copy()
    outside[y0:y1, x0:x1] = False
    assert not outside.any()
    assert (x1 - x0) * (y1 - y0) < 0.5 * changed.size


def test_onnx_graphs_follow_contracts_and_match_torch(onnx_dir):
    import onnx

    from export.verify import verify_onnx

    rows = []
    for name in MODEL_GROUPS["authface"]:
        contract = CONTRACTS[name]
        model = onnx.load(str(onnx_dir / f"{name}.onnx"))
        for spec, value in zip(contract.inputs + contract.outputs, list(model.graph.input) + list(model.graph.output)):
            assert value.name == spec.name
            assert [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim] == list(spec.shape)
        rows += verify_onnx(contract, onnx_dir / f"{name}.onnx", batches=(1, 3))
    for r in rows:
        print(f"{r.network}.{r.output} batch {r.batch}: max abs {r.max_abs:.2e} rel {r.max_rel:.2e}")
    assert all(r.ok for r in rows), rows


def test_onnxruntime_restorer_matches_torch(restorer, faces, onnx_dir, tmp_path):
    ort = make_restorer("authface", allow_untrained=True, backend="onnxruntime", onnx_dir=onnx_dir, steps=STEPS, seed=0, progress=False)
    err = float(np.abs(ort.restore(faces[:2]) - restorer.restore(faces[:2])).max())
    print(f"onnxruntime vs torch restorer: max abs err {err:.2e} (image range [-1, 1])")
    assert err < 2e-3
    with pytest.raises(RuntimeError, match="vae_encoder.onnx: not found"):
        make_restorer("authface", allow_untrained=True, backend="onnxruntime", onnx_dir=tmp_path)
    with pytest.raises(RuntimeError, match="vae_encoder.plan: not found"):
        make_restorer("authface", allow_untrained=True, backend="tensorrt", onnx_dir=tmp_path)
    other = make_random_checkpoint("tiny", seed=1).save(tmp_path / "ckpt")
    with pytest.raises(RuntimeError, match="other weights"):  # graphs of the default weights, another checkpoint
        make_restorer("authface", allow_untrained=True, backend="onnxruntime", onnx_dir=onnx_dir, checkpoint=other)
    with pytest.raises(ValueError, match="fp16"):
        make_restorer("authface", allow_untrained=True, precision="fp16")


def test_restore_cli_runs_authface_end_to_end(tmp_path, capsys):
    from facerestore.cli import main

    from runtime.samples import GRACE_HOPPER

    out = tmp_path / "out"
    assert main(["restore", str(GRACE_HOPPER), "--model", "authface", "--steps", "3", "--scheduler", "dpmpp",
                 "--out", str(out), "--compare", "--allow-untrained"]) == 0
    assert "UNTRAINED (random init" in capsys.readouterr().err  # no checkpoint: the loud warning
    assert (out / "grace_hopper.jpg").is_file() and (out / "compare" / "grace_hopper.jpg").is_file()
    assert main(["restore", str(GRACE_HOPPER), "--model", "authface", "--checkpoint", str(tmp_path / "none"),
                 "--out", str(out)]) == 2
    assert "none" in capsys.readouterr().err
