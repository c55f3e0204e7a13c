"""The order in which a run sees its samples, shared out between data-parallel ranks, and the
random draws that belong to one sample.

The stream is the concatenation of the epochs' permutations (epoch e: `randperm` seeded with
seed + e); micro-step k of the run takes the next world x batch samples of it and rank r the
r-th slice of those. So no sample comes twice in an epoch, every rank gets exactly `batch`
samples (a batch may run into the next epoch; nothing is dropped or padded), the position is
one number (samples consumed, saved with the train state: a resumed run continues in the middle
of its epoch) and it means the same thing under any world size. Whatever a trainer draws per
sample (noise, timestep, the fidelity weight) comes from `sample_generator(seed, epoch, index)`,
as the dataset's degradations come from (seed, epoch, index): which rank, and which position in
its batch, a sample lands on changes nothing but the order of sums."""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import Dataset


class SampleStream:
    """Rank `rank`'s batches of (epoch, index) pairs from position `start` (global samples)."""

    def __init__(self, size: int, seed: int, batch: int, rank: int = 0, world: int = 1) -> None:
        if size < 1:
            raise ValueError("an empty dataset has no sample stream")
        self.size, self.seed, self.batch, self.rank, self.world = size, seed, batch, rank, world
        self._epoch, self._order = -1, torch.empty(0, dtype=torch.long)

    def order(self, epoch: int) -> torch.Tensor:
        """The permutation of one epoch (the same on every rank)."""
        if epoch != self._epoch:
            self._epoch = epoch
            self._order = torch.randperm(self.size, generator=torch.Generator().manual_seed(self.seed + epoch))
        return self._order

    def global_batch(self, position: int) -> list[tuple[int, int]]:
        """The world x batch (epoch, index) pairs from `position` on."""
        out = []
        for p in range(position, position + self.world * self.batch):
            epoch, offset = divmod(p, self.size)
            out.append((epoch, int(self.order(epoch)[offset])))
        return out

    def batches(self, start: int = 0) -> Iterator[list[tuple[int, int]]]:
        """Endless: this rank's slice of each global batch, from sample `start` of the stream."""
        position = start
        while True:
            mine = self.global_batch(position)[self.rank * self.batch:(self.rank + 1) * self.batch]
            position += self.world * self.batch
            yield mine


class EpochItems(Dataset):
    """`dataset` indexed by (epoch, index) pairs: sets its `epoch` (the draws of its
    degradations) and adds `epoch` and `index` to the item (for `sample_generator`)."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: tuple[int, int]) -> dict:
        epoch, index = key
        self.dataset.epoch = epoch  # type: ignore[attr-defined]
        return {**self.dataset[index], "epoch": epoch, "index": index}


def sample_generator(seed: int, epoch: int, index: int, purpose: int = 0) -> torch.Generator:
    """A CPU generator for one sample's draws (seeded from seed, epoch, index and a purpose
    number that keeps a trainer's different draws apart)."""
    state = np.random.SeedSequence([seed, epoch, index, purpose]).generate_state(2, np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 31 ^ int(state[1]))


def per_sample(batch: dict, seed: int, purpose: int, draw) -> torch.Tensor:
    """torch.stack of `draw(generator)` for every sample of a collated batch (its `epoch` and
    `index`), e.g. `lambda g: torch.rand(1, generator=g)`."""
    keys = zip(batch["epoch"].tolist(), batch["index"].tolist())
    return torch.stack([draw(sample_generator(seed, e, i, purpose)) for e, i in keys])
