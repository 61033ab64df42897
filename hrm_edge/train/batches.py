"""Training batches: the reference's sampling order, resumable by position, optionally read by DataLoader workers.

The order of batches is a pure function of (seed, epoch): each sampler round's plan (which example
rows and puzzles form each batch) is index arithmetic over the dataset's small index arrays
(`sample_batch_rows`), and its position is (epoch, batch index). So a resumed run replays no data,
and reading the rows can move to worker processes without changing what a step sees: workers only
read the memory-mapped rows of a planned batch, the main process decides which batch comes next.

With `workers=0` (the CPU default: on a few cores a worker competes with the training threads) the
rows are read in the training process. With workers (the CUDA default) a `torch.utils.data.DataLoader`
reads `prefetch` batches ahead per worker, into pinned memory when the device is CUDA, with
persistent workers; the time a step waits for its batch is what the trainer logs as `data_s`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from hrm_edge.data.dataset import HrmDataset, sample_batch_rows
from hrm_edge.errors import HrmEdgeError

Plan = list[tuple[str, np.ndarray, np.ndarray]]


def epoch_plan(ds: HrmDataset, batch: int, seed: int, epoch: int) -> Plan:
    """Batches of one sampler round. A round spans enough dataset epochs to fill a batch at least twice
    (a dataset of few tasks yields fewer examples per epoch than one batch holds)."""
    rng = np.random.default_rng([seed, epoch])
    plan: Plan = []
    for name, s in ds.sets.items():
        per_epoch = max(1.0, s.num_groups * s.num_examples / max(1, s.num_puzzles))
        rounds = max(1, math.ceil(2 * batch / per_epoch))
        plan += [(name, rows, puz) for rows, puz in sample_batch_rows(s, rng, batch, epochs=rounds)]
    if not plan:
        raise HrmEdgeError(f"cannot form a batch of {batch} from this dataset", path=ds.root)
    return plan


def read_batch(ds: HrmDataset, name: str, rows: np.ndarray, puz: np.ndarray) -> dict[str, torch.Tensor]:
    """The planned rows of one set as tensors (sorted reads from the memory map, planned order kept)."""
    s = ds.sets[name]
    order = np.argsort(rows, kind="stable")
    inputs = np.empty((len(rows), s.inputs.shape[1]), np.int32)
    inputs[order] = s.inputs[rows[order]]
    lab = np.empty_like(inputs)
    lab[order] = s.labels[rows[order]]
    return {"inputs": torch.from_numpy(inputs), "labels": torch.from_numpy(lab),
            "puzzle_identifiers": torch.from_numpy(s.puzzle_identifiers[puz].astype(np.int32))}


class _PlannedBatches(torch.utils.data.Dataset):
    """Map-style view for the DataLoader: item (epoch, pos) is that planned batch. Each worker keeps the
    plans of the epochs it is asked for (the newest two), recomputed from the seed, never shipped."""

    def __init__(self, ds: HrmDataset, batch: int, seed: int) -> None:
        self.ds, self.batch, self.seed = ds, batch, seed
        self._plans: dict[int, Plan] = {}

    def __getitem__(self, key: tuple[int, int]) -> tuple[tuple[int, int], dict[str, torch.Tensor]]:
        epoch, pos = key
        if epoch not in self._plans:
            self._plans = {e: p for e, p in self._plans.items() if e >= epoch - 1}
            self._plans[epoch] = epoch_plan(self.ds, self.batch, self.seed, epoch)
        return key, read_batch(self.ds, *self._plans[epoch][pos])

    def __len__(self) -> int:  # unused: the positions come from _Positions, which never ends
        raise TypeError("an endless batch stream has no length")


class _Positions(torch.utils.data.Sampler):
    """(epoch, pos) from a start position onwards, forever; plan lengths computed here, in the main process."""

    def __init__(self, ds: HrmDataset, batch: int, seed: int, epoch: int, pos: int) -> None:
        self.ds, self.batch, self.seed, self.epoch, self.pos = ds, batch, seed, epoch, pos

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch, pos = self.epoch, self.pos
        n = len(epoch_plan(self.ds, self.batch, self.seed, epoch))
        while True:
            while pos >= n:
                epoch, pos = epoch + 1, 0
                n = len(epoch_plan(self.ds, self.batch, self.seed, epoch))
            yield epoch, pos
            pos += 1


class Sampler:
    """The reference's training order, epoch after epoch; its position is (epoch, batch index).

    `next()` returns the next batch; `state()` the position to resume from (the batch after the last one
    returned). `workers > 0` reads batches in DataLoader worker processes, `prefetch` ahead each, into
    pinned memory when `pin` is set; the batches and their order are the same as with `workers=0`.
    """

    def __init__(self, ds: HrmDataset, batch: int, seed: int, epoch: int = 0, pos: int = 0, *, workers: int = 0,
                 prefetch: int = 2, pin: bool = False) -> None:
        self.ds, self.batch, self.seed, self.epoch, self.pos = ds, batch, seed, epoch, pos
        self.workers, self.prefetch, self.pin = workers, prefetch, pin
        self._plan: Plan = epoch_plan(ds, batch, seed, epoch)  # an impossible batch fails here, not mid-run
        self._plan_epoch = epoch
        self._loader_iter: Iterator[Any] | None = None

    def _start_loader(self) -> Iterator[Any]:
        loader = torch.utils.data.DataLoader(
            _PlannedBatches(self.ds, self.batch, self.seed), batch_size=None,
            sampler=_Positions(self.ds, self.batch, self.seed, self.epoch, self.pos), num_workers=self.workers,
            prefetch_factor=self.prefetch, pin_memory=self.pin, persistent_workers=True,
            # the loader draws its base seed from this generator, never from the training RNG stream
            generator=torch.Generator().manual_seed(self.seed))
        return iter(loader)

    def next(self) -> dict[str, torch.Tensor]:
        if self.workers:
            if self._loader_iter is None:
                self._loader_iter = self._start_loader()
            (epoch, pos), batch = next(self._loader_iter)
            self.epoch, self.pos = epoch, pos + 1
            return batch
        while True:
            if self._plan_epoch != self.epoch:
                self._plan, self._plan_epoch = epoch_plan(self.ds, self.batch, self.seed, self.epoch), self.epoch
            if self.pos < len(self._plan):
                break
            self.epoch, self.pos = self.epoch + 1, 0
        name, rows, puz = self._plan[self.pos]
        self.pos += 1
        batch = read_batch(self.ds, name, rows, puz)
        return {k: v.pin_memory() for k, v in batch.items()} if self.pin else batch

    def state(self) -> dict[str, int]:
        return {"epoch": self.epoch, "pos": self.pos}

    def close(self) -> None:
        """Stop the worker processes (if any); `next()` would start new ones at the current position."""
        self._loader_iter = None


def default_workers(device: torch.device) -> int:
    """CUDA: 2 workers keep the GPU fed; CPU: none (with a few cores a worker takes a training thread's core)."""
    return 2 if device.type == "cuda" else 0
