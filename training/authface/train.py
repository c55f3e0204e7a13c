"""The AuthFace trainers (the AuthFace paper section 3 and 4.1), resumable, on a face cache made by
`facerestore curate`:

- Stage I (sec. 3.1), ``Stage1Trainer``: fine-tune the whole UNet on captioned HQ faces at a fixed
  resolution (512; the paper fine-tunes SDXL at 1024, our faces are 512), SDXL's noise-prediction
  objective (MSE on epsilon, DDPM training schedule, add_time_ids for the fixed size), AdamW
  lr 5e-7. Captions go through a ``CaptionEncoder``; an empty caption uses the checkpoint's
  null-prompt embeddings. The saved checkpoint's ControlNet is re-initialised from the
  fine-tuned UNet's encoder (sec. 3.2: "We initialize ControlNet with the encoder from our
  fine-tuned SDXL model"), unless ``keep_controlnet``.
- Stage II (sec. 3.2), ``Stage2Trainer``: UNet and VAE frozen, only the ControlNet trains, null
  prompt, control image = the degraded face; L_total = L_noise (eq. 1) + L_facial (eq. 4, with
  eq. 2's z0_pred and eq. 3's time weight, ``training.authface.losses``), plus the updates of
  the facial discriminators; AdamW lr 2e-5.

Run folder ``out``: ``checkpoint/`` (an AuthFace checkpoint folder, ``AuthFaceCheckpoint.save``,
what ``load_checkpoint`` and the runtime read; with ``ema_decay`` its trained network is the
EMA, and ``checkpoint_raw/`` beside it holds the trained weights themselves), ``losses.csv``,
``train_state/`` (the trained weights, optimizer moments, step, samples consumed and every
rank's RNG). Re-running with the same ``out`` resumes. Under torchrun both trainers are
data-parallel (training/distributed.py: ``batch`` per rank, gradients averaged, rank 0 writes).
Conventions follow ``training.safm.train`` (dataclass config with paper defaults, tqdm, CSV log,
FloatingPointError on a non-finite loss, bf16 autocast on CUDA and native-bf16 CPUs, gradient
accumulation).
"""
from __future__ import annotations

import hashlib
import math
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from training.authface.checkpoint import AuthFaceCheckpoint, load_checkpoint
from training.authface.configs import AuthFaceConfig
from training.authface.losses import LatentFacialLoss, normalized_timestep, predict_z0
from training.authface.model import UNetControlNet
from training.cpu import native_bf16
from training.data.degradations import PRESETS, DegradationConfig
from training.data.faces import AlignedFaces
from training.data.stream import per_sample
from training.distributed import average_gradients, broadcast_modules, gather_rng, mean_over_ranks, start
from training.ema import ema_copy, update_ema
from training.train_state import end_step, jsonable, resume, sample_loader, save_train_state, training_device


# ----------------------------------------------------------------------------- captions

class CaptionEncoderError(ValueError):
    """Text encoders that cannot be used; the message names the folder or the missing package."""


@runtime_checkable
class CaptionEncoder(Protocol):
    """Captions -> (prompt_embeds [B, tokens, cross_dim], pooled [B, pooled_dim]) as SDXL's UNet
    takes them (encoder_hidden_states, added_cond_kwargs["text_embeds"])."""

    def encode(self, captions: list[str]) -> tuple[torch.Tensor, torch.Tensor]: ...


