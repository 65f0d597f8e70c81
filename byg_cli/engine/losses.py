"""Loss terms. All return one value per sample (shape (B,)); callers take the mean."""

from __future__ import annotations

import torch


def _flat(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(x.shape[0], -1).float()


def flow_loss(v: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error per sample: ||v - target||^2 averaged over the latent (Eq. 1, Eq. 3, L_id)."""
    return (_flat(v) - _flat(target)).pow(2).mean(dim=1)


def flow_weight(t: torch.Tensor, weighting: str = "velocity") -> torch.Tensor:
    """Per-sample weight of the flow loss at time t. "velocity": 1 (the error of v, as FLUX trains);
    "sample": t^2, which makes t^2 ||v - (eps - x)||^2 = ||x_hat - x||^2, the error of the clean sample
    x_hat = y_t - t v: high-noise times, where the layout is decided, weigh as much as the last details."""
    if weighting == "velocity":
        return torch.ones_like(t)
    if weighting == "sample":
        return t.pow(2)
    raise ValueError(f"unknown flow loss weighting {weighting!r} (velocity or sample)")


def directional_loss(v: torch.Tensor, v_src: torch.Tensor, v_tgt: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """1 - cos(v - v_src, v_tgt - v_src) per sample (Eq. 2): aligns the edit direction, not its size."""
    a = _flat(v) - _flat(v_src)
    b = _flat(v_tgt) - _flat(v_src)
    cos = (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1)).clamp_min(eps)
    return 1.0 - cos


def projected_directional_loss(v: torch.Tensor, v_src: torch.Tensor, v_tgt: torch.Tensor,
                                eps: float = 1e-8) -> torch.Tensor:
    """Huber(1 - c) per sample, c = <v - v_src, d> / |d|^2 with d = v_tgt - v_src (experimental, beside Eq. 2).

    c is how far the editor moves along the caption difference d, in units of the base's own move (1: as far).
    Only that one component is charged: what the editor does orthogonally to d (the source's layout, which the
    base's caption-conditioned mean cannot know at high noise) is free, where 1 - cos charges all of it. Huber
    (quadratic within 1 of c = 1, linear beyond) keeps a sample whose d is tiny from ruling the batch."""
    a = _flat(v) - _flat(v_src)
    b = _flat(v_tgt) - _flat(v_src)
    c = (a * b).sum(1) / b.pow(2).sum(1).clamp_min(eps)
    return torch.nn.functional.huber_loss(c, torch.ones_like(c), reduction="none", delta=1.0)


def prior_loss(v: torch.Tensor, v_src: torch.Tensor, v_tgt: torch.Tensor, alpha: float,
               directional: bool = True, direction: str = "cosine") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """L_prior = L_dir + alpha * ||v - v_tgt||^2, per sample, over the target latent only.

    Returns (total, dir, mse). L_dir is Eq. 2's cosine, or with direction="projection" the experimental
    `projected_directional_loss`. With directional=False (the "w/o directional loss" ablation) only the MSE
    anchor remains: total = alpha * mse.
    """
    mse = flow_loss(v, v_tgt)
    term = projected_directional_loss if direction == "projection" else directional_loss
    dirl = term(v, v_src, v_tgt) if directional else torch.zeros_like(mse)
    return dirl + alpha * mse, dirl, mse
