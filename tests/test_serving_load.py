"""The load test (benchmarks/load.py) against the session's real server, kept small here
(8 clients x 3 requests); `python -m benchmarks.load` runs the 8 x 50 of the benchmarks."""
from __future__ import annotations

from benchmarks.load import load_table, load_test, percentile
from benchmarks.serving import png_bytes
from facerestore.cli import main
from runtime.imageio import decode_image
from runtime.samples import ASTRONAUT, GRACE_HOPPER, read_rgb8
from runtime.serving.serve import free_port


def test_percentile_is_nearest_rank():
    assert percentile([5.0, 1.0, 3.0, 2.0, 4.0], 0.5) == 3.0
    assert percentile(list(range(1, 101)), 0.95) == 95
    assert percentile([7.0], 0.95) == 7.0


def test_load_of_8_clients_loses_nothing(server):
    result = load_test(server, png_bytes(read_rgb8(ASTRONAUT)), clients=8, requests=3, direct_count=3)
    print(load_table(result))
    assert result["done"] == 24 and result["failures"] == 0
    assert 0 < result["p50_ms"] <= result["p95_ms"]
    assert result["throughput_per_s"] > 0 and result["in_process_per_s"] > 0
    assert "| 24 | 0 |" in load_table(result)


def test_client_spreads_over_replicas_and_skips_a_dead_one(server, tmp_path, capsys):
    """Two replicas, one of them down: every photo is restored by the live one."""
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    for path in (ASTRONAUT, GRACE_HOPPER, ASTRONAUT):
        (src / f"{len(list(src.iterdir()))}{path.suffix}").write_bytes(path.read_bytes())
    dead = f"127.0.0.1:{free_port()}"
    assert main(["client", str(src), "--out", str(out), "--url", f"{dead},{server.grpc_url}",
                 "--concurrency", "2", "--retry-s", "1"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["0.png", "1.jpg", "2.png", "report.json"]
    assert all(decode_image(p.read_bytes()).size[0] == 512 for p in out.iterdir() if p.suffix != ".json")
    text = capsys.readouterr().out
    assert "3/3 photos written" in text and "photos/s" in text
