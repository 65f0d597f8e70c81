"""The bootstrap rollout (Algorithm 1, lines 5-11): one no-grad Euler trajectory from noise."""

from __future__ import annotations

from typing import Callable

import torch

VelocityFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _bcast(s: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return s.view(-1, *([1] * (like.dim() - 1))).to(like.dtype)


@torch.no_grad()
def bootstrap(velocity_fn: VelocityFn, noise: torch.Tensor, grid: torch.Tensor, index: torch.Tensor
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """Integrate dy/ds = v(y, s) from s = 1 (y = noise) down the per-sample `grid` (B, K) to s = 0.

    Returns (y_t, y_0) from the same trajectory: y_t is the state at node `index[b]` (the pseudo noisy
    target at the training timestep) and y_0 the fully denoised end point (the clean estimate that the
    gradient routing conditions on). Zero-length steps are skipped when the whole batch has them.
    """
    y = noise
    y_t = torch.where(_bcast(index == 0, noise).bool(), noise, torch.zeros_like(noise))
    for k in range(grid.shape[1] - 1):
        s, s_next = grid[:, k], grid[:, k + 1]
        ds = s_next - s
        if bool((ds != 0).any()):
            y = y + _bcast(ds, y) * velocity_fn(y, s)
        y_t = torch.where(_bcast(index == k + 1, y).bool(), y, y_t)
    return y_t, y


@torch.no_grad()
def euler_sample(velocity_fn: VelocityFn, noise: torch.Tensor, sigmas: torch.Tensor,
                 callback: Callable[[int], None] | None = None) -> torch.Tensor:
    """Plain Euler sampling over a shared descending sigma grid (inference)."""
    y = noise
    b = noise.shape[0]
    for k in range(len(sigmas) - 1):
        s = sigmas[k].expand(b).to(noise)
        y = y + (sigmas[k + 1] - sigmas[k]).to(noise.dtype) * velocity_fn(y, s)
        if callback is not None:
            callback(k)
    return y
