"""Latent codecs: the exact pixel codec (space-to-depth) for small images, and diffusers' AutoencoderKL."""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F


class PixelCodec(torch.nn.Module):
    """Pixels in [-1, 1] <-> latents by space-to-depth with factor `patch`: exact and invertible."""

    def __init__(self, patch: int = 1, channels: int = 3):
        super().__init__()
        self.patch, self.channels = patch, channels

    @property
    def latent_channels(self) -> int:
        return self.channels * self.patch * self.patch

    @property
    def scale_factor(self) -> int:
        return self.patch

    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        return F.pixel_unshuffle(pixels, self.patch) if self.patch > 1 else pixels

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        return F.pixel_shuffle(latents, self.patch) if self.patch > 1 else latents

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "config.json").write_text(json.dumps({"_class_name": "PixelCodec", "patch": self.patch,
                                                         "channels": self.channels}, indent=2))

    @classmethod
    def load(cls, folder: Path) -> "PixelCodec":
        cfg = json.loads((folder / "config.json").read_text())
        return cls(patch=int(cfg.get("patch", 1)), channels=int(cfg.get("channels", 3)))


class VaeCodec(torch.nn.Module):
    """diffusers AutoencoderKL with FLUX's normalisation z = (mode - shift_factor) * scaling_factor."""

    def __init__(self, vae):
        super().__init__()
        self.vae = vae
        self.scaling = float(vae.config.scaling_factor)
        self.shift = float(vae.config.shift_factor or 0.0)

    @property
    def latent_channels(self) -> int:
        return int(self.vae.config.latent_channels)

    @property
    def scale_factor(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @torch.no_grad()
    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        z = self.vae.encode(pixels.to(self.vae.dtype)).latent_dist.mode()
        return (z - self.shift) * self.scaling

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        z = latents / self.scaling + self.shift
        return self.vae.decode(z.to(self.vae.dtype)).sample
