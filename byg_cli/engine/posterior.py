"""The exact denoiser of a finite two-colour world: E[x | x_t] when x is one of K known silhouettes painted in a
known shape colour on a known background.

Flow matching regresses the network onto one sample's target, x (or v = eps - x), whose spread around the
posterior mean E[x | x_t] is largest at high noise, exactly where a text-to-image model decides its layout. Where
the data's support can be enumerated (the shapes world, given a caption), the posterior mean is computable and
the regression target can be the field itself: the same minimiser with none of the target's variance (the idea
of Xu et al. 2023, "Stable Target Field", made exact).

With x_i = bg + m_i (fg - bg) (m_i a 0/1 mask, fg and bg colours) and x_t = (1 - t) x + t eps:

    log p(i | x_t) = log pi_i - ||x_t - (1 - t) x_i||^2 / (2 t^2)
                   = log pi_i + (2 m_i . (r d) - |m_i| |d|^2) / (2 t^2) + const,

r = x_t - (1 - t) bg at each pixel and d = (1 - t)(fg - bg): one matrix product over the K masks.
"""

from __future__ import annotations

import torch


def two_colour_posterior_mean(x_t: torch.Tensor, t: float | torch.Tensor, masks: torch.Tensor,
                              log_prior: torch.Tensor, fg: torch.Tensor, bg: torch.Tensor,
                              t_min: float = 1e-4) -> torch.Tensor:
    """E[x | x_t] for one image.

    x_t (C, H, W) noisy pixels; masks (K, H*W) in {0, 1}; log_prior (K,); fg, bg (C,) colours in x's units.
    Computed in float64 (at low t the logits are large and the posterior is one mask)."""
    c, h, w = x_t.shape
    t = float(t)
    tt = max(t, t_min)
    m = masks.to(torch.float64)
    fg, bg = fg.to(torch.float64), bg.to(torch.float64)
    r = x_t.to(torch.float64).reshape(c, h * w) - (1.0 - t) * bg[:, None]  # (C, HW)
    d = (1.0 - t) * (fg - bg)  # (C,)
    rd = d @ r  # (HW,)
    logits = log_prior.to(torch.float64) + (2.0 * (m @ rd) - m.sum(1) * float(d @ d)) / (2.0 * tt * tt)
    weights = torch.softmax(logits, dim=0)
    coverage = weights @ m  # (HW,): P(pixel is painted | x_t)
    mean = bg[:, None] + coverage[None, :] * (fg - bg)[:, None]
    return mean.reshape(c, h, w).to(x_t.dtype)


def posterior_velocity(y_t: torch.Tensor, y0: torch.Tensor, y0_mean: torch.Tensor, eps: torch.Tensor,
                       t: torch.Tensor, t_min: float = 1e-4) -> torch.Tensor:
    """E[eps - y | y_t] = (y_t - E[y | y_t]) / t, written as (eps - y) + (y - E[y | y_t]) / t so that it equals the
    sample's own target to the last bit wherever the posterior is certain (low t)."""
    tt = t.to(y_t.dtype).clamp_min(t_min).view(-1, *([1] * (y_t.dim() - 1)))
    return (eps - y0) + (y0 - y0_mean) / tt
