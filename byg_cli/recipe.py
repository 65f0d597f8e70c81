"""Typed recipe tree behind TOML files. Unknown keys are rejected naming the closest valid key; wrong types
and out-of-range values name the key path and the expected form; `--set a.b=c` overrides any key."""

from __future__ import annotations

import difflib
import tomllib
from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from byg_cli.engine.objectives import ABLATIONS
from byg_cli.errors import BygError


def _numeric(annotation) -> bool:
    """An int or float field (Optional too), where TOML's true/false must not pass as 1/0."""
    import typing

    if annotation in (int, float):
        return True
    return typing.get_origin(annotation) in (typing.Union, getattr(__import__("types"), "UnionType", None)) and any(
        a in (int, float) for a in typing.get_args(annotation))


def _known_names(value: list[str], known, what: str) -> list[str]:
    """`value` when every name is in `known`; else a ValueError naming the first stranger, with the closest."""
    for name in value:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else f"; valid: {', '.join(known)}"
            raise ValueError(f"unknown {what} '{name}'{hint}")
    return value


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_as_number(cls, value, info):
        if isinstance(value, bool) and _numeric(cls.model_fields[info.field_name].annotation):
            raise ValueError(f"expected a number, got {str(value).lower()}")
        return value


class RunConfig(Section):
    dir: Path = Path("runs/default")
    seed: int = 0


class CreateConfig(Section):
    """A tiny FLUX-architecture model created at model.path when that folder does not exist yet."""

    vocabulary: Literal["shapes", "default"] = "shapes"
    num_layers: int = Field(2, ge=0)
    num_single_layers: int = Field(2, ge=0)
    num_heads: int = Field(4, ge=1)
    head_dim: int = Field(32, ge=4)
    axes_dims_rope: tuple[int, int, int] = (8, 12, 12)
    text_dim: int = Field(64, ge=8)
    text_layers: int = Field(2, ge=1)
    text_heads: int = Field(4, ge=1)
    max_text_length: int = Field(16, ge=4)
    pixel_patch: int = Field(2, ge=0, description="pixel codec factor; 0 = a tiny AutoencoderKL")
    guidance_embeds: bool = False
    shift: float = Field(1.0, gt=0, description="sampling shift written to the scheduler config")
    prediction: Literal["velocity", "sample"] = Field(
        "velocity", description="what the transformer outputs: the velocity, or the clean sample (x-prediction)")
    seed: int = 0
    # family "wan" (tiny_wan.TinyWanSpec): num_layers, num_heads, head_dim, text_dim, text_layers,
    # max_text_length, pixel_patch (0 = a tiny AutoencoderKLWan) and shift (UniPC flow shift) apply, plus:
    variant: Literal["ti2v", "a14b"] = Field("ti2v", description="wan: one transformer with per-token time "
                                                                 "(ti2v) or two experts (a14b)")
    ffn_dim: int = Field(128, ge=4, description="wan: feed-forward width")


