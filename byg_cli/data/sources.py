"""Training data sources. A source is indexable by a global sample index, so the batch at a given step is a
pure function of (seed, step) and a resumed run sees exactly the samples an uninterrupted run would."""

from __future__ import annotations

from typing import Optional, Protocol

import numpy as np
import torch

from byg_cli.data.dataset import EditDataset, ShapesCaptionStream, ShapesEditStream
from byg_cli.errors import BygError


class Source(Protocol):
    """What the trainer reads from a data source. `dataset` is the records behind it (None for generated
    streams); `batch_items(k)` is the k-th per-process batch where the source groups its own batches (aspect-ratio
    buckets), else None: batches are then consecutive items."""

    dataset: Optional[EditDataset]

    def item(self, index: int) -> dict: ...

    def batch_items(self, k: int) -> Optional[list[dict]]: ...


class ShuffledRecords:
    """Edit records from disk, visited in a seeded permutation per epoch."""

    def __init__(self, dataset: EditDataset, seed: int = 0):
        self.dataset, self.seed = dataset, seed
        self._perm: tuple[int, np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.dataset)

    def item(self, index: int) -> dict:
        epoch, pos = divmod(index, len(self.dataset))
        if self._perm is None or self._perm[0] != epoch:
            self._perm = (epoch, np.random.default_rng([self.seed, epoch]).permutation(len(self.dataset)))
        return self.dataset[int(self._perm[1][pos])]

    def batch_items(self, k: int) -> None:
        return None


class BucketedRecords:
    """Edit records in aspect-ratio buckets: `batch_items(k)` is the k-th per-process batch (one bucket each)."""

    def __init__(self, dataset: EditDataset, batch_size: int, seed: int = 0):
        from byg_cli.data.buckets import BucketBatches

        self.dataset = dataset
        self.batches = BucketBatches(dataset.sizes, batch_size, seed)

    def __len__(self) -> int:
        return len(self.dataset)

    def item(self, index: int) -> dict:
        return self.dataset[index % len(self.dataset)]

    def batch_items(self, k: int) -> list[dict]:
        return [self.dataset[i] for i in self.batches.group(k)]


def collate(items: list[dict]) -> dict:
    batch: dict = {}
    for key in items[0]:
        values = [it[key] for it in items]
        if isinstance(values[0], torch.Tensor):
            batch[key] = torch.stack(values)
        elif isinstance(values[0], (int, float)):
            batch[key] = torch.tensor(values)
        else:
            batch[key] = values
    return batch


def build_source(data_cfg, seed: int, batch_size: int = 1) -> Source:
    if data_cfg.kind == "records":
        from byg_cli.data.records import iter_records

        first = next(iter_records(data_cfg.path), None)
        if first is not None and first.media_kind == "video":
            if data_cfg.buckets:
                raise BygError("data.buckets: aspect-ratio buckets apply to image records, not video records")
            from byg_cli.data.video import VideoEditDataset
            from byg_cli.extras import check

            check("training on video records", "video")
            return ShuffledRecords(VideoEditDataset(  # type: ignore[arg-type]
                data_cfg.path, data_cfg.height or data_cfg.resolution, data_cfg.width or data_cfg.resolution,
                data_cfg.frames, data_cfg.fps), seed)
        dataset = EditDataset(data_cfg.path, data_cfg.resolution)
        if data_cfg.buckets:
            from byg_cli.data.buckets import assign_buckets

            dataset.sizes = assign_buckets([r.media_path(dataset.root) for r in dataset.records], data_cfg.resolution,
                                           data_cfg.bucket_step, data_cfg.max_aspect)
            return BucketedRecords(dataset, batch_size, seed)
        return ShuffledRecords(dataset, seed)
    if data_cfg.buckets:
        raise BygError(f"data.buckets: aspect-ratio buckets apply to data.kind = 'records', not '{data_cfg.kind}'")
    if data_cfg.kind == "shapes_t2i":
        return ShapesCaptionStream(seed, data_cfg.resolution)
    if data_cfg.kind == "shapes_video_t2v":
        from byg_cli.data.shapes_video import ShapesVideoCaptionStream

        return ShapesVideoCaptionStream(seed, data_cfg.frames, data_cfg.resolution)
    if data_cfg.kind == "shapes_video_edit":
        from byg_cli.data.shapes_video import ShapesVideoEditStream

        return ShapesVideoEditStream(seed, data_cfg.frames, data_cfg.resolution)
    if data_cfg.kind == "shapes_edit":
        return ShapesEditStream(seed, data_cfg.resolution, data_cfg.edit_types)
    raise BygError(f"data.kind: unknown kind '{data_cfg.kind}'")
