"""The Wan2.2 video backbone over diffusers' WanTransformer3DModel, AutoencoderKLWan and the UMT5 text encoder.

Latents are (B, C, F, H, W). Time t is the flow-matching sigma in [0, 1]; the transformer sees t * 1000 (the
scheduler's `num_train_timesteps` scale), exactly as `WanPipeline` passes UniPC's timesteps.

One copy of the base weights serves G_t2i (LoRA scale 0), G_edit (the "edit" LoRA) and G_EMA (the "ema" LoRA),
as for FLUX (the adapter plumbing is the shared byg_cli.models.shared.LoraAdapters). Source conditioning (paper appendix B.2): the
source latent is patch-embedded by the model's own `patch_embedding` and concatenated after the noisy tokens, and
both halves get the SAME rotary phases (the noisy latent's RoPE, doubled), so source token i and noisy token i
are spatially and temporally aligned; the model tells them apart by their noise level only. After the blocks the
sequence is sliced back to the noisy tokens before norm_out / proj_out / unpatchify.

Time of the source tokens: where the checkpoint was trained with per-token timesteps (Wan2.2 TI2V-5B,
`expand_timesteps` in model_index.json, whose conditioning frame carries timestep 0), the clean source tokens
carry timestep 0 and the noisy tokens t. Otherwise (T2V-A14B, Wan2.1) every token carries the same t. The recipe's
`model.source_timestep` overrides this ("zero" or "same").

Two experts (T2V-A14B): `transformer` handles the high-noise part, t * 1000 >= boundary_ratio * 1000, and
`transformer_2` the rest (the pipeline's rule; boundary_ratio is a fraction of the 1000 training timesteps).
Every velocity call routes each sample of the batch to the expert that owns its t, so a rollout from t = 1 calls
the right expert per step. LoRA training (`model.train_expert`):
  "both" (default): "edit"/"ema" LoRAs on both experts; each sampled t trains the expert that owns it. A ByG
         rollout from noise crosses the boundary, so both experts' weights must be resident anyway; the second
         LoRA adds only its own (small) parameters.
  "high" / "low": as the community trainers do (musubi-tuner, DiffSynth), one expert per run: LoRAs on that
         expert only and training timesteps restricted to its range (`train_time_range`); the other expert runs
         as its frozen base weights in rollouts and at inference.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal, Optional

import torch
from pydantic import Field

from byg_cli.errors import BygError
from byg_cli.models.base import Capabilities, Cond, CreateConfig, ModelConfig
from byg_cli.models.shared import CachedText, CodecCalls, LoraAdapters
from byg_cli.models.video_codec import VideoPixelCodec

WAN_LORA_TARGETS = (
    "attn1.to_q", "attn1.to_k", "attn1.to_v", "attn1.to_out.0",
    "attn2.to_q", "attn2.to_k", "attn2.to_v", "attn2.to_out.0",
    "ffn.net.0.proj", "ffn.net.2",
)
EXPERTS = ("transformer", "transformer_2")
NUM_TRAIN_TIMESTEPS = 1000


class WanCreateConfig(CreateConfig):
    """A tiny Wan2.2-architecture model (byg_cli.models.tiny_wan.TinyWanSpec) made at model.path if missing;
    pixel_patch 0 = a tiny AutoencoderKLWan, shift = UniPC's flow shift."""

    variant: Literal["ti2v", "a14b"] = Field("ti2v", description="one transformer with per-token time (ti2v) or "
                                                                 "two experts (a14b)")
    ffn_dim: int = Field(128, ge=4, description="feed-forward width")


