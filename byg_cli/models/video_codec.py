"""An exact, invertible pixel codec for videos with Wan's latent layout (the video shapes world's tiny base).

Like Wan's VAE it keeps the first frame on its own and packs every following group of `temporal` frames into one
latent frame, so F = temporal * k + 1 frames become k + 1 latent frames; space is packed by space-to-depth with
factor `patch`. The first latent frame holds the first frame repeated `temporal` times (decoding takes the mean
of the copies, which is exact on encoded latents). Latents: (B, 3 * temporal * patch^2, k + 1, H / patch,
W / patch).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F


class VideoPixelCodec(torch.nn.Module):
    def __init__(self, patch: int = 2, temporal: int = 4, channels: int = 3):
        super().__init__()
        self.patch, self.temporal, self.channels = int(patch), int(temporal), int(channels)

    @property
    def latent_channels(self) -> int:
        return self.channels * self.temporal * self.patch * self.patch

    @property
    def scale_factor(self) -> int:
        return self.patch

    @property
    def temporal_factor(self) -> int:
        return self.temporal

    def _space(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, C, F, H, W) -> (B, C p^2, F, H/p, W/p)."""
        b, c, f, h, w = frames.shape
        x = frames.permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w)
        x = F.pixel_unshuffle(x, self.patch) if self.patch > 1 else x
        return x.reshape(b, f, -1, h // self.patch, w // self.patch).permute(0, 2, 1, 3, 4)

    def _unspace(self, latents: torch.Tensor) -> torch.Tensor:
        b, c, f, h, w = latents.shape
        x = latents.permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w)
        x = F.pixel_shuffle(x, self.patch) if self.patch > 1 else x
        return x.reshape(b, f, -1, h * self.patch, w * self.patch).permute(0, 2, 1, 3, 4)

    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        if pixels.dim() != 5:
            raise ValueError(f"expected videos (B, 3, F, H, W); got shape {tuple(pixels.shape)}")
        b, c, f, h, w = pixels.shape
        t = self.temporal
        if (f - 1) % t:
            raise ValueError(f"a clip needs {t}k+1 frames for temporal factor {t}; got {f}")
        first = pixels[:, :, :1].expand(b, c, t, h, w)
        groups = torch.cat([first, pixels[:, :, 1:]], dim=2)  # (B, C, t (k + 1), H, W)
        k1 = groups.shape[2] // t
        x = groups.reshape(b, c, k1, t, h, w).permute(0, 3, 1, 2, 4, 5).reshape(b, t * c, k1, h, w)
        return self._space(x)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        x = self._unspace(latents)  # (B, t C, k + 1, H, W)
        b, tc, k1, h, w = x.shape
        t, c = self.temporal, self.channels
        groups = x.reshape(b, t, c, k1, h, w).permute(0, 2, 3, 1, 4, 5)  # (B, C, k + 1, t, H, W)
        first = groups[:, :, 0].mean(dim=2, keepdim=True)
        rest = groups[:, :, 1:].reshape(b, c, (k1 - 1) * t, h, w)
        return torch.cat([first, rest], dim=2)

    def save(self, folder: Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "config.json").write_text(json.dumps(
            {"_class_name": "VideoPixelCodec", "patch": self.patch, "temporal": self.temporal,
             "channels": self.channels}, indent=2))

    @classmethod
    def load(cls, folder: Path) -> "VideoPixelCodec":
        cfg = json.loads((Path(folder) / "config.json").read_text())
        return cls(int(cfg.get("patch", 2)), int(cfg.get("temporal", 4)), int(cfg.get("channels", 3)))
