"""The prepared GPU check (`make gpu-check`, `python -m benchmarks.gpu_check`): what the first
GPU we get must tell us, in one run of under 8 minutes on a bare CUDA machine with torch (and the
project's Python dependencies) but no network and no TensorRT, carrying nothing beyond the
repository. Each part is saved as soon as it is measured (a run cut short keeps what it has),
into OUT/<device>/gpu_check.json and .md:

1. parity: every network in half precision against fp32 on the same device, on its real
   sample inputs (face networks and the shipped demo SaFM with their weights; AuthFace's three at
   the real SDXL size with random weights): max |err| / max |fp32 output|, and the tolerance a
   TensorRT fp16 engine of it needs (export/verify.py ENGINE_TOLERANCE is a guess until then).
2. safm: the shipped SaFM at batch 1 and 8, eager fp32, eager fp16, fp16 replayed from a CUDA graph.
3. authface: the in-process restorer (runtime/restorers/authface, device-resident loop) at
   the SDXL size, batch 1: the UNet+ControlNet eager, replayed from CUDA graphs, and through
   torch.compile (last, and only while the time budget allows: compiling takes minutes).

--tiny runs the same code small (safm-tiny and AuthFace's tiny config with random weights, 2
steps, batch 1) on any device;
on a CPU the half precision is bf16 and there are no CUDA graphs: tests/test_gpu_paths.py runs
it so that this script keeps working between GPU sessions.
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

BUDGET_S = 420.0   # the check's own time budget: under the 8 minutes a lent GPU gives, start-up included


@dataclass(frozen=True)
class CheckSize:
    """How big the check runs."""

    authface_config: str          # 'sdxl' (the real architecture) or 'tiny'
    safm_config: str | None       # None: the shipped demo weights; else that config, seeded random init
    steps: int                    # denoising steps of the AuthFace loop
    parity_batches: tuple[int, ...]
    safm_batches: tuple[int, ...]
    repeats: int
    max_seconds: float            # timing budget per path and batch


FULL = CheckSize("sdxl", None, 20, (1, 4), (1, 8), 10, 3.0)
TINY = CheckSize("tiny", "safm-tiny", 2, (1,), (1,), 2, 0.5)


def half_dtype(device: str) -> torch.dtype:
    """The half precision TensorRT will use (fp16) on CUDA; bf16 on a CPU (no fp16 kernels there)."""
    return torch.float16 if device == "cuda" else torch.bfloat16


def precision_name(dtype: torch.dtype) -> str:
    return {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}[dtype]


def needed_tolerance(max_rel: float) -> float:
    """The tolerance to give an engine whose error was `max_rel` here: twice it, rounded up to
    1, 2 or 5 times a power of ten (one margin for other inputs, the rest for the series)."""
    if not math.isfinite(max_rel):
        return math.inf
    target = 2 * max(max_rel, 1e-7)
    decade = 10 ** math.floor(math.log10(target))
    return next(round(m * decade, 12) for m in (1, 2, 5, 10) if m * decade >= target)


def parity_rows(name: str, module: torch.nn.Module, device: str, batches: tuple[int, ...]) -> list[dict]:
    """`module` (the `name` network) in half precision against fp32 on `device`; converts the
    module to half in place (no second copy of a 3.8 B-parameter network)."""
    from export.networks import NETWORKS
    from runtime.sessions import TorchSession

    network, half = NETWORKS[name], half_dtype(device)
    feeds = [network.sample_inputs(b) for b in batches]
    reference = TorchSession(module, network.contract, device, torch.float32, channels_last=True)
    refs = [reference(*feed) for feed in feeds]
    session = TorchSession(module, network.contract, device, half, channels_last=True)
    rows = []
    for batch, feed, ref in zip(batches, feeds, refs):
        for out_name, want, got in zip(network.contract.output_names, ref, session(*feed)):
            finite = bool(np.isfinite(got).all())
            err = float(np.abs(got - want).max()) if finite else math.inf
            rel = err / max(float(np.abs(want).max()), 1e-12)
            rows.append({"network": name, "output": out_name, "batch": batch, "precision": precision_name(half),
                         "max_abs": err, "max_rel": rel, "finite": finite, "needed_tolerance": needed_tolerance(rel),
                         "contract_precision": network.contract.precision})
    return rows


def parity_table(rows: list[dict]) -> str:
    lines = ["| network | output | batch | half | max abs err | max rel err | finite | tolerance needed | "
             "built as |", "|---|---|---:|---|---:|---:|---|---:|---|"]
    lines += [f"| {r['network']} | {r['output']} | {r['batch']} | {r['precision']} | {r['max_abs']:.2e} | "
              f"{r['max_rel']:.2e} | {'yes' if r['finite'] else 'NO'} | {r['needed_tolerance']:g} | "
              f"{r['contract_precision']} |" for r in rows]
    return "\n".join(lines)


class GpuCheck:
    """One run of the check: its parts, the results so far, and where they are saved."""

    def __init__(self, out: Path, size: CheckSize, budget_s: float = BUDGET_S) -> None:
        from benchmarks.timing import device_name, device_slug

        self.size, self.budget_s, self.start = size, budget_s, time.monotonic()
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.folder = Path(out) / device_slug()
        self.result: dict = {"device": device_name(), "torch": torch.__version__, "cuda": torch.version.cuda,
                             "size": size.__dict__, "notes": [], "parity": [], "safm": [], "authface": []}
        self._authface = None

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def note(self, text: str) -> None:
        print(f"gpu-check: {text}", file=sys.stderr)
        self.result["notes"].append(text)

    def save(self) -> None:
        from benchmarks.report import save

        self.result["elapsed_s"] = round(self.elapsed(), 1)
        save(self.folder, "gpu_check", self.result, self.markdown())

    def markdown(self) -> str:
        r = self.result
        parts = [f"GPU check (`make gpu-check`, benchmarks/gpu_check.py) on {r['device']}, torch {r['torch']} "
                 f"(CUDA {r['cuda']}), {r['size']['authface_config']} AuthFace, {r['elapsed_s']} s", ""]
        if r["parity"]:
            parts += ["Half precision against fp32 on this device (real sample inputs; the tolerance a TensorRT "
                      "engine of that precision needs is twice the error, rounded up)", "",
                      parity_table(r["parity"]), ""]
        for key, title in (("safm", "SaFM"), ("authface", "AuthFace in-process restorer (device-resident loop)")):
            if r[key]:
                parts += [title, "", "| model | path | batch | runs | median ms | p90 ms | ms/face | speed-up vs eager |",
                          "|---|---|---:|---:|---:|---:|---:|---:|"]
                parts += [f"| {x['model']} | {x['path']} | {x['batch']} | {x['runs']} | {x['median_ms']} | "
                          f"{x['p90_ms']} | {x['ms_per_face']} | {x['speedup_vs_eager']}x |" for x in r[key]]
                parts.append("")
        parts += [f"- {n}" for n in r["notes"]]
        return "\n".join(parts) + "\n"

    def safm_module(self) -> torch.nn.Module:
        """The SaFM network of the check's size: the shipped demo weights, or a seeded random init."""
        if self.size.safm_config is None:
            from export.networks import NETWORKS

            return NETWORKS["safm"].build_module(None)
        from training.safm.checkpoint import random_init

        return random_init(self.size.safm_config)

    def authface_checkpoint(self):
        """The random AuthFace checkpoint of the check's size, made once on the device."""
        if self._authface is None:
            from training.authface import make_random_checkpoint

            with torch.device(self.device):
                self._authface = make_random_checkpoint(self.size.authface_config)
        return self._authface

    def run_parity(self) -> None:
        from export.networks import NETWORKS

        for name in ("face_detector", "face_mesh"):
            self.result["parity"] += parity_rows(name, NETWORKS[name].build_module(None), self.device,
                                                 self.size.parity_batches)
        self.result["parity"] += parity_rows("safm", self.safm_module(), self.device, self.size.parity_batches)
        ckpt = self.authface_checkpoint()
        for name in ("vae_encoder", "unet_controlnet", "vae_decoder"):
            module = getattr(ckpt, name)()
            self.result["parity"] += parity_rows(name, module, self.device, self.size.parity_batches)
            module.float()   # the checkpoint's weights back to fp32 for the parts after this one
        print(parity_table(self.result["parity"]))

    def run_safm(self) -> None:
        from benchmarks.restorers import measure, network_cost, sample_tensors
        from benchmarks.timing import matmul_rate_gflops
        from export.networks import NETWORKS
        from runtime.sessions import CudaGraphSession, TorchSession

        safm, half = NETWORKS["safm"], half_dtype(self.device)

        def path(dtype: torch.dtype, graph: bool = False):
            def make():
                session = TorchSession(self.safm_module(), safm.contract, self.device, dtype, channels_last=True)
                return CudaGraphSession(session) if graph else session
            return make

        paths = {"torch eager fp32": path(torch.float32), f"torch eager {precision_name(half)}": path(half)}
        if self.device == "cuda":
            paths["torch fp16 + cuda graph"] = path(half, graph=True)
        gflop, params = network_cost(self.safm_module(), sample_tensors(safm))
        self.result["safm"] = measure(self.size.safm_config or "safm-demo", paths, safm.sample_inputs, self.size.safm_batches, self.size.repeats,
                                      self.size.max_seconds, gflop, params, matmul_rate_gflops())

    def _restorer(self, mode: str):
        """The AuthFace restorer of the check's checkpoint on this device: VAE fp32, the
        UNet+ControlNet in half precision run `mode`-wise (runtime.sessions.torch_mode)."""
        from runtime.restorers import CONTRACTS
        from runtime.restorers.authface import AUTHFACE_RESTORER
        from runtime.restorers.authface.pipeline import AuthFaceRestorer
        from runtime.restorers.authface.restorer import scheduler_config
        from runtime.sessions import TorchSession, torch_mode

        ckpt = self.authface_checkpoint()
        encoder = TorchSession(ckpt.vae_encoder(), CONTRACTS["vae_encoder"], self.device, torch.float32, True)
        decoder = TorchSession(ckpt.vae_decoder(), CONTRACTS["vae_decoder"], self.device, torch.float32, True)
        unet = TorchSession(ckpt.unet_controlnet(), CONTRACTS["unet_controlnet"], self.device,
                            half_dtype(self.device), True)
        return AUTHFACE_RESTORER.configure(AuthFaceRestorer(encoder, torch_mode(unet, mode), decoder, scheduler_config(None),
                                                            progress=False, device=self.device), steps=self.size.steps)

    def run_authface(self, compile_: bool) -> None:
        """The whole restoration at batch 1: eager and (CUDA) graph-replayed timed together, then
        torch.compile alone when `compile_` and the budget allows; speed-ups against eager."""
        from benchmarks.restorers import measure
        from export.networks.authface import real_faces

        model = f"authface-{self.size.authface_config} whole ({self.size.steps} steps)"
        modes = {"torch eager": "eager"}
        if self.device == "cuda":
            modes["torch + cuda graph"] = "cuda-graph"
        timing = dict(inputs_for=lambda b: (real_faces(b),), batches=(1,), repeats=self.size.repeats,
                      max_seconds=self.size.max_seconds, gflop=0.0, params_m=0.0, peak_gflops=1.0)
        rows = measure(model, {p: (lambda m=m: self._restorer(m).restore) for p, m in modes.items()}, **timing)
        if compile_:
            rows += measure(model, {"torch.compile": lambda: self._restorer("compile").restore}, **timing)
        eager = next(r["median_ms"] for r in rows if r["path"] == "torch eager")
        for r in rows:
            r["speedup_vs_eager"] = round(eager / r["median_ms"], 2)
            r["ms_per_step"] = round(r["median_ms"] / self.size.steps, 1)
        self.result["authface"] = rows

    def run(self, compile_: bool = True) -> Path:
        """Every part in turn, each saved when done; a part that cannot run here is noted, not fatal."""
        for part, run in (("parity", self.run_parity), ("safm", self.run_safm),
                          ("authface", lambda: self.run_authface(compile_ and self._compile_fits()))):
            t0 = time.monotonic()
            try:
                run()
                self.note(f"{part}: {time.monotonic() - t0:.0f} s")
            except (ImportError, RuntimeError, ValueError) as exc:   # a missing module, out of memory, ...
                self.note(f"{part} not measured: {type(exc).__name__}: {' '.join(str(exc).split())[:300]}")
            if self.device == "cuda":
                torch.cuda.empty_cache()
            self.save()
        return self.folder

    def _compile_fits(self) -> bool:
        """torch.compile of the UNet+ControlNet takes minutes: only with half the budget left."""
        fits = self.elapsed() < self.budget_s / 2
        if not fits:
            self.note(f"torch.compile skipped: {self.elapsed():.0f} s of the {self.budget_s:.0f} s budget used")
        return fits


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu_check", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"),
                        help="results go to OUT/<device>/gpu_check.{json,md} (default: %(default)s)")
    parser.add_argument("--tiny", action="store_true", help="the small check (any device; what the tests run)")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile row")
    parser.add_argument("--budget", type=float, default=BUDGET_S, help="seconds (default: %(default)s)")
    args = parser.parse_args(argv)
    if not args.tiny and not torch.cuda.is_available():
        print("error: no CUDA device here; the full check needs a GPU (--tiny runs anywhere)", file=sys.stderr)
        return 2
    folder = GpuCheck(args.out, TINY if args.tiny else FULL, args.budget).run(compile_=not args.no_compile)
    print(f"results in {folder}/gpu_check.md", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
