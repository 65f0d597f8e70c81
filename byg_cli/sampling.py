"""Inference with any backbone: text-to-image generation (G_t2i) and editing (G_edit), plain Euler."""

from __future__ import annotations

from typing import Callable, Optional

import torch

from byg_cli.engine.rollout import euler_sample


def _noise(shape: tuple[int, ...], seed: int, device, dtype=torch.float32) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g).to(device, dtype)


@torch.no_grad()
def generate(model, prompts: list[str], latent_shape: tuple[int, ...], steps: int, seed: int = 0,
             callback: Optional[Callable[[int], None]] = None) -> torch.Tensor:
    """Text-to-image with the frozen base: returns decoded pixels (B, 3, H, W) in [-1, 1]."""
    cond = model.encode_text(list(prompts))
    noise = _noise((len(prompts), *latent_shape), seed, model.device)
    sigmas = model.sigmas(steps, latent_shape)
    y = euler_sample(lambda y, s: model.velocity(y, s, cond, source=None, adapter=None), noise, sigmas, callback)
    return model.decode(y)


@torch.no_grad()
def edit_latents(model, source: torch.Tensor, instructions: list[str], steps: int, seed: int = 0,
                 adapter: str = "edit", callback: Optional[Callable[[int], None]] = None) -> torch.Tensor:
    """Edit source latents (B, C, ...) following the instructions; returns edited latents."""
    cond = model.encode_text(list(instructions))
    noise = _noise(tuple(source.shape), seed, model.device)
    sigmas = model.sigmas(steps, tuple(source.shape[1:]))
    return euler_sample(lambda y, s: model.velocity(y, s, cond, source=source, adapter=adapter), noise, sigmas,
                        callback)


@torch.no_grad()
def edit_pixels(model, pixels: torch.Tensor, instructions: list[str], steps: int, seed: int = 0,
                adapter: str = "edit", callback: Optional[Callable[[int], None]] = None) -> torch.Tensor:
    source = model.encode(pixels)
    return model.decode(edit_latents(model, source, instructions, steps, seed, adapter, callback))
