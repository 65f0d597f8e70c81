"""Tiny Wan-architecture model folders (random weights, offline tokenizer) for tests, in WanPipeline layout.

Two variants mirror the real checkpoints' shapes (backbones.md section 4):
  "ti2v": one transformer, the Wan2.2 VAE (z_dim 48, 16x spatial, 4x temporal, patchified residual VAE) and
          per-token timesteps (`expand_timesteps`), like Wan2.2 TI2V-5B;
  "a14b": two experts `transformer` / `transformer_2` switched at `boundary_ratio`, the Wan2.1 VAE (z_dim 16,
          8x spatial, 4x temporal), like Wan2.2 T2V-A14B.
With `pixel_patch` > 0 the VAE is replaced by the exact VideoPixelCodec (the video shapes world's base).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import torch

from byg_cli.models.text import DEFAULT_CORPUS, build_word_tokenizer
from byg_cli.models.video_codec import VideoPixelCodec
from byg_cli.models.wan import WanBackbone, WanModelConfig, WanTextEncoder, WanVaeCodec


@dataclass
class TinyWanSpec:
    variant: str = "a14b"  # "a14b" or "ti2v"
    num_layers: int = 2
    num_heads: int = 2
    head_dim: int = 12
    ffn_dim: int = 32
    text_dim: int = 16
    text_layers: int = 2
    max_text_length: int = 16
    boundary_ratio: float = 0.875
    flow_shift: float = 3.0
    pixel_patch: int = 0  # > 0: the exact VideoPixelCodec (space factor pixel_patch, time 4x) instead of a VAE


def _vae(variant: str):
    from diffusers import AutoencoderKLWan

    if variant == "ti2v":
        return AutoencoderKLWan(base_dim=3, z_dim=48, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                                temperal_downsample=[False, True, True], in_channels=12, out_channels=12,
                                is_residual=True, patch_size=2, latents_mean=[0.0] * 48, latents_std=[1.0] * 48,
                                scale_factor_spatial=16)
    return AutoencoderKLWan(base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                            temperal_downsample=[False, True, True])


def build_tiny_wan(spec: TinyWanSpec | None = None, corpus: Iterable[str] = DEFAULT_CORPUS, seed: int = 0):
    """A WanBackbone with random weights (not written anywhere)."""
    from diffusers import WanTransformer3DModel
    from transformers import UMT5Config, UMT5EncoderModel

    spec = spec or TinyWanSpec()
    if spec.variant not in ("a14b", "ti2v"):
        raise ValueError(f"unknown tiny Wan variant {spec.variant!r}")
    torch.manual_seed(seed)
    tok = build_word_tokenizer(list(corpus), spec.max_text_length, add_bos=False)
    encoder = UMT5EncoderModel(UMT5Config(
        vocab_size=len(tok), d_model=spec.text_dim, d_kv=4, d_ff=2 * spec.text_dim, num_layers=spec.text_layers,
        num_heads=4, relative_attention_num_buckets=8, pad_token_id=0, eos_token_id=2, dropout_rate=0.0))
    if spec.pixel_patch:
        codec = VideoPixelCodec(spec.pixel_patch, temporal=4)
    else:
        codec = WanVaeCodec(_vae(spec.variant))
    channels = codec.latent_channels

    def transformer():
        return WanTransformer3DModel(
            patch_size=(1, 2, 2), num_attention_heads=spec.num_heads, attention_head_dim=spec.head_dim,
            in_channels=channels, out_channels=channels, text_dim=spec.text_dim, freq_dim=32, ffn_dim=spec.ffn_dim,
            num_layers=spec.num_layers, cross_attn_norm=True, qk_norm="rms_norm_across_heads", rope_max_seq_len=32)

    two = spec.variant == "a14b"
    scheduler = {"_class_name": "UniPCMultistepScheduler", "_diffusers_version": "0.42.1",
                 "num_train_timesteps": 1000, "prediction_type": "flow_prediction", "use_flow_sigmas": True,
                 "flow_shift": spec.flow_shift}
    model = WanBackbone(transformer(), codec, WanTextEncoder(tok, encoder, spec.max_text_length),
                        scheduler, transformer_2=transformer() if two else None,
                        boundary_ratio=spec.boundary_ratio if two else None, expand_timesteps=not two)
    model.requires_grad_(False)
    return model


def write_tiny_wan(folder: Path, spec: TinyWanSpec | None = None, corpus: Iterable[str] = DEFAULT_CORPUS,
                   seed: int = 0) -> Path:
    """Write a tiny random Wan folder (WanPipeline layout) and return its path."""
    folder = Path(folder)
    build_tiny_wan(spec, corpus, seed).save_base(folder)
    return folder


def create_tiny_wan(cfg: WanModelConfig, corpus: list[str]) -> None:
    """Write the tiny model of cfg.create at cfg.path, with a word tokenizer over `corpus`."""
    c = cfg.create
    spec = TinyWanSpec(variant=c.variant, num_layers=c.num_layers, num_heads=c.num_heads, head_dim=c.head_dim,
                       ffn_dim=c.ffn_dim, text_dim=c.text_dim, text_layers=c.text_layers,
                       max_text_length=c.max_text_length, flow_shift=c.shift, pixel_patch=c.pixel_patch)
    write_tiny_wan(Path(cfg.path), spec, corpus, seed=c.seed)
