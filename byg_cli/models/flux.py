"""The FLUX backbone over diffusers' FluxTransformer2DModel.

One copy of the base weights serves three models: G_t2i (no adapter: LoRA scale 0), G_edit (the trainable
"edit" LoRA) and G_EMA (the frozen "ema" LoRA). Source conditioning follows FLUX Kontext: the source latent
is packed into tokens and concatenated after the noisy tokens, with position ids whose first coordinate is
`source_id_offset` (1 in Kontext); the output is sliced back to the noisy tokens. With `source_conditioning =
"channels"` (experimental) each noisy token carries its source token instead, read through `SourceEmbedder`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal, Optional

import torch
from pydantic import Field

from byg_cli.engine.schedule import exp_time_shift, sigma_grid, time_shift
from byg_cli.errors import BygError
from byg_cli.models.base import Capabilities, Cond, CreateConfig, ModelConfig
from byg_cli.models.codecs import PixelCodec, VaeCodec
from byg_cli.models.shared import CachedText, CodecCalls, LoraAdapters
from byg_cli.models.text import FluxTextEncoder

DEFAULT_LORA_TARGETS = (
    "attn.to_k", "attn.to_q", "attn.to_v", "attn.to_out.0", "attn.add_k_proj", "attn.add_q_proj",
    "attn.add_v_proj", "attn.to_add_out", "ff.net.0.proj", "ff.net.2", "ff_context.net.0.proj",
    "ff_context.net.2", "proj_mlp",
)


class FluxCreateConfig(CreateConfig):
    """A tiny FLUX-architecture model (byg_cli.models.tiny.TinyFluxSpec) made at model.path if it is missing."""

    num_single_layers: int = Field(2, ge=0)
    axes_dims_rope: tuple[int, int, int] = (8, 12, 12)
    text_heads: int = Field(4, ge=1)
    guidance_embeds: bool = False
    prediction: Literal["velocity", "sample"] = Field(
        "velocity", description="what the transformer outputs: the velocity, or the clean sample (x-prediction)")


class FluxModelConfig(ModelConfig):
    """[model] with family = "flux" (the default)."""

    family: Literal["flux"] = "flux"
    guidance: float = Field(3.5, description="FLUX.1-dev guidance embedding value, used in every pass")
    source_id_offset: float = Field(1.0, description="first position-id coordinate of source tokens (Kontext: 1)")
    source_conditioning: Literal["tokens", "channels"] = Field(
        "tokens", description="how G_edit sees the source: 'tokens' (FLUX Kontext: source tokens after the noisy "
                              "ones) or 'channels' (the source's token beside each noisy token through a zero-started "
                              "projection that the LoRA trains, the paper's appendix B.2 alternative)")
    attention_backend: Optional[str] = Field(
        None, description="diffusers attention backend (default: 'native' = torch SDPA), e.g. 'flash', '_native_cudnn'")
    create: Optional[FluxCreateConfig] = None

    def lora_export_problem(self) -> Optional[str]:
        if self.source_conditioning == "channels":
            return ("model.source_conditioning = 'channels' has no diffusers or ComfyUI layout (FLUX Kontext reads "
                    "source tokens); `byg edit --run` uses the run folder as it is")
        return None


def pack(latents: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, H/2 * W/2, 4C), FLUX's 2x2 token packing."""
    b, c, h, w = latents.shape
    if h % 2 or w % 2:
        raise ValueError(f"FLUX packing needs even latent sides, got {h}x{w}")
    x = latents.view(b, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(b, (h // 2) * (w // 2), c * 4)


def unpack(tokens: torch.Tensor, channels: int, height: int, width: int) -> torch.Tensor:
    b = tokens.shape[0]
    x = tokens.view(b, height // 2, width // 2, channels, 2, 2).permute(0, 3, 1, 4, 2, 5)
    return x.reshape(b, channels, height, width)


class SourceEmbedder(torch.nn.Linear):
    """FLUX's x_embedder for `source_conditioning = "channels"`: the same weights (the same state-dict keys) plus
    `source`, a bias-free projection of the source's token at the same position whose base weight is zero. The
    LoRA on it (target "x_embedder.source") is what learns to read the source; the frozen base never sees one."""

    LORA_TARGET = "x_embedder.source"

    def __init__(self, embedder: torch.nn.Linear):
        super().__init__(embedder.in_features, embedder.out_features, bias=embedder.bias is not None,
                         device=embedder.weight.device, dtype=embedder.weight.dtype)
        self.weight, self.bias = embedder.weight, embedder.bias
        self.source = torch.nn.Linear(embedder.in_features, embedder.out_features, bias=False,
                                      device=embedder.weight.device, dtype=embedder.weight.dtype)
        torch.nn.init.zeros_(self.source.weight)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        if tokens.shape[-1] == self.in_features:
            return super().forward(tokens)
        noisy, source = tokens.split(self.in_features, dim=-1)
        return super().forward(noisy) + self.source(source)


def image_ids(height: int, width: int, first: float = 0.0, device=None, dtype=torch.float32) -> torch.Tensor:
    """Position ids (H/2 * W/2, 3): (first, row, column) per token."""
    h, w = height // 2, width // 2
    ids = torch.zeros(h, w, 3, device=device, dtype=dtype)
    ids[..., 0] = first
    ids[..., 1] = torch.arange(h, device=device, dtype=dtype)[:, None]
    ids[..., 2] = torch.arange(w, device=device, dtype=dtype)[None, :]
    return ids.reshape(h * w, 3)


class FluxBackbone(LoraAdapters, CachedText, CodecCalls, torch.nn.Module):
    """The Backbone protocol (byg_cli.models.base) for FLUX.1 / FLUX Kontext layouts."""

    family = "flux"
    capabilities = Capabilities(ddp_wrapper=True, fsdp=True, cache=True, video=False, samplers=("euler",))
    default_lora_targets = DEFAULT_LORA_TARGETS
    root: Optional[Path] = None  # the folder it was loaded from (the cache's model identity)
    _ddp = None  # the transformer wrapped for multi-process training (DDP), if any

    def __init__(self, transformer, codec, text: FluxTextEncoder, scheduler_config: dict,
                 guidance: float = 3.5, source_id_offset: float = 1.0, source_conditioning: str = "tokens"):
        super().__init__()
        self.transformer, self.codec, self.text = transformer, codec, text
        self.scheduler_config = dict(scheduler_config)
        self.guidance = float(guidance)
        self.source_id_offset = float(source_id_offset)
        self.source_conditioning = source_conditioning
        if source_conditioning == "channels":
            transformer.x_embedder = SourceEmbedder(transformer.x_embedder)
        # What the transformer's output means: "velocity" (FLUX.1: v ~= eps - y) or "sample" (the clean latent,
        # turned into v = (y_t - y_hat) / max(t, t_min)). Pixel-space tiny bases learn far faster predicting the
        # clean sample: the noise then passes through analytically instead of through the network.
        self.prediction, self.prediction_t_min = "velocity", 0.05

    def add_adapters(self, rank: int, alpha: float, targets: Optional[tuple[str, ...]] = None,
                     dropout: float = 0.0) -> None:
        """LoraAdapters.add_adapters; under channels conditioning the source projection is always a target (without
        its LoRA the editor could never read the source)."""
        targets = tuple(targets or self.default_lora_targets)
        if self.source_conditioning == "channels" and SourceEmbedder.LORA_TARGET not in targets:
            targets += (SourceEmbedder.LORA_TARGET,)
        super().add_adapters(rank, alpha, targets, dropout)

    # ----------------------------------------------------------------------------------------------- loading
    @classmethod
    def from_config(cls, cfg: FluxModelConfig, dtype: torch.dtype) -> "FluxBackbone":
        return cls.load(cfg.path, dtype=dtype, guidance=cfg.guidance, source_id_offset=cfg.source_id_offset,
                        max_sequence_length=cfg.max_sequence_length, attention_backend=cfg.attention_backend,
                        source_conditioning=cfg.source_conditioning)

    @classmethod
    def load(cls, path: Path, dtype: torch.dtype = torch.float32, guidance: float = 3.5,
             source_id_offset: float = 1.0, max_sequence_length: int | None = None,
             attention_backend: str | None = None, source_conditioning: str = "tokens") -> "FluxBackbone":
        """A diffusers FLUX folder (FLUX.1-dev or a tiny one of the same layout). Attention runs through diffusers'
        dispatcher, whose default backend is torch's scaled_dot_product_attention; `attention_backend` picks
        another one (e.g. "flash", "_native_cudnn")."""
        from diffusers import FluxTransformer2DModel

        root = Path(path)
        if not (root / "model_index.json").is_file():
            raise BygError(f"model.path: {root} is not a diffusers model folder (no model_index.json)")
        for sub in ("transformer", "text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2"):
            if not (root / sub).is_dir():
                raise BygError(f"model.path: {root} has no '{sub}' folder")
        transformer = FluxTransformer2DModel.from_pretrained(root / "transformer", torch_dtype=dtype)
        if (root / "vae").is_dir():
            from diffusers import AutoencoderKL

            codec = VaeCodec(AutoencoderKL.from_pretrained(root / "vae", torch_dtype=dtype))
        elif (root / "pixel_codec").is_dir():
            codec = PixelCodec.load(root / "pixel_codec")
        else:
            raise BygError(f"model.path: {root} has neither a 'vae' nor a 'pixel_codec' folder")
        text = FluxTextEncoder.load(root, dtype=dtype, max_sequence_length=max_sequence_length)
        sched_file = root / "scheduler" / "scheduler_config.json"
        scheduler_config = json.loads(sched_file.read_text()) if sched_file.is_file() else {}
        if attention_backend:
            try:
                transformer.set_attention_backend(attention_backend)
            except (ValueError, RuntimeError, ImportError) as err:
                raise BygError(f"model.attention_backend: '{attention_backend}' is not usable here ({err})") from None
        model = cls(transformer, codec, text, scheduler_config, guidance=guidance, source_id_offset=source_id_offset,
                    source_conditioning=source_conditioning)
        model.root = root.resolve()
        model.read_byg_config(root)
        model.requires_grad_(False)
        return model

    def cache_identity(self) -> dict[str, str]:
        """What the cached latents and text embeddings depend on: the codec's and the text encoders' files (and
        dtype, sequence length). Keys of the on-disk cache (byg_cli.cache) include these."""
        from byg_cli.cache import folder_identity

        if self.root is None:
            raise BygError("the cache needs a model loaded from a folder (model.path)")
        codec_dirs = ["vae"] if isinstance(self.codec, VaeCodec) else ["pixel_codec"]
        text_dirs = ["text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2"]
        dtype = str(self.dtype).replace("torch.", "")
        return {"latents": folder_identity(self.root, codec_dirs, extra=f"flux-codec {dtype}"),
                "text": folder_identity(self.root, text_dirs,
                                        extra=f"flux-text {dtype} clip={self.text.clip_length} "
                                              f"t5={self.text.max_sequence_length}")}

    def shard(self, fully_shard, device: str | torch.device) -> None:
        """FSDP2: shard every transformer block, then the rest of the transformer (in place; every call, with or
        without grad, then gathers the block's weights on all processes). fully_shard moves each block to the
        accelerator as it shards it, so a GPU never holds more than one whole block; the text encoders and the
        codec (not sharded) go to `device`."""
        self.codec.to(device)
        self.text.to(device)
        t = self.transformer
        for block in [*t.transformer_blocks, *t.single_transformer_blocks]:
            fully_shard(block)
        fully_shard(t)

    def compile_denoiser(self) -> None:
        """torch.compile the transformer in place (parameters, state dict and LoRA untouched): the first calls of
        each input shape and adapter compile, later ones run fused kernels."""
        self.transformer.compile()

    def wrap_denoiser(self, wrap) -> torch.nn.Module:
        """Route gradient-carrying transformer calls through `wrap(transformer)` (e.g. accelerate's DDP wrapper,
        which all-reduces the gradients of the trainable parameters). No-grad calls (rollout, prior queries,
        sampling) keep using the bare module: they need no gradient synchronisation."""
        # kept out of the module tree (the wrapper holds the same transformer; no second registration)
        self.__dict__["_ddp"] = wrap(self.transformer)
        return self._ddp

    def enable_gradient_checkpointing(self) -> None:
        self.transformer.enable_gradient_checkpointing()

    def trainable_parameters(self, mode: str, text_encoders: bool = False) -> list[tuple[str, torch.nn.Parameter]]:
        """See Backbone.trainable_parameters: "full" trains the transformer, with `text_encoders` also T5
        ("text_encoder_2.") and CLIP ("text_encoder."), the folders save_base writes them to."""
        if mode == "lora":
            return [(f"edit.{n}", p) for n, p in self.lora_named_parameters("edit")]
        self.transformer.requires_grad_(True)
        named = [(f"transformer.{n}", p) for n, p in self.transformer.named_parameters()]
        if text_encoders:
            for folder, module in (("text_encoder_2", self.text.t5), ("text_encoder", self.text.clip)):
                module.requires_grad_(True)
                named += [(f"{folder}.{n}", p) for n, p in module.named_parameters()]
            self.text_trainable = True
        return named

    def train_time_range(self) -> None:
        return None  # one transformer owns every t

    def adapter_modules(self) -> dict[str, torch.nn.Module]:
        return {"transformer": self.transformer}

    def read_byg_config(self, root: Path) -> None:
        """byg.json at a model folder's root holds what diffusers' configs cannot say (the output's meaning)."""
        f = Path(root) / "byg.json"
        if f.is_file():
            cfg = json.loads(f.read_text())
            self.prediction = cfg.get("prediction", "velocity")
            self.prediction_t_min = float(cfg.get("prediction_t_min", 0.05))
            if self.prediction not in ("velocity", "sample"):
                raise BygError(f"{f}: prediction must be 'velocity' or 'sample', not {self.prediction!r}")

    def save_base(self, root: Path) -> None:
        """Write the base model (no adapters) as a diffusers-layout folder."""
        root = Path(root)
        root.mkdir(parents=True, exist_ok=True)
        if self.prediction != "velocity":
            (root / "byg.json").write_text(json.dumps({"prediction": self.prediction,
                                                        "prediction_t_min": self.prediction_t_min}, indent=2))
        self.transformer.save_pretrained(root / "transformer")
        self.text.save(root)
        if isinstance(self.codec, PixelCodec):
            self.codec.save(root / "pixel_codec")
        else:
            self.codec.vae.save_pretrained(root / "vae")
        (root / "scheduler").mkdir(exist_ok=True)
        (root / "scheduler" / "scheduler_config.json").write_text(json.dumps(self.scheduler_config, indent=2))
        index = {"_class_name": "FluxKontextPipeline", "_diffusers_version": "0.42.1",
                 "transformer": ["diffusers", "FluxTransformer2DModel"],
                 "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"],
                 "text_encoder": ["transformers", "CLIPTextModel"],
                 "text_encoder_2": ["transformers", "T5EncoderModel"],
                 "tokenizer": ["transformers", type(self.text.tokenizer).__name__],
                 "tokenizer_2": ["transformers", type(self.text.tokenizer_2).__name__],
                 "vae": ["diffusers", "AutoencoderKL"] if isinstance(self.codec, VaeCodec) else [None, None],
                 "image_encoder": [None, None], "feature_extractor": [None, None]}
        (root / "model_index.json").write_text(json.dumps(index, indent=2))

    @property
    def pixel_multiple(self) -> int:
        """Image sides must be multiples of this: the codec's downscale times the 2x2 token packing."""
        return 2 * int(self.codec.scale_factor)

    # ----------------------------------------------------------------------------------------------- velocity
    def velocity(self, y_t: torch.Tensor, t: torch.Tensor, cond: Cond, source: Optional[torch.Tensor] = None,
                 adapter: Optional[str] = "edit") -> torch.Tensor:
        """v ~= eps - y for the noisy latent y_t (B, C, H, W) at time t (B,) in [0, 1] (FLUX sigma units)."""
        b, c, h, w = y_t.shape
        dtype, dev = self.dtype, self.device
        tokens = pack(y_t.to(dev, dtype))
        n = tokens.shape[1]
        ids = image_ids(h, w, 0.0, dev, dtype)
        if source is not None and self.source_conditioning == "channels":
            tokens = torch.cat([tokens, pack(source.to(dev, dtype))], dim=2)
        elif source is not None:
            tokens = torch.cat([tokens, pack(source.to(dev, dtype))], dim=1)
            ids = torch.cat([ids, image_ids(h, w, self.source_id_offset, dev, dtype)], dim=0)
        kwargs = {}
        scale = self.adapter_kwargs(adapter)
        if scale is not None:
            kwargs["joint_attention_kwargs"] = scale
        if self.transformer.config.guidance_embeds:
            kwargs["guidance"] = torch.full((b,), self.guidance, device=dev, dtype=dtype)
        embeds = cond.embeds.to(dev, dtype)
        net = self._ddp if (self._ddp is not None and torch.is_grad_enabled()) else self.transformer
        out = net(
            hidden_states=tokens, timestep=t.to(dev, dtype), encoder_hidden_states=embeds,
            pooled_projections=cond.pooled.to(dev, dtype), img_ids=ids,
            txt_ids=torch.zeros(embeds.shape[1], 3, device=dev, dtype=dtype), return_dict=False, **kwargs)[0]
        out = unpack(out[:, :n], c, h, w).to(y_t.dtype)
        if self.prediction == "sample":
            tt = t.to(y_t).clamp_min(self.prediction_t_min).view(-1, *([1] * (y_t.dim() - 1)))
            return (y_t - out) / tt
        return out

    # ----------------------------------------------------------------------------------------------- sampling
    def sigmas(self, steps: int, latent_shape: tuple[int, ...]) -> torch.Tensor:
        """The scheduler's inference grid (FlowMatchEulerDiscreteScheduler semantics, dynamic shift by size)."""
        cfg = self.scheduler_config
        base = sigma_grid(steps, 1.0)
        if cfg.get("use_dynamic_shifting"):
            seq = (latent_shape[-2] // 2) * (latent_shape[-1] // 2)
            x1, x2 = cfg.get("base_image_seq_len", 256), cfg.get("max_image_seq_len", 4096)
            y1, y2 = cfg.get("base_shift", 0.5), cfg.get("max_shift", 1.15)
            mu = y1 + (y2 - y1) / (x2 - x1) * (seq - x1)
            return exp_time_shift(base.clamp_min(1e-12), mu) * (base > 0)
        return time_shift(base, float(cfg.get("shift", 1.0)))

    def multistep_scheduler(self, flow_shift: Optional[float] = None):
        raise BygError("sampler 'unipc' is not available for the flux backbone (inference.sampler = 'euler')")


class FluxLoraExport:
    """The LoRA layouts other tools read (byg_cli.models.flux_lora): diffusers' and ComfyUI's."""

    default_targets = DEFAULT_LORA_TARGETS

    @staticmethod
    def diffusers(lora: dict, rank: int, alpha: float, targets: list[str]) -> tuple[dict, dict]:
        from byg_cli.models import flux_lora

        return flux_lora.diffusers_state_dict(lora), flux_lora.diffusers_metadata(rank, alpha, targets)

    @staticmethod
    def comfyui(lora: dict, rank: int, alpha: float) -> tuple[dict, dict]:
        from byg_cli.models import flux_lora

        return flux_lora.comfyui_state_dict(lora, alpha), {"ss_network_dim": str(rank), "ss_network_alpha": str(alpha)}
