"""The benchmark machinery on real networks and photos: timing rules, rows per path and batch,
speed-ups measured against the eager path, saved JSON + Markdown, the CLI's refusals, and the
SDXL FLOP floor against the numbers in docs/ARCHITECTURE.md. (Speed itself is never asserted.)"""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from export.onnx_export import export_onnx
from benchmarks.restorers import EAGER, EAGER_NCHW, gflop_per_face, measure, network_paths, sample_tensors, sdxl_floor
from benchmarks.timing import interleaved_ms, stats, time_ms
from facerestore.cli import main
from export.networks import NETWORKS
from runtime.openvino_session import openvino_available
from runtime.restorers.authface.contracts import UNET_CONTROLNET
from training.cpu import has_bf16


def test_time_ms_stops_on_repeats_or_time_budget():
    assert len(time_ms(lambda: None, repeats=7, warmup=0)) == 7
    calls = []
    ms = time_ms(lambda: (calls.append(1), time.sleep(0.03)), repeats=50, warmup=2, max_seconds=0.1)
    # the rule, whatever the machine's load makes of 30 ms sleeps: runs stop with the first one that
    # takes the timed total past 0.1 s (at least 3 runs), and the 2 warm-up calls are not timed
    assert len(ms) >= 3 and (len(ms) == 3 or sum(ms[:-1]) <= 100) and 100 < sum(ms) and len(calls) == len(ms) + 2
    assert all(m > 25 for m in ms)
    assert len(time_ms(lambda: time.sleep(0.05), repeats=50, max_seconds=0.01, min_runs=3)) == 3
    s = stats([1.0, 2.0, 3.0, 4.0, 100.0])
    assert (s["runs"], s["median_ms"], s["mean_ms"]) == (5, 3.0, 22.0) and s["p90_ms"] > s["median_ms"]


def test_interleaved_ms_alternates_calls():
    order = []
    calls = {name: (lambda name=name: (order.append(name), time.sleep(0.01 if name == "a" else 0.03)))
             for name in ("a", "b")}
    ms = interleaved_ms(calls, repeats=10, warmup=1, max_seconds=0.1)
    assert order[:2] == ["a", "b"] and order[2:6] == ["a", "b", "b", "a"]     # warm-ups, then rotating rounds
    assert len(ms["a"]) == len(ms["b"]) == 4                                 # b's 0.1 s budget ends the rounds
    assert max(ms["a"]) < min(ms["b"])


def test_measure_torch_and_onnxruntime_paths(tmp_path):
    """The face detector on every CPU path: one row per path and batch, the eager row is the
    reference (speed-up 1), derived columns agree with the median; a missing ONNX file is skipped."""
    detector = NETWORKS["face_detector"]
    export_onnx(detector.contract, tmp_path, slim=False)
    paths = network_paths(detector, None, tmp_path, nchw=True)
    openvino = ["openvino fp32", "openvino bf16"][:1 + has_bf16()] if openvino_available() else []
    assert list(paths) == [EAGER, EAGER_NCHW, "onnxruntime cpu", *openvino]
    gflop = gflop_per_face(detector.build_module(None), sample_tensors(detector))
    assert 0.01 < gflop < 10
    rows = measure("face_detector", paths, detector.sample_inputs, (1, 2), 3, None, gflop, 1.0, 100.0)
    assert [(r["path"], r["batch"]) for r in rows] == [(p, b) for p in paths for b in (1, 2)]
    for r in rows:
        assert r["runs"] == 3 and r["median_ms"] > 0 and r["peak_memory_mb"] > 0
        assert r["faces_per_s"] == pytest.approx(r["batch"] / r["median_ms"] * 1e3, rel=0.01)
        assert r["peak_fraction"] == pytest.approx(gflop * r["batch"] / (r["median_ms"] / 1e3) / 100.0, rel=0.01)
        eager = next(e for e in rows if e["path"] == EAGER and e["batch"] == r["batch"])
        assert r["speedup_vs_eager"] == pytest.approx(eager["median_ms"] / r["median_ms"], abs=0.01)
    assert all(r["speedup_vs_eager"] == 1.0 for r in rows if r["path"] == EAGER)

    missing = measure("face_detector", network_paths(detector, None, tmp_path / "none"), detector.sample_inputs,
                      (1,), 3, None, gflop, 1.0, 100.0)
    assert [r["path"] for r in missing] == [EAGER]


def test_unet_controlnet_rows_on_real_latents():
    """One denoising step of the tiny UNet+ControlNet per batch: timesteps stay fp32 inputs."""
    assert [s.name for s in UNET_CONTROLNET.inputs if s.keep_fp32] == ["timestep", "conditioning_scale"]
    paths = {EAGER: network_paths(NETWORKS[UNET_CONTROLNET.name], None, Path("/nonexistent"))[EAGER]}
    rows = measure("unet", paths, NETWORKS[UNET_CONTROLNET.name].sample_inputs, (1, 2), 3, 0.1, 4.8, 2.4, 100.0)
    assert [r["batch"] for r in rows] == [1, 2] and all(r["runs"] == 3 for r in rows)


