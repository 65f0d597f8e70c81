"""Tiny FLUX-architecture model folders built from configs (tests, the shapes world's base model).

Everything is created offline: random weights, word-level tokenizers trained on a given corpus.
The folder has the diffusers `model_index.json` layout, so the same loader reads it and FLUX.1-dev.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import torch

from byg_cli.models.codecs import PixelCodec
from byg_cli.models.flux import FluxBackbone, FluxModelConfig
from byg_cli.models.text import (DEFAULT_CORPUS, FluxTextEncoder, build_clip_tokenizer, build_t5_tokenizer,
                                 build_word_tokenizer)


@dataclass
class TinyFluxSpec:
    num_layers: int = 1
    num_single_layers: int = 1
    num_heads: int = 2
    head_dim: int = 16
    axes_dims_rope: tuple[int, int, int] = (4, 6, 6)
    text_dim: int = 32
    text_layers: int = 2
    text_heads: int = 4
    max_text_length: int = 16
    pixel_patch: int = 2  # pixel codec factor; 0 = a tiny AutoencoderKL instead
    guidance_embeds: bool = True
    shift: float = 1.0
    prediction: str = "velocity"  # or "sample" (see FluxBackbone.prediction)
    tokenizers: str = "word"  # "word": one word-level vocabulary; "flux": CLIPTokenizer + T5TokenizerFast (FLUX.1-dev's)


def _configs(spec: TinyFluxSpec, vocab: int, latent_channels: int, clip_ids: tuple[int, int, int] = (0, 1, 3),
             t5_vocab: int | None = None):
    from diffusers import FluxTransformer2DModel
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    if sum(spec.axes_dims_rope) != spec.head_dim:
        raise ValueError("axes_dims_rope must sum to head_dim")
    transformer = FluxTransformer2DModel(
        patch_size=1, in_channels=4 * latent_channels, num_layers=spec.num_layers,
        num_single_layers=spec.num_single_layers, attention_head_dim=spec.head_dim,
        num_attention_heads=spec.num_heads, joint_attention_dim=spec.text_dim, pooled_projection_dim=spec.text_dim,
        guidance_embeds=spec.guidance_embeds, axes_dims_rope=list(spec.axes_dims_rope))
    clip = CLIPTextModel(CLIPTextConfig(
        vocab_size=vocab, hidden_size=spec.text_dim, intermediate_size=2 * spec.text_dim,
        num_hidden_layers=spec.text_layers, num_attention_heads=spec.text_heads,
        max_position_embeddings=spec.max_text_length, projection_dim=spec.text_dim,
        pad_token_id=clip_ids[0], bos_token_id=clip_ids[1], eos_token_id=clip_ids[2], hidden_act="gelu"))
    t5 = T5EncoderModel(T5Config(
        vocab_size=t5_vocab or vocab, d_model=spec.text_dim, d_kv=spec.text_dim // spec.text_heads,
        d_ff=2 * spec.text_dim,
        num_layers=spec.text_layers, num_heads=spec.text_heads, relative_attention_num_buckets=8,
        pad_token_id=0, eos_token_id=3, decoder_start_token_id=0, dropout_rate=0.0))
    return transformer, clip, t5


def build_tiny_flux(spec: TinyFluxSpec | None = None, corpus: Iterable[str] = DEFAULT_CORPUS, seed: int = 0):
    """A FluxBackbone with random weights (not written anywhere)."""
    spec = spec or TinyFluxSpec()
    corpus = list(corpus)
    torch.manual_seed(seed)
    if spec.tokenizers == "flux":
        tok = build_clip_tokenizer(corpus, spec.max_text_length)
        tok2 = build_t5_tokenizer(corpus, spec.max_text_length)
    elif spec.tokenizers == "word":
        tok = build_word_tokenizer(corpus, spec.max_text_length, add_bos=True)
        tok2 = build_word_tokenizer(corpus, spec.max_text_length, add_bos=False)
    else:
        raise ValueError(f"unknown tokenizers kind {spec.tokenizers!r}; use 'word' or 'flux'")
    if spec.pixel_patch:
        codec = PixelCodec(spec.pixel_patch)
        latent_channels = codec.latent_channels
    else:
        from diffusers import AutoencoderKL

        from byg_cli.models.codecs import VaeCodec

        vae = AutoencoderKL(sample_size=32, in_channels=3, out_channels=3, block_out_channels=(4, 8),
                            down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                            layers_per_block=1, latent_channels=4, norm_num_groups=2, use_quant_conv=False,
                            use_post_quant_conv=False, shift_factor=0.0609, scaling_factor=1.5035)
        codec = VaeCodec(vae)
        latent_channels = 4
    if spec.tokenizers == "flux":
        clip_ids = (tok.pad_token_id, tok.bos_token_id, tok.eos_token_id)
        transformer, clip, t5 = _configs(spec, len(tok), latent_channels, clip_ids, t5_vocab=len(tok2))
    else:
        transformer, clip, t5 = _configs(spec, len(tok), latent_channels)
    text = FluxTextEncoder(tok, clip, tok2, t5, max_sequence_length=spec.max_text_length)
    scheduler = {"_class_name": "FlowMatchEulerDiscreteScheduler", "_diffusers_version": "0.42.1",
                 "num_train_timesteps": 1000, "shift": spec.shift, "use_dynamic_shifting": False}
    model = FluxBackbone(transformer, codec, text, scheduler)
    model.prediction = spec.prediction
    model.requires_grad_(False)
    return model


def write_tiny_flux(folder: Path, spec: TinyFluxSpec | None = None, corpus: Iterable[str] = DEFAULT_CORPUS,
                    seed: int = 0) -> Path:
    """Write a tiny random FLUX folder in diffusers layout and return its path."""
    folder = Path(folder)
    build_tiny_flux(spec, corpus, seed).save_base(folder)
    return folder


def create_tiny_flux(cfg: FluxModelConfig, corpus: list[str]) -> None:
    """Write the tiny model of cfg.create at cfg.path, with a word tokenizer over `corpus` (`byg train` on a
    recipe whose model folder does not exist yet)."""
    fields = cfg.create.model_dump(exclude={"vocabulary", "seed"})
    fields["axes_dims_rope"] = tuple(fields["axes_dims_rope"])
    write_tiny_flux(Path(cfg.path), TinyFluxSpec(**fields), corpus, seed=cfg.create.seed)
