"""The training sampler: ``DistributedSampler``'s permutation, split so that N processes see the
micro-batches of one process with N accumulation steps, resumable mid-epoch."""

from __future__ import annotations

from typing import Iterator, Tuple

import torch
from torch.utils.data import DistributedSampler

__all__ = ["TrainSampler"]


class TrainSampler(DistributedSampler):
    """The training sampler: a ``DistributedSampler`` (same permutation: ``randperm`` seeded with
    ``seed + epoch``; ``drop_last``) that yields ``(index, epoch)`` pairs, so that the dataset's
    augmentation knows the epoch.

    Each global batch of ``chunk * num_replicas`` consecutive indices of the permutation is
    split into contiguous blocks of ``chunk`` (this process's micro-batches of one step), so
    ``N`` processes see exactly the micro-batches that one process with ``N`` accumulation
    steps sees. :meth:`set_start` skips this process's first samples of the epoch (resuming
    mid-epoch).
    """

    def __init__(
        self, dataset, num_replicas: int = 1, rank: int = 0, seed: int = 0, shuffle: bool = True, chunk: int = 1
    ) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed, drop_last=True)
        self.chunk = int(chunk)
        self.steps = len(dataset) // (self.chunk * num_replicas)
        self.num_samples = self.steps * self.chunk
        self.total_size = self.num_samples * num_replicas
        self.start = 0

    def set_start(self, start: int) -> None:
        self.start = int(start)

    def __iter__(self) -> Iterator[Tuple[int, int]]:
        n = len(self.dataset)
        if self.shuffle:
            g = torch.Generator()
            g.manual_seed(self.seed + self.epoch)
            perm = torch.randperm(n, generator=g).tolist()
        else:
            perm = list(range(n))
        per_step = self.chunk * self.num_replicas
        first = self.rank * self.chunk
        mine = [perm[t * per_step + first + k] for t in range(self.steps) for k in range(self.chunk)]
        return iter([(i, self.epoch) for i in mine[self.start :]])

    def __len__(self) -> int:
        return self.num_samples - self.start
