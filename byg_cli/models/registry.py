"""Load a backbone from a recipe's [model] table."""

from __future__ import annotations

import warnings

import torch

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def quiet_hf() -> None:
    """Silence the per-file progress bars and adapter warnings of the HF libraries (we show our own progress)."""
    import diffusers
    import transformers

    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    diffusers.utils.logging.disable_progress_bar()
    diffusers.utils.logging.set_verbosity_error()
    warnings.filterwarnings("ignore", message="Already found a `peft_config` attribute")


def create_if_missing(model_cfg) -> None:
    """Write a fresh tiny model at model.path from the recipe's [model.create] table, unless it exists."""
    from pathlib import Path

    spec_cfg = model_cfg.create
    if spec_cfg is None or (Path(model_cfg.path) / "model_index.json").is_file():
        return
    from byg_cli.models.tiny import DEFAULT_CORPUS, TinyFluxSpec, write_tiny_flux

    if spec_cfg.vocabulary == "shapes":
        from byg_cli.data.shapes_edits import shapes_corpus

        corpus = shapes_corpus()
    else:
        corpus = list(DEFAULT_CORPUS)
    fields = spec_cfg.model_dump(exclude={"vocabulary", "seed"})
    fields["axes_dims_rope"] = tuple(fields["axes_dims_rope"])
    write_tiny_flux(Path(model_cfg.path), TinyFluxSpec(**fields), corpus, seed=spec_cfg.seed)


def load_backbone(model_cfg, adapters: bool):
    quiet_hf()
    create_if_missing(model_cfg)
    if model_cfg.family == "flux":
        from byg_cli.models.flux import FluxBackbone

        model = FluxBackbone.load(model_cfg.path, dtype=DTYPES[model_cfg.dtype], guidance=model_cfg.guidance,
                                  source_id_offset=model_cfg.source_id_offset,
                                  max_sequence_length=model_cfg.max_sequence_length,
                                  attention_backend=model_cfg.attention_backend)
    else:  # pragma: no cover - the recipe's Literal rejects other families
        raise ValueError(model_cfg.family)
    if adapters:
        model.add_adapters(model_cfg.lora_rank, model_cfg.lora_alpha, tuple(model_cfg.lora_targets))
    if model_cfg.gradient_checkpointing:
        model.transformer.enable_gradient_checkpointing()
    return model
