"""Read a published checkpoint (.pth/.ckpt through torch's weights-only unpickler, or
.safetensors) and load it into one of our modules, refusing any missing, extra or misshaped key
with a message that names the file and the key."""
from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file

WRAPPERS = ("params_ema", "params", "state_dict")   # BasicSR's EMA / raw weights, Lightning's


class PublishedWeightsError(ValueError):
    """A weights file that cannot be read, or whose tensors do not fit the network."""


def read_state_dict(path: Path, wrappers: tuple[str, ...] = WRAPPERS) -> tuple[dict[str, torch.Tensor], str]:
    """The tensors of `path` and the wrapper they were found under ('' for a bare state dict):
    the first of `wrappers` present wins, so BasicSR's `params_ema` is preferred over `params`."""
    path = Path(path)
    if not path.is_file():
        raise PublishedWeightsError(f"{path}: not found")
    if path.suffix == ".safetensors":
        try:
            return load_file(str(path)), ""
        except Exception as exc:
            raise PublishedWeightsError(f"{path}: cannot be read as safetensors ({exc})") from None
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise PublishedWeightsError(f"{path}: cannot be read as weights ({type(exc).__name__}: "
                                    f"{str(exc).splitlines()[0][:200]})") from None
    if not isinstance(obj, dict):
        raise PublishedWeightsError(f"{path}: holds a {type(obj).__name__}, not a state dict")
    found = ""
    for key in wrappers:
        if isinstance(obj.get(key), dict):
            obj, found = obj[key], key
            break
    return {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}, found


def check_fit(state: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], source: str) -> None:
    """PublishedWeightsError naming the first missing, extra or misshaped key of `state`
    against `expected` (a module's state_dict), and how many there are of each."""
    missing = [k for k in expected if k not in state]
    extra = [k for k in state if k not in expected]
    shapes = [k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
    problems = []
    if missing:
        problems.append(f"missing key {missing[0]!r}" + (f" (+{len(missing) - 1} more)" if len(missing) > 1 else ""))
    if extra:
        problems.append(f"unexpected key {extra[0]!r}" + (f" (+{len(extra) - 1} more)" if len(extra) > 1 else ""))
    if shapes:
        k = shapes[0]
        problems.append(f"key {k!r} has shape {tuple(state[k].shape)}, the network needs {tuple(expected[k].shape)}"
                        + (f" (+{len(shapes) - 1} more)" if len(shapes) > 1 else ""))
    if problems:
        raise PublishedWeightsError(f"{source}: does not fit the network: " + "; ".join(problems))


def load_into(module: torch.nn.Module, path: Path, prefix: str = "") -> str:
    """Load `path`'s weights into `module` (every key, exact shapes, cast to the module's
    dtypes); returns the wrapper they came from ('' when bare). `prefix`: when the file's keys
    carry it (Lightning's `vqvae.`), it is stripped and the keys without it (training losses)
    are left out."""
    state, wrapper = read_state_dict(path)
    if prefix and any(k.startswith(prefix) for k in state):
        state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    expected = module.state_dict()
    check_fit(state, expected, str(path))
    module.load_state_dict({k: v.to(expected[k].dtype) for k, v in state.items()})
    return wrapper
