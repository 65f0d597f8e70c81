"""Training datasets: edit records from disk (any source) and the shapes world's endless on-the-fly streams.

Pixels are float tensors (3, H, W) in [-1, 1]. Every item is a dict with "pixels" and the record's texts
(src_caption, instruction, tgt_caption, reverse_instruction, edit_type), plus "target_pixels" when a ground
truth is known (shapes-world records; only the supervised baseline and evaluation read it).

The streams are pure functions of (seed, index): `item(index)` can be called in any order, and iterating from
`start=` continues a stream exactly where a run that stopped at that index left off. With several DataLoader
workers, worker w of n takes the indices start + w, start + w + n, ..., so the indices consumed form one
contiguous range only after a multiple of n batches; a trainer that needs exact resumption at any step should
call `item(index)` itself (as `byg_cli.data.sources` does).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Iterator, Optional

import torch
from torch.utils.data import Dataset, IterableDataset, get_worker_info

from byg_cli.data.images import load_image, to_tensor
from byg_cli.data.records import TEXT_FIELDS, read_records
from byg_cli.data.shapes import DEFAULT_IMAGE_SIZE, caption_for_index, render
from byg_cli.data.shapes_edits import edit_for_index
from byg_cli.errors import BygError


def load_pixels(path: Path, size: Optional[int | tuple[int, int]] = None) -> torch.Tensor:
    """An image file as (3, H, W) in [-1, 1], centre-cropped to the aspect ratio of `size` (an int: square; a
    (width, height): aspect-ratio buckets) and resized when it differs."""
    return to_tensor(load_image(path, size))


class EditDataset(Dataset):
    """Edit records from a JSONL file (shapes world or real data); image paths are relative to the file's folder."""

    def __init__(self, records_path: Path, size: Optional[int] = None):
        self.path = Path(records_path)
        self.root = self.path.parent
        self.size = size
        self.sizes: Optional[list[tuple[int, int]]] = None  # per-record (width, height): aspect-ratio buckets
        self.records = read_records(self.path)
        if not self.records:
            raise BygError(f"{self.path}: contains no records")
        videos = [r.media for r in self.records if r.media_kind != "image"]
        if videos:
            raise BygError(f"{self.path}: EditDataset reads image records; found video record(s) e.g. {videos[0]}")

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict[str, Any]:
        rec = self.records[index]
        item: dict[str, Any] = {k: getattr(rec, k) for k in TEXT_FIELDS}
        size = self.size_of(index)
        item["pixels"] = load_pixels(rec.media_path(self.root), size)
        tpath = self.target_path(index)
        if tpath is not None:
            item["target_pixels"] = load_pixels(tpath, size)
        return item

    def size_of(self, index: int) -> Optional[int | tuple[int, int]]:
        return self.sizes[index] if self.sizes is not None else self.size

    def target_path(self, index: int) -> Optional[Path]:
        target = self.records[index].extra.get("target_image")
        if not target:
            return None
        return Path(target) if Path(target).is_absolute() else self.root / target


class GeneratedItems:
    """A training source whose item i is made from i: no records behind it (`dataset`), no batches of its own
    (`batch_items`; see byg_cli.data.sources.Source)."""

    dataset = None

    def batch_items(self, k: int) -> None:
        return None


class _IndexedStream(GeneratedItems, IterableDataset):
    """An endless stream whose item i is `self.item(i)` (each subclass defines `item`); iteration starts at
    `start`."""

    def __init__(self, seed: int, start: int = 0):
        if seed < 0 or start < 0:
            raise ValueError(f"seed and start must be >= 0, got seed={seed}, start={start}")
        self.seed, self.start = seed, start

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        index = self.start + worker
        while True:
            yield self.item(index)
            index += workers


class ShapesEditStream(_IndexedStream):
    """Endless random shapes-world edits; item i equals record i of `write_shapes_dataset` with the same seed."""

    def __init__(
        self,
        seed: int,
        size: int = DEFAULT_IMAGE_SIZE,
        edit_types: Optional[Iterable[str]] = None,
        split: str = "train",
        start: int = 0,
    ):
        super().__init__(seed, start)
        self.size, self.split = size, split
        self.edit_types = tuple(edit_types) if edit_types else None

    def item(self, index: int) -> dict[str, Any]:
        edit = edit_for_index(self.seed, index, self.edit_types, self.split, self.size)
        return {
            "index": index,
            "pixels": to_tensor(render(edit.source, self.size)),
            "target_pixels": to_tensor(render(edit.target, self.size)),
            "src_caption": edit.src_caption,
            "instruction": edit.instruction,
            "tgt_caption": edit.tgt_caption,
            "reverse_instruction": edit.reverse_instruction,
            "edit_type": edit.edit_type,
        }


class ShapesCaptionStream(_IndexedStream):
    """Endless (image, caption) pairs for text-to-image pretraining.

    `empty_fraction` of them are empty canvases ("a plain blue background"): the base must draw those too, since
    they are the target captions of remove edits (and the sources of add edits) that the byg prior queries.
    Item i shows `caption_for_index(seed, i, size, empty_fraction)`.
    """

    def __init__(self, seed: int, size: int = DEFAULT_IMAGE_SIZE, start: int = 0, empty_fraction: float = 0.1):
        super().__init__(seed, start)
        self.size, self.empty_fraction = size, empty_fraction

    def item(self, index: int) -> dict[str, Any]:
        attrs, text = caption_for_index(self.seed, index, self.size, self.empty_fraction)
        return {"index": index, "pixels": to_tensor(render(attrs, self.size)), "caption": text,
                "attributes": attrs.to_json()}
