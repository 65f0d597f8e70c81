"""Inference with any backbone: text-to-image generation (G_t2i) and editing (G_edit).

Samplers: plain Euler over the backbone's sigma grid (FLUX; the engine's rollouts always use Euler), or UniPC
through diffusers' UniPCMultistepScheduler with flow shift (Wan's default, `backbone.multistep_scheduler`).
The backbone's `capabilities.samplers` lists what it offers; `sampler="auto"` takes the first.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch

from byg_cli.engine.rollout import euler_sample
from byg_cli.errors import BygError


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
def unipc_sample(velocity_fn, noise: torch.Tensor, scheduler, steps: int,
                 callback: Optional[Callable[[int], None]] = None) -> torch.Tensor:
    """Multistep UniPC with a flow-prediction scheduler (a fresh scheduler object per trajectory).

    The velocity is queried at sigma = timestep / num_train_timesteps, so the model sees exactly the
    (integer) timesteps that diffusers' WanPipeline passes it.
    """
    scheduler.set_timesteps(steps, device=noise.device)
    scheduler.set_begin_index(0)
    scale = float(scheduler.config.num_train_timesteps)
    y, b = noise, noise.shape[0]
    for i, ts in enumerate(scheduler.timesteps):
        s = (ts.float() / scale).expand(b).to(noise.device)
        y = scheduler.step(velocity_fn(y, s).to(y.dtype), ts, y, return_dict=False)[0]
        if callback is not None:
            callback(i)
    return y


def resolve_sampler(model, sampler: str) -> str:
    offered = model.capabilities.samplers
    if sampler == "auto":
        return offered[0]
    if sampler not in offered:
        raise BygError(f"sampler '{sampler}' is not available for the {model.family} backbone "
                       f"(it offers {', '.join(offered)})")
    return sampler


@torch.no_grad()
def edit_latents(model, source: torch.Tensor, instructions: list[str], steps: int, seed: int = 0,
                 adapter: str = "edit", callback: Optional[Callable[[int], None]] = None, sampler: str = "euler",
                 flow_shift: Optional[float] = None) -> torch.Tensor:
    """Edit source latents (B, C, ...) following the instructions; returns edited latents."""
    cond = model.encode_text(list(instructions))
    noise = _noise(tuple(source.shape), seed, model.device)

    def velocity(y, s):
        return model.velocity(y, s, cond, source=source, adapter=adapter)

    if resolve_sampler(model, sampler) == "unipc":
        return unipc_sample(velocity, noise, model.multistep_scheduler(flow_shift), steps, callback)
    sigmas = model.sigmas(steps, tuple(source.shape[1:]))
    return euler_sample(velocity, noise, sigmas, callback)


@torch.no_grad()
def edit_pixels(model, pixels: torch.Tensor, instructions: list[str], steps: int, seed: int = 0,
                adapter: str = "edit", callback: Optional[Callable[[int], None]] = None, sampler: str = "euler",
                flow_shift: Optional[float] = None) -> torch.Tensor:
    """Pixels (B, 3, H, W) or videos (B, 3, F, H, W) in [-1, 1] -> edited pixels of the same layout."""
    source = model.encode(pixels)
    return model.decode(edit_latents(model, source, instructions, steps, seed, adapter, callback, sampler,
                                     flow_shift))
