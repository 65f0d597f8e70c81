"""Parts every family's backbone uses, as mixins (no family inherits from another):

- `LoraAdapters`: the "edit" (trainable) and "ema" (frozen) LoRA pair on the family's denoiser module(s);
- `CachedText`: text encoding through a bounded in-memory cache and an optional on-disk store;
- `CodecCalls`: encode / decode through the codec on its own device, the base weights' device and dtype, and
  train mode for only what is trained.

A backbone using them has `transformer` (its first denoiser module), `codec`, `text` (prompts -> Cond) and says
which modules carry the LoRA in `adapter_modules()`.
"""

from __future__ import annotations

import warnings
from collections import OrderedDict
from typing import Optional

import torch

from byg_cli.errors import BygError
from byg_cli.models.base import Cond


class LoraAdapters:
    """"edit" and "ema" LoRAs on every module of the backbone's own `adapter_modules()` ({name: module}: each family
    defines it); parameter names carry the module's name as a prefix when `adapter_names_prefixed` (several
    modules), else the module's own names."""

    adapter_names_prefixed = False
    _active: Optional[str] = None

    def add_adapters(self, rank: int, alpha: float, targets: Optional[tuple[str, ...]] = None,
                     dropout: float = 0.0) -> None:
        """Attach the trainable "edit" and the frozen "ema" LoRA (default targets: the family's list); "edit" is
        active and trainable, both are fp32 whatever the base's dtype, and the EMA starts equal to "edit"."""
        from peft import LoraConfig

        for module in self.adapter_modules().values():
            for name in ("edit", "ema"):
                cfg = LoraConfig(r=rank, lora_alpha=alpha, target_modules=list(targets or self.default_lora_targets),
                                 lora_dropout=dropout, init_lora_weights=True)
                with warnings.catch_warnings():  # peft warns on purpose about a second adapter on one model
                    warnings.filterwarnings("ignore", message="Already found a `peft_config`")
                    module.add_adapter(cfg, adapter_name=name)
        self._active = None
        self.set_adapter("edit")  # peft makes the most recently added adapter trainable: "edit" is the one
        for p in self.lora_parameters("edit") + self.lora_parameters("ema"):
            p.data = p.data.float()
        with torch.no_grad():
            for e, p in zip(self.lora_parameters("ema"), self.lora_parameters("edit")):
                e.copy_(p)

    @property
    def has_adapters(self) -> bool:
        return any(getattr(m, "peft_config", None) for m in self.adapter_modules().values())

    def set_adapter(self, name: str) -> None:
        if self._active != name:  # peft makes the adapter it activates trainable: the EMA never is
            for module in self.adapter_modules().values():
                module.set_adapter(name)
            self._active = name
            for p in self.lora_parameters("ema"):  # (a walk over all modules: only on a switch, not every call)
                p.requires_grad_(False)

    def lora_named_parameters(self, adapter: str) -> list[tuple[str, torch.nn.Parameter]]:
        token = f".{adapter}."
        return [(f"{key}.{n}" if self.adapter_names_prefixed else n, p)
                for key, module in self.adapter_modules().items()
                for n, p in module.named_parameters() if "lora_" in n and token in n]

    def lora_parameters(self, adapter: str) -> list[torch.nn.Parameter]:
        return [p for _, p in self.lora_named_parameters(adapter)]

    def lora_state_dict(self, adapter: str) -> dict[str, torch.Tensor]:
        """Whole (unsharded) LoRA tensors; with an FSDP-sharded denoiser every process must call this."""
        from byg_cli.distributed import full

        token = f".{adapter}."
        return {n.replace(token, "."): full(p.detach()).clone() for n, p in self.lora_named_parameters(adapter)}

    def load_lora_state_dict(self, adapter: str, state: dict[str, torch.Tensor]) -> None:
        from byg_cli.distributed import like

        token = f".{adapter}."
        params = dict(self.lora_named_parameters(adapter))
        wanted = {n.replace(token, "."): n for n in params}
        missing = sorted(set(wanted) - set(state))
        if missing:
            raise BygError(f"LoRA weights lack {len(missing)} tensor(s), e.g. {missing[0]}")
        with torch.no_grad():
            for key, name in wanted.items():
                params[name].copy_(like(params[name], state[key]))

    def adapter_kwargs(self, adapter: Optional[str]) -> Optional[dict]:
        """Activate `adapter` for the next denoiser call; for None (G_t2i) the LoRA scale-0 call arguments."""
        if not self.has_adapters:
            return None
        if adapter is None:
            return {"scale": 0.0}
        self.set_adapter(adapter)
        return None


