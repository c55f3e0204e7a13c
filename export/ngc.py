"""The NGC release of the GPU deployment, named once in deploy/docker/ngc.env: the tritonserver
image that serves the repository and the TensorRT image that builds its engines share it, so
engines and server run one TensorRT version."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

NGC_ENV = Path(__file__).resolve().parents[1] / "deploy" / "docker" / "ngc.env"


@dataclass(frozen=True)
class NgcRelease:
    """One NGC monthly release (``yy.mm``): the CUDA and TensorRT its containers ship, and the
    CUDA build of torch installed into them (docs/NGC.md cites each)."""

    release: str
    tensorrt: str
    cuda: str
    torch: str          # a pip requirement's version with its CUDA label: '2.13.0+cu126'
    torch_index: str    # PyTorch's wheel index of that CUDA build

    @property
    def server_image(self) -> str:
        return f"nvcr.io/nvidia/tritonserver:{self.release}-py3"

    @property
    def tensorrt_image(self) -> str:
        return f"nvcr.io/nvidia/tensorrt:{self.release}-py3"


def read_env(path: Path = NGC_ENV) -> dict[str, str]:
    """KEY=VALUE lines of an env file (comments and blank lines skipped)."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: missing; it names the NGC release of the GPU images")
    pairs = (line.split("=", 1) for line in Path(path).read_text().splitlines()
             if line.strip() and not line.lstrip().startswith("#"))
    return {key.strip(): value.strip() for key, value in pairs}


def ngc_release(path: Path = NGC_ENV) -> NgcRelease:
    """The release named in deploy/docker/ngc.env."""
    env = read_env(path)
    try:
        return NgcRelease(release=env["NGC_RELEASE"], tensorrt=env["TENSORRT_VERSION"], cuda=env["CUDA_VERSION"],
                          torch=env["TORCH_VERSION"], torch_index=env["TORCH_INDEX"])
    except KeyError as exc:
        raise ValueError(f"{path}: no {exc.args[0]}= line") from None