class WanModelConfig(ModelConfig):
    """[model] with family = "wan"."""

    family: Literal["wan"]
    boundary_ratio: Optional[float] = Field(
        None, gt=0, lt=1, description="Wan2.2 A14B expert switch as a fraction of the 1000 training timesteps: "
                                      "t*1000 >= boundary_ratio*1000 runs `transformer` (high noise), else "
                                      "`transformer_2`; default: the folder's model_index.json (0.875 for T2V)")
    train_expert: Literal["both", "high", "low"] = Field(
        "both", description="two-expert models: 'both' puts LoRAs on both experts (each t trains its owner); "
                            "'high'/'low' trains one expert per run with training t restricted to its range")
    source_timestep: Literal["auto", "zero", "same"] = Field(
        "auto", description="time of the clean source tokens; auto = 0 where the model has per-token time (TI2V "
                            "expand_timesteps), else the noisy tokens' t")
    create: Optional[WanCreateConfig] = None


# --------------------------------------------------------------------------------------------------- codec
class WanVaeCodec(torch.nn.Module):
    """AutoencoderKLWan with the pipeline's normalisation z = (mode - latents_mean) / latents_std."""

    def __init__(self, vae):
        super().__init__()
        self.vae = vae
        cfg = vae.config
        self.register_buffer("mean", torch.tensor(cfg.latents_mean).view(1, cfg.z_dim, 1, 1, 1), persistent=False)
        self.register_buffer("inv_std", 1.0 / torch.tensor(cfg.latents_std).view(1, cfg.z_dim, 1, 1, 1),
                             persistent=False)

    @property
    def latent_channels(self) -> int:
        return int(self.vae.config.z_dim)

    @property
    def scale_factor(self) -> int:
        return int(self.vae.config.scale_factor_spatial)

    @property
    def temporal_factor(self) -> int:
        return int(self.vae.config.scale_factor_temporal)

    @torch.no_grad()
    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, 3, F, H, W) in [-1, 1] -> normalised latents (B, z, (F-1)/4 + 1, H/s, W/s)."""
        if pixels.dim() != 5:
            raise ValueError(f"Wan encodes videos (B, 3, F, H, W); got shape {tuple(pixels.shape)}")
        z = self.vae.encode(pixels.to(self.vae.dtype)).latent_dist.mode()
        return (z - self.mean.to(z)) * self.inv_std.to(z)

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        z = latents.to(self.vae.dtype) / self.inv_std.to(self.vae.dtype) + self.mean.to(self.vae.dtype)
        return self.vae.decode(z).sample


# --------------------------------------------------------------------------------------------------- text
class WanTextEncoder(torch.nn.Module):
    """UMT5 encoding as `WanPipeline._get_t5_prompt_embeds`: prompt_clean, pad to max length, and zero every
    position past each prompt's true length (instead of keeping the pad tokens' outputs)."""

    def __init__(self, tokenizer, encoder, max_sequence_length: int = 512):
        super().__init__()
        self.tokenizer, self.encoder = tokenizer, encoder
        self.max_sequence_length = int(max_sequence_length)

    @property
    def device(self) -> torch.device:
        return next(self.encoder.parameters()).device

    def forward(self, prompts: list[str]) -> Cond:
        from diffusers.pipelines.wan.pipeline_wan import prompt_clean

        cleaned = [prompt_clean(p) for p in prompts]
        enc = self.tokenizer(cleaned, padding="max_length", max_length=self.max_sequence_length, truncation=True,
                             add_special_tokens=True, return_attention_mask=True, return_tensors="pt")
        ids, mask = enc.input_ids.to(self.device), enc.attention_mask.to(self.device)
        hidden = self.encoder(ids, mask).last_hidden_state
        keep = (torch.arange(hidden.shape[1], device=hidden.device)[None, :] < mask.gt(0).sum(1)[:, None])
        return Cond(embeds=hidden * keep[..., None].to(hidden.dtype))


# --------------------------------------------------------------------------------------------------- forward
def doubled_rope(transformer, noisy: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The rotary tables for [noisy; source]: the noisy latent's RoPE repeated, so token N + i == token i."""
    cos, sin = transformer.rope(noisy)
    return torch.cat([cos, cos], dim=1), torch.cat([sin, sin], dim=1)


def _patch_tokens(transformer, latents: torch.Tensor) -> torch.Tensor:
    return transformer.patch_embedding(latents).flatten(2).transpose(1, 2).contiguous()


