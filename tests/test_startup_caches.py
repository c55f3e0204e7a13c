"""Start-up: the weights' digest cached by path, size and modification time; the pre-optimised
ONNX Runtime graph saved beside a cached ONNX file and never taken for another file, ORT
version, CPU or level; `facerestore --help` without cv2 or numpy."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import numpy as np

from export.networks import NETWORKS
from export.onnx_cache import cache_root, onnx_dir
from runtime.contracts.face import FACE_DETECTOR
from runtime.files import DIGEST_CACHE_BYTES, sha256_file
from runtime.sessions import OnnxRuntimeSession, onnx_session, optimized_key
from tests.conftest import subprocess_env


def test_weights_digest_is_cached_by_path_size_and_mtime(tmp_path, monkeypatch):
    monkeypatch.setenv("FACERESTORE_CACHE", str(tmp_path / "cache"))   # a cache of its own: one entry to find
    weights = tmp_path / "weights.bin"
    data = np.random.default_rng(0).bytes(DIGEST_CACHE_BYTES + 5)
    weights.write_bytes(data)
    assert sha256_file(weights) == hashlib.sha256(data).hexdigest()
    (entry,) = (cache_root() / "sha256").glob("*.json")
    stamp = json.loads(entry.read_text())
    assert stamp["path"] == str(weights.resolve()) and stamp["size"] == len(data)
    # the cached digest is what is read while size and mtime match (a forged one shows it is used)
    entry.write_text(json.dumps({**stamp, "sha256": "f" * 64}))
    assert sha256_file(weights) == "f" * 64
    # new bytes of the same size and a new mtime: the stale entry is not used
    changed = bytes([data[0] ^ 1]) + data[1:]
    weights.write_bytes(changed)
    os.utime(weights, ns=(stamp["mtime_ns"] + 10**9, stamp["mtime_ns"] + 10**9))
    assert sha256_file(weights) == hashlib.sha256(changed).hexdigest()
    # small files are hashed every time, nothing cached
    small = tmp_path / "small.json"
    small.write_text("{}")
    assert sha256_file(small) == hashlib.sha256(b"{}").hexdigest()
    assert len(list((cache_root() / "sha256").glob("*.json"))) == 1


def test_cached_onnx_runs_from_its_saved_optimized_graph_and_never_a_stale_one(tmp_path):
    folder = onnx_dir(FACE_DETECTOR)
    path = folder / f"{FACE_DETECTOR.name}.onnx"
    for old in folder.glob("*.ort-*.onnx"):
        old.unlink()
    x = NETWORKS[FACE_DETECTOR.name].sample_inputs(2)
    plain = OnnxRuntimeSession(str(path), FACE_DETECTOR)(*x)

    first = onnx_session(FACE_DETECTOR, folder)
    (saved,) = folder.glob("*.ort-*.onnx")
    assert saved.name == f"{FACE_DETECTOR.name}.ort-{optimized_key(path)}.onnx"
    second = onnx_session(FACE_DETECTOR, folder)   # loads the saved graph, optimisations off
    assert second.session.get_session_options().graph_optimization_level.name == "ORT_DISABLE_ALL"
    for a, b, c in zip(plain, first(*x), second(*x)):
        np.testing.assert_allclose(b, a, atol=1e-5)
        np.testing.assert_allclose(c, a, atol=1e-5)

    # another level, another key: a graph saved for one is never taken for the other
    assert optimized_key(path, "ORT_ENABLE_EXTENDED") != optimized_key(path)
    # the ONNX file re-written (new mtime): the old saved graph (made unloadable here) is not used
    saved.write_bytes(b"not an ONNX graph")
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    third = onnx_session(FACE_DETECTOR, folder)
    for a, c in zip(plain, third(*x)):
        np.testing.assert_allclose(c, a, atol=1e-5)
    assert (folder / f"{FACE_DETECTOR.name}.ort-{optimized_key(path)}.onnx").is_file()

    # a folder the user names is only read: nothing is saved beside its file
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / path.name).write_bytes(path.read_bytes())
    onnx_session(FACE_DETECTOR, mine)
    assert sorted(p.name for p in mine.iterdir()) == [path.name]


def test_help_imports_neither_cv2_nor_numpy():
    probe = ("import runpy, sys\n"
             "sys.argv = ['facerestore', '--help']\n"
             "try:\n    runpy.run_module('facerestore', run_name='__main__')\n"
             "except SystemExit as e:\n    assert e.code == 0, e.code\n"
             "print(sorted(m for m in ('cv2', 'numpy', 'torch', 'onnxruntime') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=subprocess_env(),
                         timeout=120, check=True).stdout
    assert "restore" in out and out.strip().splitlines()[-1] == "[]"
