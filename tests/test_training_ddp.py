"""Both trainers under `torchrun` (2 CPU processes, gloo) on a real face cache: 2 ranks x batch b
give the weights 1 rank x batch 2b gives (SaFM with its discriminators; AuthFace stage II), with
gradient accumulation too (SaFM; AuthFace stage I); the sample stream's sharding; the EMA against
its closed form; a rank killed mid-run ends the job non-zero and the last saved state resumes
(under another world size) to the weights of an uninterrupted run.

Tolerance (fp32, `--no-amp`), derived from the step: 2 ranks sum a batch's gradient in another
order (two half-batch sums, then the all-reduce) than 1 rank does, a relative difference of about
sqrt(N) x 2^-24 (3e-5 for the 2.6e5 terms of a full-face convolution's weight gradient). Adam
divides each element by its own magnitude, so an element's update moves by that relative amount,
except where the gradient itself is below the rounding (nearly cancels): there the update can flip
sign, up to 2 lr a step. So: every weight within 2 x steps x lr of the reference, and at most
1e-4 of the weights off by more than lr / 10 (measured between two 1-rank runs that differ only in
their thread count: 5e-6). Attention key biases are left out: their true gradient is zero (a
softmax does not change when one constant is added to all of a query's logits), so Adam turns
their rounding noise into +-lr steps in any two runs. Samples on the wrong rank (the same face
twice, another degradation) put most weights off by more than lr / 10."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from facerestore.cli import main as cli
from runtime.samples import ASTRONAUT, GRACE_HOPPER
from training.authface.checkpoint import make_random_checkpoint
from training.data.stream import SampleStream, sample_generator
from training.ema import ema_copy, update_ema

ROOT = Path(__file__).resolve().parents[1]
OFF, SHARE = 0.1, 1e-4   # at most SHARE of the weights more than OFF x lr off; see the module docstring
LR, THREADS = 1e-3, 1    # in-process runs on one thread, as each torchrun worker (OMP_NUM_THREADS=1)
SAFM = ["--config", "safm-tiny", "--lr", str(LR), "--no-perceptual", "--no-identity", "--no-amp", "--log-every", "1"]
AUTHFACE = ["--resolution", "128", "--lr", str(LR), "--no-amp", "--log-every", "1"]


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A face cache made by `facerestore curate` from two real photos (two faces)."""
    src = tmp_path_factory.mktemp("photos")
    for p in (ASTRONAUT, GRACE_HOPPER):
        shutil.copy(p, src / p.name)
    (src / "grace_hopper.txt").write_text("portrait, woman, uniform, glasses")
    out = tmp_path_factory.mktemp("cache")
    assert cli(["curate", str(src), "--out", str(out), "--min-face", "60", "--min-sharpness", "5"]) == 0
    return out


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_random_checkpoint("tiny", seed=0).save(tmp_path_factory.mktemp("ckpt") / "tiny")


