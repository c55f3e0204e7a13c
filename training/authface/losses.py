"""AuthFace stage II losses (the AuthFace paper section 3.2): the DDIM closed form for the predicted
clean latent (eq. 2), the logit-normal time weight (eq. 3) and the time-aware latent facial
feature loss L_facial (eq. 4): eye and mouth patches cropped in LATENT space at the ground-truth
box positions / 8, one discriminator for the eyes and one for the mouth on those 4-channel
patches, the Gram-matrix style loss on their multi-scale features, every sample weighted by
eq. 3 at its own timestep.

Reuses ``training.losses.adversarial`` (Discriminator, gram, g_loss, d_loss, roi_align).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from training.losses.adversarial import Discriminator, d_loss, gram, roi_align

REGIONS = ("left_eye", "right_eye", "mouth")   # order of the rows of AlignedFaces' `boxes`
VAE_FACTOR = 8                                  # image pixels per latent pixel (SDXL's VAE)


# ----------------------------------------------------------------------------- eq. 2

def predict_z0(z_t: torch.Tensor, eps: torch.Tensor, t: torch.Tensor, alphas_cumprod: torch.Tensor) -> torch.Tensor:
    """Eq. 2 (DDIM closed form): z0_pred = (z_t - sqrt(1 - abar_t) * eps) / sqrt(abar_t).

    z_t, eps: [B, C, h, w]; t: integer timesteps [B] (or a scalar); alphas_cumprod: [T] (the
    training schedule's abar, e.g. ``DDPMScheduler.alphas_cumprod``). The paper writes
    beta_prod_t = prod beta_i, but its own definition of the diffusion (and DDIM, and diffusers'
    ``pred_original_sample``) uses beta_prod_t = 1 - alpha_prod_t, which is what this computes.
    Differentiable in eps (the ControlNet's gradient path of L_facial)."""
    abar = alphas_cumprod.to(device=z_t.device, dtype=torch.float32)[t.to(z_t.device).long()].reshape(-1)
    abar = abar.reshape(-1, *([1] * (z_t.ndim - 1)))
    z0 = (z_t.float() - (1.0 - abar).sqrt() * eps.float()) / abar.sqrt()
    return z0.to(z_t.dtype)


def normalized_timestep(t: torch.Tensor, num_train_timesteps: int = 1000) -> torch.Tensor:
    """Integer timesteps 0..T-1 -> t in (0, 1) for eq. 3: (t + 0.5) / T (the mid-point of each
    step's interval, so neither end reaches the poles of eq. 3 at 0 and 1)."""
    return (t.float() + 0.5) / float(num_train_timesteps)


# ----------------------------------------------------------------------------- eq. 3

def time_weight(t: torch.Tensor | float, m: float = -0.5, s: float = 1.0) -> torch.Tensor:
    """Eq. 3, the logit-normal density of t in (0, 1), implemented as written:

        w(t) = 1 / (s sqrt(2 pi)) * 1 / (t (1 - t)) * exp(-(logit(t) - m)^2 / (2 s^2)),
        logit(t) = log(t / (1 - t)).

    It integrates to 1 over (0, 1), so its mean over uniformly drawn timesteps is 1 (the loss
    keeps the scale of a constant weight 1, which the paper's ablation (c) uses).

    Where it peaks - a discrepancy in the paper: with the appendix's m = -0.5, s = 1 this
    density peaks at t = 0.2815 (the stationary point solves 2t - 1 = (logit(t) - m) / s^2;
    peak value 1.793), while the appendix says eq. 3 "peaks at t=0.37". 0.37 is
    sigmoid(m) = 0.3775: the peak of the Gaussian factor exp(-(logit(t) - m)^2 / 2s^2), i.e. of
    the density of logit(t), and the median of the logit-normal distribution (half of the
    weight lies below it). We implement the equation as written (tests/test_training_authface.py
    checks both numbers); the weight at t = 0.3775 is 1.698, 95% of the peak, so the two
    readings differ little in effect."""
    t = torch.as_tensor(t)
    dtype = t.dtype if t.is_floating_point() else torch.float32
    tf = t.double()                                   # float64 inside: the poles at 0 and 1
    logit = torch.log(tf / (1.0 - tf))
    w = torch.exp(-((logit - m) ** 2) / (2.0 * s * s)) / (s * math.sqrt(2.0 * math.pi) * tf * (1.0 - tf))
    return w.to(dtype)


def time_weight_peak(m: float = -0.5, s: float = 1.0) -> float:
    """Where eq. 3 as written peaks: the root of 2t - 1 = (logit(t) - m) / s^2 in (0, 1)
    (bisection; the left side minus the right one falls from +inf to -inf, once)."""
    lo, hi = 1e-12, 1.0 - 1e-12
    f = lambda t: (2.0 * t - 1.0) - (math.log(t / (1.0 - t)) - m) / (s * s)   # noqa: E731
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if f(mid) > 0 else (lo, mid)
    return 0.5 * (lo + hi)


# ----------------------------------------------------------------------------- latent patches

def latent_boxes(boxes: torch.Tensor, factor: int = VAE_FACTOR) -> torch.Tensor:
    """Pixel boxes (x0, y0, x1, y1) -> latent-pixel boxes: the paper's "downsampling with a
    factor of eight", in ``roi_align``'s pixel-centre coordinates: image pixel x sits at latent
    coordinate (x + 0.5) / 8 - 0.5 (latent pixel j covers image pixels 8j..8j+7, centre 8j + 3.5)."""
    return (boxes + 0.5) / factor - 0.5


def latent_discriminator(in_channels: int = 4, channels: int = 32, stages: int = 2) -> Discriminator:
    """``training.losses.adversarial.Discriminator`` (spectral norm, logits + the feature maps of
    every stage) with its first convolution taking `in_channels` latent channels instead of RGB."""
    d = Discriminator(channels, stages)
    d.stages[0][0] = nn.utils.spectral_norm(nn.Conv2d(in_channels, channels, 4, 2, 1))
    return d


class LatentFacialLoss(nn.Module):
    """Eq. 4, the time-aware latent facial feature loss, and its discriminators:

        L_facial = sum_{P in {P_eye, P_mouth}} w(t) * (lambda_d * E[-log D_P(p_pred)]
                                                     + lambda_s * |Gram(psi(p_pred)) - Gram(psi(p))|)

    - patches: ``roi_align`` on the latents at ``latent_boxes(boxes)`` (left eye, right eye, mouth
      boxes of the GT face), eyes `eye_size` x `eye_size`, mouth `mouth_size` x `mouth_size`
      latent pixels; p from z0 (the HQ latent), p_pred from z0_pred (eq. 2).
    - two discriminators as the paper names them, D_eyes (shared by both eye patches, averaged:
      E over P_eye) and D_mouth, on the 4-channel patches (``latent_discriminator``).
    - the adversarial term is the NON-SATURATING form -log D(p_pred) (``g_loss``, softplus(-logit))
      rather than eq. 4's literal log(1 - D(p_pred)), which saturates when D wins (standard
      practice, as GFPGAN does); the style term is the L1 distance of Gram matrices (eq. 4's
      |.|, as GFPGAN's component style loss) summed over the discriminator's scales, with psi(p)
      of the real patch taken without gradient.
    - w(t) is eq. 3 at each sample's normalized timestep, applied per sample before the batch mean.
    - defaults lambda_d = 1, lambda_s = 200: the paper gives no values; these are GFPGAN's facial
      component weights (adversarial 1, style 200), the loss the paper says it is inspired by.
    - scale, a caution: z0_pred amplifies the noise-prediction error by 1/sqrt(abar_t) (~15x at
      t = 999) and the Gram term grows with the square of the patch scale. Eq. 3 weights t -> 1
      down to zero, but around t = 0.8-0.9 (weight 0.4-0.1) L_facial can dwarf L_noise, the more
      so for latents of small scale (the random ``tiny`` VAE's have std ~0.03, and a step there
      logged L_facial ~6e4). The trainers clip the trained module's gradient norm (1.0).
    """

    def __init__(self, latent_channels: int = 4, lambda_d: float = 1.0, lambda_s: float = 200.0, m: float = -0.5,
                 s: float = 1.0, eye_size: int = 12, mouth_size: int = 16, channels: int = 32, stages: int = 2,
                 factor: int = VAE_FACTOR) -> None:
        super().__init__()
        self.lambda_d, self.lambda_s, self.m, self.s, self.factor = lambda_d, lambda_s, m, s, factor
        self.sizes = {"left_eye": eye_size, "right_eye": eye_size, "mouth": mouth_size}
        self.nets = nn.ModuleDict({"eyes": latent_discriminator(latent_channels, channels, stages),
                                   "mouth": latent_discriminator(latent_channels, channels, stages)})

    @property
    def enabled(self) -> bool:
        return self.lambda_d != 0 or self.lambda_s != 0

    def patches(self, latents: torch.Tensor, boxes: torch.Tensor) -> dict[str, torch.Tensor]:
        """Latent patches {left_eye, right_eye, mouth} of latents [B, C, h, w] at the GT pixel
        boxes [B, 3, 4] (image coordinates; mapped to the latent with ``latent_boxes``)."""
        lb = latent_boxes(boxes.to(latents.dtype), self.factor)
        return {r: roi_align(latents, lb[:, i], self.sizes[r]) for i, r in enumerate(REGIONS)}

    def _groups(self, patches: dict[str, torch.Tensor]) -> dict[str, list[torch.Tensor]]:
        return {"eyes": [patches["left_eye"], patches["right_eye"]], "mouth": [patches["mouth"]]}

    def generator_loss(self, z0_pred: torch.Tensor, z0: torch.Tensor, boxes: torch.Tensor,
                       t_norm: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(L_facial, {"facial_adv", "facial_style"} - each already weighted by lambda and w(t)).
        Gradients reach z0_pred only: the discriminators' parameters are not trained by this loss
        (their requires_grad is switched off for the call) and run in eval mode, so their
        spectral-norm estimates only advance in ``discriminator_loss``."""
        zero = z0_pred.new_zeros((), dtype=torch.float32)
        if not self.enabled:
            return zero, {"facial_adv": zero, "facial_style": zero}
        w = time_weight(t_norm.float().to(z0_pred.device), self.m, self.s)          # [B]
        fake, real = self._groups(self.patches(z0_pred.float(), boxes)), self._groups(self.patches(z0.float(), boxes))
        adv = torch.zeros_like(w)
        style = torch.zeros_like(w)
        flags, training = [p.requires_grad for p in self.nets.parameters()], self.nets.training
        self.nets.requires_grad_(False).eval()   # eval: no spectral-norm power iteration in the generator's pass
        try:
            for name, net in self.nets.items():
                for p_fake, p_real in zip(fake[name], real[name]):
                    k = 1.0 / len(fake[name])                                         # E over the patches of P
                    logits, f_fake = net(p_fake)
                    if self.lambda_d:
                        adv = adv + k * torch.nn.functional.softplus(-logits).flatten(1).mean(1)
                    if self.lambda_s:
                        with torch.no_grad():
                            _, f_real = net(p_real)
                        style = style + k * sum((gram(a) - gram(b)).abs().flatten(1).mean(1) for a, b in zip(f_fake, f_real))
        finally:
            for p, f in zip(self.nets.parameters(), flags):
                p.requires_grad_(f)
            self.nets.train(training)
        adv = (w * self.lambda_d * adv).mean()
        style = (w * self.lambda_s * style).mean()
        return adv + style, {"facial_adv": adv, "facial_style": style}

    def discriminator_loss(self, z0_pred: torch.Tensor, z0: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        """-log D(p) - log(1 - D(p_pred)) summed over D_eyes and D_mouth (each averaged over its
        patches): z0 patches are real, z0_pred patches (detached) fake. Not time-weighted."""
        fake = self._groups(self.patches(z0_pred.detach().float(), boxes))
        real = self._groups(self.patches(z0.detach().float(), boxes))
        loss = z0.new_zeros((), dtype=torch.float32)
        for name, net in self.nets.items():
            for p_fake, p_real in zip(fake[name], real[name]):
                loss = loss + d_loss(net(p_real)[0], net(p_fake)[0]) / len(fake[name])
        return loss
