"""The SaFM trainer (the SaFM paper section III.D): L1 + perceptual (VGG-19) + global and per-component
adversarial losses with the Gram style loss + ArcFace identity loss, Adam, resumable, data-parallel
under torchrun (training/distributed.py), optionally with an EMA of the generator's weights."""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from training.cpu import native_bf16
from training.data.degradations import PRESETS, DegradationConfig
from training.data.faces import AlignedFaces
from training.data.photos import FacesAndPhotos, PhotoCrops
from training.data.stream import per_sample
from training.distributed import average_gradients, broadcast_modules, from_main, gather_rng, mean_over_ranks, start
from training.ema import ema_copy, update_ema
from training.losses.adversarial import ComponentDiscriminators, Discriminator, d_loss, g_loss
from training.losses.identity import IdentityLoss
from training.losses.perceptual import PerceptualLoss
from training.provenance import Provenance
from training.safm.checkpoint import load_checkpoint, random_init, save_checkpoint
from training.train_state import end_step, jsonable, resume, sample_loader, save_train_state, training_device

WARMUP_STEPS, CALIBRATION_STEPS = 10, 50  # a --budget-minutes run times steps 10..60, then fixes its step count
ARCFACE_LAYERS = {"r18": (2, 2, 2, 2), "r34": (3, 4, 6, 3), "r50": (3, 4, 14, 3)}


@dataclass
class SaFMTrainConfig:
    """Defaults are the paper's (section IV.B): lambda_pix = lambda_d = 1, lambda_s = 2000,
    lambda_adv = 0.8, lambda_id = 3, Adam with lr 4.5e-6, 60k iterations."""

    data: Path
    out: Path
    config: str = "safm-tiny"
    init: Path | None = None            # start from this SaFM checkpoint (e.g. import-codeformer's)
    steps: int = 60_000
    batch: int = 4                      # per rank: the global batch is batch x ranks x grad_accum
    lr: float = 4.5e-6
    d_lr: float | None = None           # discriminators' lr (default: lr)
    lambda_pix: float = 1.0
    lambda_adv: float = 0.8
    lambda_d: float = 1.0
    lambda_s: float = 2000.0
    lambda_id: float = 3.0
    perceptual: bool = True
    identity: bool = True
    adversarial: bool = True
    vgg: Path | None = None             # VGG-19 features, torchvision layout, safetensors
    arcface: Path | None = None         # insightface IResNet, safetensors
    arcface_arch: str = "r18"
    grad_accum: int = 1
    ema_decay: float = 0.0              # EMA of the generator's weights (0: none; GFPGAN/CodeFormer: 0.999)
    amp: bool = True                    # bf16 autocast on CUDA and on CPUs with native bf16 (training/cpu.py)
    device: str = "cpu"
    seed: int = 0
    jitter: float = 0.0                 # scale/shift augmentation, for training on few photos
    photos: Path | None = None          # general photographs: random crops mixed with the faces
    crop: int = 512                     # training size (< 512 with --photos: crops of faces and photos)
    photo_scale: tuple[float, float] = (0.3, 1.0)  # range of the photo crops' scale (> 1: enlarged)
    face_share: float = 0.3             # share of faces among the items when --photos is given
    lr_final: float | None = None       # cosine decay of lr to this value over the steps (None: constant)
    stage: str = "restore"              # "codebook": pre-train E, codebook and D on HQ images (VQGAN reconstruction)
    freeze_codebook: bool = False       # restoration on a pre-trained codebook: keep it fixed
    log_every: int = 10
    save_every: int = 1000
    workers: int = 0
    budget_minutes: float | None = None  # time steps WARMUP..WARMUP+CALIBRATION, then fix `steps` to fit this wall time
    degradation: DegradationConfig | str = field(default_factory=DegradationConfig)  # or a PRESETS name


