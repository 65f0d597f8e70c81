"""Whole tensors from FSDP-sharded ones and back, so checkpoints hold unsharded weights and optimizer state
(they resume on any number of processes, sharded or not). Plain tensors pass through unchanged.
Gathering and scattering are collectives: every process calls these in the same order."""

from __future__ import annotations

import torch


def _dtensor():
    try:
        from torch.distributed.tensor import DTensor
    except ImportError:  # pragma: no cover - torch without distributed
        return None
    return DTensor


def is_sharded(t) -> bool:
    dt = _dtensor()
    return dt is not None and isinstance(t, dt)


def full(t: torch.Tensor) -> torch.Tensor:
    """The whole tensor (gathered when sharded)."""
    return t.full_tensor() if is_sharded(t) else t


def like(param: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """`value` (a whole tensor) laid out like `param`: sharded the same way when `param` is sharded."""
    if not is_sharded(param):
        return value
    from torch.distributed.tensor import distribute_tensor

    return distribute_tensor(value.to(param.device, param.dtype), param.device_mesh, param.placements)


def optimizer_state_full(optimizer: torch.optim.Optimizer) -> dict:
    """optimizer.state_dict() with every sharded state tensor gathered (in parameter order)."""
    sd = optimizer.state_dict()
    for index in sorted(sd["state"]):
        entry = sd["state"][index]
        for key in sorted(entry):
            if is_sharded(entry[key]):
                entry[key] = full(entry[key]).cpu()
    return sd


def shard_optimizer_state(optimizer: torch.optim.Optimizer) -> None:
    """After load_state_dict from whole tensors: lay each parameter-shaped state tensor out like its parameter."""
    params = [p for group in optimizer.param_groups for p in group["params"]]
    for p in params:
        if not is_sharded(p) or p not in optimizer.state:
            continue
        entry = optimizer.state[p]
        for key in sorted(entry):
            v = entry[key]
            if torch.is_tensor(v) and not is_sharded(v) and tuple(v.shape) == tuple(p.shape):
                entry[key] = like(p, v.float() if v.is_floating_point() else v)