def torchrun(module: str, args: list[str], ranks: int = 2, **popen) -> subprocess.Popen:
    """`torchrun --standalone --nproc-per-node N -m module args` from the repository root."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={ranks}",
           "--monitor-interval=0.2", "-m", module, *args]
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen)


def finished(proc: subprocess.Popen, timeout: float = 600) -> str:
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out[-3000:]
    return out


def state(folder: Path, prefix: str) -> dict[str, torch.Tensor]:
    """The weights of one model of a train state (train_state/train_state.safetensors)."""
    tensors = load_file(str(folder / "train_state" / "train_state.safetensors"))
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}


def assert_same_training(a: dict, b: dict, start: dict, steps: int) -> None:
    """The updates a - start and b - start agree within the tolerance of the module docstring."""
    keys = [k for k in b if b[k].is_floating_point() and not k.endswith((".k.bias", "to_k.bias"))]
    diff = torch.cat([(a[k] - b[k]).reshape(-1) for k in keys]).abs()
    moved = torch.cat([(b[k] - start[k]).reshape(-1) for k in keys]).abs()
    assert float(moved.max()) > LR / 2, "the weights did not move"
    off = float((diff > OFF * LR).double().mean())
    assert float(diff.max()) <= 2 * steps * LR * 1.001 and off <= SHARE, (float(diff.max()), off)


def test_the_stream_shares_every_epoch_out_without_repeats():
    for size, batch, world in ((7, 2, 2), (5, 1, 3), (2, 1, 2), (9, 4, 1)):
        per_rank = [SampleStream(size, 3, batch, r, world).batches(0) for r in range(world)]
        seen: dict[int, list[int]] = {}
        for _ in range(10):
            shards = [next(b) for b in per_rank]
            assert all(len(s) == batch for s in shards)
            for shard in shards:
                for epoch, index in shard:
                    seen.setdefault(epoch, []).append(index)
        complete = [e for e in seen if e < max(seen)]
        assert complete and all(sorted(seen[e]) == list(range(size)) for e in complete), seen   # each once an epoch
        assert seen[0] != seen[1] or size < 3   # reshuffled every epoch
        # one rank with the global batch sees what the ranks see together; a resume continues the stream
        one = SampleStream(size, 3, batch * world).batches(0)
        again = [SampleStream(size, 3, batch, r, world).batches(0) for r in range(world)]
        assert next(one) == [pair for b in again for pair in next(b)]
        assert next(SampleStream(size, 3, batch * world).batches(batch * world)) == next(one)
    g1, g2 = sample_generator(0, 1, 2), sample_generator(0, 1, 2)
    assert torch.equal(torch.rand(3, generator=g1), torch.rand(3, generator=g2))
    assert not torch.equal(torch.rand(3, generator=sample_generator(0, 1, 2)),
                           torch.rand(3, generator=sample_generator(0, 2, 1)))


def test_ema_after_n_steps_is_the_closed_form():
    """ema_n = d^n p_0 + (1 - d) sum_k d^(n-k) p_k on a toy parameter moved by known steps."""
    toy = torch.nn.Linear(3, 1)
    decay, values = 0.9, [torch.randn(1, 3, generator=torch.Generator().manual_seed(k)) for k in range(6)]
    with torch.no_grad():
        toy.weight.copy_(values[0])
    ema = ema_copy(toy)
    for v in values[1:]:
        with torch.no_grad():
            toy.weight.copy_(v)
        update_ema(ema, toy, decay)
    n = len(values) - 1
    closed = decay ** n * values[0].double() + (1 - decay) * sum(decay ** (n - k) * values[k].double()
                                                                   for k in range(1, n + 1))
    assert torch.allclose(ema.weight.double(), closed, rtol=0, atol=1e-6), (ema.weight, closed)
    assert torch.equal(ema.bias, toy.bias) and not ema.weight.requires_grad


@pytest.mark.parametrize("accum", [1, 2])
def test_safm_two_ranks_give_the_weights_of_one_rank_with_the_global_batch(cache, tmp_path, accum):
    """accum 1 with the discriminators (their gradients averaged too); accum 2 without them (the
    discriminators step on the last micro-batch only, which differs between the two runs)."""
    from training.safm.__main__ import main as safm_main
    from training.safm.checkpoint import random_init

    extra = ["--steps", "3", "--grad-accum", str(accum), "--data", str(cache)] + ([] if accum == 1 else ["--no-adversarial"])
    out = finished(torchrun("training.safm", ["train", *SAFM, *extra, "--batch-size", "1", "--out", str(tmp_path / "two")]))
    assert f"2 rank(s) x batch 1 x {accum} accumulation = global batch {2 * accum}" in out
    assert safm_main(["train", *SAFM, *extra, "--batch-size", "2", "--out", str(tmp_path / "one")]) == 0
    init = random_init("safm-tiny", 0).state_dict()
    assert_same_training(state(tmp_path / "two", "model.g."), state(tmp_path / "one", "model.g."), init, 3)
    meta = json.loads((tmp_path / "two" / "safm.json").read_text())
    assert meta["ranks"] == 2 and meta["global_batch"] == 2 * accum
    rows = (tmp_path / "two" / "losses.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["1", "2", "3"]   # one log, rank 0's


def test_authface_stage2_two_ranks_give_the_weights_of_one_rank(cache, tiny, tmp_path):
    from training.authface.__main__ import main as authface_main

    args = ["train-stage2", "--checkpoint", str(tiny), "--data", str(cache), *AUTHFACE, "--steps", "3"]
    finished(torchrun("training.authface", [*args, "--batch-size", "1", "--out", str(tmp_path / "two")]))
    assert authface_main([*args, "--batch-size", "2", "--out", str(tmp_path / "one")]) == 0
    init = make_random_checkpoint("tiny", seed=0).controlnet.state_dict()
    assert_same_training(state(tmp_path / "two", "model.controlnet."), state(tmp_path / "one", "model.controlnet."),
                         init, 3)


def test_authface_stage1_accumulation_on_two_ranks_gives_the_global_batch(cache, tiny, tmp_path):
    from training.authface.__main__ import main as authface_main

    args = ["train-stage1", "--checkpoint", str(tiny), "--data", str(cache), *AUTHFACE, "--steps", "2",
            "--caption-dropout", "0.5"]
    finished(torchrun("training.authface", [*args, "--batch-size", "1", "--grad-accum", "2", "--out", str(tmp_path / "two")]))
    assert authface_main([*args, "--batch-size", "4", "--out", str(tmp_path / "one")]) == 0
    init = make_random_checkpoint("tiny", seed=0).unet.state_dict()
    assert_same_training(state(tmp_path / "two", "model.unet."), state(tmp_path / "one", "model.unet."), init, 2)


def _rank_pid(parent: int, rank: int) -> int | None:
    """The pid of torchrun's worker of `rank` (its environment's RANK), or None."""
    for child in Path(f"/proc/{parent}/task/{parent}/children").read_text().split():
        env = Path(f"/proc/{child}/environ").read_bytes().split(b"\0")
        if f"RANK={rank}".encode() in env:
            return int(child)
    return None


def test_a_killed_rank_ends_the_job_and_the_saved_state_resumes_under_another_world_size(cache, tmp_path):
    from training.safm.__main__ import main as safm_main
    from training.safm.checkpoint import load_checkpoint, random_init

    run, data = tmp_path / "killed", ["--data", str(cache), "--no-adversarial", "--save-every", "2"]
    proc = torchrun("training.safm", ["train", *SAFM, *data, "--steps", "1000", "--batch-size", "1", "--out", str(run)])
    meta = run / "train_state" / "train_state.json"
    deadline = time.monotonic() + 300
    while not (meta.is_file() and json.loads(meta.read_text())["step"] >= 2):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[0][-3000:]
        time.sleep(0.2)
    pid = _rank_pid(proc.pid, 1)
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode != 0
    assert "rank      : 1" in out and "SIGKILL" in out, out[-3000:]   # torchrun's report names the rank
    saved = json.loads(meta.read_text())
    step = saved["step"]
    assert saved["extra"]["ranks"] == 2 and saved["extra"]["samples"] == 2 * step
    load_checkpoint(run / "safm.safetensors")   # whole, loadable
    tensors = load_file(str(run / "train_state" / "train_state.safetensors"))
    assert {"rng.0.torch", "rng.1.torch"} <= set(tensors)   # every rank's RNG

    # resume on ONE rank with the same global batch (2 x 1 -> 1 x 2), to step + 2
    assert safm_main(["train", *SAFM, *data, "--steps", str(step + 2), "--batch-size", "2", "--out", str(run)]) == 0
    straight = tmp_path / "straight"
    assert safm_main(["train", *SAFM, *data, "--steps", str(step + 2), "--batch-size", "2", "--out", str(straight)]) == 0
    init = random_init("safm-tiny", 0).state_dict()
    assert_same_training(state(run, "model.g."), state(straight, "model.g."), init, step + 2)
    assert json.loads(meta.read_text())["step"] == step + 2


def test_the_ema_is_the_checkpoint_restore_reads_and_the_raw_weights_lie_beside_it(cache, tmp_path):
    """A trainer with --ema-decay 0.5, 2 steps: safm.safetensors (what `restore --checkpoint`
    loads) is the closed form over the raw weights after each step; safm_raw.safetensors is them."""
    from training.data.degradations import DegradationConfig
    from training.safm.checkpoint import load_checkpoint
    from training.safm.train import SaFMTrainConfig, SaFMTrainer

    cfg = SaFMTrainConfig(data=cache, out=tmp_path, config="safm-tiny", batch=1, lr=LR, perceptual=False,
                          identity=False, adversarial=False, amp=False, ema_decay=0.5,
                          degradation=DegradationConfig(clean_fraction=0.0))
    trainer = SaFMTrainer(cfg)
    raw = [{k: v.clone() for k, v in trainer.model.state_dict().items()}]
    for step in (1, 2):
        trainer.train(steps=step)
        raw.append({k: v.clone() for k, v in trainer.model.state_dict().items()})
    ema, saved_raw = load_checkpoint(tmp_path / "safm.safetensors").state_dict(), load_file(str(tmp_path / "safm_raw.safetensors"))
    d = 0.5
    for name, _ in trainer.model.named_parameters():
        closed = d ** 2 * raw[0][name] + (1 - d) * (d * raw[1][name] + raw[2][name])
        assert torch.allclose(ema[name], closed, atol=1e-6), name
        assert torch.equal(saved_raw[name], raw[2][name])
    assert any(not torch.equal(ema[k], raw[2][k]) for k in raw[2])
    meta = json.loads((tmp_path / "safm.json").read_text())
    assert meta["weights"] == "ema" and "EMA (decay 0.5)" in meta["provenance"]["text"]
    assert json.loads((tmp_path / "safm_raw.json").read_text())["weights"] == "raw"
    resumed = SaFMTrainer(cfg)   # the EMA travels with the train state
    assert all(torch.equal(v, ema[k]) for k, v in resumed.ema.state_dict().items())
