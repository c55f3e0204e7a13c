"""The export side of a network contract: how to build its torch module and its sample inputs."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

from runtime.contracts.base import NetworkContract
from runtime.restorers.base import RestorerSpec

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class ExportNetwork:
    """A contract's network as export, parity checks and benchmarks make it."""

    contract: NetworkContract
    build_module: Callable[[Path | None], torch.nn.Module]   # checkpoint path (None: the default) -> module
    sample_inputs: Callable[[int], tuple[np.ndarray, ...]]   # batch -> real inputs in contract order

    @property
    def name(self) -> str:
        return self.contract.name


def restorer_network(spec: RestorerSpec, contract: NetworkContract,
                     sample_inputs: Callable[[int], tuple[np.ndarray, ...]]) -> ExportNetwork:
    """A restorer's network, its module built as the restorer's torch backend builds it (the spec)."""
    def build(checkpoint: Path | None) -> torch.nn.Module:
        return spec.torch_modules(checkpoint)[contract.name]

    return ExportNetwork(contract, build, sample_inputs)
