"""LoRA export of an editing run's checkpoint: diffusers format (loadable by FluxKontextPipeline.load_lora_weights)
and/or ComfyUI names, as safetensors with the run's recipe in the metadata, written to RUN/lora/."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from safetensors.torch import save_file

from byg_cli import checkpoint as ckpt
from byg_cli.engine.objectives import OBJECTIVES
from byg_cli.errors import BygError
from byg_cli.models.registry import family
from byg_cli.recipe import Recipe, load_recipe

DIFFUSERS_FILE = "pytorch_lora_weights.safetensors"  # the file name diffusers looks for in a folder
COMFYUI_FILE = "byg_lora_comfyui.safetensors"


def exportable(cfg: Recipe) -> bool:
    """Whether the run trains a LoRA and its family has a layout other tools read (FLUX; not Wan yet)."""
    return (OBJECTIVES[cfg.objective.name].trains == "lora" and family(cfg.model.family).lora_export is not None
            and cfg.model.lora_export_problem() is None)


def export_lora(cfg: Recipe, run_dir: Path, *, checkpoint: str = "latest", fmt: Optional[str] = None,
                weights: Optional[str] = None, out_dir: Optional[Path] = None) -> list[Path]:
    """Write the chosen adapter of a checkpoint in the chosen format(s); returns the files written."""
    import tomli_w

    if OBJECTIVES[cfg.objective.name].trains != "lora":
        raise BygError(f"export: a {cfg.objective.name} run trains full weights (RUN/model), not a LoRA")
    problem = cfg.model.lora_export_problem()
    if problem:
        raise BygError(f"export: {problem}")
    fmt = fmt or cfg.export.format
    weights = weights or cfg.export.weights
    if fmt not in ("diffusers", "comfyui", "both"):
        raise BygError(f"--lora-format {fmt}: use diffusers, comfyui or both")
    if weights not in ("edit", "ema"):
        raise BygError(f"--weights {weights}: choose 'edit' (the trained weights) or 'ema'")
    found = ckpt.resolve_checkpoint(run_dir, checkpoint)
    lora = ckpt.load_adapter(found, weights, run_keeps_ema=cfg.objective.keeps_ema_adapter())
    if lora is None:
        raise BygError(f"{found}: has no '{weights}' adapter")
    exporter = family(cfg.model.family).lora_export
    if exporter is None:
        raise BygError(f"export: no LoRA export for model family '{cfg.model.family}' yet")
    step = ckpt.load_state(found)["step"]
    meta = {"format": "pt", "byg_recipe": tomli_w.dumps(cfg.to_toml_dict()), "byg_adapter": weights,
            "byg_step": str(step), "byg_checkpoint": found.name}
    out_dir = Path(out_dir or Path(run_dir) / "lora")
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    m = cfg.model
    if fmt in ("diffusers", "both"):
        targets = list(m.lora_targets or exporter.default_targets)
        sd, extra = exporter.diffusers(lora, m.lora_rank, m.lora_alpha, targets)
        save_file(sd, str(out_dir / DIFFUSERS_FILE), metadata={**meta, **extra})
        written.append(out_dir / DIFFUSERS_FILE)
    if fmt in ("comfyui", "both"):
        sd, extra = exporter.comfyui(lora, m.lora_rank, m.lora_alpha)
        save_file(sd, str(out_dir / COMFYUI_FILE), metadata={**meta, **extra})
        written.append(out_dir / COMFYUI_FILE)
    return written


def export_run(recipe: Path, run_dir: Optional[Path] = None, **kwargs) -> list[Path]:
    """`byg train RECIPE --export-only`: the run folder is --run-dir or the recipe's run.dir."""
    cfg = load_recipe(recipe, check_paths=False)
    return export_lora(cfg, Path(run_dir or cfg.run.dir), **kwargs)