class HashingCaptionEncoder:
    """A deterministic STAND-IN for SDXL's two CLIP text encoders, for the ``tiny`` config: no
    CLIP weights exist offline (and none would fit tiny's 32-d cross-attention). Lower-cased
    word tokens are hashed (blake2b, stable across runs) into rows of a fixed table drawn from
    `seed`; prompt_embeds holds the first `tokens` token rows then a padding row, pooled is the
    mean of the tokens' rows of a second table. Different captions give different, fixed
    embeddings, so the stage I plumbing (caption -> conditioning) is exercised end to end; it
    carries no language understanding."""

    def __init__(self, tokens: int, dim: int, pooled_dim: int, buckets: int = 4096, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.tokens, self.buckets = tokens, buckets
        self.table = torch.randn(buckets, dim, generator=g) * 0.5
        self.pooled_table = torch.randn(buckets, pooled_dim, generator=g) * 0.5
        self.pad = torch.randn(dim, generator=g) * 0.5

    def _ids(self, caption: str) -> list[int]:
        words = re.findall(r"[a-z0-9]+", caption.lower())[: self.tokens]
        return [int.from_bytes(hashlib.blake2b(w.encode(), digest_size=8).digest(), "little") % self.buckets
                for w in words]

    def encode(self, captions: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        prompt = self.pad.expand(len(captions), self.tokens, -1).clone()
        pooled = torch.zeros(len(captions), self.pooled_table.shape[1])
        for i, caption in enumerate(captions):
            ids = torch.tensor(self._ids(caption), dtype=torch.long)
            if len(ids):
                prompt[i, : len(ids)] = self.table[ids]
                pooled[i] = self.pooled_table[ids].mean(0)
        return prompt, pooled


class SDXLCaptionEncoder:
    """SDXL's two CLIP text encoders from a LOCAL diffusers-format SDXL folder (tokenizer/,
    text_encoder/, tokenizer_2/, text_encoder_2/; safetensors only, nothing downloaded), through
    `transformers` (imported here, lazily). As SDXL's pipeline: the penultimate hidden states of
    both encoders concatenated (77 x 2048) and text_encoder_2's projected pooled output (1280).
    Frozen (inference mode). Not exercised by the tests: no SDXL weights or `transformers` offline."""

    PARTS = ("tokenizer", "text_encoder", "tokenizer_2", "text_encoder_2")

    def __init__(self, folder: Path, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32) -> None:
        folder = Path(folder)
        if not folder.is_dir():
            raise CaptionEncoderError(f"{folder}: no such folder (expected a local diffusers-format SDXL folder "
                                      f"with {', '.join(self.PARTS)})")
        missing = [p for p in self.PARTS if not (folder / p).is_dir()]
        if missing:
            raise CaptionEncoderError(f"{folder}: text encoder parts missing: {missing} (all of {list(self.PARTS)} "
                                      f"are needed to encode captions)")
        try:
            from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer
        except ImportError:
            raise CaptionEncoderError(f"{folder}: encoding captions with SDXL's text encoders needs the `transformers` "
                                      f"package (pip install transformers)") from None
        self.device = torch.device(device)
        self.tokenizers = [CLIPTokenizer.from_pretrained(str(folder / t), local_files_only=True)
                           for t in ("tokenizer", "tokenizer_2")]
        self.encoders = [cls.from_pretrained(str(folder / e), local_files_only=True, use_safetensors=True,
                                             torch_dtype=dtype).to(self.device).eval().requires_grad_(False)
                         for e, cls in (("text_encoder", CLIPTextModel), ("text_encoder_2", CLIPTextModelWithProjection))]

    @torch.inference_mode()
    def encode(self, captions: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        hidden, pooled = [], None
        for tok, enc in zip(self.tokenizers, self.encoders):
            ids = tok(list(captions), padding="max_length", max_length=tok.model_max_length, truncation=True,
                      return_tensors="pt").input_ids.to(self.device)
            out = enc(ids, output_hidden_states=True)
            hidden.append(out.hidden_states[-2].float())
            pooled = getattr(out, "text_embeds", None)
        return torch.cat(hidden, dim=-1).clone(), pooled.float().clone()


def encode_captions(encoder: CaptionEncoder, captions: list[str], null_prompt: torch.Tensor,
                    null_pooled: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """encoder.encode for the non-empty captions; an empty (or blank) caption gets the
    checkpoint's null-prompt embeddings (null_prompt [tokens, D], null_pooled [P])."""
    b = len(captions)
    prompt = null_prompt.reshape(1, *null_prompt.shape[-2:]).expand(b, -1, -1).clone()
    pooled = null_pooled.reshape(1, -1).expand(b, -1).clone()
    idx = [i for i, c in enumerate(captions) if c.strip()]
    if idx:
        p, q = encoder.encode([captions[i] for i in idx])
        if p.shape[1:] != prompt.shape[1:] or q.shape[1:] != pooled.shape[1:]:
            raise CaptionEncoderError(f"caption encoder gives {tuple(p.shape[1:])} / {tuple(q.shape[1:])}, the UNet "
                                      f"takes {tuple(prompt.shape[1:])} / {tuple(pooled.shape[1:])}")
        prompt[idx], pooled[idx] = p.to(prompt), q.to(pooled)
    return prompt, pooled


# ----------------------------------------------------------------------------- configs

@dataclass
class AuthFaceTrainConfig:
    """What both stages share. ``batch`` is per rank and micro-step; the global batch of an
    optimizer step is batch x ranks x grad_accum (the paper: 96 for stage I, 48 for stage II, on
    four GPUs)."""

    checkpoint: Path                    # AuthFace checkpoint folder to start from
    data: Path                          # face cache (`facerestore curate`)
    out: Path                           # run folder: checkpoint/, losses.csv, train_state/
    steps: int = 50_000
    batch: int = 1
    lr: float = 1e-5
    weight_decay: float = 1e-2          # AdamW (torch's and diffusers' training scripts' default)
    max_grad_norm: float = 1.0          # clip the trained module's gradient norm (0: off)
    grad_accum: int = 1
    ema_decay: float = 0.0              # EMA of the trained network's weights (0: none)
    optimizer: str = "adamw"            # adamw | adamw-fused (torch's fused kernel) | adamw-8bit (bitsandbytes)
    resolution: int | None = None       # faces are resized to this; None: the checkpoint's (512)
    amp: bool = True                    # bf16 autocast on CUDA and native-bf16 CPUs; the VAE runs fp32
    gradient_checkpointing: bool = False
    device: str = "cpu"
    seed: int = 0
    jitter: float = 0.0                 # AlignedFaces scale/shift augmentation (flip is always on)
    log_every: int = 10
    save_every: int = 1000
    workers: int = 0


@dataclass
class Stage1Config(AuthFaceTrainConfig):
    """Sec. 4.1: AdamW lr 5e-7, batch 96, 50k iterations, the whole UNet."""

    batch: int = 96
    lr: float = 5e-7
    text_encoders: Path | None = None   # local diffusers SDXL folder with the CLIP text encoders
    caption_dropout: float = 0.0        # fraction of captions replaced by "" (the null prompt)
    keep_controlnet: bool = False       # save the input ControlNet instead of from_unet(fine-tuned UNet)


@dataclass
class Stage2Config(AuthFaceTrainConfig):
    """Sec. 3.2 and 4.1: ControlNet only, AdamW lr 2e-5, batch 48 (the paper gives no iteration
    count for stage II; 50k as stage I). L_facial: m = -0.5, s = 1 (appendix); lambda_d = 1 and
    lambda_s = 200 are our choice (GFPGAN's facial-component weights; the paper states none)."""

    batch: int = 48
    lr: float = 2e-5
    d_lr: float | None = None           # facial discriminators' lr (default: lr)
    lambda_d: float = 1.0
    lambda_s: float = 200.0
    m: float = -0.5
    s: float = 1.0
    eye_size: int = 12                  # latent patch sizes: about one sample per latent pixel of
                                        # the cache's boxes (eyes ~100 px, mouth ~125 px at 512)
    mouth_size: int = 16
    d_channels: int = 32
    # the AuthFace paper degrades as GFPGAN / BFRffusion do (iso- and anisotropic blur up to sigma
    # 10, down-scale 0.8-8, noise 0-20, JPEG 60-100): the `bfr` preset, not SaFM's eq. 9
    degradation: DegradationConfig = field(default_factory=lambda: PRESETS["bfr"])


# ----------------------------------------------------------------------------- trainers

class _Trainer:
    """The shared part: checkpoint, DDPM schedule, data, frozen VAE encoder, loop, save, resume."""

    stage = ""

    def __init__(self, cfg: AuthFaceTrainConfig) -> None:
        from diffusers import DDPMScheduler

        self.ranks, cfg.device = start(cfg.device)
        self.cfg, self.dev = cfg, training_device(cfg.device)
        if not 0.0 <= cfg.ema_decay < 1.0:
            raise ValueError(f"--ema-decay {cfg.ema_decay}: must be in [0, 1) (0: no EMA)")
        torch.manual_seed(cfg.seed)
        self.ckpt = load_checkpoint(cfg.checkpoint)
        self.scheduler = DDPMScheduler.from_config(self.ckpt.scheduler)
        if self.scheduler.config.prediction_type != "epsilon":
            raise ValueError(f"{cfg.checkpoint}: scheduler prediction_type is {self.scheduler.config.prediction_type!r}; "
                             f"the AuthFace trainers train epsilon prediction")
        self.num_train_timesteps = int(self.scheduler.config.num_train_timesteps)
        self.alphas_cumprod = self.scheduler.alphas_cumprod.to(self.dev)
        self.resolution = int(cfg.resolution or self.ckpt.config.image_size)
        if self.resolution % 8:
            raise ValueError(f"resolution {self.resolution} is not a multiple of 8 (the VAE's factor)")
        s = float(self.resolution)
        self.time_ids = (self.ckpt.time_ids.float() if self.resolution == self.ckpt.config.image_size
                         else torch.tensor([s, s, 0.0, 0.0, s, s])).to(self.dev)
        # stage I never looks at LQ: its pairs are left clean (no degradation work)
        degradation = getattr(cfg, "degradation", None) or DegradationConfig(clean_fraction=1.0)
        self.data = AlignedFaces(cfg.data, degradation, cfg.seed, flip=True, jitter=cfg.jitter)
        self.vae_encoder = self.ckpt.vae_encoder().to(self.dev).requires_grad_(False)
        self.amp = cfg.amp and native_bf16(self.dev)
        self._setup()
        self.ema: nn.Module | None = None
        broadcast_modules(self._models().values(), self.ranks)   # rank 0's weights everywhere
        if cfg.ema_decay:
            self.ema = ema_copy(self._trained())
        self.step, self.samples = 0, 0
        self.state_dir = cfg.out / "train_state"
        meta = resume(self.state_dir, self._all_models(), self._optimizers(), self.ranks, cfg.seed,
                      cfg.batch * cfg.grad_accum)
        if meta is not None:
            if meta["extra"].get("stage") not in (None, self.stage):
                raise ValueError(f"{cfg.out}: holds a {meta['extra']['stage']} run, not {self.stage}; choose another --out")
            self.step, self.samples = meta["step"], meta["samples"]

    @property
    def global_batch(self) -> int:
        """Samples per optimizer step over all ranks."""
        return self.cfg.batch * self.ranks.world * self.cfg.grad_accum

    def _all_models(self) -> dict[str, nn.Module]:
        """The trained modules and, with ema_decay, the EMA network (what the train state holds)."""
        return {**self._models(), **({"ema": self.ema} if self.ema is not None else {})}

    # -- subclass hooks
    def _setup(self) -> None:
        raise NotImplementedError

    def _models(self) -> dict[str, nn.Module]:
        raise NotImplementedError

    def _optimizers(self) -> dict[str, torch.optim.Optimizer]:
        raise NotImplementedError

    def _trained(self) -> nn.Module:
        raise NotImplementedError

    def _checkpoint(self, trained: nn.Module | None = None) -> AuthFaceCheckpoint:
        """The checkpoint with `trained` (default: the trained network itself) in its place."""
        raise NotImplementedError

    def losses(self, batch: dict, t: torch.Tensor | None = None, noise: torch.Tensor | None = None):
        raise NotImplementedError

    def discriminator_loss(self, extra) -> torch.Tensor | None:
        return None

    # -- shared
    def _batches(self):
        """Endless batches of this rank's share of the sample stream, from where the run is; the
        dataset's degradations are re-drawn every epoch."""
        return sample_loader(self.data, self.cfg.batch, self.ranks, self.cfg.seed, self.samples, self.cfg.workers,
                             self.dev.type == "cuda")

    def _prepare(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """hq, lq [B,3,R,R] in [-1,1] and boxes [B,3,4] on the device, at the training resolution."""
        hq, lq, boxes = batch["hq"].to(self.dev), batch["lq"].to(self.dev), batch["boxes"].to(self.dev).float()
        size = hq.shape[-1]
        if size != self.resolution:
            k = self.resolution / size
            hq, lq = (F.interpolate(x, size=(self.resolution, self.resolution), mode="bilinear", antialias=True,
                                    align_corners=False) for x in (hq, lq))
            boxes = (boxes + 0.5) * k - 0.5
        return hq, lq, boxes

    def _noise(self, z0: torch.Tensor, batch: dict, t: torch.Tensor | None, noise: torch.Tensor | None):
        """Timesteps (uniform over the training schedule) and noise, drawn per sample on the CPU
        (training/data/stream.py: the same on any rank and after a resume), and z_t = add_noise."""
        b, seed = z0.shape[0], self.cfg.seed
        t = (per_sample(batch, seed, 2, lambda g: torch.randint(0, self.num_train_timesteps, (), generator=g))
             if t is None else torch.as_tensor(t).reshape(-1).expand(b))
        noise = per_sample(batch, seed, 3, lambda g: torch.randn(z0.shape[1:], generator=g)) if noise is None else noise
        t, noise = t.to(self.dev).long(), noise.to(self.dev, torch.float32)
        return t, noise, self.scheduler.add_noise(z0.float(), noise, t)

    def train(self, steps: int | None = None) -> list[dict]:
        """Run to `steps` (default: the config's), logging to out/losses.csv every log_every
        steps and saving out/checkpoint/ + out/train_state/ every save_every steps and at the end
        (rank 0 logs and writes)."""
        cfg, main = self.cfg, self.ranks.main
        target = steps or cfg.steps
        cfg.out.mkdir(parents=True, exist_ok=True)
        log, rows = (cfg.out / "losses.csv" if main else None), []
        batches = self._batches()
        opts = self._optimizers()
        params = [p for opt in opts.values() for group in opt.param_groups for p in group["params"]]
        if main:
            print(f"train authface {self.stage}: {self.ranks.world} rank(s) x batch {cfg.batch} x {cfg.grad_accum} "
                  f"accumulation = global batch {self.global_batch}")
        bar = tqdm(total=target, initial=self.step, desc=f"train authface {self.stage}", unit="step",
                   disable=None if main else True)
        while self.step < target:
            started = time.perf_counter()
            for opt in opts.values():
                opt.zero_grad(set_to_none=True)
            logged: dict[str, float] = {}
            for _ in range(cfg.grad_accum):
                total, terms, extra = self.losses(next(batches))
                (total / cfg.grad_accum).backward()
                d = self.discriminator_loss(extra)
                if d is not None:
                    (d / cfg.grad_accum).backward()
                    terms["d"] = d.detach()
                logged = {k: logged.get(k, 0.0) + float(v) / cfg.grad_accum for k, v in terms.items()}
                self.samples += cfg.batch * self.ranks.world
            logged = mean_over_ranks(logged, self.ranks)
            if not all(math.isfinite(v) for v in logged.values()):
                raise FloatingPointError(f"step {self.step}: non-finite loss {logged}")
            average_gradients(params, self.ranks)
            if cfg.max_grad_norm > 0:
                torch.nn.utils.clip_grad_norm_(self._trained().parameters(), cfg.max_grad_norm)
            for opt in opts.values():
                opt.step()
            if self.ema is not None:
                update_ema(self.ema, self._trained(), cfg.ema_decay)
            self.step += 1
            rows.append(end_step(self.step, target, logged, log, bar, cfg.log_every, cfg.save_every, self.save,
                                 {"seconds": time.perf_counter() - started}))
        bar.close()
        return rows

    def save(self) -> Path:
        """out/checkpoint/ (an AuthFace checkpoint folder; with an EMA its trained network is the
        EMA, what restore/export read, and out/checkpoint_raw/ holds the trained weights) and
        out/train_state/; rank 0 writes, every rank calls this (for its RNG state)."""
        rng = gather_rng(self.ranks)
        path = self.cfg.out / "checkpoint"
        if not self.ranks.main:
            return path
        run = {"step": self.step, "from": str(self.cfg.checkpoint), "ranks": self.ranks.world,
               "global_batch": self.global_batch, "train": jsonable(asdict(self.cfg))}
        folders = {"checkpoint": None} if self.ema is None else {"checkpoint": self.ema, "checkpoint_raw": None}
        for name, trained in folders.items():
            ckpt = self._checkpoint(trained)
            weights = {"weights": "ema", "ema_decay": self.cfg.ema_decay} if trained is not None else {"weights": "raw"}
            ckpt.notes = {**self.ckpt.notes, self.stage: {**run, **weights}}
            ckpt.save(self.cfg.out / name, overwrite=True)
        save_train_state(self.state_dir, self._all_models(), self._optimizers(), self.step,
                         {"stage": self.stage, "checkpoint": str(self.cfg.checkpoint), "samples": self.samples,
                          "ranks": self.ranks.world, "global_batch": self.global_batch}, rng)
        return path


class Stage1Trainer(_Trainer):
    """Stage I: the whole UNet, SDXL's noise-prediction objective on captioned HQ faces."""

    stage = "stage1"
    cfg: Stage1Config

    def _setup(self) -> None:
        cfg, ck = self.cfg, self.ckpt
        self.unet = ck.unet.to(self.dev).train().requires_grad_(True)
        if cfg.gradient_checkpointing:
            self.unet.enable_gradient_checkpointing()
        self.encoder = make_caption_encoder(ck.config, cfg.text_encoders, self.dev, cfg.seed)
        self.null_prompt, self.null_pooled = ck.prompt_embeds.to(self.dev), ck.pooled_prompt_embeds.to(self.dev)
        self.opt = adamw(self.unet.parameters(), cfg)

    def _models(self) -> dict[str, nn.Module]:
        return {"unet": self.unet}

    def _optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"unet": self.opt}

    def _trained(self) -> nn.Module:
        return self.unet

    def losses(self, batch: dict, t: torch.Tensor | None = None, noise: torch.Tensor | None = None):
        """MSE(epsilon, epsilon_theta(z_t, t, caption)) for one batch: (loss, logged terms, None)."""
        hq, _, _ = self._prepare(batch)
        with torch.no_grad():
            z0 = self.vae_encoder(hq).float()
        captions = [str(c) for c in batch["caption"]]
        if self.cfg.caption_dropout:
            drop = per_sample(batch, self.cfg.seed, 4, lambda g: torch.rand((), generator=g)) < self.cfg.caption_dropout
            captions = ["" if d else c for c, d in zip(captions, drop.tolist())]
        prompt, pooled = encode_captions(self.encoder, captions, self.null_prompt, self.null_pooled)
        t, noise, z_t = self._noise(z0, batch, t, noise)
        b = z0.shape[0]
        with torch.autocast(self.dev.type, dtype=torch.bfloat16, enabled=self.amp):
            eps = self.unet(z_t, t, encoder_hidden_states=prompt,
                            added_cond_kwargs={"text_embeds": pooled, "time_ids": self.time_ids.expand(b, -1)},
                            return_dict=False)[0].float()
        loss = F.mse_loss(eps, noise)
        return loss, {"noise": loss.detach()}, None

    def _checkpoint(self, trained: nn.Module | None = None) -> AuthFaceCheckpoint:
        from diffusers import ControlNetModel

        ck, unet = self.ckpt, _cpu(trained if trained is not None else self.unet)
        if self.cfg.keep_controlnet:
            controlnet = ck.controlnet
        else:
            controlnet = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=ck.config.controlnet_embedding_channels)
        return AuthFaceCheckpoint(ck.config, unet, controlnet.eval(), ck.vae, ck.prompt_embeds, ck.pooled_prompt_embeds,
                                  ck.time_ids, ck.scheduler, dict(ck.notes))


class Stage2Trainer(_Trainer):
    """Stage II: the ControlNet only (UNet, VAE frozen), null prompt, control = degraded face;
    L_noise (eq. 1) + L_facial (eq. 4) and the facial discriminators' updates."""

    stage = "stage2"
    cfg: Stage2Config

    def _setup(self) -> None:
        cfg, ck = self.cfg, self.ckpt
        ck.unet.to(self.dev).eval().requires_grad_(False)
        ck.controlnet.to(self.dev).train().requires_grad_(True)
        if cfg.gradient_checkpointing:
            ck.unet.enable_gradient_checkpointing()
            ck.controlnet.enable_gradient_checkpointing()
        self.model = UNetControlNet(ck.unet, ck.controlnet, ck.prompt_embeds, ck.pooled_prompt_embeds,
                                    self.time_ids.cpu()).to(self.dev)
        self.controlnet = ck.controlnet
        self.facial = LatentFacialLoss(int(ck.vae.config.latent_channels), cfg.lambda_d, cfg.lambda_s, cfg.m, cfg.s,
                                       cfg.eye_size, cfg.mouth_size, cfg.d_channels).to(self.dev)
        self.opt = adamw(self.controlnet.parameters(), cfg)
        self.opt_d = torch.optim.AdamW(self.facial.parameters(), lr=cfg.d_lr or cfg.lr, betas=(0.9, 0.99),
                                       weight_decay=0.0)

    def _models(self) -> dict[str, nn.Module]:
        return {"controlnet": self.controlnet, "facial": self.facial}

    def _optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"controlnet": self.opt, "facial": self.opt_d}

    def _trained(self) -> nn.Module:
        return self.controlnet

    def losses(self, batch: dict, t: torch.Tensor | None = None, noise: torch.Tensor | None = None):
        """L_noise + L_facial for one batch: (total, logged terms, (z0_pred, z0, boxes) for the
        discriminators). `t` (timesteps) and `noise` may be given, e.g. to overfit one batch."""
        hq, lq, boxes = self._prepare(batch)
        with torch.no_grad():
            z0 = self.vae_encoder(hq).float()
        t, noise, z_t = self._noise(z0, batch, t, noise)
        b = z0.shape[0]
        with torch.autocast(self.dev.type, dtype=torch.bfloat16, enabled=self.amp):
            eps = self.model(z_t, t, lq, torch.ones(b, device=self.dev)).float()
        l_noise = F.mse_loss(eps, noise)
        z0_pred = predict_z0(z_t, eps, t, self.alphas_cumprod)
        l_facial, terms = self.facial.generator_loss(z0_pred, z0, boxes, normalized_timestep(t, self.num_train_timesteps))
        return l_noise + l_facial, {"noise": l_noise.detach(), **{k: v.detach() for k, v in terms.items()}}, \
            (z0_pred.detach(), z0, boxes)

    def discriminator_loss(self, extra) -> torch.Tensor | None:
        return self.facial.discriminator_loss(*extra) if self.facial.enabled else None

    def _checkpoint(self, trained: nn.Module | None = None) -> AuthFaceCheckpoint:
        ck = self.ckpt
        return AuthFaceCheckpoint(ck.config, _cpu(ck.unet), _cpu(trained if trained is not None else self.controlnet), ck.vae, ck.prompt_embeds,
                                  ck.pooled_prompt_embeds, ck.time_ids, ck.scheduler, dict(ck.notes))


# ----------------------------------------------------------------------------- helpers

OPTIMIZERS = ("adamw", "adamw-fused", "adamw-8bit")


def adamw(params, cfg: AuthFaceTrainConfig) -> torch.optim.Optimizer:
    """The trained network's AdamW (lr, weight decay of `cfg`): torch's, torch's fused kernel
    (the same 8 bytes of state a parameter, fewer launches), or bitsandbytes' AdamW8bit
    (block-wise 8-bit states: 2 bytes a parameter; for the SDXL UNet 5 GB instead of 21 GB)."""
    if cfg.optimizer not in OPTIMIZERS:
        raise ValueError(f"--optimizer {cfg.optimizer}: one of {', '.join(OPTIMIZERS)}")
    if cfg.optimizer == "adamw-8bit":
        try:
            import bitsandbytes
        except ImportError:
            raise ValueError("--optimizer adamw-8bit needs the bitsandbytes package (pip install bitsandbytes; "
                             "its 8-bit optimizers run on CUDA)") from None
        return bitsandbytes.optim.AdamW8bit(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=cfg.optimizer == "adamw-fused" or None)


def make_caption_encoder(config: AuthFaceConfig, text_encoders: Path | None, device: torch.device,
                         seed: int = 0) -> CaptionEncoder:
    """SDXL's CLIP encoders from `text_encoders` when given; the hashing stand-in for ``tiny``
    otherwise; an error for ``sdxl`` without them."""
    if text_encoders is not None:
        return SDXLCaptionEncoder(text_encoders, device)
    if config.name == "tiny":
        return HashingCaptionEncoder(config.prompt_tokens, config.cross_attention_dim, config.pooled_dim, seed=seed)
    raise CaptionEncoderError(f"stage I on the {config.name} config encodes captions with SDXL's text encoders: "
                              f"pass --text-encoders DIR (a local diffusers-format SDXL folder)")


def _cpu(module: nn.Module) -> nn.Module:
    """`module` itself on the CPU, else a CPU copy built from its config (no second copy on the GPU)."""
    if next(module.parameters()).device.type == "cpu":
        return module
    with torch.device("meta"):
        copy = type(module).from_config(module.config)
    copy.load_state_dict({k: v.detach().cpu() for k, v in module.state_dict().items()}, assign=True)
    return copy.eval()