class ModelConfig(Section):
    family: Literal["flux", "wan"] = "flux"
    path: Path = Field(description="a local diffusers-format model folder")
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    lora_rank: int = Field(16, ge=1)
    lora_alpha: float = Field(16.0, gt=0)
    lora_targets: Optional[list[str]] = Field(None, min_length=1,
                                              description="LoRA target modules; default: the family's "
                                                          "list (FLUX: attention + MLP of both streams; "
                                                          "Wan: attn1, attn2 and ffn of every block)")
    guidance: float = Field(3.5, description="FLUX.1-dev guidance embedding value, used in every pass")
    source_id_offset: float = Field(1.0, description="first position-id coordinate of source tokens (Kontext: 1)")
    max_sequence_length: Optional[int] = Field(None, ge=1)
    gradient_checkpointing: bool = False
    attention_backend: Optional[str] = Field(
        None, description="diffusers attention backend (default: 'native' = torch SDPA), e.g. 'flash', '_native_cudnn'")
    train_text_encoder: bool = Field(False, description="t2i only: train the text encoders too")
    create: Optional[CreateConfig] = None
    # Wan only
    boundary_ratio: Optional[float] = Field(
        None, gt=0, lt=1, description="Wan2.2 A14B expert switch as a fraction of the 1000 training timesteps: "
                                      "t*1000 >= boundary_ratio*1000 runs `transformer` (high noise), else "
                                      "`transformer_2`; default: the folder's model_index.json (0.875 for T2V)")
    train_expert: Literal["both", "high", "low"] = Field(
        "both", description="Wan two-expert models: 'both' puts LoRAs on both experts (each t trains its owner); "
                            "'high'/'low' trains one expert per run with training t restricted to its range")
    source_timestep: Literal["auto", "zero", "same"] = Field(
        "auto", description="Wan: time of the clean source tokens; auto = 0 where the model has per-token "
                            "time (TI2V expand_timesteps), else the noisy tokens' t")


def frames_4k1(value: Optional[int]) -> Optional[int]:
    """Wan's VAE compresses time 4x after the first frame: clips have 4k+1 frames."""
    if value is not None and (value - 1) % 4:
        low = value - (value - 1) % 4
        raise ValueError(f"must be 4k+1 for the Wan VAE's 4x temporal compression (e.g. {low} or {low + 4})")
    return value


class DataConfig(Section):
    kind: Literal["records", "shapes_t2i", "shapes_edit", "shapes_video_t2v", "shapes_video_edit"] = "records"
    path: Optional[Path] = None
    resolution: int = Field(32, ge=8)
    edit_types: Optional[list[str]] = Field(None, description="shapes world: only these edit types (default: all)")
    buckets: bool = Field(False, description="records: aspect-ratio buckets of area ~ resolution^2 instead of "
                                             "square centre crops")
    bucket_step: int = Field(16, ge=2, description="bucket sides are multiples of this (FLUX: 16 = VAE 8 x pack 2)")
    max_aspect: float = Field(2.0, ge=1.0, description="widest bucket's side ratio")
    # video records only
    height: Optional[int] = Field(None, ge=8, description="video frame height (default: resolution)")
    width: Optional[int] = Field(None, ge=8, description="video frame width (default: resolution)")
    frames: int = Field(81, ge=1, description="frames per training clip; Wan needs 4k+1")
    fps: Optional[float] = Field(None, gt=0, description="resample clips to this frame rate; default: the "
                                                        "source's own frames, consecutive")

    _frames_4k1 = field_validator("frames")(lambda cls, v: frames_4k1(v))

    @field_validator("edit_types")
    @classmethod
    def _known_edit_types(cls, value: Optional[list[str]]) -> Optional[list[str]]:
        from byg_cli.data.shapes_edits import EDIT_TYPES

        if value is None:
            return value
        if not value:
            raise ValueError("empty: leave the key out for every edit type")
        return _known_names(value, EDIT_TYPES, "edit type")


class TimestepConfig(Section):
    kind: Literal["uniform", "logit_normal"] = "uniform"
    mean: float = 0.0
    std: float = Field(1.0, gt=0)
    shift: float = Field(1.0, gt=0)


