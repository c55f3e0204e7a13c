"""AuthFace checkpoints: one folder, ``config.json`` plus one safetensors file per component.

    <dir>/config.json               architecture (diffusers configs of unet, controlnet, vae),
                                    scheduler config, image size, where the null prompt came from
    <dir>/unet.safetensors          UNet2DConditionModel (the frozen face prior)
    <dir>/controlnet.safetensors    ControlNetModel (initialised from the UNet encoder)
    <dir>/vae.safetensors           AutoencoderKL
    <dir>/null_prompt.safetensors   prompt_embeds [tokens, cross_dim], pooled_prompt_embeds [pooled],
                                    time_ids [6]

Made three ways: ``make_random_checkpoint`` (seeded random init; the ``tiny`` config is what
tests and CI run), ``make_checkpoint_from_diffusers`` (a local diffusers-format SDXL folder,
its text encoders run once on "" if present, plus a ControlNet file or ``from_unet`` init),
and loaded with ``load_checkpoint``. Weights are only ever read from safetensors (never
pickles) and nothing is downloaded.
"""
from __future__ import annotations

import json
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from training.authface.configs import AuthFaceConfig, get_config
from training.authface.model import UNetControlNet, VaeDecoder, VaeEncoder
from training.provenance import Provenance

FORMAT = "authface-checkpoint"
COMPONENTS = ("unet", "controlnet", "vae", "null_prompt")
_WEIGHT_NAMES = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.fp16.safetensors",
                 "model.safetensors", "model.fp16.safetensors")


class CheckpointError(ValueError):
    """A checkpoint or source folder that cannot be used; the message names the path."""


@dataclass
class AuthFaceCheckpoint:
    """The loaded components of one AuthFace model (fp32, CPU, eval mode)."""

    config: AuthFaceConfig
    unet: torch.nn.Module
    controlnet: torch.nn.Module
    vae: torch.nn.Module
    prompt_embeds: torch.Tensor          # [tokens, cross_dim]
    pooled_prompt_embeds: torch.Tensor   # [pooled]
    time_ids: torch.Tensor               # [6]
    scheduler: dict = field(default_factory=dict)
    notes: dict = field(default_factory=dict)

    def unet_controlnet(self) -> UNetControlNet:
        return UNetControlNet(self.unet, self.controlnet, self.prompt_embeds, self.pooled_prompt_embeds,
                              self.time_ids).eval()

    def vae_encoder(self) -> VaeEncoder:
        return VaeEncoder(self.vae).eval()

    def vae_decoder(self) -> VaeDecoder:
        return VaeDecoder(self.vae).eval()

    def save(self, out_dir: Path, save_dtype: torch.dtype = torch.float32, overwrite: bool = False) -> Path:
        """Write the checkpoint folder (atomically: a temp folder renamed into place)."""
        out_dir = Path(out_dir)
        if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
            raise CheckpointError(f"{out_dir}: folder exists and is not empty; choose another --out")
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
        try:
            for name, module in (("unet", self.unet), ("controlnet", self.controlnet), ("vae", self.vae)):
                save_file(_state(module, save_dtype), str(tmp / f"{name}.safetensors"))
            save_file({"prompt_embeds": self.prompt_embeds.float().contiguous(),
                       "pooled_prompt_embeds": self.pooled_prompt_embeds.float().contiguous(),
                       "time_ids": self.time_ids.float().contiguous()}, str(tmp / "null_prompt.safetensors"))
            config = {"format": FORMAT, "version": 1, "config": self.config.name,
                      "image_size": self.config.image_size,
                      "unet": _plain_config(self.unet), "controlnet": _plain_config(self.controlnet),
                      "vae": _plain_config(self.vae), "scheduler": self.scheduler, "notes": self.notes}
            (tmp / "config.json").write_text(json.dumps(config, indent=2))
            if out_dir.exists():
                shutil.rmtree(out_dir)
            tmp.rename(out_dir)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp)
        return out_dir


# ----------------------------------------------------------------------------- creation

