"""Typed recipe tree behind TOML files. Unknown keys are rejected naming the closest valid key; wrong types
and out-of-range values name the key path and the expected form; `--set a.b=c` overrides any key.

[model] is the section of its `family` (each family module declares its own, byg_cli.models.registry) and
[objective] the section of its `name`: a key of another family or objective is refused, naming whose it is."""

from __future__ import annotations

import dataclasses
import difflib
import tomllib
import typing
from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import BaseModel, Field, SerializeAsAny, ValidationError, create_model, field_validator

from byg_cli.engine.objectives import ABLATIONS, BygConfig
from byg_cli.errors import BygError
from byg_cli.models.base import ModelConfig
from byg_cli.sections import Section, known_names


class RunConfig(Section):
    dir: Path = Path("runs/default")
    seed: int = 0


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
        return known_names(value, EDIT_TYPES, "edit type")


class TimestepConfig(Section):
    kind: Literal["uniform", "logit_normal"] = "uniform"
    mean: float = 0.0
    std: float = Field(1.0, gt=0)
    shift: float = Field(1.0, gt=0)


class ObjectiveConfig(Section):
    """The [objective] keys every objective has; each objective's section adds its own."""

    name: str = "byg"
    timesteps: TimestepConfig = Field(default_factory=TimestepConfig)

    def keeps_ema_adapter(self) -> bool:
        """Whether the run keeps G_EMA (an EMA of the edit LoRA, ByG's rollout model) next to G_edit."""
        return False


class T2IObjectiveConfig(ObjectiveConfig):
    name: Literal["t2i"]
    loss_weighting: Literal["velocity", "sample"] = Field(
        "velocity", description="weigh the flow loss per sample by 1 (velocity error) or t^2 (the clean sample's "
                                "error, more weight on high-noise times)")
    target: Literal["sample", "posterior"] = Field(
        "sample", description="regress onto each sample's eps - y ('sample', plain flow matching) or onto the "
                              "exact E[eps - y | y_t] ('posterior': data.kind = 'shapes_t2i' only, whose images "
                              "per caption can be enumerated)")


class SupervisedObjectiveConfig(ObjectiveConfig):
    name: Literal["supervised"]
    # Not named like ByG's identity_warmup_steps: run folders written before the per-objective sections list ByG's
    # keys too (at ByG's defaults), and `byg eval ablations` keeps the ByG recipe's keys the supervised row has.
    copy_warmup_steps: int = Field(0, ge=0, description="first train on ByG's identity loss alone (copy the source) "
                                                        "for this many steps, then on the pairs (0: pairs only)")


def _section_of(engine_config, name: str):
    """The [objective] section of an engine dataclass: one field per dataclass field, same default and bounds."""
    hints = typing.get_type_hints(engine_config)
    keys = {}
    for f in dataclasses.fields(engine_config):
        default = ({"default_factory": f.default_factory} if f.default_factory is not dataclasses.MISSING
                   else {"default": f.default})
        keys[f.name] = (hints[f.name], Field(**default, **f.metadata))
    return create_model(f"{name.capitalize()}Section", __base__=ObjectiveConfig, name=(Literal[name], name), **keys)


