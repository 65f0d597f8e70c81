"""Gradient routing by straight-through estimation (Eq. 4)."""

import torch


def ste_route(clean: torch.Tensor, one_step: torch.Tensor) -> torch.Tensor:
    """sg(clean) + (one_step - sg(one_step)).

    The forward value is the clean multi-step estimate y~_0 (what the reverse pass sees, matching inference);
    the gradient flows only into the blurry one-step prediction y_hat (what the model learns through).
    """
    return clean.detach() + (one_step - one_step.detach())