def make_random_checkpoint(config: str | AuthFaceConfig = "tiny", seed: int = 0) -> AuthFaceCheckpoint:
    """Seeded random init of every component (global RNG state untouched). The ControlNet is
    ``from_unet`` of the random UNet; in ``tiny`` its zero-initialised convs get small random
    weights too, so the control path has an effect that tests can see."""
    from diffusers import AutoencoderKL, ControlNetModel, UNet2DConditionModel

    cfg = get_config(config) if isinstance(config, str) else config
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = UNet2DConditionModel(**cfg.copy_unet())
        controlnet = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=cfg.controlnet_embedding_channels)
        if cfg.name == "tiny":
            zero_convs = [controlnet.controlnet_cond_embedding.conv_out, controlnet.controlnet_mid_block,
                          *controlnet.controlnet_down_blocks]
            for conv in zero_convs:
                torch.nn.init.normal_(conv.weight, std=0.05)
                torch.nn.init.normal_(conv.bias, std=0.01)
        vae = AutoencoderKL(**cfg.copy_vae())
        prompt = torch.randn(cfg.prompt_tokens, cfg.cross_attention_dim) * 0.5
        pooled = torch.randn(cfg.pooled_dim) * 0.5
    return AuthFaceCheckpoint(cfg, unet.eval(), controlnet.eval(), vae.eval(), prompt, pooled,
                              torch.tensor(cfg.time_ids), dict(cfg.scheduler),
                              {"weights": f"random init, seed {seed}", "null_prompt": "random (not a text encoding)"})


def make_checkpoint_from_diffusers(diffusers_dir: Path, config: str | AuthFaceConfig = "sdxl",
                                   controlnet: Path | None = None, null_prompt: str = "auto") -> AuthFaceCheckpoint:
    """Assemble a checkpoint from a local diffusers-format folder (``unet/``, ``vae/``, optional
    ``text_encoder/``, ``text_encoder_2/``, ``tokenizer/``, ``tokenizer_2/``) whose UNet and VAE
    have the architecture of ``config``, plus a ControlNet: a safetensors file (or a diffusers
    ControlNet folder) or, when None, ``ControlNetModel.from_unet`` of the UNet (zero convs at zero).

    null_prompt: "auto" encodes "" with the folder's two text encoders when they are there and
    stores zeros otherwise (what SDXL's ``force_zeros_for_empty_prompt`` uses for an empty
    prompt); "encode" requires the encoders; "zeros" never runs them."""
    from diffusers import AutoencoderKL, ControlNetModel, UNet2DConditionModel

    cfg = get_config(config) if isinstance(config, str) else config
    root = Path(diffusers_dir)
    if not root.is_dir():
        raise CheckpointError(f"{root}: not a folder (expected a diffusers-format SDXL folder with unet/ and vae/)")
    unet = _load_component(UNet2DConditionModel, cfg.copy_unet(), root / "unet")
    vae = _load_component(AutoencoderKL, cfg.copy_vae(), root / "vae")
    if controlnet is None:
        cn = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=cfg.controlnet_embedding_channels)
        cn_note = "ControlNetModel.from_unet (zero convs at zero)"
    else:
        with torch.device("meta"):
            meta_unet = UNet2DConditionModel(**cfg.copy_unet())
            cn = ControlNetModel.from_unet(meta_unet, conditioning_embedding_out_channels=cfg.controlnet_embedding_channels,
                                           load_weights_from_unet=False)
        path = Path(controlnet)
        _assign(cn, _read_weights(path if path.is_file() else _weights_file(path)), path)
        cn_note = str(path)
    prompt, pooled, source = _null_prompt(root, cfg, null_prompt)
    return AuthFaceCheckpoint(cfg, unet.eval(), cn.eval(), vae.eval(), prompt, pooled, torch.tensor(cfg.time_ids),
                              _scheduler_config(root, cfg),
                              {"weights": str(root), "controlnet": cn_note, "null_prompt": source})


# ----------------------------------------------------------------------------- loading