class BygObjectiveConfig(_section_of(BygConfig, "byg")):
    """[objective] with name = "byg" (the default): byg_cli.engine.objectives.BygConfig's fields."""

    @field_validator("ablate")
    @classmethod
    def _known_ablations(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(known_names(list(value), ABLATIONS, "ablation"))

    @field_validator("prior_t_max")
    @classmethod
    def _band_in_order(cls, value: float, info) -> float:
        low = info.data.get("prior_t_min", 0.0)
        if value < low:
            raise ValueError(f"is below objective.prior_t_min ({low}): the prior's t band would be empty")
        return value

    def keeps_ema_adapter(self) -> bool:
        return self.rollout_adapter == "ema"

    def engine_config(self) -> BygConfig:
        return BygConfig(**{f.name: getattr(self, f.name) for f in dataclasses.fields(BygConfig)})


OBJECTIVE_SECTIONS = {"byg": BygObjectiveConfig, "supervised": SupervisedObjectiveConfig, "t2i": T2IObjectiveConfig}


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


def model_sections() -> dict[str, type]:
    from byg_cli.models.registry import families

    return {name: f.config for name, f in families().items()}


def _dispatch(value, sections: dict[str, type], key: str, default: str, what: str):
    """A table validated as the section its `key` names (a section instance passes as it is)."""
    if not isinstance(value, dict):
        return value
    name = value.get(key, default)
    if name not in sections:
        close = difflib.get_close_matches(str(name), list(sections), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise ValueError(f"unknown {what} {name!r}{hint}; valid: {', '.join(sections)}")
    return sections[name].model_validate({**value, key: name})


class Recipe(Section):
    run: RunConfig = Field(default_factory=RunConfig)
    model: SerializeAsAny[ModelConfig]
    data: DataConfig = Field(default_factory=DataConfig)
    objective: SerializeAsAny[ObjectiveConfig] = Field(default_factory=BygObjectiveConfig)
    ema: EmaConfig = Field(default_factory=EmaConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    sample: SampleConfig = Field(default_factory=SampleConfig)
    cache: CacheConfig = Field(default_factory=CacheConfig)
    export: ExportConfig = Field(default_factory=ExportConfig)
    inference: InferenceConfig = Field(default_factory=InferenceConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    source: Optional[str] = Field(None, description="where the recipe was loaded from (filled in by byg)")

    @field_validator("model", mode="before")
    @classmethod
    def _family_section(cls, value):
        return _dispatch(value, model_sections(), "family", "flux", "model family")

    @field_validator("objective", mode="before")
    @classmethod
    def _objective_section(cls, value):
        return _dispatch(value, OBJECTIVE_SECTIONS, "name", "byg", "objective")

    def to_toml_dict(self) -> dict[str, Any]:
        return _drop_none(self.model_dump(mode="json"))


def _drop_none(obj):
    if isinstance(obj, dict):
        return {k: _drop_none(v) for k, v in obj.items() if v is not None}
    if isinstance(obj, list):
        return [_drop_none(v) for v in obj]
    return obj


SWITCHED = {"model": ("family", "flux", model_sections), "objective": ("name", "byg", lambda: OBJECTIVE_SECTIONS)}


def _section_class(path: tuple, tree: dict):
    """The section class at a location of the recipe tree (the family's / objective's for [model] / [objective])."""
    model: Any = Recipe
    node: Any = tree
    for part in path:
        node = node.get(part, {}) if isinstance(node, dict) else {}
        if model is Recipe and part in SWITCHED:
            key, default, sections = SWITCHED[part]
            model = sections().get(node.get(key, default) if isinstance(node, dict) else default)
            if model is None:
                return None
            continue
        field = model.model_fields.get(part) if isinstance(part, str) else None
        model = _table_type(field)
        if model is None:
            return None
    return model


def _table_type(field) -> Optional[type]:
    """The section class a field holds (Optional[Section] too), or None for a plain value."""
    annotation = field.annotation if field is not None else None
    if typing.get_origin(annotation) is typing.Union:
        annotation = next((a for a in typing.get_args(annotation) if a is not type(None)), None)
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def _whose_key(loc: tuple, tree: dict) -> Optional[str]:
    """For a key refused in [model] / [objective] (or their sub-tables): which other family / objective has it."""
    if not loc or loc[0] not in SWITCHED:
        return None
    key, default, sections = SWITCHED[loc[0]]
    table = tree.get(loc[0]) if isinstance(tree.get(loc[0]), dict) else {}
    mine = table.get(key, default)
    for name in sections():
        other = _section_class(loc[:-1], {**tree, loc[0]: {**table, key: name}}) if name != mine else None
        if other is not None and loc[-1] in other.model_fields:
            return f"a key of {loc[0]}.{key} = '{name}'; this recipe has {loc[0]}.{key} = '{mine}'"
    return None


def _format_error(err: dict, origin: str, tree: Optional[dict] = None) -> str:
    loc = tuple(err["loc"])
    key = ".".join(str(p) for p in loc)
    tree = tree or {}
    if err["type"] == "extra_forbidden":
        whose = _whose_key(loc, tree)
        if whose:
            return f"{origin}: unknown key '{key}': {whose}"
        section = _section_class(loc[:-1], tree)
        valid = list(section.model_fields) if section is not None else []
        close = difflib.get_close_matches(str(loc[-1]), valid, n=1, cutoff=0.5)
        hint = f" (did you mean '{'.'.join([*map(str, loc[:-1]), close[0]])}'?)" if close else (
            f" (valid keys: {', '.join(valid)})" if valid else "")
        return f"{origin}: unknown key '{key}'{hint}"
    if err["type"] == "missing":
        return f"{origin}: missing required key '{key}'"
    if err["type"] == "value_error" and loc in (("model",), ("objective",)):
        return f"{origin}: '{key}.{SWITCHED[loc[0]][0]}': {err['msg'].removeprefix('Value error, ')}"
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
        message = _format_error(errors[0], origin, tree)
        if len(errors) > 1:
            message += f" (and {len(errors) - 1} more problem(s))"
        raise BygError(message) from None
    _check_combinations(recipe, origin)
    return recipe


def _check_combinations(recipe: Recipe, origin: str) -> None:
    """Keys that are valid alone but not together."""
    o = recipe.objective
    if isinstance(o, T2IObjectiveConfig) and o.target == "posterior" and recipe.data.kind != "shapes_t2i":
        raise BygError(f"{origin}: objective.target = 'posterior' needs objective.name = 't2i' with data.kind = "
                       f"'shapes_t2i' (got '{recipe.data.kind}'): only the shapes world's captions have an "
                       f"enumerable set of images")
    if recipe.data.edit_types is not None and recipe.data.kind != "shapes_edit":
        raise BygError(f"{origin}: data.edit_types applies to data.kind = 'shapes_edit', not "
                       f"'{recipe.data.kind}' (records carry the edit types make-data gave them)")
    from byg_cli.models.registry import family

    video_eval = recipe.eval.after in ("shapes-video-base", "shapes-video")
    if recipe.eval.after != "none" and video_eval != family(recipe.model.family).capabilities.video:
        needs = "a video" if video_eval else "an image"
        raise BygError(f"{origin}: eval.after = '{recipe.eval.after}' needs {needs} model; model.family = "
                       f"'{recipe.model.family}' is not one")


def load_recipe(path: Path, overrides: list[str] | tuple[str, ...] = (), check_paths: bool = True,
                objective: Optional[str] = None) -> Recipe:
    """A recipe file with `--set` overrides. `objective` switches the recipe to another objective, keeping the
    [objective] keys that one has (byg eval ablations trains the supervised baseline from the ByG recipe)."""
    path = Path(path)
    if not path.is_file():
        raise BygError(f"{path}: no such recipe file")
    try:
        tree = tomllib.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise BygError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except tomllib.TOMLDecodeError as exc:
        raise BygError(f"{path}: not valid TOML ({exc})") from None
    if "source" in tree:  # a run's own recipe.toml, written by byg (maybe before the family / objective sections)
        drop_foreign_keys(tree)
    if objective is not None:
        table = tree.setdefault("objective", {})
        table["name"] = objective
        if objective in OBJECTIVE_SECTIONS:
            _keep_known(table, OBJECTIVE_SECTIONS[objective])
    for text in overrides:
        apply_override(tree, *parse_override(text))
    tree["source"] = str(path)
    recipe = recipe_from_dict(tree, origin=str(path))
    if check_paths:
        check_recipe_paths(recipe, str(path))
    return recipe


def drop_foreign_keys(tree: dict) -> None:
    """A run folder's recipe.toml from before [model] and [objective] became per family / per objective held
    every key of every section (the others' at their defaults, ignored): drop those, so old runs load and resume.
    Only for recipes byg wrote (they carry `source`); a hand-written recipe with another family's key is refused."""
    for part, (key, default, sections) in SWITCHED.items():
        table = tree.get(part)
        if not isinstance(table, dict):
            continue
        section = sections().get(table.get(key, default))
        if section is not None:
            _keep_known(table, section)


def _keep_known(table: dict, section: type) -> None:
    for name in list(table):
        field = section.model_fields.get(name)
        if field is None:
            del table[name]
        elif isinstance(table[name], dict) and _table_type(field) is not None:
            _keep_known(table[name], _table_type(field))


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
