"""The GPU memory of AuthFace stage I (the whole SDXL UNet fine-tuned at 1024 x 1024, the AuthFace
paper section 4.1) per training configuration, COMPUTED, not measured (no GPU here): the UNet
built on the meta device (no weights allocated), one forward + loss run on meta tensors under
`saved_tensors_hooks` to add up what autograd keeps for the backward (per sample, each saved
tensor once; the weights themselves left out: they are counted once as the weights), and the
per-parameter bytes of weights, gradients and optimizer states:

- weights fp32 4 B, gradients fp32 4 B; bf16 autocast also keeps the bf16 copy of every
  matmul/conv weight for the backward (2 B); its activations are those of the UNet run in bf16
  (autocast runs group norms and softmax in fp32, so a little more in truth);
- AdamW (torch, also `fused=True`): exp_avg + exp_avg_sq fp32, 8 B; 8-bit AdamW
  (bitsandbytes `AdamW8bit`, block-wise quantized states): 2 B + 2 x 4 B per 2048-element block;
- attention: the saved attention probabilities of the math kernel (what SDPA runs on meta and
  CPU) are left out, as CUDA's flash / memory-efficient kernels recompute them;
- gradient checkpointing (diffusers checkpoints every ResnetBlock2D and Transformer2DModel): the
  units' inputs stay, plus the largest unit's saved tensors while it is recomputed.

Not counted: the CUDA context and allocator fragmentation (add about 10 %), the frozen VAE
encoder (fp32, 34 M parameters, no grad) and the text encoders (not on the GPU in our trainer:
captions are encoded once per batch; SDXL's two CLIPs in bf16 are 1.6 GB if they are).

    python -m benchmarks.training_memory [--resolution 1024] --out benchmarks/results/computed
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from benchmarks.report import save

GB = 1e9
GPU_GB = 80.0


def activations(resolution: int, dtype: torch.dtype) -> tuple[int, int, int]:
    """(parameters, bytes saved for the backward per sample without and with gradient
    checkpointing) of the SDXL UNet's noise-prediction loss at `resolution`, on the meta device.
    With checkpointing (diffusers checkpoints every ResnetBlock2D and Transformer2DModel) what
    stays is what those units do not save, their inputs, and the largest unit's saved tensors
    while it is recomputed in the backward."""
    from diffusers import UNet2DConditionModel
    from diffusers.models.resnet import ResnetBlock2D
    from diffusers.models.transformers.transformer_2d import Transformer2DModel

    from training.authface.configs import get_config

    cfg = get_config("sdxl")
    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config(cfg.unet).to(dtype).train()
    side = resolution // 8
    tokens = {side * side // 4, side * side // 16}   # the attention levels' sequence lengths
    params = {id(p) for p in unet.parameters()}
    units = [m for m in unet.modules() if isinstance(m, (ResnetBlock2D, Transformer2DModel))]
    stack: list[int] = []
    saved: dict[int, tuple[torch.Tensor, int | None]] = {}   # tensor id -> (tensor, unit that saved it)
    inputs: dict[int, torch.Tensor] = {}

    def enter(module, args):
        stack.append(id(module))
        inputs.update({id(a): a for a in args[:1] if torch.is_tensor(a)})

    def leave(module, args, out):
        stack.pop()

    hooks = [h for u in units for h in (u.register_forward_pre_hook(enter), u.register_forward_hook(leave))]

    def pack(t: torch.Tensor):
        base = t._base if t._base is not None else t
        attention_probs = t.dim() >= 2 and t.shape[-1] == t.shape[-2] and t.shape[-1] in tokens
        if id(base) not in params and not attention_probs and id(base) not in saved:
            saved[id(base)] = (base, stack[0] if stack else None)
        return t

    z = torch.randn(1, 4, side, side, device="meta", dtype=dtype)
    prompt = torch.randn(1, cfg.prompt_tokens, cfg.unet["cross_attention_dim"], device="meta", dtype=dtype)
    added = {"text_embeds": torch.randn(1, cfg.pooled_dim, device="meta", dtype=dtype),
             "time_ids": torch.randn(1, 6, device="meta", dtype=dtype)}
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        eps = unet(z, torch.tensor([500], device="meta"), encoder_hidden_states=prompt, added_cond_kwargs=added,
                   return_dict=False)[0]
        F.mse_loss(eps.float(), z.float())
    for h in hooks:
        h.remove()
    size = lambda t: t.numel() * t.element_size()  # noqa: E731
    full = sum(size(t) for t, _ in saved.values())
    per_unit: dict[int, int] = {}
    for t, unit in saved.values():
        if unit is not None:
            per_unit[unit] = per_unit.get(unit, 0) + size(t)
    outside = sum(size(t) for t, unit in saved.values() if unit is None)
    checkpointed = outside + sum(size(t) for t in inputs.values()) + max(per_unit.values())
    return sum(p.numel() for p in unet.parameters()), full, checkpointed


OPTIMIZERS = {"AdamW fp32 states (torch; fused=True the same)": 8.0,
              "8-bit AdamW (bitsandbytes AdamW8bit)": 2.0 + 8.0 / 2048}


def measure(resolution: int) -> dict:
    rows = []
    for precision, dtype in (("fp32", torch.float32), ("bf16 autocast", torch.bfloat16)):
        n, full, checkpointed = activations(resolution, dtype)
        for ckpt, act in ((False, full), (True, checkpointed)):
            for opt, state_bytes in OPTIMIZERS.items():
                static = n * (4 + 4 + state_bytes + (2 if dtype == torch.bfloat16 else 0))
                fits = int((GPU_GB * GB / 1.1 - static) // act) if static < GPU_GB * GB / 1.1 else 0
                rows.append({"precision": precision, "gradient_checkpointing": ckpt, "optimizer": opt,
                             "parameters": n, "static_gb": round(static / GB, 1),
                             "activations_gb_per_sample": round(act / GB, 2),
                             "peak_gb_batch_1": round((static + act) / GB, 1),
                             "max_batch_on_80gb": fits})
    return {"title": f"AuthFace stage I: SDXL UNet fine-tuned at {resolution}x{resolution}, peak GPU memory COMPUTED "
                     "(meta-device forward, no GPU)", "resolution": resolution, "gpu_gb": GPU_GB,
            "margin": "max batch leaves 10 % for the CUDA context and fragmentation", "torch": torch.__version__,
            "rows": rows}


def table(result: dict) -> str:
    lines = [f"{result['title']}; torch {result['torch']}; {result['margin']}", "",
             "| precision | gradient checkpointing | optimizer | static GB (weights + grads + states) | "
             "activations GB/sample | peak GB at batch 1 | max batch on 80 GB |",
             "|---|---|---|---:|---:|---:|---:|"]
    lines += [f"| {r['precision']} | {'yes' if r['gradient_checkpointing'] else 'no'} | {r['optimizer']} | "
              f"{r['static_gb']} | {r['activations_gb_per_sample']} | {r['peak_gb_batch_1']} | {r['max_batch_on_80gb']} |"
              for r in result["rows"]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.training_memory", description=__doc__.split("\n")[0])
    parser.add_argument("--resolution", type=int, default=1024)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    result = measure(args.resolution)
    result["command"] = "python -m benchmarks.training_memory " + " ".join(sys.argv[1:] if argv is None else argv)
    save(args.out, "training_memory", result, table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
