"""The contract between the engine / trainer / sampler / exporter and a model family: the backbone protocol,
its capabilities record, the recipe keys every family shares, and the text-condition container. A family is a
backbone module that implements `Backbone` (byg_cli/models/flux.py, byg_cli/models/wan.py) and one module that
registers it with `byg_cli.models.registry.register_family` (flux_family.py, wan_family.py)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Callable, Iterable, Literal, Optional, Protocol

import torch
from pydantic import Field

from byg_cli.sections import Section


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


@dataclass(frozen=True)
class Capabilities:
    """What a family offers beyond the protocol's core; the trainer, sampler and CLI ask this record, never the
    family's name."""

    ddp_wrapper: bool = False  # gradient-carrying calls run through the module wrap_denoiser() wrapped (DDP)
    fsdp: bool = False  # shard() knows the denoiser's blocks (FSDP2)
    cache: bool = False  # cache_identity() names the codec and text encoders (the on-disk encoder cache)
    video: bool = False  # latents are (B, C, F, H, W) clips; `byg edit` takes video files
    samplers: tuple[str, ...] = ("euler",)  # inference samplers; the first is the default ("unipc": see below)


TRAINING_MODES = ("lora", "full")  # what an objective trains: the "edit" LoRA, or every weight of the base


class Backbone(Protocol):
    """What the engine, the trainer, the sampler and the exporter need from a model family.

    Latents are unpacked tensors (B, C, H, W) for images, (B, C, F, H, W) for video; packing into tokens,
    timestep units, guidance and position ids are the backbone's own business. One copy of the base weights
    serves G_t2i (`adapter=None`), G_edit ("edit" LoRA, trainable) and G_EMA ("ema" LoRA, frozen).
    """

    family: str
    capabilities: Capabilities
    codec: torch.nn.Module  # encode / decode; with `exact_codec`, latents are a rearrangement of pixels
    text_store: object  # an optional on-disk text-embedding store that encode_text consults first

    @property
    def pixel_multiple(self) -> int: ...  # image / frame sides must be multiples of this

    @property
    def exact_codec(self) -> bool: ...

    @property
    def device(self) -> torch.device: ...

    # the maths
    def encode_text(self, prompts: list[str]) -> Cond: ...

    def encode(self, pixels: torch.Tensor) -> torch.Tensor: ...

    def decode(self, latents: torch.Tensor) -> torch.Tensor: ...

    def velocity(self, y_t: torch.Tensor, t: torch.Tensor, cond: Cond, source: Optional[torch.Tensor] = None,
                 adapter: Optional[str] = "edit") -> torch.Tensor: ...

    def sigmas(self, steps: int, latent_shape: tuple[int, ...]) -> torch.Tensor: ...  # inference grid, ends at 0

    def multistep_scheduler(self, flow_shift: Optional[float] = None): ...  # "unipc" in capabilities.samplers

    def train_time_range(self) -> Optional[tuple[float, float]]: ...  # the t the trained weights own (None: all)

    # what is trained
    def add_adapters(self, rank: int, alpha: float, targets: Optional[tuple[str, ...]] = None) -> None: ...

    def trainable_parameters(self, mode: str, text_encoders: bool = False) -> list[tuple[str, torch.nn.Parameter]]:
        """mode "lora": the edit LoRA ("edit.<name>"); "full": the denoiser's weights and, with `text_encoders`,
        the text encoders' ("<folder>.<name>", the folder a saved base keeps them in)."""

    def set_adapter(self, name: str) -> None: ...

    def lora_parameters(self, adapter: str) -> list[torch.nn.Parameter]: ...

    def lora_state_dict(self, adapter: str) -> dict[str, torch.Tensor]: ...

    def load_lora_state_dict(self, adapter: str, state: dict[str, torch.Tensor]) -> None: ...

    def save_base(self, root: Path) -> None: ...  # the base model (no adapters) as a diffusers-layout folder

    # at scale
    def wrap_denoiser(self, wrap: Callable) -> torch.nn.Module: ...  # capabilities.ddp_wrapper; returns it

    def shard(self, fully_shard: Callable, device) -> None: ...  # capabilities.fsdp

    def compile_denoiser(self) -> None: ...

    def enable_gradient_checkpointing(self) -> None: ...

    def cache_identity(self) -> dict[str, str]: ...  # capabilities.cache

    def offload_encoders(self, device="cpu") -> None: ...


class CreateConfig(Section):
    """A tiny model created at model.path when that folder does not exist yet (the keys every family has)."""

    vocabulary: Literal["shapes", "default"] = Field(
        "shapes", description="the tokenizer's words: the recipe's shapes world, or a small default corpus")
    num_layers: int = Field(2, ge=0)
    num_heads: int = Field(4, ge=1)
    head_dim: int = Field(32, ge=4)
    text_dim: int = Field(64, ge=8)
    text_layers: int = Field(2, ge=1)
    max_text_length: int = Field(16, ge=4)
    pixel_patch: int = Field(2, ge=0, description="exact pixel codec factor; 0 = the family's tiny VAE")
    shift: float = Field(1.0, gt=0, description="sampling shift written to the scheduler config")
    seed: int = 0


class ModelConfig(Section):
    """The [model] keys every family has; a family's own section (FluxModelConfig, WanModelConfig) adds its own,
    and the recipe refuses another family's keys."""

    family: str = "flux"
    path: Path = Field(description="a local diffusers-format model folder")
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    lora_rank: int = Field(16, ge=1)
    lora_alpha: float = Field(16.0, gt=0)
    lora_targets: Optional[list[str]] = Field(None, min_length=1,
                                              description="LoRA target modules; default: the family's list")
    max_sequence_length: Optional[int] = Field(None, ge=1)
    gradient_checkpointing: bool = False
    train_text_encoder: bool = Field(False, description="t2i only: train the text encoders too")
    create: Optional[CreateConfig] = None  # each family narrows this to its own tiny-model section

    def lora_export_problem(self) -> Optional[str]:
        """Why a LoRA trained under these settings has no layout other tools read (None: it has one)."""
        return None


