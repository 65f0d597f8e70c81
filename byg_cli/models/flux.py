"""The FLUX backbone over diffusers' FluxTransformer2DModel.

One copy of the base weights serves three models: G_t2i (no adapter: LoRA scale 0), G_edit (the trainable
"edit" LoRA) and G_EMA (the frozen "ema" LoRA). Source conditioning follows FLUX Kontext: the source latent
is packed into tokens and concatenated after the noisy tokens, with position ids whose first coordinate is
`source_id_offset` (1 in Kontext); the output is sliced back to the noisy tokens.
"""

from __future__ import annotations

import json
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import Optional

import torch

from byg_cli.engine.schedule import exp_time_shift, sigma_grid, time_shift
from byg_cli.errors import BygError
from byg_cli.models.base import Cond
from byg_cli.models.codecs import PixelCodec, VaeCodec
from byg_cli.models.text import FluxTextEncoder

DEFAULT_LORA_TARGETS = (
    "attn.to_k", "attn.to_q", "attn.to_v", "attn.to_out.0", "attn.add_k_proj", "attn.add_q_proj",
    "attn.add_v_proj", "attn.to_add_out", "ff.net.0.proj", "ff.net.2", "ff_context.net.0.proj",
    "ff_context.net.2", "proj_mlp",
)
ADAPTERS = ("edit", "ema")


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


def image_ids(height: int, width: int, first: float = 0.0, device=None, dtype=torch.float32) -> torch.Tensor:
    """Position ids (H/2 * W/2, 3): (first, row, column) per token."""
    h, w = height // 2, width // 2
    ids = torch.zeros(h, w, 3, device=device, dtype=dtype)
    ids[..., 0] = first
    ids[..., 1] = torch.arange(h, device=device, dtype=dtype)[:, None]
    ids[..., 2] = torch.arange(w, device=device, dtype=dtype)[None, :]
    return ids.reshape(h * w, 3)