class ObjectiveConfig(Section):
    name: Literal["byg", "supervised", "t2i"] = "byg"
    timesteps: TimestepConfig = Field(default_factory=TimestepConfig)
    loss_weighting: Literal["velocity", "sample"] = Field(
        "velocity", description="t2i: weigh the flow loss per sample by 1 (velocity error) or t^2 (the clean "
                                "sample's error, more weight on high-noise times)")
    target: Literal["sample", "posterior"] = Field(
        "sample", description="t2i: regress onto each sample's eps - y ('sample', plain flow matching) or onto "
                              "the exact E[eps - y | y_t] ('posterior': data.kind = 'shapes_t2i' only, whose "
                              "images per caption can be enumerated)")
    rollout_steps: int = Field(10, ge=1)
    rollout_shift: float = Field(1.0, gt=0)
    lambda_prior: float = Field(1.0, ge=0)
    lambda_id: float = Field(0.2, ge=0)
    lambda_cycle: float = Field(1.0, ge=0)
    alpha: float = Field(0.1, ge=0, description="weight of the MSE anchor in the prior loss")
    identity_warmup_steps: int = Field(200, ge=0)
    identity_prob: float = Field(0.15, ge=0, le=1)
    prior_ramp_steps: int = Field(0, ge=0, description="experimental: the prior's weight grows linearly from 0 "
                                                       "to lambda_prior over this many steps after the identity "
                                                       "warm-up (0: Algorithm 1, the full weight at once)")
    rollout_adapter: Literal["ema", "edit"] = "ema"
    batch_passes: bool = True
    checkpoint_passes: bool = Field(True, description="recompute the forward and reverse passes in backward: the "
                                                     "step's peak memory is one pass's (about a supervised "
                                                     "step's), ~1.1x the time; false = faster, ~2x the "
                                                     "activations")
    ablate: list[str] = Field(default_factory=list)

    @field_validator("ablate")
    @classmethod
    def _known_ablations(cls, value: list[str]) -> list[str]:
        return _known_names(value, ABLATIONS, "ablation")


class EmaConfig(Section):
    decay: float = Field(0.999, ge=0, le=1)
    full_weights: bool = Field(True, description="t2i: keep an EMA of all trained weights; samples and the "
                                                 "exported model use it")


class TrainConfig(Section):
    steps: int = Field(1000, ge=1)
    batch_size: int = Field(4, ge=1, description="per-process batch size")
    grad_accum: int = Field(1, ge=1)
    lr: float = Field(1e-4, gt=0)
    weight_decay: float = Field(1e-2, ge=0)
    betas: tuple[float, float] = (0.9, 0.999)

    @field_validator("betas")
    @classmethod
    def _betas_in_range(cls, value: tuple[float, float]) -> tuple[float, float]:
        if not all(0.0 <= b < 1.0 for b in value):
            raise ValueError(f"each beta must be in [0, 1), got {list(value)}")
        return value
    max_grad_norm: float = Field(1.0, ge=0, description="0 disables clipping")
    lr_warmup_steps: int = Field(0, ge=0)
    lr_decay_steps: int = Field(0, ge=0, description="decay the learning rate linearly to zero over the last N "
                                                       "steps of the run (0: constant after warm-up)")
    mixed_precision: Literal["no", "bf16", "fp16"] = "no"
    compile: bool = Field(False, description="torch.compile the denoiser: the first steps (and the first calls of "
                                             "each new shape) are slow while it compiles, later ones faster; "
                                             "see benchmarks/compile_step.py")
    checkpoint_every: int = Field(500, ge=1)
    keep_checkpoints: int = Field(3, ge=1)
    sample_every: int = Field(500, ge=0, description="0 disables sample grids")
    log_every: int = Field(1, ge=1)
    threads: Optional[int] = Field(None, ge=1, description="torch CPU threads")
    max_minutes: Optional[float] = Field(None, gt=0, description="end the run after this many minutes of training "
                                                               "even if train.steps is not reached: the model or "
                                                               "LoRA is written and evaluated as at the last step")
    data_workers: int = Field(0, ge=0, description="processes that make upcoming batches ahead of the training "
                                                    "step (0: made in the training process); same batches either way")
    sharding: Literal["auto", "ddp", "fsdp"] = Field(
        "auto", description="multi-process mode: ddp (replicated base, all-reduced LoRA) or fsdp (FSDP2-sharded "
                            "transformer); auto = fsdp when the accelerate config says FSDP, else ddp")


