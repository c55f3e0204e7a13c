"""The SaFM restorer: block shapes, attention wiring, LDE, codebook, checkpoints, CodeFormer keys."""
from __future__ import annotations

import json

import pytest
import torch

from tests.conftest import assert_same_tensors
from training.safm import (CONFIGS, CheckpointError, SaFMRestorer, load_checkpoint, load_codeformer_weights,
                           random_init, save_checkpoint)
from training.safm.fusion import MultiHeadCrossAttention, SemanticAwareFusion
from training.safm.semantic import skip_maps

TINY = CONFIGS["safm-tiny"]


@pytest.fixture(scope="module")
def tiny() -> SaFMRestorer:
    return random_init("safm-tiny")


@pytest.fixture(scope="module")
def faces():
    """Two real aligned faces with their label maps (from the face pipeline)."""
    from export.networks.safm import real_faces

    images, labels = real_faces()
    return torch.from_numpy(images[:2]), torch.from_numpy(labels[:2])


def test_block_shapes(tiny, faces):
    image, labels = faces
    with torch.inference_mode():
        z_d, feats = tiny.encoder(image)
        assert z_d.shape == (2, TINY.emb_dim, 16, 16)
        assert {r: tuple(f.shape[1:]) for r, f in feats.items()} == {
            r: (TINY.channels_at(r), r, r) for r in (512, 256, 128, 64, 32, 16)}
        assert tiny.quantize(z_d).shape == z_d.shape
        assert tiny.semantic(labels).shape == (2, TINY.emb_dim, 16, 16)
        assert tiny.safm(z_d, tiny.quantize(z_d), tiny.semantic(labels)).shape == z_d.shape
        assert skip_maps(labels).shape == (2, 3, 512, 512)
        assert tiny(image, labels, torch.full((2, 1), 0.5)).shape == (2, 3, 512, 512)


def test_cross_attention_follows_equations_1_to_3():
    torch.manual_seed(0)
    ca = MultiHeadCrossAttention(channels=8, heads=2).eval()
    f1, f2 = torch.randn(1, 5, 8), torch.randn(1, 7, 8)
    q, k, v = ca.q(ca.norm_q(f1)), ca.k(ca.norm_kv(f2)), ca.v(ca.norm_kv(f2))
    heads = [torch.softmax(q[..., i:i + 4] @ k[..., i:i + 4].transpose(1, 2) / 2.0, -1) @ v[..., i:i + 4]
             for i in (0, 4)]  # C_h = 4, sqrt(C_h) = 2
    torch.testing.assert_close(ca(f1, f2), f1 + torch.cat(heads, -1))


def test_fusion_wiring_each_path_depends_only_on_its_inputs():
    torch.manual_seed(0)
    fusion = SemanticAwareFusion(channels=16, heads=4).eval()
    f_e, z_q, z_seg = (torch.randn(1, 16, 4, 4) for _ in range(3))
    outs = {}
    for name in ("ca1", "ca2", "ca3"):
        getattr(fusion, name).register_forward_hook(lambda m, i, o, n=name: outs.__setitem__(n, o.clone()))

    def run(fe, zq, zs):
        f_m = fusion(fe, zq, zs)
        return f_m, dict(outs)

    base_out, base = run(f_e, z_q, z_seg)
    torch.testing.assert_close(base_out, (base["ca2"] + base["ca3"]).transpose(1, 2).reshape(1, 16, 4, 4))
    _, no_seg = run(f_e, z_q, torch.zeros_like(z_seg))
    torch.testing.assert_close(no_seg["ca1"], base["ca1"])          # CA1 sees f^e and Z_q only
    assert not torch.allclose(no_seg["ca2"], base["ca2"]) and not torch.allclose(no_seg["ca3"], base["ca3"])
    _, no_q = run(f_e, torch.zeros_like(z_q), z_seg)
    torch.testing.assert_close(no_q["ca3"], base["ca3"])            # CA3 sees f^e and Z_seg only
    assert not torch.allclose(no_q["ca1"], base["ca1"]) and not torch.allclose(no_q["ca2"], base["ca2"])


def test_label_map_changes_only_the_semantic_paths(tiny, faces):
    image, labels = faces
    w = torch.full((2, 1), 0.5)
    with torch.inference_mode():
        z_real, _ = tiny.encoder(image)
        f_real, _ = tiny.fuse(image, labels)
        f_zero, _ = tiny.fuse(image, torch.zeros_like(labels))
        assert not torch.allclose(f_real, f_zero)
        torch.testing.assert_close(tiny.encoder(image)[0], z_real)  # E and Z_q do not see the map
        assert not torch.allclose(tiny(image, labels, w), tiny(image, torch.zeros_like(labels), w))


def test_fidelity_zero_turns_local_detail_enhancement_off(tiny, faces):
    image, labels = faces
    with torch.inference_mode():
        x, _ = tiny.fuse(image, labels)
        for block in tiny.generator.blocks:
            x = block(x)
        torch.testing.assert_close(tiny(image, labels, torch.zeros(2, 1)), x)
        assert not torch.allclose(tiny(image, labels, torch.ones(2, 1)), x)


