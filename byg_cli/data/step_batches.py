"""The batches of a training run, indexed by micro-step, made in the training process or ahead of it by workers.

Batch k (k = step * grad_accum + micro) of a process is a pure function of k, its rank and the source: a resumed
run, a run with data workers and a run without all see the same samples in the same order.
"""

from __future__ import annotations

from typing import Optional

from torch.utils.data import DataLoader, Dataset

from byg_cli.data.sources import Source, collate


class StepBatches(Dataset):
    """Map-style view of a run's batches: `batches[k]` is this process's k-th batch (a collated dict).

    With `source.batch_items` (aspect-ratio buckets) batch k is the source's (k * world + rank)-th one-bucket
    batch; otherwise it holds the items [(k * world + rank) * batch_size, ... + batch_size) of the source.
    "_rows" says which rows of the global batch this process holds, for objectives that draw per-row noise.
    """

    def __init__(self, source: Source, batch_size: int, world: int = 1, rank: int = 0):
        self.source, self.batch_size, self.world, self.rank = source, batch_size, world, rank

    def __getitem__(self, k: int) -> dict:
        items = self.source.batch_items(k * self.world + self.rank)
        if items is None:
            first = (k * self.world + self.rank) * self.batch_size
            items = [self.source.item(first + i) for i in range(self.batch_size)]
        batch = collate(items)
        batch["_rows"] = (self.rank * self.batch_size, self.batch_size * self.world)
        return batch


def as_made(batch: dict) -> dict:
    """The DataLoader's collate step: batches come collated already (its default would turn tuples into lists)."""
    return batch


class BatchFeed:
    """Hands out `batches[k]` for k = start, start + 1, ...: in this process (`workers` = 0) or made ahead by
    `workers` DataLoader processes, `prefetch` batches each. Asking for any other k than the next one (a resume, a
    jump) restarts the workers there. `end` (exclusive) bounds how far ahead they work."""

    def __init__(self, batches: StepBatches, workers: int = 0, prefetch: int = 2, end: Optional[int] = None):
        if workers < 0:
            raise ValueError(f"workers must be >= 0, got {workers}")
        self.batches, self.workers, self.prefetch, self.end = batches, workers, prefetch, end
        self._next: Optional[int] = None
        self._iter = None

    def __call__(self, k: int) -> dict:
        if not self.workers:
            return self.batches[k]
        if self._iter is None or k != self._next:
            self._start(k)
        self._next = k + 1
        return next(self._iter)

    def _start(self, k: int) -> None:
        self.close()
        end = self.end if self.end is not None and self.end > k else k + 1_000_000_000
        loader = DataLoader(self.batches, batch_size=None, sampler=range(k, end), num_workers=self.workers,
                            collate_fn=as_made, prefetch_factor=self.prefetch)
        self._iter = iter(loader)

    def close(self) -> None:
        """Stop the workers (they also stop when the feed is garbage-collected)."""
        it, self._iter, self._next = self._iter, None, None
        if it is not None and hasattr(it, "_shutdown_workers"):
            it._shutdown_workers()
