"""The on-disk cache of encoder outputs: VAE latents of images and text embeddings of prompts.

Each entry is one safetensors file under `ROOT/<kind>/<model identity>/<kk>/<key>.safetensors`, where the model
identity is a hash of the encoder's files (see `folder_identity`) and the key a hash of the content (the image
file's bytes and its target size; the prompt's text). A changed model or a changed image therefore misses the
cache, and runs that share the model and data share the entries. Entries are written under a temporary name
and renamed, so an interrupted fill leaves no half-written file and the next run continues it.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Iterable, Optional

import torch
from safetensors.torch import load_file, save_file

SMALL_FILE = 4 << 20  # files up to this size are hashed whole
EDGE = 1 << 20  # larger files (weights): size plus their first and last MiB


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def folder_identity(root: Path, subfolders: Iterable[str], extra: str = "") -> str:
    """A hash naming a model part: every file's relative path and content (whole for configs and tokenizers,
    size + first and last MiB for large weight files, which differ there whenever the weights differ)."""
    h = hashlib.sha256(extra.encode())
    root = Path(root)
    for sub in subfolders:
        folder = root / sub
        if not folder.is_dir():
            continue
        for f in sorted(p for p in folder.rglob("*") if p.is_file()):
            size = f.stat().st_size
            h.update(f"{f.relative_to(root).as_posix()}:{size}\n".encode())
            with open(f, "rb") as fh:
                if size <= SMALL_FILE:
                    h.update(fh.read())
                else:
                    h.update(fh.read(EDGE))
                    fh.seek(size - EDGE)
                    h.update(fh.read(EDGE))
    return h.hexdigest()[:24]


class TensorStore:
    """Key -> dict of tensors, one file per key, under ROOT/<kind>/<identity>/."""

    def __init__(self, root: Path, kind: str, identity: str):
        self.folder = Path(root) / kind / identity

    def path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.safetensors"

    def has(self, key: str) -> bool:
        return self.path(key).is_file()

    def get(self, key: str) -> Optional[dict[str, torch.Tensor]]:
        f = self.path(key)
        return load_file(str(f)) if f.is_file() else None

    def put(self, key: str, tensors: dict[str, torch.Tensor]) -> None:
        f = self.path(key)
        f.parent.mkdir(parents=True, exist_ok=True)
        tmp = f.with_name(f".{f.name}.{os.getpid()}.tmp")
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp))
        os.replace(tmp, f)


class TextStore(TensorStore):
    """Prompt -> (sequence embedding, pooled embedding or None), for a backbone's `text_store`."""

    def __init__(self, root: Path, identity: str):
        super().__init__(root, "text", identity)

    @staticmethod
    def key(prompt: str) -> str:
        return sha256_text(prompt)

    def get_many(self, prompts: list[str]) -> dict[str, tuple[torch.Tensor, Optional[torch.Tensor]]]:
        out = {}
        for p in prompts:
            entry = self.get(self.key(p))
            if entry is not None:
                out[p] = (entry["embeds"], entry.get("pooled"))
        return out

    def put_many(self, rows: dict[str, tuple[torch.Tensor, Optional[torch.Tensor]]]) -> None:
        for p, (embeds, pooled) in rows.items():
            self.put(self.key(p), {"embeds": embeds} if pooled is None else {"embeds": embeds, "pooled": pooled})


class LatentStore(TensorStore):
    """(image file, target width x height) -> VAE latent."""

    def __init__(self, root: Path, identity: str):
        super().__init__(root, "latents", identity)

    @staticmethod
    def key(file_digest: str, width: int, height: int) -> str:
        return sha256_text(f"{file_digest} {width}x{height} center-crop")