class CacheConfig(Section):
    """VAE latents and text embeddings computed once and kept on disk, keyed by content and model."""

    enabled: bool = False
    dir: Path = Field(Path("cache"), description="cache folder, shared by runs (keys include the model identity)")
    offload_encoders: bool = Field(True, description="after caching, move the VAE and text encoders to the CPU")
    batch_size: int = Field(8, ge=1, description="images / prompts encoded per call while filling the cache")


class ExportConfig(Section):
    """The LoRA written to RUN/lora/ when training ends (and by `byg train --export-only`)."""

    at_end: bool = True
    format: Literal["diffusers", "comfyui", "both"] = "diffusers"
    weights: Literal["edit", "ema"] = Field("edit", description="which adapter to export")


class InferenceConfig(Section):
    """How `byg edit` samples with a trained run."""

    sampler: Literal["auto", "euler", "unipc"] = Field(
        "auto", description="auto = the backbone's default (FLUX: Euler; Wan: UniPC)")
    steps: int = Field(20, ge=1)
    flow_shift: Optional[float] = Field(None, gt=0, description="UniPC flow shift; default: the model folder's "
                                                                "scheduler config")
    height: Optional[int] = Field(None, ge=8, description="video: frame height (default: data.height)")
    width: Optional[int] = Field(None, ge=8, description="video: frame width (default: data.width)")
    frames: Optional[int] = Field(None, ge=1, description="video: most frames edited at once (4k+1); longer "
                                                          "videos are resampled to it (default: data.frames)")

    _frames_4k1 = field_validator("frames")(lambda cls, v: frames_4k1(v))


class SampleConfig(Section):
    steps: int = Field(20, ge=1)
    count: int = Field(4, ge=1)
    prompts: list[str] = Field(default_factory=list)


class EvalConfig(Section):
    after: Literal["none", "shapes", "shapes-edit", "shapes-video-base", "shapes-video"] = Field(
        "none", description="evaluation run when training ends, written to RUN/eval")
    count: int = Field(500, ge=1, description="shapes: images to generate; shapes-video-base: clips to generate; "
                                              "shapes-video: held-out clips to edit")
    per_type: int = Field(50, ge=1, description="shapes-edit: edits per edit type")
    steps: int = Field(20, ge=1, description="sampling steps")


