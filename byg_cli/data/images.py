"""Image file <-> tensor conversion (tensors are (3, H, W) floats in [-1, 1])."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from byg_cli.errors import BygError


def load_image(path: Path, size: int | tuple[int, int] | None = None) -> Image.Image:
    try:
        img = Image.open(path)
        img.load()
    except Image.DecompressionBombError:
        raise BygError(f"{path}: refused, a decompression bomb (declares more than {Image.MAX_IMAGE_PIXELS:,} "
                       f"pixels)") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise BygError(f"{path}: cannot read image ({exc})") from None
    img = img.convert("RGB")
    if size is not None:
        w, h = (size, size) if isinstance(size, int) else size
        img = center_crop_resize(img, w, h)
    return img


def center_crop_resize(img: Image.Image, width: int, height: int) -> Image.Image:
    if img.size == (width, height):
        return img
    scale = max(width / img.width, height / img.height)
    resized = img.resize((max(width, round(img.width * scale)), max(height, round(img.height * scale))),
                         Image.Resampling.BICUBIC)
    left, top = (resized.width - width) // 2, (resized.height - height) // 2
    return resized.crop((left, top, left + width, top + height))


def to_tensor(img: Image.Image | np.ndarray) -> torch.Tensor:
    arr = np.asarray(img, dtype=np.float32)
    return torch.from_numpy(arr).permute(2, 0, 1) / 127.5 - 1.0


def to_pil(t: torch.Tensor) -> Image.Image:
    arr = ((t.detach().float().clamp(-1, 1) + 1.0) * 127.5).round().byte().permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(arr)
