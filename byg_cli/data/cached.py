"""Edit records whose images and texts come from the on-disk encoder cache (byg_cli.cache) instead of the VAE
and text encoders: `fill_cache` encodes what is missing (split over processes), `CachedEditDataset` serves
items with "latents" ("target_latents") and the record's texts, and never opens an image file."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable, Optional

import torch

from byg_cli.cache import LatentStore, TextStore, sha256_file
from byg_cli.data.dataset import EditDataset, load_pixels
from byg_cli.data.records import TEXT_FIELDS

PROMPT_FIELDS = ("src_caption", "instruction", "tgt_caption", "reverse_instruction")


class CachedEditDataset:
    def __init__(self, dataset: EditDataset, store: LatentStore, keys: list[str], target_keys: list[Optional[str]]):
        self.dataset, self.store, self.keys, self.target_keys = dataset, store, keys, target_keys
        self.records = dataset.records

    def __len__(self) -> int:
        return len(self.keys)

    def __getitem__(self, index: int) -> dict[str, Any]:
        rec = self.records[index]
        item: dict[str, Any] = {k: getattr(rec, k) for k in TEXT_FIELDS}
        item["latents"] = self.store.get(self.keys[index])["latents"]
        if self.target_keys[index] is not None:
            item["target_latents"] = self.store.get(self.target_keys[index])["latents"]
        return item


class FileDigests:
    """sha256 of image files, remembered by (path, size, mtime) in a JSON file so later runs do not re-read them."""

    def __init__(self, path: Path):
        self.path = path
        try:
            self.known = json.loads(path.read_text()) if path.is_file() else {}
        except (OSError, ValueError):
            self.known = {}
        self.changed = False

    def __call__(self, file: Path) -> str:
        st = file.stat()
        name = str(file.resolve())
        entry = self.known.get(name)
        if entry and entry[0] == st.st_size and entry[1] == st.st_mtime_ns:
            return entry[2]
        digest = sha256_file(file)
        self.known[name] = [st.st_size, st.st_mtime_ns, digest]
        self.changed = True
        return digest

    def save(self) -> None:
        if self.changed:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(self.known))
            os.replace(tmp, self.path)


def _size_wh(size, resolution: int) -> tuple[int, int]:
    if size is None:
        return resolution, resolution
    return (size, size) if isinstance(size, int) else tuple(size)


def fill_cache(dataset: EditDataset, model, cache_dir: Path, *, batch_size: int = 8, rank: int = 0, world: int = 1,
               barrier: Callable[[], None] = lambda: None, extra_prompts: tuple[str, ...] = (),
               progress: Optional[Callable[[str, int, int], None]] = None) -> tuple[CachedEditDataset, dict]:
    """Encode the records' images and prompts that the cache lacks (each process a share), wait for all, attach
    the text store to the model and return the cached dataset and counts {"latents": (new, total), ...}."""
    identity = model.cache_identity()
    latents = LatentStore(cache_dir, identity["latents"])
    texts = TextStore(cache_dir, identity["text"])
    resolution = dataset.size or 0
    digests = FileDigests(Path(cache_dir) / "file_digests.json")

    def key_of(path: Path, index: int) -> str:
        w, h = _size_wh(dataset.size_of(index), resolution)
        return LatentStore.key(digests(path), w, h)

    keys, target_keys, todo = [], [], {}
    for i, rec in enumerate(dataset.records):
        path = rec.media_path(dataset.root)
        keys.append(key_of(path, i))
        todo.setdefault(keys[-1], (path, dataset.size_of(i)))
        tpath = dataset.target_path(i)
        target_keys.append(key_of(tpath, i) if tpath is not None else None)
        if tpath is not None:
            todo.setdefault(target_keys[-1], (tpath, dataset.size_of(i)))
    if rank == 0:
        digests.save()
    missing = sorted(k for k in todo if not latents.has(k))
    mine = missing[rank::world]
    by_size: dict[Any, list[str]] = {}
    for k in mine:
        by_size.setdefault(todo[k][1], []).append(k)
    done = 0
    for size, group in by_size.items():
        for s in range(0, len(group), batch_size):
            chunk = group[s:s + batch_size]
            pixels = torch.stack([load_pixels(todo[k][0], size) for k in chunk])
            with torch.no_grad():
                z = model.encode(pixels).cpu()
            for k, zi in zip(chunk, z):
                latents.put(k, {"latents": zi.clone()})
            done += len(chunk)
            if progress:
                progress("latents", done, len(mine))

    prompts = sorted({getattr(rec, f) for rec in dataset.records for f in PROMPT_FIELDS} | set(extra_prompts))
    prompt_missing = [p for p in prompts if not texts.has(TextStore.key(p))]
    my_prompts = prompt_missing[rank::world]
    model.text_store = texts
    model.text_cache_size = min(model.text_cache_size, 256)  # the disk store serves the rest (T5: 4 MB a prompt)
    for s in range(0, len(my_prompts), batch_size):
        model.encode_text(my_prompts[s:s + batch_size])  # computes and writes them to the store
        if progress:
            progress("text", min(s + batch_size, len(my_prompts)), len(my_prompts))
    barrier()
    counts = {"latents": (len(missing), len(todo)), "text": (len(prompt_missing), len(prompts))}
    return CachedEditDataset(dataset, latents, keys, target_keys), counts
