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
    if model_cfg.family == "wan":
        from byg_cli.data.shapes_video import shapes_video_corpus
        from byg_cli.models.tiny import DEFAULT_CORPUS
        from byg_cli.models.tiny_wan import TinyWanSpec, write_tiny_wan

        c = spec_cfg
        spec = TinyWanSpec(variant=c.variant, num_layers=c.num_layers, num_heads=c.num_heads, head_dim=c.head_dim,
                           ffn_dim=c.ffn_dim, text_dim=c.text_dim, text_layers=c.text_layers,
                           max_text_length=c.max_text_length, flow_shift=c.shift, pixel_patch=c.pixel_patch)
        corpus = shapes_video_corpus() if c.vocabulary == "shapes" else list(DEFAULT_CORPUS)
        write_tiny_wan(Path(model_cfg.path), spec, corpus, seed=c.seed)
        return
    from byg_cli.models.tiny import DEFAULT_CORPUS, TinyFluxSpec, write_tiny_flux

    if spec_cfg.vocabulary == "shapes":
        from byg_cli.data.shapes_edits import shapes_corpus

        corpus = shapes_corpus()
    else:
        corpus = list(DEFAULT_CORPUS)
    fields = spec_cfg.model_dump(exclude={"vocabulary", "seed", "variant", "ffn_dim"})  # wan-only keys
    fields["axes_dims_rope"] = tuple(fields["axes_dims_rope"])
    write_tiny_flux(Path(model_cfg.path), TinyFluxSpec(**fields), corpus, seed=spec_cfg.seed)


PIPELINE_FAMILIES = {"flux": ("Flux",), "wan": ("Wan",)}  # model_index.json _class_name prefixes per family


def check_model_folder(model_cfg) -> None:
    """Refuse, in one line, a model folder that does not hold the family's model or has a damaged file."""
    from pathlib import Path

    from byg_cli.errors import BygError
    from byg_cli.file_checks import model_folder_problem

    root = Path(model_cfg.path)
    problem = model_folder_problem(root)
    if problem:
        raise BygError(f"model.path: {problem}")
    index = root / "model_index.json"
    if index.is_file():
        import json

        name = str(json.loads(index.read_text(encoding="utf-8")).get("_class_name", ""))
        if name and not name.startswith(PIPELINE_FAMILIES[model_cfg.family]):
            raise BygError(f"model.family = '{model_cfg.family}': {root} holds a {name} (model_index.json); set "
                           f"model.family to match the folder")


def load_backbone(model_cfg, adapters: bool):
    from byg_cli.errors import BygError

    quiet_hf()
    create_if_missing(model_cfg)
    check_model_folder(model_cfg)
    if model_cfg.family == "flux":
        from byg_cli.models.flux import FluxBackbone

        model = FluxBackbone.load(model_cfg.path, dtype=DTYPES[model_cfg.dtype], guidance=model_cfg.guidance,
                                  source_id_offset=model_cfg.source_id_offset,
                                  max_sequence_length=model_cfg.max_sequence_length,
                                  attention_backend=model_cfg.attention_backend)
    elif model_cfg.family == "wan":
        from byg_cli.models.wan import WanBackbone

        model = WanBackbone.load(model_cfg.path, dtype=DTYPES[model_cfg.dtype],
                                 max_sequence_length=model_cfg.max_sequence_length,
                                 boundary_ratio=model_cfg.boundary_ratio, source_timestep=model_cfg.source_timestep,
                                 train_expert=model_cfg.train_expert)
    else:  # pragma: no cover - the recipe's Literal rejects other families
        raise ValueError(model_cfg.family)
    if adapters:
        if model_cfg.lora_targets is None:
            model.add_adapters(model_cfg.lora_rank, model_cfg.lora_alpha)  # the family's default targets
        else:
            try:
                model.add_adapters(model_cfg.lora_rank, model_cfg.lora_alpha, tuple(model_cfg.lora_targets))
            except ValueError as err:  # peft: no module matches a target
                raise BygError(f"model.lora_targets {list(model_cfg.lora_targets)}: not modules of this model's "
                               f"transformer ({str(err).splitlines()[0][:160]})") from None
    if model_cfg.gradient_checkpointing:
        if hasattr(model, "enable_gradient_checkpointing"):  # Wan: every expert
            model.enable_gradient_checkpointing()
        else:
            model.transformer.enable_gradient_checkpointing()
    return model


def load_model_folder(path, family: str = "flux"):
    """A base model folder loaded for inference with its recipe defaults (no adapters)."""
    from byg_cli.errors import BygError
    from byg_cli.recipe import ModelConfig

    from pathlib import Path

    if not Path(path).is_dir():
        raise BygError(f"--model {path}: no such folder")
    model = load_backbone(ModelConfig(path=path, family=family), adapters=False)
    model.eval()
    return model
