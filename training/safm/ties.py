"""Near-ties of the nearest-code lookup, for judging two fp32 implementations of SaFM.

Z_q = nearest code of each latent vector is discontinuous: where the two nearest codes are
almost equally far, the rounding differences of two correct fp32 backends (other kernels,
another reduction order, AMX vs AVX-512) can pick different codes, and the output then differs
by far more than fp32 error. Parity is only defined away from ties, so a comparison must (a)
find the positions whose choice fp32 error can flip and (b) accept either choice there.

A position is a near-tie when the gap between its two smallest squared distances is within
what a relative error `rel` of the latent z can move it: |d_j - d_i| changes by at most
2 |e| |c_i - c_j| for a perturbation e of z, with |e| <= rel |z|.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch

from training.safm.model import SaFMRestorer


@torch.no_grad()
def near_ties(model: SaFMRestorer, image: torch.Tensor, rel: float) -> tuple[torch.Tensor, list[tuple[int, int, int, int]]]:
    """The codes torch picks ([B, H, W]) and the near-ties as (item, y, x, runner-up code)."""
    z, _ = model.encoder(image)
    b, c, h, w = z.shape
    flat = z.permute(0, 2, 3, 1).reshape(-1, c).double()
    codes = model.quantize.embedding.weight.double()
    dist = torch.cdist(flat, codes) ** 2
    two = dist.topk(2, dim=1, largest=False)
    gap = two.values[:, 1] - two.values[:, 0]
    reach = 2 * rel * flat.norm(dim=1) * (codes[two.indices[:, 0]] - codes[two.indices[:, 1]]).norm(dim=1)
    ties = []
    for n in torch.nonzero(gap <= reach).flatten().tolist():
        item, rest = divmod(n, h * w)
        ties.append((item, *divmod(rest, w), int(two.indices[n, 1])))
    return two.indices[:, 0].reshape(b, h, w), ties


@contextmanager
def forced_codes(model: SaFMRestorer, codes: torch.Tensor) -> Iterator[None]:
    """Within the block, the model's lookup returns `codes` ([B, H, W]) instead of searching."""
    model.quantize.indices = lambda z: codes
    try:
        yield
    finally:
        del model.quantize.indices


def resolve_ties(model: SaFMRestorer, inputs: tuple[torch.Tensor, ...], target: torch.Tensor, codes: torch.Tensor,
                 ties: list[tuple[int, int, int]], tol: float) -> tuple[float, torch.Tensor]:
    """Torch on one face (`inputs` of batch 1) matched to another backend's output `target`:
    starting from torch's `codes` [H, W], each near-tie (y, x, runner-up) is switched where that
    brings torch closer, until within `tol`. Returns (max error relative to the output's scale,
    the codes used)."""

    def error(trial: torch.Tensor) -> float:
        with forced_codes(model, trial[None]), torch.no_grad():
            ref = model(*inputs)[0]
        return float((ref - target).abs().max() / ref.abs().max())

    best, err = codes.clone(), error(codes)
    for y, x, other in ties:
        if err <= tol:
            break
        trial = best.clone()
        trial[y, x] = other
        if (trial_err := error(trial)) < err:
            best, err = trial, trial_err
    return err, best
