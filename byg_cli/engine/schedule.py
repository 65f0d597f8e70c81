"""Timesteps and sigma grids. Convention: t in [0, 1], t = 0 is clean data, t = 1 is pure noise."""

from __future__ import annotations

import math

import torch


def time_shift(t: torch.Tensor, shift: float) -> torch.Tensor:
    """The SD3/FLUX resolution shift: t -> shift * t / (1 + (shift - 1) * t). shift > 1 biases toward noise."""
    if shift == 1.0:
        return t
    return shift * t / (1.0 + (shift - 1.0) * t)


def exp_time_shift(t: torch.Tensor, mu: float) -> torch.Tensor:
    """FLUX's dynamic shift: exp(mu) / (exp(mu) + (1/t - 1)); equals time_shift(t, exp(mu))."""
    return time_shift(t, math.exp(mu))


def sample_uniform(n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    return torch.rand(n, generator=generator)


def sample_logit_normal(
    n: int, mean: float = 0.0, std: float = 1.0, shift: float = 1.0, generator: torch.Generator | None = None
) -> torch.Tensor:
    """sigmoid(N(mean, std)), then the resolution shift (Esser et al. 2024; the paper's video setup uses shift 12)."""
    u = torch.sigmoid(mean + std * torch.randn(n, generator=generator))
    return time_shift(u, shift)


class TimestepSampler:
    """Draws training timesteps in (0, 1) according to a recipe's `timesteps` table."""

    def __init__(self, kind: str = "uniform", mean: float = 0.0, std: float = 1.0, shift: float = 1.0,
                 t_min: float = 1e-3, t_max: float = 1.0, window: tuple[float, float] | None = None):
        if kind not in ("uniform", "logit_normal"):
            raise ValueError(f"unknown timestep sampler {kind!r}")
        self.kind, self.mean, self.std, self.shift = kind, mean, std, shift
        self.t_min, self.t_max = t_min, t_max
        self.window = window  # (lo, hi): draws are mapped affinely into [lo, hi] (one Wan2.2 expert's range)

    def __call__(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        if self.kind == "uniform":
            t = time_shift(sample_uniform(n, generator), self.shift)
        else:
            t = sample_logit_normal(n, self.mean, self.std, self.shift, generator)
        if self.window is not None:
            lo, hi = self.window
            t = lo + (hi - lo) * t
        return t.clamp(self.t_min, self.t_max)


def sigma_grid(steps: int, shift: float = 1.0) -> torch.Tensor:
    """The inference grid: `steps + 1` descending nodes from 1 to 0 (uniform in t, then shifted)."""
    if steps < 1:
        raise ValueError("steps must be >= 1")
    return time_shift(torch.linspace(1.0, 0.0, steps + 1), shift)


def rollout_grid(steps: int | torch.Tensor, t: torch.Tensor, shift: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample rollout grids: a grid from 1 to 0 with each sample's t inserted as a node. `steps` is the
    number of steps of `sigma_grid(steps, shift)`, or the descending base grid itself (e.g. the backbone's
    inference grid, `Backbone.sigmas`).

    Returns (grid, index): grid is (B, len(base) + 1) descending to 0, and grid[b, index[b]] == t[b].
    When t already is a node, the grid gets a zero-length step next to it (a no-op Euler step), so every
    sample keeps the same number of nodes and the batch stays one tensor.
    """
    base = (steps if isinstance(steps, torch.Tensor) else sigma_grid(steps, shift)).to(t)
    b, n = t.shape[0], base.shape[0]
    nodes = torch.cat([base.expand(b, -1), t[:, None]], dim=1)
    grid, order = torch.sort(nodes, dim=1, descending=True, stable=True)
    index = (order == n).float().argmax(dim=1)
    return grid, index


def lr_factor(step: int, warmup: int = 0, decay: int = 0, steps: int = 0) -> float:
    """Learning-rate multiplier at optimizer step `step` (0-based): linear warm-up over the first `warmup` steps,
    constant, then a linear decay to zero over the last `decay` of `steps` steps (the last step keeps 1/decay)."""
    factor = min(1.0, (step + 1) / warmup) if warmup else 1.0
    if decay:
        factor = min(factor, max(0.0, (steps - step) / decay))
    return factor
