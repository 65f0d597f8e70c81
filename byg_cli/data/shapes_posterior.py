"""The shapes world's exact denoiser: given a caption's attributes, every image it can show is known.

A caption fixes shape, style, colour and background; `sample_geometry` then draws the size uniformly and the
bounding box's corner uniformly on whole pixels. So the images behind one caption are the K silhouettes of that
(shape, style) at every size and position, each with its sampling probability, and E[x | x_t, caption] is exact
(`byg_cli.engine.posterior`). `objective.target = "posterior"` trains the base on it.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

from byg_cli.data.shapes import (DEFAULT_IMAGE_SIZE, PALETTE, SHAPES, STYLES, Attributes, corner_range, shape_mask,
                                 size_range)
from byg_cli.data.images import to_tensor
from byg_cli.engine.posterior import two_colour_posterior_mean


def _colour(name: str) -> torch.Tensor:
    """A palette colour in the training pixels' units, (3,)."""
    return to_tensor(np.full((1, 1, 3), PALETTE[name], dtype=np.uint8))[:, 0, 0].double()


class ShapesPosterior:
    """E[x | x_t, attributes] for batches of shapes-world captions (pixels in [-1, 1])."""

    def __init__(self, image_size: int = DEFAULT_IMAGE_SIZE):
        self.image_size = image_size
        lo, hi = size_range(image_size)
        self.geometry: list[tuple[float, float, int]] = []
        log_prior: list[float] = []
        for size in range(lo, hi + 1):
            corners = corner_range(size, image_size)
            for y0 in corners:
                for x0 in corners:
                    self.geometry.append((x0 + size / 2, y0 + size / 2, size))
                    log_prior.append(-math.log(hi - lo + 1) - 2 * math.log(len(corners)))
        self.log_prior = torch.tensor(log_prior, dtype=torch.float64)
        self._masks: dict[tuple[str, str], torch.Tensor] = {}

    def __len__(self) -> int:
        """Images per caption (sizes x positions)."""
        return len(self.geometry)

    def masks(self, shape: str, style: str) -> torch.Tensor:
        """(K, H*W) float64 0/1 masks of every size and position, in `self.geometry`'s order (built once)."""
        key = (shape, style)
        if key not in self._masks:
            if shape not in SHAPES or style not in STYLES:
                raise ValueError(f"no shapes-world silhouettes for shape {shape!r}, style {style!r}")
            n = self.image_size
            rows = [shape_mask(Attributes(shape, "red", "blue", style, cx, cy, size), n).reshape(-1)
                    for cx, cy, size in self.geometry]
            self._masks[key] = torch.from_numpy(np.stack(rows)).to(torch.float64)
        return self._masks[key]

    def __call__(self, x_t: torch.Tensor, t: torch.Tensor, attributes: Sequence[Attributes | dict]) -> torch.Tensor:
        """E[x | x_t] per image: x_t (B, 3, H, W), t (B,), one caption's attributes per image."""
        out = torch.empty_like(x_t)
        for i, attrs in enumerate(attributes):
            a = attrs if isinstance(attrs, Attributes) else Attributes.from_json(attrs)
            bg = _colour(a.background)
            if not a.has_shape:  # an empty canvas: one image
                out[i] = bg.to(x_t.dtype)[:, None, None].expand_as(x_t[i])
                continue
            out[i] = two_colour_posterior_mean(x_t[i], t[i], self.masks(a.shape, a.style), self.log_prior,
                                               _colour(a.color), bg)
        return out