def load_checkpoint(path: Path) -> AuthFaceCheckpoint:
    """Load a checkpoint folder written by ``AuthFaceCheckpoint.save`` (fp32, CPU, eval)."""
    from diffusers import AutoencoderKL, ControlNetModel, UNet2DConditionModel

    root = Path(path)
    if not root.is_dir():
        raise CheckpointError(f"{root}: not an AuthFace checkpoint folder (no such folder)")
    cfg_path = root / "config.json"
    if not cfg_path.is_file():
        raise CheckpointError(f"{cfg_path}: missing; not an AuthFace checkpoint folder")
    meta = json.loads(cfg_path.read_text())
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{cfg_path}: not an AuthFace checkpoint config (format {meta.get('format')!r})")
    for name in COMPONENTS:
        if not (root / f"{name}.safetensors").is_file():
            raise CheckpointError(f"{root / f'{name}.safetensors'}: missing from the checkpoint")
    base = get_config(meta["config"])
    cfg = AuthFaceConfig(base.name, meta["unet"], meta["vae"], tuple(meta["controlnet"]["conditioning_embedding_out_channels"]),
                         base.prompt_tokens, base.pooled_dim, int(meta.get("image_size", base.image_size)),
                         meta.get("scheduler") or dict(base.scheduler))
    modules = []
    for name, cls in (("unet", UNet2DConditionModel), ("controlnet", ControlNetModel), ("vae", AutoencoderKL)):
        with torch.device("meta"):
            module = cls.from_config(_clean(meta[name]))
        weights = root / f"{name}.safetensors"
        _assign(module, _read_weights(weights), weights)
        modules.append(module.eval())
    prompt = load_file(str(root / "null_prompt.safetensors"))
    return AuthFaceCheckpoint(cfg, *modules, prompt["prompt_embeds"].float(), prompt["pooled_prompt_embeds"].float(),
                              prompt["time_ids"].float(), cfg.scheduler, meta.get("notes", {}))


def provenance(notes: dict) -> Provenance:
    """Provenance of an AuthFace checkpoint from its notes: trained when a stage II run (the
    ControlNet, which carries the degraded face) wrote them or a trained ControlNet was imported;
    untrained for random init and for a ControlNet made from_unet (its zero convs ignore the face)."""
    prompt = f"null prompt: {notes.get('null_prompt', '?')}"
    stage2 = notes.get("stage2")
    if isinstance(stage2, dict):
        return Provenance(f"ControlNet trained {stage2.get('step', '?')} steps (stage II) on {notes.get('weights', '?')}; "
                          f"{prompt}", True)
    weights = str(notes.get("weights", "?"))
    controlnet = str(notes.get("controlnet", ""))
    if weights.startswith("random init"):
        return Provenance(f"{weights}; {prompt}", False)
    if "from_unet" in controlnet:
        return Provenance(f"UNet from {weights}, ControlNet from_unet and not trained; {prompt}", False)
    return Provenance(f"UNet from {weights}, ControlNet from {controlnet}; {prompt}", True)


def load_or_default(checkpoint: Path | None) -> AuthFaceCheckpoint:
    """``load_checkpoint(checkpoint)``, or the seeded random-init ``tiny`` model when None."""
    return make_random_checkpoint("tiny", seed=0) if checkpoint is None else load_checkpoint(checkpoint)


# ----------------------------------------------------------------------------- helpers

def _plain_config(module: torch.nn.Module) -> dict:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dict(module.config).items() if not k.startswith("_")}


def _clean(config: dict) -> dict:
    return {k: v for k, v in config.items() if not k.startswith("_")}


