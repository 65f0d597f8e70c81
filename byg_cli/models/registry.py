"""The model families byg knows, and loading a backbone from a recipe's [model] table.

A family is one module that calls `register_family(Family(...))` when imported: its recipe section (a
ModelConfig subclass whose `family` is a Literal of its name), its backbone class, how to write a tiny model of
its architecture, the prefix of its pipelines' class names in model_index.json and, if other tools can read its
LoRA, its exporter. byg's own families (byg_cli/models/flux_family.py, wan_family.py) are imported on first use;
a new one registers itself in one line (see tests/test_toy_family.py).
"""

from __future__ import annotations

import importlib
import warnings
from dataclasses import dataclass
from typing import Callable, Optional

import torch

from byg_cli.errors import BygError

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
BUILTIN_FAMILIES = ("byg_cli.models.flux_family", "byg_cli.models.wan_family")


@dataclass(frozen=True)
class Family:
    name: str
    config: type  # its [model] section, a byg_cli.models.base.ModelConfig subclass
    backbone: type  # has from_config(config, dtype) -> a Backbone, and a `capabilities` record
    create: Optional[Callable] = None  # create(config, corpus): write the tiny model of config.create at config.path
    folder_class_prefix: str = ""  # model_index.json's _class_name starts with this for the family's folders
    lora_export: Optional[object] = None  # default_targets, diffusers(...), comfyui(...) (byg_cli.export)

    @property
    def capabilities(self):
        return self.backbone.capabilities


_FAMILIES: dict[str, Family] = {}


def register_family(family: Family) -> Family:
    """Make a family known to recipes, `byg train` and `byg edit` (a family module calls this at import)."""
    _FAMILIES[family.name] = family
    return family


def families() -> dict[str, Family]:
    for module in BUILTIN_FAMILIES:
        importlib.import_module(module)
    return dict(_FAMILIES)


def family(name: str) -> Family:
    known = families()
    if name not in known:
        raise BygError(f"model.family '{name}': unknown; valid: {', '.join(known)}")
    return known[name]


def quiet_hf() -> None:
    """Silence the per-file progress bars and adapter warnings of the HF libraries (we show our own progress)."""
    import diffusers
    import transformers

    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    diffusers.utils.logging.disable_progress_bar()
    diffusers.utils.logging.set_verbosity_error()
    warnings.filterwarnings("ignore", message="Already found a `peft_config` attribute")


def check_model_folder(model_cfg) -> None:
    """Refuse, in one line, a model folder that does not hold the family's model or has a damaged file."""
    from pathlib import Path

    from byg_cli.file_checks import model_folder_problem

    root = Path(model_cfg.path)
    problem = model_folder_problem(root)
    if problem:
        raise BygError(f"model.path: {problem}")
    index = root / "model_index.json"
    if index.is_file():
        import json

        name = str(json.loads(index.read_text(encoding="utf-8")).get("_class_name", ""))
        prefix = family(model_cfg.family).folder_class_prefix
        if name and prefix and not name.startswith(prefix):
            raise BygError(f"model.family = '{model_cfg.family}': {root} holds a {name} (model_index.json); set "
                           f"model.family to match the folder")


def load_backbone(model_cfg, adapters: bool):
    """The family's backbone from its folder, frozen; with `adapters`, the edit and EMA LoRAs attached."""
    quiet_hf()
    check_model_folder(model_cfg)
    model = family(model_cfg.family).backbone.from_config(model_cfg, DTYPES[model_cfg.dtype])
    if adapters:
        targets = None if model_cfg.lora_targets is None else tuple(model_cfg.lora_targets)
        try:
            model.add_adapters(model_cfg.lora_rank, model_cfg.lora_alpha, targets)
        except ValueError as err:  # peft: no module matches a target
            raise BygError(f"model.lora_targets {list(model_cfg.lora_targets or [])}: not modules of this model's "
                           f"denoiser ({str(err).splitlines()[0][:160]})") from None
    if model_cfg.gradient_checkpointing:
        model.enable_gradient_checkpointing()
    return model


def model_config(path, family_name: str = "flux", **keys):
    """The family's [model] section for a folder, with its defaults."""
    return family(family_name).config(path=path, family=family_name, **keys)


def load_model_folder(path, family: str = "flux"):
    """A base model folder loaded for inference with its recipe defaults (no adapters)."""
    from pathlib import Path

    if not Path(path).is_dir():
        raise BygError(f"--model {path}: no such folder")
    model = load_backbone(model_config(path, family), adapters=False)
    model.eval()
    return model
