"""The backbone protocol shared by every model family, and the text-condition container."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Iterable, Optional, Protocol

import torch


@dataclass
class Cond:
    """Encoded text for a batch: a sequence embedding and (for FLUX) a pooled embedding."""

    embeds: torch.Tensor  # (B, S, D)
    pooled: Optional[torch.Tensor] = None  # (B, P)

    def __len__(self) -> int:
        return self.embeds.shape[0]

    def take(self, index: Iterable[int]) -> "Cond":
        idx = torch.as_tensor(list(index), dtype=torch.long, device=self.embeds.device)
        return Cond(**{f.name: (getattr(self, f.name).index_select(0, idx) if getattr(self, f.name) is not None
                                else None) for f in fields(self)})

    @staticmethod
    def cat(conds: list["Cond"]) -> "Cond":
        out = {}
        for f in fields(Cond):
            values = [getattr(c, f.name) for c in conds]
            out[f.name] = None if values[0] is None else torch.cat(values)
        return Cond(**out)

    def to(self, *args, **kwargs) -> "Cond":
        return Cond(**{f.name: (getattr(self, f.name).to(*args, **kwargs) if getattr(self, f.name) is not None
                                else None) for f in fields(self)})


class Backbone(Protocol):
    """What the engine, the trainer and the sampler need from a model family.

    Latents are unpacked tensors (B, C, H, W) for images, (B, C, F, H, W) for video; packing into tokens,
    timestep units, guidance and position ids are the backbone's own business.

    For training at scale a backbone also offers (see FluxBackbone): `cache_identity()` (hashes naming its
    encoders, for the on-disk cache), a settable `text_store` that `encode_text` consults first,
    `offload_encoders(device)`, `wrap_denoiser(wrap)` (DDP), `shard(fully_shard)` (FSDP2) and
    `compile_denoiser()` (torch.compile).
    """

    pixel_multiple: int  # image / frame sides must be multiples of this

    def encode_text(self, prompts: list[str]) -> Cond: ...

    def encode(self, pixels: torch.Tensor) -> torch.Tensor: ...

    def decode(self, latents: torch.Tensor) -> torch.Tensor: ...

    def velocity(self, y_t: torch.Tensor, t: torch.Tensor, cond: Cond, source: Optional[torch.Tensor] = None,
                 adapter: Optional[str] = "edit") -> torch.Tensor: ...

    def sigmas(self, steps: int, latent_shape: tuple[int, ...]) -> torch.Tensor: ...