def _source_forward(transformer, noisy: torch.Tensor, source: torch.Tensor, timestep: torch.Tensor,
                    source_timestep: Optional[torch.Tensor], encoder_hidden_states: torch.Tensor,
                    attention_kwargs: Optional[dict] = None) -> torch.Tensor:
    """WanTransformer3DModel.forward re-done over the model's own modules for a [noisy; source] sequence.

    timestep: (B,) on the 0-1000 scale. source_timestep: None (source tokens share the noisy tokens' time, one
    embedding per sample) or (B,) (per-token time: noisy tokens at `timestep`, source tokens at this value).
    """
    from diffusers.utils.peft_utils import apply_lora_scale

    @apply_lora_scale("attention_kwargs")
    def run(m, attention_kwargs=None):
        b, _, f, h, w = noisy.shape
        p_t, p_h, p_w = m.config.patch_size
        pf, ph, pw = f // p_t, h // p_h, w // p_w
        rotary = doubled_rope(m, noisy)
        tokens = torch.cat([_patch_tokens(m, noisy), _patch_tokens(m, source)], dim=1)
        n = tokens.shape[1] // 2
        if source_timestep is None:
            temb, tproj, enc, _ = m.condition_embedder(timestep, encoder_hidden_states, None, timestep_seq_len=None)
            tproj = tproj.unflatten(1, (6, -1))
        else:
            per_token = torch.cat([timestep[:, None].expand(b, n), source_timestep[:, None].expand(b, n)], dim=1)
            temb, tproj, enc, _ = m.condition_embedder(per_token.flatten(), encoder_hidden_states, None,
                                                       timestep_seq_len=2 * n)
            tproj = tproj.unflatten(2, (6, -1))
        hs = tokens
        checkpointing = torch.is_grad_enabled() and m.gradient_checkpointing
        for block in m.blocks:
            if checkpointing:
                hs = m._gradient_checkpointing_func(block, hs, enc, tproj, rotary)
            else:
                hs = block(hs, enc, tproj, rotary)
        hs = hs[:, :n]  # back to the noisy tokens
        if temb.ndim == 3:
            shift, scale = (m.scale_shift_table.unsqueeze(0) + temb[:, :n].unsqueeze(2)).chunk(2, dim=2)
            shift, scale = shift.squeeze(2), scale.squeeze(2)
        else:
            shift, scale = (m.scale_shift_table + temb.unsqueeze(1)).chunk(2, dim=1)
        hs = (m.norm_out(hs.float()) * (1 + scale) + shift).type_as(hs)
        hs = m.proj_out(hs)
        hs = hs.reshape(b, pf, ph, pw, p_t, p_h, p_w, -1).permute(0, 7, 1, 4, 2, 5, 3, 6)
        return hs.flatten(6, 7).flatten(4, 5).flatten(2, 3)

    return run(transformer, attention_kwargs=attention_kwargs)


