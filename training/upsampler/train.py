"""Train a small compact background upsampler (SRVGGNetCompact, training/published/upsamplers.py)
on general photographs: random HR crops, the LR input their bicubic (antialiased) x`scale`
reduction, L1 loss, the last convolution starting at zero (the network starts as nearest-neighbour
upsampling). Bounded by wall time (`--minutes`, the learning rate cosine-decayed over it, so a
rerun is not bit-identical), resumable from its train state, with a
checkpoint (`upsampler.safetensors` + `.json` with provenance) every `--save-every` steps.

Photos are split once by name (`split_photos`): every HELD_OUT_EVERY-th file (sorted) is held
out for the evaluation and never trained on.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import save_file
from tqdm import tqdm

from training.data.photos import PHOTO_SUFFIXES
from training.files import atomic_write
from training.published.upsamplers import UpsamplerConfig
from training.train_state import append_csv, load_train_state, save_train_state

HELD_OUT_EVERY = 6


def split_photos(folder: Path) -> tuple[list[Path], list[Path]]:
    """(training photos, held-out photos) of `folder`: every HELD_OUT_EVERY-th file, sorted, is held out."""
    files = sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in PHOTO_SUFFIXES)
    held = files[HELD_OUT_EVERY // 2::HELD_OUT_EVERY]
    return [f for f in files if f not in held], held


def read_rgb(path: Path, max_side: int = 1600) -> np.ndarray:
    """uint8 RGB, shrunk (box filter) to at most `max_side`."""
    img = Image.open(path).convert("RGB")
    if max(img.size) > max_side:
        s = max_side / max(img.size)
        img = img.resize((round(img.width * s), round(img.height * s)), Image.BOX)
    return np.asarray(img)


def bicubic_down(hr: np.ndarray, scale: int) -> np.ndarray:
    """The LR image of an HR one: PIL's antialiased bicubic reduction (MATLAB imresize's kind)."""
    h, w = hr.shape[:2]
    return np.asarray(Image.fromarray(hr).resize((w // scale, h // scale), Image.BICUBIC))


@dataclass
class UpsamplerTrainConfig:
    photos: Path
    out: Path
    scale: int = 4
    features: int = 24
    convs: int = 6
    crop: int = 96            # HR crop side
    batch: int = 16
    lr: float = 1e-3          # cosine-decayed to 1% over the wall-time budget
    minutes: float = 28.0     # wall-time budget of this invocation
    save_every: int = 250
    log_every: int = 25
    seed: int = 0
    threads: int = 1


def _batch(photos: list[np.ndarray], cfg: UpsamplerTrainConfig, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(LR, HR) float NCHW in [0, 1]: each crop from a random photo, at a random scale in
    [0.5, 1] of the photo's own resolution, randomly flipped and rotated by 90 degrees."""
    hrs, lrs = [], []
    for _ in range(cfg.batch):
        photo = photos[int(rng.integers(len(photos)))]
        h, w = photo.shape[:2]
        side = int(min(h, w, cfg.crop / rng.uniform(0.5, 1.0)))
        y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        hr = np.asarray(Image.fromarray(photo[y:y + side, x:x + side]).resize((cfg.crop, cfg.crop), Image.BOX))
        hr = np.rot90(hr[:, ::-1] if rng.random() < 0.5 else hr, int(rng.integers(4))).copy()
        hrs.append(hr)
        lrs.append(bicubic_down(hr, cfg.scale))
    to_t = lambda xs: torch.from_numpy(np.stack(xs)).permute(0, 3, 1, 2).float() / 255  # noqa: E731
    return to_t(lrs), to_t(hrs)


def provenance_text(cfg: UpsamplerTrainConfig, step: int, n_photos: int, cpu_s: float) -> str:
    return (f"SRVGGNetCompact x{cfg.scale} ({cfg.features} features, {cfg.convs} convs) trained {step} steps of "
            f"batch {cfg.batch} (L1, {cfg.crop}-px HR crops, bicubic x{cfg.scale} LR) on {n_photos} photographs "
            f"from Debian packages (training/data/demo_photos.py), {cpu_s / 60:.0f} CPU minutes on {cfg.threads} "
            "thread(s); every 6th photograph held out")


def save_checkpoint(model: torch.nn.Module, path: Path, meta: dict) -> None:
    """`path` (.safetensors) + its .json (config, provenance), atomically."""
    atomic_write(path, lambda p: save_file({k: v.contiguous() for k, v in model.state_dict().items()}, p))
    atomic_write(path.with_suffix(".json"), lambda p: Path(p).write_text(json.dumps(meta, indent=1)))


def train(cfg: UpsamplerTrainConfig) -> int:
    """Train until the wall-time budget is spent (resuming a previous run in cfg.out); returns the step."""
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    cfg.out.mkdir(parents=True, exist_ok=True)
    train_files, held = split_photos(cfg.photos)
    photos = [read_rgb(f) for f in train_files]
    arch = UpsamplerConfig("srvgg", cfg.scale, cfg.features, cfg.convs)
    model = arch.build()
    torch.nn.init.zeros_(model.body[-1].weight)
    torch.nn.init.zeros_(model.body[-1].bias)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=(0.9, 0.99))
    state_dir, step, cpu_s = cfg.out / "train_state", 0, 0.0
    if (state_dir / "train_state.json").is_file():
        meta = load_train_state(state_dir, {"model": model}, {"opt": opt})
        step, cpu_s = meta["step"], meta["extra"]["cpu_s"]
    rng = np.random.default_rng([cfg.seed, step])

    def save() -> None:
        save_train_state(state_dir, {"model": model}, {"opt": opt}, step, {"cpu_s": cpu_s})
        save_checkpoint(model, cfg.out / "upsampler.safetensors", {
            "architecture": asdict(arch), "step": step, "cpu_seconds": round(cpu_s),
            "train": {k: str(v) for k, v in asdict(cfg).items()},
            "held_out": [f.name for f in held],
            "provenance": {"text": provenance_text(cfg, step, len(photos), cpu_s), "trained": True}})

    start = time.monotonic()
    bar = tqdm(desc="train upsampler", unit="step", initial=step, disable=None)
    while (elapsed := time.monotonic() - start) < cfg.minutes * 60:
        for group in opt.param_groups:
            group["lr"] = cfg.lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * elapsed / (cfg.minutes * 60))))
        t0 = time.process_time()
        lr, hr = _batch(photos, cfg, rng)
        loss = F.l1_loss(model(lr), hr)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        cpu_s += time.process_time() - t0
        if step % cfg.log_every == 0:
            append_csv(cfg.out / "losses.csv", {"step": step, "l1": f"{loss.item():.5f}", "cpu_s": f"{cpu_s:.0f}"})
            bar.set_postfix(l1=f"{loss.item():.4f}")
        if step % cfg.save_every == 0:
            save()
        bar.update(1)
    save()
    bar.close()
    return step