class CachedText:
    """encode_text through an LRU of recent prompts and the optional on-disk `text_store` (the encoder cache);
    trainable text encoders (t2i with model.train_text_encoder) are always run."""

    text_store = None
    text_trainable = False
    text_cache_size = 4096

    def encode_text(self, prompts: list[str]) -> Cond:
        if self.text_trainable:
            return self.text(prompts)
        cache = self.__dict__.setdefault("_text_cache", OrderedDict())
        missing = [p for p in dict.fromkeys(prompts) if p not in cache]
        rows: dict[str, tuple[torch.Tensor, Optional[torch.Tensor]]] = {}
        if missing and self.text_store is not None:
            rows.update(self.text_store.get_many(missing))
            missing = [p for p in missing if p not in rows]
        if missing:
            with torch.no_grad():
                enc = self.text(missing)
            computed = {p: (enc.embeds[i], None if enc.pooled is None else enc.pooled[i]) for i, p in enumerate(missing)}
            if self.text_store is not None:
                self.text_store.put_many(computed)
            rows.update(computed)
        for p, row in rows.items():
            cache[p] = row
            if len(cache) > self.text_cache_size:
                cache.popitem(last=False)
        found = [rows[p] if p in rows else cache[p] for p in prompts]
        for p in prompts:
            if p in cache:
                cache.move_to_end(p)
        pooled = None if found[0][1] is None else torch.stack([r[1] for r in found])
        return Cond(embeds=torch.stack([r[0] for r in found]), pooled=pooled)


class CodecCalls:
    """The codec on its own device (it may be offloaded), the base weights' device and dtype, train mode."""

    def _codec_device(self) -> torch.device:
        return next((p.device for p in self.codec.parameters()), self.device)

    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.codec.encode(pixels.to(self._codec_device(), self.dtype)).to(self.device)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        return self.codec.decode(latents.to(self._codec_device(), self.dtype)).float().clamp(-1, 1)

    @property
    def exact_codec(self) -> bool:
        from byg_cli.models.codecs import PixelCodec
        from byg_cli.models.video_codec import VideoPixelCodec

        return isinstance(self.codec, (PixelCodec, VideoPixelCodec))

    @property
    def device(self) -> torch.device:
        return next(self.transformer.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        """The base weights' dtype: what diffusers' `transformer.dtype` says without layerwise casting (which byg
        does not use), without its walk over every module (milliseconds per velocity call): the first floating
        parameter outside the modules diffusers keeps in fp32 (a base weight; the fp32 LoRA comes later)."""
        keep = getattr(self.transformer, "_keep_in_fp32_modules", None) or ()
        for name, p in self.transformer.named_parameters():
            if p.is_floating_point() and not any(m in name for m in keep):
                return p.dtype
        return self.transformer.dtype

    def offload_encoders(self, device: str | torch.device = "cpu") -> None:
        """Move the codec and text encoders off the accelerator (after their outputs are cached)."""
        self.codec.to(device)
        self.text.to(device)
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def train(self, mode: bool = True):
        """Only what is trained leaves eval mode: frozen text encoders and the codec never run dropout."""
        torch.nn.Module.train(self, mode)
        if not self.text_trainable:
            self.text.eval()
        self.codec.eval()
        return self