class FluxBackbone(torch.nn.Module):
    family = "flux"
    # What the trainer may use at scale (a subclass with its own velocity / module layout turns them off):
    supports_denoiser_wrapper = True  # velocity sends gradient calls through wrap_denoiser's module (DDP)
    supports_fsdp = True  # shard() knows the transformer's blocks
    supports_cache = True  # cache_identity() names the codec and text encoders
    root: Optional[Path] = None  # the folder it was loaded from (the cache's model identity)
    text_store = None  # an optional on-disk text-embedding store (byg_cli.cache.TextStore)
    _denoiser = None  # the transformer wrapped for multi-process training (DDP), if any

    def __init__(self, transformer, codec, text: FluxTextEncoder, scheduler_config: dict,
                 guidance: float = 3.5, source_id_offset: float = 1.0, text_cache_size: int = 4096):
        super().__init__()
        self.transformer, self.codec, self.text = transformer, codec, text
        self.scheduler_config = dict(scheduler_config)
        self.guidance = float(guidance)
        self.source_id_offset = float(source_id_offset)
        self._active: Optional[str] = None
        self._text_cache: "OrderedDict[str, tuple[torch.Tensor, Optional[torch.Tensor]]]" = OrderedDict()
        self.text_cache_size = text_cache_size
        self.text_trainable = False
        # What the transformer's output means: "velocity" (FLUX.1: v ~= eps - y) or "sample" (the clean latent,
        # turned into v = (y_t - y_hat) / max(t, t_min)). Pixel-space tiny bases learn far faster predicting the
        # clean sample: the noise then passes through analytically instead of through the network.
        self.prediction, self.prediction_t_min = "velocity", 0.05

    # ----------------------------------------------------------------------------------------------- loading
    @classmethod
    def load(cls, path: Path, dtype: torch.dtype = torch.float32, guidance: float = 3.5,
             source_id_offset: float = 1.0, max_sequence_length: int | None = None,
             attention_backend: str | None = None) -> "FluxBackbone":
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
        model = cls(transformer, codec, text, scheduler_config, guidance=guidance, source_id_offset=source_id_offset)
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

    def offload_encoders(self, device: str | torch.device = "cpu") -> None:
        """Move the VAE and text encoders off the accelerator (after their outputs are cached)."""
        self.codec.to(device)
        self.text.to(device)
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

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

    def wrap_denoiser(self, wrap) -> None:
        """Route gradient-carrying transformer calls through `wrap(transformer)` (e.g. accelerate's DDP wrapper,
        which all-reduces the gradients of the trainable parameters). No-grad calls (rollout, prior queries,
        sampling) keep using the bare module: they need no gradient synchronisation."""
        # kept out of the module tree (the wrapper holds the same transformer; no second registration)
        self.__dict__["_denoiser"] = wrap(self.transformer)

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

    def train(self, mode: bool = True) -> "FluxBackbone":
        """Only what is trained leaves eval mode: frozen text encoders and the codec never run dropout."""
        super().train(mode)
        if not self.text_trainable:
            self.text.eval()
        self.codec.eval()
        return self

    # ----------------------------------------------------------------------------------------------- adapters
    def add_adapters(self, rank: int, alpha: float, targets: tuple[str, ...] = DEFAULT_LORA_TARGETS,
                     dropout: float = 0.0) -> None:
        """Attach the trainable "edit" and the frozen "ema" LoRA to the one base transformer."""
        from peft import LoraConfig

        for name in ("edit", "ema"):
            cfg = LoraConfig(r=rank, lora_alpha=alpha, target_modules=list(targets), lora_dropout=dropout,
                             init_lora_weights=True)
            with warnings.catch_warnings():  # peft warns on purpose about a second adapter on one model
                warnings.filterwarnings("ignore", message="Already found a `peft_config`")
                self.transformer.add_adapter(cfg, adapter_name=name)
        self._active = None
        self._finish_adapters()

    def _finish_adapters(self) -> None:
        """After adding "edit" and "ema": make "edit" the active, trainable one (peft makes the most recently added
        adapter trainable), keep both in fp32 whatever the base's dtype, and start the EMA equal to "edit"."""
        self.set_adapter("edit")
        for p in self.lora_parameters("edit") + self.lora_parameters("ema"):
            p.data = p.data.float()
        with torch.no_grad():
            for e, p in zip(self.lora_parameters("ema"), self.lora_parameters("edit")):
                e.copy_(p)

    @property
    def has_adapters(self) -> bool:
        return bool(getattr(self.transformer, "peft_config", None))

    def set_adapter(self, name: str) -> None:
        if self._active != name:  # peft makes the adapter it activates trainable: the EMA never is
            self.transformer.set_adapter(name)
            self._active = name
            for p in self.lora_parameters("ema"):  # (a walk over all modules: only on a switch, not every call)
                p.requires_grad_(False)

    def lora_named_parameters(self, adapter: str) -> list[tuple[str, torch.nn.Parameter]]:
        token = f".{adapter}."
        return [(n, p) for n, p in self.transformer.named_parameters() if "lora_" in n and token in n]

    def lora_parameters(self, adapter: str) -> list[torch.nn.Parameter]:
        return [p for _, p in self.lora_named_parameters(adapter)]

    def lora_state_dict(self, adapter: str) -> dict[str, torch.Tensor]:
        """Whole (unsharded) LoRA tensors; with an FSDP-sharded transformer every process must call this."""
        from byg_cli.distributed import full

        token = f".{adapter}."
        return {n.replace(token, "."): full(p.detach()).clone() for n, p in self.lora_named_parameters(adapter)}

    def load_lora_state_dict(self, adapter: str, state: dict[str, torch.Tensor]) -> None:
        token = f".{adapter}."
        params = dict(self.lora_named_parameters(adapter))
        wanted = {n.replace(token, "."): n for n in params}
        missing = sorted(set(wanted) - set(state))
        if missing:
            raise BygError(f"LoRA weights lack {len(missing)} tensor(s), e.g. {missing[0]}")
        from byg_cli.distributed import like

        with torch.no_grad():
            for key, name in wanted.items():
                params[name].copy_(like(params[name], state[key]))

    # ----------------------------------------------------------------------------------------------- encoding
    def _codec_device(self) -> torch.device:
        return next((p.device for p in self.codec.parameters()), self.device)

    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.codec.encode(pixels.to(self._codec_device(), self.dtype)).to(self.device)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        return self.codec.decode(latents.to(self._codec_device(), self.dtype)).float().clamp(-1, 1)

    def encode_text(self, prompts: list[str]) -> Cond:
        if self.text_trainable:
            return self.text(prompts)
        missing = [p for p in dict.fromkeys(prompts) if p not in self._text_cache]
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
            self._text_cache[p] = row
            if len(self._text_cache) > self.text_cache_size:
                self._text_cache.popitem(last=False)
        found = [rows[p] if p in rows else self._text_cache[p] for p in prompts]
        for p in prompts:
            if p in self._text_cache:
                self._text_cache.move_to_end(p)
        pooled = None if found[0][1] is None else torch.stack([r[1] for r in found])
        return Cond(embeds=torch.stack([r[0] for r in found]), pooled=pooled)

    @property
    def device(self) -> torch.device:
        return next(self.transformer.parameters()).device

    @property
    def pixel_multiple(self) -> int:
        """Image sides must be multiples of this: the codec's downscale times the 2x2 token packing."""
        return 2 * int(self.codec.scale_factor)

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

    # ----------------------------------------------------------------------------------------------- velocity
    def velocity(self, y_t: torch.Tensor, t: torch.Tensor, cond: Cond, source: Optional[torch.Tensor] = None,
                 adapter: Optional[str] = "edit") -> torch.Tensor:
        """v ~= eps - y for the noisy latent y_t (B, C, H, W) at time t (B,) in [0, 1] (FLUX sigma units)."""
        b, c, h, w = y_t.shape
        dtype, dev = self.dtype, self.device
        tokens = pack(y_t.to(dev, dtype))
        n = tokens.shape[1]
        ids = image_ids(h, w, 0.0, dev, dtype)
        if source is not None:
            tokens = torch.cat([tokens, pack(source.to(dev, dtype))], dim=1)
            ids = torch.cat([ids, image_ids(h, w, self.source_id_offset, dev, dtype)], dim=0)
        kwargs = {}
        if self.has_adapters:
            if adapter is None:
                kwargs["joint_attention_kwargs"] = {"scale": 0.0}
            else:
                self.set_adapter(adapter)
        if self.transformer.config.guidance_embeds:
            kwargs["guidance"] = torch.full((b,), self.guidance, device=dev, dtype=dtype)
        embeds = cond.embeds.to(dev, dtype)
        net = self._denoiser if (self._denoiser is not None and torch.is_grad_enabled()) else self.transformer
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
