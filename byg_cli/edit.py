"""Editing with a trained run: load the base, its trained LoRA, and sample (Euler, 20 steps by default)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

import torch
from PIL import Image

from byg_cli import checkpoint as ckpt
from byg_cli.data.images import center_crop_resize, to_pil, to_tensor
from byg_cli.errors import BygError
from byg_cli.models.registry import load_backbone
from byg_cli.recipe import load_recipe
from byg_cli.sampling import edit_pixels


class Editor:
    """A trained editing model. `weights` picks the adapter: "edit" (the trained weights) or "ema"."""

    def __init__(self, model, resolution: int, weights: str = "edit"):
        self.model, self.resolution, self.weights = model, resolution, weights

    @classmethod
    def from_run(cls, run: Path, *, checkpoint: str = "latest", weights: Optional[str] = None) -> "Editor":
        run = Path(run)
        recipe_file = run / "recipe.toml"
        if not recipe_file.is_file():
            raise BygError(f"--run {run}: not a byg run folder (no recipe.toml)")
        cfg = load_recipe(recipe_file, check_paths=False)
        if cfg.objective.name == "t2i":
            raise BygError(f"--run {run}: a text-to-image run ({cfg.objective.name}); editing needs a byg or "
                           f"supervised run")
        found = ckpt.resolve_checkpoint(run, checkpoint)
        model = load_backbone(cfg.model, adapters=True)
        model.load_lora_state_dict("edit", ckpt.load_adapter(found, "edit"))
        ema = ckpt.load_adapter(found, "ema")
        has_ema = ema is not None and cfg.objective.name == "byg" and cfg.objective.rollout_adapter == "ema"
        if has_ema:
            model.load_lora_state_dict("ema", ema)
        weights = weights or "edit"
        if weights == "ema" and not has_ema:
            raise BygError(f"--weights ema: run {run} kept no EMA adapter")
        model.eval()
        return cls(model, cfg.data.resolution, weights)

    def edit(self, images: list[Image.Image], instructions: list[str], *, steps: int = 20, seed: int = 0,
             callback: Optional[Callable[[int], None]] = None) -> list[Image.Image]:
        if len(images) != len(instructions):
            raise BygError(f"{len(images)} image(s) but {len(instructions)} instruction(s)")
        size = self.resolution
        pixels = torch.stack([to_tensor(center_crop_resize(img.convert("RGB"), size, size)) for img in images])
        out = edit_pixels(self.model, pixels, list(instructions), steps, seed=seed, adapter=self.weights,
                          callback=callback)
        return [to_pil(x) for x in out]


def edit_file(image: Path, instruction: str, run: Path, out: Path, *, steps: int = 20, seed: int = 0,
              weights: Optional[str] = None, checkpoint: str = "latest") -> Path:
    """`byg edit IMAGE "instruction" --run RUN -o OUT` with a rich progress bar."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from byg_cli.data.images import load_image

    if not Path(image).is_file():
        raise BygError(f"{image}: no such file")
    if Path(out).suffix.lower() not in (".png", ".jpg", ".jpeg", ".webp"):
        raise BygError(f"-o {out}: give an image file name ending in .png, .jpg or .webp")
    source = load_image(Path(image))
    editor = Editor.from_run(run, checkpoint=checkpoint, weights=weights)
    with Progress(TextColumn("editing"), BarColumn(), MofNCompleteColumn()) as progress:
        task = progress.add_task("edit", total=steps)
        result = editor.edit([source], [instruction], steps=steps, seed=seed,
                             callback=lambda k: progress.update(task, completed=k + 1))[0]
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    result.save(out)
    return Path(out)