# --------------------------------------------------------------------------------------------------- backbone
class WanBackbone(LoraAdapters, CachedText, CodecCalls, torch.nn.Module):
    """The Backbone protocol (byg_cli.models.base) for Wan2.2 videos (see the module docstring). The velocity
    calls the experts itself, so there is no one module to wrap in DDP: multi-process gradients are averaged by
    the trainer."""

    family = "wan"
    capabilities = Capabilities(ddp_wrapper=False, fsdp=False, cache=False, video=True, samplers=("unipc", "euler"))
    default_lora_targets = WAN_LORA_TARGETS
    adapter_names_prefixed = True  # parameters are named "<expert>.<name>"

    def __init__(self, transformer, codec: WanVaeCodec | VideoPixelCodec, text: WanTextEncoder, scheduler_config: dict,
                 transformer_2=None, boundary_ratio: Optional[float] = None, expand_timesteps: bool = False,
                 source_timestep: str = "auto", train_expert: str = "both"):
        super().__init__()
        self.transformer, self.transformer_2 = transformer, transformer_2
        self.codec, self.text = codec, text
        self.scheduler_config = dict(scheduler_config)
        if transformer_2 is not None and boundary_ratio is None:
            raise BygError("model: a Wan folder with 'transformer_2' needs a boundary_ratio (model_index.json or "
                           "the recipe's model.boundary_ratio)")
        if boundary_ratio is not None and not 0.0 < boundary_ratio < 1.0:
            raise BygError(f"model.boundary_ratio: expected a fraction of the 1000 timesteps in (0, 1), "
                           f"got {boundary_ratio}")
        self.boundary_ratio = boundary_ratio if transformer_2 is not None else None
        self.expand_timesteps = bool(expand_timesteps)
        if source_timestep not in ("auto", "zero", "same"):
            raise BygError(f"model.source_timestep: expected auto, zero or same, got {source_timestep!r}")
        self.source_zero_time = (source_timestep == "zero" or (source_timestep == "auto" and self.expand_timesteps))
        if train_expert not in ("both", "high", "low"):
            raise BygError(f"model.train_expert: expected both, high or low, got {train_expert!r}")
        if train_expert != "both" and transformer_2 is None:
            raise BygError(f"model.train_expert = {train_expert!r} needs a two-expert model (no 'transformer_2')")
        self.train_expert = train_expert

    def compile_denoiser(self) -> None:
        """torch.compile both experts in place (see FluxBackbone.compile_denoiser)."""
        for expert in (self.transformer, self.transformer_2):
            if expert is not None:
                expert.compile()

    # ----------------------------------------------------------------------------------------------- loading
    @classmethod
    def from_config(cls, cfg: WanModelConfig, dtype: torch.dtype) -> "WanBackbone":
        return cls.load(cfg.path, dtype=dtype, max_sequence_length=cfg.max_sequence_length,
                        boundary_ratio=cfg.boundary_ratio, source_timestep=cfg.source_timestep,
                        train_expert=cfg.train_expert)

    @classmethod
    def load(cls, path: Path, dtype: torch.dtype = torch.float32, max_sequence_length: int | None = None,
             boundary_ratio: Optional[float] = None, source_timestep: str = "auto",
             train_expert: str = "both") -> "WanBackbone":
        from diffusers import AutoencoderKLWan, WanTransformer3DModel
        from transformers import AutoTokenizer, UMT5EncoderModel

        root = Path(path)
        index_file = root / "model_index.json"
        if not index_file.is_file():
            raise BygError(f"model.path: {root} is not a diffusers model folder (no model_index.json)")
        for sub in ("transformer", "text_encoder", "tokenizer"):
            if not (root / sub).is_dir():
                raise BygError(f"model.path: {root} has no '{sub}' folder")
        index = json.loads(index_file.read_text())
        transformer = WanTransformer3DModel.from_pretrained(root / "transformer", torch_dtype=dtype)
        transformer_2 = None
        if (index.get("transformer_2") or [None])[0] is not None:
            if not (root / "transformer_2").is_dir():
                raise BygError(f"model.path: {root}/model_index.json names transformer_2 but the folder is missing")
            transformer_2 = WanTransformer3DModel.from_pretrained(root / "transformer_2", torch_dtype=dtype)
        if (root / "vae").is_dir():
            codec = WanVaeCodec(AutoencoderKLWan.from_pretrained(root / "vae", torch_dtype=torch.float32))
        elif (root / "pixel_codec").is_dir():  # the video shapes world's exact codec
            codec = VideoPixelCodec.load(root / "pixel_codec")
        else:
            raise BygError(f"model.path: {root} has neither a 'vae' nor a 'pixel_codec' folder")
        tokenizer = AutoTokenizer.from_pretrained(root / "tokenizer")
        encoder = UMT5EncoderModel.from_pretrained(root / "text_encoder", dtype=dtype)
        text = WanTextEncoder(tokenizer, encoder, max_sequence_length or min(tokenizer.model_max_length, 512))
        sched_file = root / "scheduler" / "scheduler_config.json"
        scheduler_config = json.loads(sched_file.read_text()) if sched_file.is_file() else {}
        ratio = boundary_ratio if boundary_ratio is not None else index.get("boundary_ratio")
        model = cls(transformer, codec, text, scheduler_config, transformer_2=transformer_2, boundary_ratio=ratio,
                    expand_timesteps=bool(index.get("expand_timesteps", False)), source_timestep=source_timestep,
                    train_expert=train_expert)
        model.requires_grad_(False)
        return model

    def save_base(self, root: Path) -> None:
        """Write the base model as a diffusers WanPipeline folder."""
        root = Path(root)
        root.mkdir(parents=True, exist_ok=True)
        for name in self.expert_names:
            getattr(self, name).save_pretrained(root / name)
        if isinstance(self.codec, VideoPixelCodec):
            self.codec.save(root / "pixel_codec")
        else:
            self.codec.vae.save_pretrained(root / "vae")
        self.text.encoder.save_pretrained(root / "text_encoder")
        self.text.tokenizer.save_pretrained(root / "tokenizer")
        (root / "scheduler").mkdir(exist_ok=True)
        (root / "scheduler" / "scheduler_config.json").write_text(json.dumps(self.scheduler_config, indent=2))
        index = {"_class_name": "WanPipeline", "_diffusers_version": "0.42.1",
                 "transformer": ["diffusers", "WanTransformer3DModel"],
                 "transformer_2": ["diffusers", "WanTransformer3DModel"] if self.transformer_2 else [None, None],
                 "vae": [None, None] if isinstance(self.codec, VideoPixelCodec) else ["diffusers", "AutoencoderKLWan"],
                 "text_encoder": ["transformers", "UMT5EncoderModel"],
                 "tokenizer": ["transformers", "PreTrainedTokenizerFast"],
                 "scheduler": ["diffusers", "UniPCMultistepScheduler"],
                 "boundary_ratio": self.boundary_ratio, "expand_timesteps": self.expand_timesteps}
        (root / "model_index.json").write_text(json.dumps(index, indent=2))

    @property
    def pixel_multiple(self) -> int:
        """Frame sides must be multiples of this: the codec's spatial downscale times the patch size."""
        return int(self.codec.scale_factor) * int(self.transformer.config.patch_size[1])

    # ----------------------------------------------------------------------------------------------- experts
    @property
    def expert_names(self) -> tuple[str, ...]:
        return EXPERTS if self.transformer_2 is not None else EXPERTS[:1]

    @property
    def adapted_experts(self) -> tuple[str, ...]:
        if self.train_expert == "high":
            return ("transformer",)
        if self.train_expert == "low":
            return ("transformer_2",)
        return self.expert_names

    def train_time_range(self) -> Optional[tuple[float, float]]:
        """Training timesteps' window (sigma units) when one expert is trained: the sampler's draws (uniform or
        logit-normal with shift) are mapped affinely into it, keeping their shape; None = the whole axis."""
        if self.train_expert == "high":
            return (float(self.boundary_ratio), 1.0)
        if self.train_expert == "low":
            return (0.0, float(self.boundary_ratio) - 1e-4)
        return None

    def trainable_parameters(self, mode: str, text_encoders: bool = False) -> list[tuple[str, torch.nn.Parameter]]:
        """See Backbone.trainable_parameters: "full" trains `transformer` (a t2v base), with `text_encoders` also
        UMT5 ("text_encoder.")."""
        if mode == "lora":
            return [(f"edit.{n}", p) for n, p in self.lora_named_parameters("edit")]
        self.transformer.requires_grad_(True)
        named = [(f"transformer.{n}", p) for n, p in self.transformer.named_parameters()]
        if text_encoders:
            self.text.encoder.requires_grad_(True)
            named += [(f"text_encoder.{n}", p) for n, p in self.text.encoder.named_parameters()]
            self.text_trainable = True
        return named

    def adapter_modules(self) -> dict[str, torch.nn.Module]:
        return {name: getattr(self, name) for name in self.adapted_experts}

    def wrap_denoiser(self, wrap) -> torch.nn.Module:
        raise BygError("the wan backbone runs its experts itself: no one module to wrap (capabilities.ddp_wrapper)")

    def shard(self, fully_shard, device) -> None:
        raise BygError("train.sharding = 'fsdp': not available for the wan backbone; use ddp")

    def cache_identity(self) -> dict[str, str]:
        raise BygError("cache.enabled: not available for the wan backbone")

    def enable_gradient_checkpointing(self) -> None:
        for name in self.expert_names:
            getattr(self, name).enable_gradient_checkpointing()

    # ----------------------------------------------------------------------------------------------- velocity
    def expert_for(self, t: torch.Tensor) -> torch.Tensor:
        """True where a sample's t belongs to `transformer` (the high-noise expert, or the only one)."""
        if self.boundary_ratio is None:
            return torch.ones_like(t, dtype=torch.bool)
        return t * NUM_TRAIN_TIMESTEPS >= self.boundary_ratio * NUM_TRAIN_TIMESTEPS

    def velocity(self, y_t: torch.Tensor, t: torch.Tensor, cond: Cond, source: Optional[torch.Tensor] = None,
                 adapter: Optional[str] = "edit") -> torch.Tensor:
        """v ~= eps - y for the noisy video latent y_t (B, C, F, H, W) at time t (B,) in [0, 1]."""
        dev, dtype = self.device, self.dtype
        y = y_t.to(dev, dtype)
        t = t.to(dev).float().expand(y.shape[0])
        src = None if source is None else source.to(dev, dtype)
        embeds = cond.embeds.to(dev, dtype)
        kwargs = self.adapter_kwargs(adapter)
        high = self.expert_for(t)
        if bool(high.all()) or bool((~high).all()):
            expert = self.transformer if bool(high.all()) else self.transformer_2
            out = self._expert_velocity(expert, y, t, embeds, src, kwargs)
        else:  # a batch that straddles the boundary: each sample goes to its own expert
            out = torch.empty_like(y)
            for mask, expert in ((high, self.transformer), (~high, self.transformer_2)):
                idx = mask.nonzero().squeeze(1)
                out[idx] = self._expert_velocity(expert, y[idx], t[idx], embeds[idx],
                                                 None if src is None else src[idx], kwargs)
        return out.to(y_t.dtype)

    def _expert_velocity(self, expert, y, t, embeds, src, kwargs):
        timestep = (t * NUM_TRAIN_TIMESTEPS).to(y.dtype)
        if src is None:
            return expert(hidden_states=y, timestep=timestep, encoder_hidden_states=embeds,
                          attention_kwargs=kwargs, return_dict=False)[0]
        if src.shape != y.shape:
            raise ValueError(f"source latent {tuple(src.shape)} and noisy latent {tuple(y.shape)} differ")
        source_t = torch.zeros_like(timestep) if self.source_zero_time else None
        return _source_forward(expert, y, src, timestep, source_t, embeds, kwargs)

    # ----------------------------------------------------------------------------------------------- sampling
    def multistep_scheduler(self, flow_shift: Optional[float] = None):
        """Wan's UniPC (flow prediction, flow sigmas) from the folder's scheduler config."""
        from diffusers import UniPCMultistepScheduler

        cfg = {k: v for k, v in self.scheduler_config.items() if not k.startswith("_")}
        cfg.update(prediction_type="flow_prediction", use_flow_sigmas=True,
                   num_train_timesteps=cfg.get("num_train_timesteps", NUM_TRAIN_TIMESTEPS))
        if flow_shift is not None:
            cfg["flow_shift"] = float(flow_shift)
        return UniPCMultistepScheduler.from_config(cfg)

    def sigmas(self, steps: int, latent_shape: tuple[int, ...]) -> torch.Tensor:
        """UniPC's flow-sigma grid (static flow shift), ending in 0: the nodes plain Euler also uses."""
        sched = self.multistep_scheduler()
        sched.set_timesteps(steps)
        return sched.sigmas.float()
