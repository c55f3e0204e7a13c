"""Shared fixtures: real photos and the face pipeline on the committed MediaPipe ports."""
from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from runtime.samples import ASTRONAUT, GRACE_HOPPER, group_photo, read_rgb8


@pytest.fixture(scope="session", autouse=True)
def onnx_cache(tmp_path_factory) -> Iterator[Path]:
    """The ONNX cache of `restore --backend auto` ($FACERESTORE_CACHE) in a session folder, not
    the user's ~/.cache."""
    folder = tmp_path_factory.mktemp("facerestore-cache")
    before = os.environ.get("FACERESTORE_CACHE")
    os.environ["FACERESTORE_CACHE"] = str(folder)
    yield folder
    if before is None:
        os.environ.pop("FACERESTORE_CACHE", None)
    else:
        os.environ["FACERESTORE_CACHE"] = before


@pytest.fixture(scope="session")
def pipeline():
    """The face pipeline (torch CPU) with default options."""
    from runtime.face import torch_face_pipeline

    return torch_face_pipeline()


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    return read_rgb8(ASTRONAUT)


@pytest.fixture(scope="session")
def grace_hopper() -> np.ndarray:
    return read_rgb8(GRACE_HOPPER)


@pytest.fixture(scope="session")
def group() -> np.ndarray:
    return group_photo()


def write_rgb(path, rgb8: np.ndarray) -> None:
    """Save a uint8 RGB array as an image file (format by suffix)."""
    assert cv2.imwrite(str(path), rgb8[..., ::-1])


def export_networks(names: Iterable[str], out: Path, slim: bool = True) -> Path:
    """ONNX files of the named networks (their default weights) in `out`; returns `out`."""
    from export.onnx_export import export_onnx
    from runtime.restorers import CONTRACTS

    for name in names:
        export_onnx(CONTRACTS[name], out, slim=slim)
    return out