def test_codebook_lookup_is_the_nearest_code(tiny):
    z = torch.randn(1, TINY.emb_dim, 3, 3)
    idx = tiny.quantize.indices(z)
    flat = z.permute(0, 2, 3, 1).reshape(-1, TINY.emb_dim)
    expected = torch.cdist(flat, tiny.quantize.embedding.weight).argmin(1)
    assert torch.equal(idx.reshape(-1), expected)
    torch.testing.assert_close(tiny.quantize(z).permute(0, 2, 3, 1).reshape(-1, TINY.emb_dim),
                               tiny.quantize.embedding.weight[expected])


def test_checkpoint_round_trip_and_errors(tiny, tmp_path):
    path = save_checkpoint(tiny, tmp_path / "demo")
    assert path.name == "demo.safetensors" and json.loads(path.with_suffix(".json").read_text())["config"]["name"] == "safm-tiny"
    loaded = load_checkpoint(path)
    assert_same_tensors(loaded.state_dict(), tiny.state_dict())
    path.with_suffix(".json").unlink()
    with pytest.raises(CheckpointError, match=r"demo.json: not found"):
        load_checkpoint(path)
    (tmp_path / "bad.safetensors").write_bytes(b"nonsense")
    (tmp_path / "bad.json").write_text(json.dumps({"config": CONFIGS["safm-tiny"].to_dict()}))
    with pytest.raises(CheckpointError, match=r"bad.safetensors: unreadable"):
        load_checkpoint(tmp_path / "bad.safetensors")


# Names and shapes of CodeFormer's published checkpoint (codeformer.pth / vqgan_code1024.pth).
CODEFORMER_KEYS = {
    "encoder.blocks.0.weight": (64, 3, 3, 3),
    "encoder.blocks.1.norm1.weight": (64,),
    "encoder.blocks.17.q.weight": (512, 512, 1, 1),
    "encoder.blocks.24.weight": (256, 512, 3, 3),
    "quantize.embedding.weight": (1024, 256),
    "generator.blocks.0.weight": (512, 256, 3, 3),
    "generator.blocks.2.proj_out.weight": (512, 512, 1, 1),
    "generator.blocks.24.weight": (3, 64, 3, 3),
}


def test_codeformer_checkpoint_keys_map_onto_safm_base():
    torch.manual_seed(1)
    model = random_init("safm-base")
    ours = model.state_dict()
    for key, shape in CODEFORMER_KEYS.items():
        assert tuple(ours[key].shape) == shape, key
    # A CodeFormer-shaped state dict: every VQGAN tensor, CodeFormer's own transformer parts,
    # and one tensor of another shape (e.g. a different codebook size).
    state = {k: torch.randn_like(v) for k, v in ours.items() if k.startswith(("encoder.", "generator."))}
    state["quantize.embedding.weight"] = torch.randn(512, 256)
    state["position_emb"] = torch.randn(256, 512)
    state["idx_pred_layer.1.weight"] = torch.randn(1024, 512)
    report = load_codeformer_weights(model, state)
    assert report["shape_mismatch"] == ["quantize.embedding.weight"]
    assert "quantize.embedding.weight" not in report["loaded"] and "position_emb" not in report["loaded"]
    assert len(report["loaded"]) == len(state) - 3
    after = model.state_dict()
    assert all(torch.equal(after[k], state[k]) for k in report["loaded"])
    assert torch.equal(after["quantize.embedding.weight"], ours["quantize.embedding.weight"])


def test_checkpoint_commands(tmp_path, capsys):
    from training.provenance import safm_provenance
    from training.safm.__main__ import main as safm_main

    assert safm_main(["init", "--config", "safm-tiny", "--seed", "5", "--out", str(tmp_path / "a")]) == 0
    made = load_checkpoint(tmp_path / "a.safetensors")
    assert_same_tensors(made.state_dict(), random_init("safm-tiny", 5).state_dict())
    assert safm_main(["import-codeformer", "--config", "safm-tiny", "--codeformer", str(tmp_path / "a.safetensors"),
                      "--out", str(tmp_path / "b")]) == 0
    assert "loaded 209 tensors" in capsys.readouterr().out
    origin = safm_provenance(tmp_path / "b.safetensors")   # labelled: imported parts, random fusion, untrained
    assert not origin.trained and origin.text == (f"safm-tiny: CodeFormer encoder, codebook and generator imported from "
                                                  f"{tmp_path / 'a.safetensors'}; the fusion (SaFM) and LDE are random")
    assert safm_main(["import-codeformer", "--codeformer", str(tmp_path / "a.safetensors"),
                      "--out", str(tmp_path / "a")]) == 2
    assert "would overwrite the input" in capsys.readouterr().err
    assert safm_main(["import-codeformer", "--codeformer", str(tmp_path / "b.safetensors"), "--out", str(tmp_path / "c")]) == 1
    assert "no encoder/quantize/generator tensor matches safm-base" in capsys.readouterr().err
