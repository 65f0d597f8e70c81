"""Exponential moving average over paired parameter lists (the adapter weights only)."""

from __future__ import annotations

from typing import Sequence

import torch


@torch.no_grad()
def ema_update(ema_params: Sequence[torch.Tensor], params: Sequence[torch.Tensor], decay: float) -> None:
    """ema <- decay * ema + (1 - decay) * param, in place."""
    if len(ema_params) != len(params):
        raise ValueError("EMA and model parameter lists differ in length")
    if not ema_params:
        return
    torch._foreach_lerp_(list(ema_params), [p.detach() for p in params], 1.0 - decay)