class Recipe(Section):
    run: RunConfig = Field(default_factory=RunConfig)
    model: ModelConfig
    data: DataConfig = Field(default_factory=DataConfig)
    objective: ObjectiveConfig = Field(default_factory=ObjectiveConfig)
    ema: EmaConfig = Field(default_factory=EmaConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    sample: SampleConfig = Field(default_factory=SampleConfig)
    cache: CacheConfig = Field(default_factory=CacheConfig)
    export: ExportConfig = Field(default_factory=ExportConfig)
    inference: InferenceConfig = Field(default_factory=InferenceConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    source: Optional[str] = Field(None, description="where the recipe was loaded from (filled in by byg)")

    def to_toml_dict(self) -> dict[str, Any]:
        return _drop_none(self.model_dump(mode="json"))


def _drop_none(obj):
    if isinstance(obj, dict):
        return {k: _drop_none(v) for k, v in obj.items() if v is not None}
    if isinstance(obj, list):
        return [_drop_none(v) for v in obj]
    return obj


def _section_fields(path: tuple) -> list[str]:
    """Valid keys at a location of the recipe tree (for 'did you mean')."""
    model: Any = Recipe
    for part in path:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        if field is None or not isinstance(field.annotation, type) or not issubclass(field.annotation, BaseModel):
            return []
        model = field.annotation
    return list(model.model_fields)


def _format_error(err: dict, origin: str) -> str:
    loc = tuple(err["loc"])
    key = ".".join(str(p) for p in loc)
    if err["type"] == "extra_forbidden":
        valid = _section_fields(loc[:-1])
        close = difflib.get_close_matches(str(loc[-1]), valid, n=1, cutoff=0.5)
        hint = f" (did you mean '{'.'.join([*map(str, loc[:-1]), close[0]])}'?)" if close else (
            f" (valid keys: {', '.join(valid)})" if valid else "")
        return f"{origin}: unknown key '{key}'{hint}"
    if err["type"] == "missing":
        return f"{origin}: missing required key '{key}'"
    value = err.get("input")
    shown = repr(value) if not isinstance(value, dict) else "a table"
    return f"{origin}: '{key}' {err['msg'].lower()} (got {shown})"


def parse_override(text: str) -> tuple[list[str], Any]:
    if "=" not in text:
        raise BygError(f"--set {text}: expected KEY=VALUE, e.g. --set train.lr=1e-4")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise BygError(f"--set {text}: bad key '{key}'")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return key.split("."), value


def apply_override(tree: dict, parts: list[str], value: Any) -> None:
    node = tree
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise BygError(f"--set {'.'.join(parts)}: '{part}' is not a table")
        node = child
    node[parts[-1]] = value


def recipe_from_dict(tree: dict, origin: str = "recipe") -> Recipe:
    try:
        recipe = Recipe.model_validate(tree)
    except ValidationError as exc:
        errors = exc.errors()
        message = _format_error(errors[0], origin)
        if len(errors) > 1:
            message += f" (and {len(errors) - 1} more problem(s))"
        raise BygError(message) from None
    _check_combinations(recipe, origin)
    return recipe


def _check_combinations(recipe: Recipe, origin: str) -> None:
    """Keys that are valid alone but not together."""
    o = recipe.objective
    if o.target == "posterior" and (o.name != "t2i" or recipe.data.kind != "shapes_t2i"):
        raise BygError(f"{origin}: objective.target = 'posterior' needs objective.name = 't2i' and data.kind = "
                       f"'shapes_t2i' (got '{o.name}' and '{recipe.data.kind}'): only the shapes world's "
                       "captions have an enumerable set of images")
    if recipe.data.edit_types is not None and recipe.data.kind != "shapes_edit":
        raise BygError(f"{origin}: data.edit_types applies to data.kind = 'shapes_edit', not "
                       f"'{recipe.data.kind}' (records carry the edit types make-data gave them)")
    video_eval = recipe.eval.after in ("shapes-video-base", "shapes-video")
    if recipe.eval.after != "none" and video_eval != (recipe.model.family == "wan"):
        needs = "a video (model.family = 'wan')" if video_eval else "an image (model.family = 'flux')"
        raise BygError(f"{origin}: eval.after = '{recipe.eval.after}' needs {needs} recipe; this one has "
                       f"model.family = '{recipe.model.family}'")


def load_recipe(path: Path, overrides: list[str] | tuple[str, ...] = (), check_paths: bool = True) -> Recipe:
    path = Path(path)
    if not path.is_file():
        raise BygError(f"{path}: no such recipe file")
    try:
        tree = tomllib.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise BygError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except tomllib.TOMLDecodeError as exc:
        raise BygError(f"{path}: not valid TOML ({exc})") from None
    for text in overrides:
        apply_override(tree, *parse_override(text))
    tree["source"] = str(path)
    recipe = recipe_from_dict(tree, origin=str(path))
    if check_paths:
        check_recipe_paths(recipe, str(path))
    return recipe


def check_recipe_paths(recipe: Recipe, origin: str) -> None:
    if not recipe.model.path.is_dir() and recipe.model.create is None:
        raise BygError(f"{origin}: model.path: folder '{recipe.model.path}' does not exist")
    if recipe.data.kind == "records":
        if recipe.data.path is None:
            raise BygError(f"{origin}: data.path is required when data.kind = 'records'")
        if not recipe.data.path.is_file():
            raise BygError(f"{origin}: data.path: file '{recipe.data.path}' does not exist")


def write_recipe(recipe: Recipe, path: Path) -> None:
    import tomli_w

    Path(path).write_text(tomli_w.dumps(recipe.to_toml_dict()))