def _state(module: torch.nn.Module, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    return {k: (v.to(dtype) if v.is_floating_point() else v).contiguous() for k, v in module.state_dict().items()}


def _read_weights(path: Path) -> dict[str, torch.Tensor]:
    """A safetensors file, or a sharded set through its ``*.safetensors.index.json``; fp32."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    if path.name.endswith(".index.json"):
        shards = sorted(set(json.loads(path.read_text())["weight_map"].values()))
        state = {}
        for shard in shards:
            state.update(_read_weights(path.parent / shard))
        return state
    if path.suffix != ".safetensors":
        raise CheckpointError(f"{path}: only .safetensors weights are read (never pickles)")
    return {k: (v.float() if v.is_floating_point() else v) for k, v in load_file(str(path)).items()}


def _weights_file(folder: Path) -> Path:
    """The safetensors weights of a diffusers/transformers component folder."""
    if not folder.is_dir():
        raise CheckpointError(f"{folder}: no such folder")
    for name in _WEIGHT_NAMES:
        for candidate in (folder / name, folder / f"{name}.index.json"):
            if candidate.is_file():
                return candidate
    found = sorted(p.name for p in folder.iterdir())
    raise CheckpointError(f"{folder}: no safetensors weights ({' / '.join(_WEIGHT_NAMES[:2])}); found {found}"
                          + (" - .bin pickles are never loaded" if any(f.endswith(".bin") for f in found) else ""))


def _assign(module: torch.nn.Module, state: dict[str, torch.Tensor], source: Path) -> None:
    """Load `state` strictly into a (meta or real) module, by assignment."""
    try:
        module.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{source}: weights do not fit the {type(module).__name__} architecture: "
                              f"{str(exc)[:600]}") from None
    left = [n for n, t in list(module.named_parameters()) + list(module.named_buffers()) if t.is_meta]
    if left:
        raise CheckpointError(f"{source}: no weights for {left[:5]}")


def _load_component(cls, config: dict, folder: Path) -> torch.nn.Module:
    """A diffusers component of OUR architecture `config`, weights from `folder`; the folder's
    own config.json must agree on every architecture key we set."""
    cfg_file = folder / "config.json"
    if not cfg_file.is_file():
        raise CheckpointError(f"{cfg_file}: missing (expected a diffusers-format component folder)")
    theirs = json.loads(cfg_file.read_text())
    ignore = {"sample_size", "force_upcast"}
    diff = {k: (v, theirs[k]) for k, v in config.items()
            if k in theirs and k not in ignore and _norm(theirs[k]) != _norm(v)}
    if diff:
        raise CheckpointError(f"{cfg_file}: architecture differs from ours (ours, theirs): {diff}")
    with torch.device("meta"):
        module = cls(**config)
    weights = _weights_file(folder)
    _assign(module, _read_weights(weights), weights)
    return module


def _norm(v):
    return list(v) if isinstance(v, (list, tuple)) else v


def _scheduler_config(root: Path, cfg: AuthFaceConfig) -> dict:
    """The folder's scheduler config (training-time betas) when it has one, else SDXL's."""
    path = root / "scheduler" / "scheduler_config.json"
    if path.is_file():
        theirs = json.loads(path.read_text())
        return {k: v for k, v in theirs.items() if not k.startswith("_")}
    return dict(cfg.scheduler)


def _null_prompt(root: Path, cfg: AuthFaceConfig, mode: str) -> tuple[torch.Tensor, torch.Tensor, str]:
    """Embeddings of the empty prompt "" (computed once here: the served graph has no text encoder)."""
    if mode not in ("auto", "encode", "zeros"):
        raise ValueError(f"null_prompt must be auto, encode or zeros, not {mode!r}")
    parts = ["text_encoder", "tokenizer", "text_encoder_2", "tokenizer_2"]
    present = [p for p in parts if (root / p).is_dir()]
    zeros = (torch.zeros(cfg.prompt_tokens, cfg.cross_attention_dim), torch.zeros(cfg.pooled_dim))
    if mode == "zeros" or (mode == "auto" and not present):
        if mode == "auto":
            print(f"note: {root} has no text encoders ({', '.join(parts)}); storing ZERO null-prompt embeddings. "
                  "This is not what diffusers feeds for the prompt \"\" (it encodes \"\"; "
                  "force_zeros_for_empty_prompt zeros only the negative prompt under guidance), so images differ "
                  "from an encoded \"\"; give a folder with text encoders for the real null prompt", file=sys.stderr)
        return *zeros, "zeros (not an encoding of \"\": the folder had no text encoders)"
    missing = [p for p in parts if p not in present]
    if missing:
        raise CheckpointError(f"{root}: text encoder parts missing: {missing} (all of {parts} are needed to encode \"\")")
    try:
        from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer
    except ImportError:
        raise CheckpointError(f"{root}: encoding the null prompt needs `pip install transformers` "
                              f"(or pass --null-prompt zeros)") from None
    hidden, pooled = [], None
    for enc_name, tok_name, cls in (("text_encoder", "tokenizer", CLIPTextModel),
                                    ("text_encoder_2", "tokenizer_2", CLIPTextModelWithProjection)):
        tok = CLIPTokenizer.from_pretrained(str(root / tok_name), local_files_only=True)
        enc = cls.from_pretrained(str(root / enc_name), local_files_only=True, use_safetensors=True).eval()
        ids = tok("", padding="max_length", max_length=tok.model_max_length, truncation=True, return_tensors="pt").input_ids
        with torch.inference_mode():
            out = enc(ids, output_hidden_states=True)
        hidden.append(out.hidden_states[-2][0].float())   # SDXL uses the penultimate layer
        if cls is CLIPTextModelWithProjection:
            pooled = out.text_embeds[0].float()
    prompt = torch.cat(hidden, dim=-1)
    if prompt.shape != zeros[0].shape or pooled.shape != zeros[1].shape:
        raise CheckpointError(f"{root}: text encoders give {tuple(prompt.shape)} / {tuple(pooled.shape)}, "
                              f"the UNet expects {tuple(zeros[0].shape)} / {tuple(zeros[1].shape)}")
    return prompt.clone(), pooled.clone(), 'encoded "" with text_encoder + text_encoder_2'
