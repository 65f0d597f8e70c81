"""Random draws that do not depend on how a global batch is split over processes.

A batch may carry `_rows = (start, total)`: its rows are rows start..start+b of a global batch of `total` rows
(the trainer sets it on each process). Timesteps and noise are drawn for the whole global batch from a
generator that every process holds in the same state, and each process keeps its own rows. So N processes with
batch b draw exactly what one process with batch N*b draws, and the shared generator stays in step on every
process (noise comes from a sub-generator seeded by one shared draw, so its shape never affects the stream).
"""

from __future__ import annotations

import torch


def batch_rows(batch: dict, b: int) -> tuple[int, int]:
    start, total = batch.get("_rows", (0, b))
    if not 0 <= start <= total - b:
        raise ValueError(f"batch rows {start}..{start + b} do not fit a global batch of {total}")
    return int(start), int(total)


def draw_timesteps(sampler, batch: dict, b: int, generator: torch.Generator) -> torch.Tensor:
    start, total = batch_rows(batch, b)
    return sampler(total, generator)[start:start + b]


def draw_noise(shape: tuple[int, ...], batch: dict, generator: torch.Generator) -> torch.Tensor:
    start, total = batch_rows(batch, shape[0])
    sub = torch.Generator().manual_seed(int(torch.randint(0, 2 ** 62, (1,), generator=generator)))
    return torch.randn((total, *shape[1:]), generator=sub)[start:start + shape[0]]