def test_sdxl_floor_matches_design():
    """The real SDXL-architecture FLOPs (docs/ARCHITECTURE.md: UNet 1.59 + ControlNet 0.71 TF per
    step, VAE encoder 1.12 TF, decoder 2.52 TF) and their floor at a given rate."""
    rows = {r["network"]: r for r in sdxl_floor(peak_gflops=1000.0)}
    assert rows["unet_controlnet"]["tflop_per_face"] == pytest.approx(1.59 + 0.71, rel=0.01)
    assert rows["vae_encoder"]["tflop_per_face"] == pytest.approx(1.12, rel=0.01)
    assert rows["vae_decoder"]["tflop_per_face"] == pytest.approx(2.52, rel=0.01)
    assert rows["unet_controlnet"]["params_m"] > 3500                         # UNet 2.57 B + ControlNet 1.25 B
    assert rows["unet_controlnet"]["floor_ms_h100"] == pytest.approx(2.30 / 800 * 1e3, rel=0.01)
    assert rows["unet_controlnet"]["floor_ms_here"] == pytest.approx(2.30e3, rel=0.01)   # 2.3 TF at 1 TF/s


def test_bench_cli_writes_json_and_markdown(tmp_path):
    """`facerestore bench` with nothing to time but the face pipeline: torch and ONNX Runtime (the
    face networks' cached ONNX files) per stage, one folder for this machine."""
    assert main(["bench", "--out", str(tmp_path), "--repeats", "2", "--max-seconds", "0.5"]) == 0
    (folder,) = tmp_path.iterdir()
    result = json.loads((folder / "face_pipeline.json").read_text())
    assert result["faces"] == 3 and result["command"] == "facerestore bench"
    assert [r["stage"] for r in result["stages"]][::2] == ["detect", "mesh", "align", "paste", "end_to_end"]
    assert [r["backend"] for r in result["stages"]] == ["torch", "onnxruntime"] * 5
    assert all(r["runs"] == 2 and r["ms_per_face"] == pytest.approx(r["median_ms"] / 3, abs=0.01)
               for r in result["stages"])
    table = (folder / "face_pipeline.md").read_text()
    assert "| end_to_end | torch | 2 |" in table and "| end_to_end | onnxruntime | 2 |" in table
    assert sorted(p.name for p in folder.iterdir()) == ["face_pipeline.json", "face_pipeline.md"]


@pytest.mark.parametrize("argv, message", [
    (["--repeats", "0"], "must be >= 1"),
    (["--safm", "nowhere/safm-tiny"], "nowhere/safm-tiny: no such SaFM checkpoint"),
    (["--authface", "nowhere/authface"], "nowhere/authface: no such AuthFace checkpoint folder"),
    (["--triton-repo", "nowhere/repo"], "nowhere/repo: not a model repository serving safm"),
])
def test_bench_cli_refuses_bad_input_before_timing(tmp_path, capsys, argv, message):
    assert main(["bench", "--out", str(tmp_path), *argv]) == 2
    assert message in capsys.readouterr().err
    assert not any(tmp_path.iterdir())          # nothing written


def test_authface_rows_per_network_and_whole_restoration(tmp_path):
    """A saved tiny AuthFace checkpoint, no ONNX files: the torch rows of each network at batch
    1/4/8 and of the whole restoration (batch 1 on a CPU); the ONNX Runtime paths are skipped."""
    from benchmarks.restorers import bench_authface
    from training.authface import make_random_checkpoint

    make_random_checkpoint("tiny").save(tmp_path / "ckpt")
    rows = bench_authface(tmp_path / "ckpt", tmp_path / "no-onnx", steps=2, repeats=3, max_seconds=0.01,
                          peak_gflops=100.0)
    assert [(r["model"], r["batch"]) for r in rows] == [
        *[(f"authface-tiny {n}", b) for n in ("vae_encoder", "unet_controlnet", "vae_decoder") for b in (1, 4, 8)],
        ("authface-tiny whole (2 steps)", 1)]
    assert {r["path"] for r in rows} == {EAGER}
    per_step = {r["batch"]: r["gflop_per_face"] for r in rows if "unet" in r["model"]}
    whole = rows[-1]
    assert whole["gflop_per_face"] == pytest.approx(2 * per_step[1] + rows[6]["gflop_per_face"], rel=0.02)


def test_every_saved_result_records_the_machine_and_flags_a_loaded_run(tmp_path):
    from benchmarks.report import save

    save(tmp_path, "probe", {"rows": []}, "| a |\n|---|\n")
    saved = json.loads((tmp_path / "probe.json").read_text())
    machine, table = saved["machine"], (tmp_path / "probe.md").read_text()
    assert machine["matmul_peak_gflops"] > 1 and machine["cores"] >= 1 and len(machine["load_average"]) == 3
    assert machine["loaded"] == (max(machine["load_average"][:2]) > machine["cores"])
    assert f"measured matmul peak {machine['matmul_peak_gflops']} GFLOP/s" in table
    assert table.startswith("| a |") and ("**LOADED:" in table) == machine["loaded"]
    # a run that exceeded the cores is flagged in both files, whatever this machine's load is now
    save(tmp_path, "busy", {"machine": {**machine, "load_average": [9.5, 8.0, 4.0], "cores": 2, "loaded": True}}, "x\n")
    assert json.loads((tmp_path / "busy.json").read_text())["machine"]["loaded"] is True
    assert "**LOADED: Machine at this run" in (tmp_path / "busy.md").read_text()
    assert "load average 9.5/8/4 (1/5/15 min) on 2 cores" in (tmp_path / "busy.md").read_text()