class SaFMTrainer:
    """Owns the model, discriminators, losses, optimizers, data and the run folder."""

    def __init__(self, cfg: SaFMTrainConfig) -> None:
        self.ranks, cfg.device = start(cfg.device)
        self.cfg, dev = cfg, training_device(cfg.device)
        if not 0.0 <= cfg.ema_decay < 1.0:
            raise ValueError(f"--ema-decay {cfg.ema_decay}: must be in [0, 1) (0: no EMA)")
        self.amp = cfg.amp and native_bf16(dev)   # decided once, as the AuthFace trainer does
        torch.manual_seed(cfg.seed)
        if cfg.stage not in ("restore", "codebook"):
            raise ValueError(f"stage must be restore or codebook, not {cfg.stage!r}")
        self.model = (load_checkpoint(cfg.init) if cfg.init else random_init(cfg.config, cfg.seed)).to(dev).train()
        cfg.config = self.model.config.name   # with --init, the architecture is the checkpoint's
        if cfg.stage == "codebook" and self.model.config.residual:
            raise ValueError(f"{self.model.config.name} has a residual output: its decoder learns a correction, "
                             "not an image, so there is no codebook to pre-train")
        self.model.quantize.embedding.weight.requires_grad_(not cfg.freeze_codebook)
        self.perceptual = PerceptualLoss(cfg.vgg).to(dev) if cfg.perceptual else None
        self.identity = IdentityLoss(cfg.arcface, ARCFACE_LAYERS[cfg.arcface_arch]).to(dev) if cfg.identity else None
        self.d_global = Discriminator().to(dev) if cfg.adversarial else None
        self.d_local = ComponentDiscriminators().to(dev) if cfg.adversarial else None
        self.opt_g = torch.optim.Adam(self.model.parameters(), lr=cfg.lr, betas=(0.9, 0.99))
        d_params = list(self.d_global.parameters()) + list(self.d_local.parameters()) if cfg.adversarial else []
        self.opt_d = torch.optim.Adam(d_params, lr=cfg.d_lr or cfg.lr, betas=(0.9, 0.99)) if d_params else None
        degradation = PRESETS[cfg.degradation] if isinstance(cfg.degradation, str) else cfg.degradation
        self.data = AlignedFaces(cfg.data, degradation, cfg.seed, flip=True, jitter=cfg.jitter)
        if cfg.photos is not None:
            # an epoch (a fresh set of loader workers) lasts at least 256 batches
            crops = PhotoCrops(cfg.photos, cfg.crop, degradation, cfg.seed, length=max(4096, 256 * cfg.batch),
                               min_scale=cfg.photo_scale[0], max_scale=cfg.photo_scale[1])
            self.data = FacesAndPhotos(self.data, crops, cfg.face_share)
        self.ema = None
        broadcast_modules(self._models().values(), self.ranks)   # rank 0's weights everywhere
        if cfg.ema_decay:
            self.ema = ema_copy(self.model)
        self.step, self.samples = 0, 0
        self.state_dir = cfg.out / "train_state"
        meta = resume(self.state_dir, self._models(), self._optimizers(), self.ranks, cfg.seed, cfg.batch * cfg.grad_accum)
        if meta is not None:
            self.step, self.samples = meta["step"], meta["samples"]

    @property
    def global_batch(self) -> int:
        """Samples per optimizer step over all ranks."""
        return self.cfg.batch * self.ranks.world * self.cfg.grad_accum

    def _models(self) -> dict:
        m = {"g": self.model}
        if self.cfg.adversarial:
            m.update(d_global=self.d_global, d_local=self.d_local)
        if self.ema is not None:
            m["ema"] = self.ema
        return m

    def _optimizers(self) -> dict:
        return {"g": self.opt_g, **({"d": self.opt_d} if self.opt_d else {})}

    def _batches(self):
        """Endless batches of this rank's share of the sample stream, from where the run is; the
        dataset's degradations are re-drawn every epoch."""
        return sample_loader(self.data, self.cfg.batch, self.ranks, self.cfg.seed, self.samples, self.cfg.workers,
                             self.cfg.device.startswith("cuda"))

    def losses(self, batch: dict) -> tuple[torch.Tensor, dict[str, float], torch.Tensor]:
        """Generator loss terms of eq. 8 for one batch: (total, logged values, restored)."""
        cfg, dev = self.cfg, torch.device(self.cfg.device)
        hq, lq = batch["hq"].to(dev), batch["lq"].to(dev)
        labels, boxes = batch["label_map"].to(dev), batch["boxes"].to(dev)
        # the fidelity knob, trained over its whole range; drawn per sample (the same on any rank)
        w = per_sample(batch, cfg.seed, 1, lambda g: torch.rand(1, generator=g)).to(dev)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=self.amp):
            if cfg.stage == "codebook":
                restored, vq = self.model.reconstruct(hq)
                restored = restored.float()
            else:
                restored = self.model(lq, labels, w).float()
        terms = {"l1": F.l1_loss(restored, hq)}
        if cfg.stage == "codebook":
            terms["vq"] = vq.float()
        if self.perceptual is not None:
            terms["perceptual"] = cfg.lambda_pix * self.perceptual(restored, hq)
        if cfg.adversarial:
            terms["adv_global"] = cfg.lambda_adv * g_loss(self.d_global(restored)[0])
            adv, style = self.d_local.generator_losses(restored, hq, boxes)
            terms["adv_local"], terms["style"] = cfg.lambda_d * adv, cfg.lambda_s * style
        if self.identity is not None:
            terms["identity"] = cfg.lambda_id * self.identity(restored, hq)
        total = sum(terms.values())
        return total, {k: float(v.detach()) for k, v in terms.items()}, restored

    def discriminator_step(self, batch: dict, restored: torch.Tensor) -> float:
        """One update of the global and component discriminators."""
        dev = torch.device(self.cfg.device)
        hq, boxes = batch["hq"].to(dev), batch["boxes"].to(dev)
        loss = self.cfg.lambda_adv * d_loss(self.d_global(hq)[0], self.d_global(restored.detach())[0])
        loss = loss + self.cfg.lambda_d * self.d_local.discriminator_loss(restored, hq, boxes)
        self.opt_d.zero_grad(set_to_none=True)
        loss.backward()
        average_gradients(self.opt_d.param_groups[0]["params"], self.ranks)
        self.opt_d.step()
        return float(loss.detach())

    def _fit_budget(self, started: float, warm: float) -> int:
        """The step count that ends the run within budget_minutes (counted from `started`) at the
        rate of the CALIBRATION_STEPS timed since `warm` (after the warm-up: loader workers,
        kernel selection); written into the config the checkpoint records."""
        now = time.monotonic()
        per_step = (now - warm) / CALIBRATION_STEPS
        self.cfg.steps = self.step + max(0, int((self.cfg.budget_minutes * 60 - (now - started)) / per_step))
        self.cfg.steps = from_main(self.cfg.steps, self.ranks)   # every rank stops at rank 0's count
        if self.ranks.main:
            print(f"budget {self.cfg.budget_minutes} min: {per_step * 1e3:.0f} ms/step -> {self.cfg.steps} steps")
        return self.cfg.steps

    def train(self, steps: int | None = None) -> list[dict]:
        """Run to `steps` (default: the config's; with budget_minutes, the count that fits the
        budget), logging losses to out/losses.csv, saving the model (out/safm.safetensors + .json)
        and the resumable state every save_every steps (rank 0 logs and writes)."""
        cfg, main = self.cfg, self.ranks.main
        target = steps or cfg.steps
        started, first_step, warm = time.monotonic(), self.step, 0.0
        cfg.out.mkdir(parents=True, exist_ok=True)
        log, rows = (cfg.out / "losses.csv" if main else None), []
        batches = self._batches()
        if main:
            print(f"train safm: {self.ranks.world} rank(s) x batch {cfg.batch} x {cfg.grad_accum} accumulation = "
                  f"global batch {self.global_batch}")
        bar = tqdm(total=target, initial=self.step, desc="train safm", unit="step", disable=None if main else True)
        while self.step < target:
            step_started = time.perf_counter()
            if cfg.lr_final is not None:
                lr = cfg.lr_final + 0.5 * (cfg.lr - cfg.lr_final) * (1 + math.cos(math.pi * self.step / target))
                for group in self.opt_g.param_groups:
                    group["lr"] = lr
            self.opt_g.zero_grad(set_to_none=True)
            logged: dict[str, float] = {}
            for _ in range(cfg.grad_accum):
                batch = next(batches)
                total, terms, restored = self.losses(batch)
                (total / cfg.grad_accum).backward()
                logged = {k: logged.get(k, 0.0) + v / cfg.grad_accum for k, v in terms.items()}
                self.samples += cfg.batch * self.ranks.world
            average_gradients(self.model.parameters(), self.ranks)
            self.opt_g.step()
            if self.ema is not None:
                update_ema(self.ema, self.model, cfg.ema_decay)
            if self.opt_d is not None:
                logged["d"] = self.discriminator_step(batch, restored)
            logged = mean_over_ranks(logged, self.ranks)
            if not all(math.isfinite(v) for v in logged.values()):
                raise FloatingPointError(f"step {self.step}: non-finite loss {logged}")
            self.step += 1
            if cfg.budget_minutes is not None and self.step == first_step + WARMUP_STEPS:
                warm = time.monotonic()
            if cfg.budget_minutes is not None and self.step == first_step + WARMUP_STEPS + CALIBRATION_STEPS:
                target = bar.total = self._fit_budget(started, warm)
            rows.append(end_step(self.step, target, logged, log, bar, cfg.log_every, cfg.save_every, self.save,
                                 {"seconds": time.perf_counter() - step_started}))
        bar.close()
        return rows

    def save(self) -> Path:
        """The runtime checkpoint and the resumable state (written by rank 0; every rank calls
        this, for its RNG state). With an EMA, out/safm.safetensors holds the EMA weights (what
        `restore --checkpoint` reads, as GFPGAN's and CodeFormer's loaders pick `params_ema`)
        and out/safm_raw.safetensors the trained weights themselves."""
        rng = gather_rng(self.ranks)
        path = self.cfg.out / "safm.safetensors"
        if not self.ranks.main:
            return path
        data = f"{self.cfg.data}" + (f" + photographs {self.cfg.photos}" if self.cfg.photos else "")
        start_ = f", starting from {self.cfg.init}" if self.cfg.init else ""
        run = {"step": self.step, "ranks": self.ranks.world, "global_batch": self.global_batch,
               "train": jsonable(asdict(self.cfg))}
        files = {"safm": self.model} if self.ema is None else {"safm": self.ema, "safm_raw": self.model}
        for stem, model in files.items():
            ema = f"; EMA (decay {self.cfg.ema_decay}) of the trained weights" if model is self.ema else ""
            origin = Provenance(f"{self.model.config.name} trained {self.step} steps on {data}{start_}{ema}", self.step > 0)
            save_checkpoint(model, self.cfg.out / stem, {**run, "weights": "ema" if ema else "raw",
                                                         "provenance": origin.to_dict()})
        save_train_state(self.state_dir, self._models(), self._optimizers(), self.step,
                         {"samples": self.samples, "ranks": self.ranks.world, "global_batch": self.global_batch}, rng)
        return path
