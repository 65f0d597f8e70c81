"""Training data sources. A source is indexable by a global sample index, so the batch at a given step is a
pure function of (seed, step) and a resumed run sees exactly the samples an uninterrupted run would."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from byg_cli.data.images import load_image, to_tensor
from byg_cli.data.records import read_records
from byg_cli.errors import BygError

TEXT_KEYS = ("src_caption", "instruction", "tgt_caption", "reverse_instruction", "edit_type")


class Source(Protocol):
    def item(self, index: int) -> dict: ...


class RecordsSource:
    """Edit records (JSONL) shuffled per epoch with a seeded permutation."""

    def __init__(self, path: Path, resolution: int, seed: int = 0):
        self.path = Path(path)
        self.root = self.path.parent
        self.records = read_records(self.path)
        if not self.records:
            raise BygError(f"{self.path}: contains no records")
        self.resolution, self.seed = resolution, seed
        self._perms: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.records)

    def _perm(self, epoch: int) -> np.ndarray:
        if epoch not in self._perms:
            self._perms = {epoch: np.random.default_rng([self.seed, epoch]).permutation(len(self.records))}
        return self._perms[epoch]

    def item(self, index: int) -> dict:
        epoch, pos = divmod(index, len(self.records))
        rec = self.records[int(self._perm(epoch)[pos])]
        out = {k: getattr(rec, k) for k in TEXT_KEYS}
        out["pixels"] = to_tensor(load_image(rec.media_path(self.root), self.resolution))
        target = rec.extra.get("target_image")
        if target:
            out["target_pixels"] = to_tensor(load_image(self.root / target, self.resolution))
        return out


def collate(items: list[dict]) -> dict:
    batch: dict = {}
    for key in items[0]:
        values = [it[key] for it in items]
        batch[key] = torch.stack(values) if isinstance(values[0], torch.Tensor) else values
    return batch


def build_source(data_cfg, seed: int) -> Source:
    if data_cfg.kind == "records":
        return RecordsSource(data_cfg.path, data_cfg.resolution, seed)
    raise BygError(f"data.kind: '{data_cfg.kind}' is not available in this build")
