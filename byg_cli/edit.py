"""Editing with a trained run: load the base, its trained LoRA, and sample.

The recipe's [inference] table picks the sampler (FLUX: Euler; Wan: UniPC with flow shift) and the steps (20 by
default). Images are centre-cropped to data.resolution. Videos (Wan runs) are centre-cropped and resized to the
inference grid (inference.height/width, else data.height/width) and edited as one clip of 4k+1 frames (see
`byg_cli.data.video.edit_plan`); the output has the source's frame count and is written at the source's fps.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

import torch
from PIL import Image

from byg_cli import checkpoint as ckpt
from byg_cli.data.images import center_crop_resize, to_pil, to_tensor
from byg_cli.data.video import (Video, edit_plan, fit_frames, from_video_tensor, is_video_file, read_video,
                                to_video_tensor, write_video)
from byg_cli.engine.objectives import OBJECTIVES
from byg_cli.errors import BygError
from byg_cli.models.registry import load_backbone
from byg_cli.outputs import check_output_file
from byg_cli.recipe import load_recipe
from byg_cli.sampling import edit_pixels


ADAPTERS = ("edit", "ema")


class Editor:
    """A trained editing model. `weights` picks the adapter: "edit" (the trained weights) or "ema"."""

    def __init__(self, model, resolution: int, weights: str = "edit", recipe=None):
        from byg_cli.recipe import DataConfig, InferenceConfig

        self.model, self.resolution, self.weights = model, resolution, weights
        self.inference = recipe.inference if recipe is not None else InferenceConfig()
        self.data = recipe.data if recipe is not None else DataConfig(resolution=resolution)

    @classmethod
    def from_run(cls, run: Path, *, checkpoint: str = "latest", weights: Optional[str] = None) -> "Editor":
        run = Path(run)
        recipe_file = run / "recipe.toml"
        if not recipe_file.is_file():
            raise BygError(f"--run {run}: not a byg run folder (no recipe.toml)")
        cfg = load_recipe(recipe_file, check_paths=False)
        objective = OBJECTIVES[cfg.objective.name]
        if objective.trains != "lora":
            raise BygError(f"--run {run}: a text-to-image run ({cfg.objective.name}); editing needs a byg or "
                           f"supervised run")
        if weights not in (None, *ADAPTERS):
            raise BygError(f"--weights {weights}: choose 'edit' (the trained weights) or 'ema'")
        found = ckpt.resolve_checkpoint(run, checkpoint)
        model = load_backbone(cfg.model, adapters=True)
        model.load_lora_state_dict("edit", ckpt.load_adapter(found, "edit"))
        ema = ckpt.load_adapter(found, "ema", run_keeps_ema=cfg.objective.keeps_ema_adapter())
        has_ema = ema is not None
        if has_ema:
            model.load_lora_state_dict("ema", ema)
        weights = weights or "edit"
        if weights == "ema" and not has_ema:
            raise BygError(f"--weights ema: run {run} kept no EMA adapter")
        model.eval()
        return cls(model, cfg.data.resolution, weights, recipe=cfg)

    @property
    def is_video_model(self) -> bool:
        return self.model.capabilities.video

    def edit(self, images: list[Image.Image], instructions: list[str], *, steps: Optional[int] = None, seed: int = 0,
             callback: Optional[Callable[[int], None]] = None) -> list[Image.Image]:
        if len(images) != len(instructions):
            raise BygError(f"{len(images)} image(s) but {len(instructions)} instruction(s)")
        if self.is_video_model:
            raise BygError("this run edits videos (a Wan model): give a video file")
        size = self.resolution
        pixels = torch.stack([to_tensor(center_crop_resize(img.convert("RGB"), size, size)) for img in images])
        out = self.sample_pixels(pixels, list(instructions), steps, seed, callback)
        return [to_pil(x) for x in out]

    def sample_pixels(self, pixels, instructions, steps=None, seed=0, callback=None):
        """Edit pixels (B, 3, H, W) or videos (B, 3, F, H, W) in [-1, 1] with the run's inference settings."""
        inf = self.inference
        return edit_pixels(self.model, pixels, instructions, steps or inf.steps, seed=seed, adapter=self.weights,
                           callback=callback, sampler=inf.sampler, flow_shift=inf.flow_shift)

    def video_grid(self) -> tuple[int, int, int]:
        """(height, width, most frames per clip) that videos are edited at."""
        inf, data = self.inference, self.data
        height = inf.height or data.height or data.resolution
        width = inf.width or data.width or data.resolution
        return height, width, inf.frames or data.frames

    def edit_video(self, video: Video, instruction: str, *, steps: Optional[int] = None, seed: int = 0,
                   callback: Optional[Callable[[int], None]] = None) -> Video:
        """Edit a whole video; the result has the source's frame count and fps, at the model's grid size."""
        if not self.is_video_model:
            raise BygError(f"this run edits images (a {self.model.family} model): give an image")
        height, width, most = self.video_grid()
        clip, back = edit_plan(video.count, most)
        pixels = to_video_tensor(fit_frames(video.frames[clip], width, height))[None]
        out = self.sample_pixels(pixels, [instruction], steps, seed, callback)[0]
        frames = from_video_tensor(out)
        return Video(frames[back], video.fps)


def edit_file(image: Path, instruction: str, run: Path, out: Optional[Path] = None, *, steps: Optional[int] = None,
              seed: int = 0, weights: Optional[str] = None, checkpoint: str = "latest") -> Path:
    """`byg edit IMAGE|VIDEO "instruction" --run RUN -o OUT` with a rich progress bar."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from byg_cli.data.images import load_image
    from byg_cli.extras import check

    if not Path(image).is_file():
        raise BygError(f"{image}: no such file")
    if not instruction.strip():
        raise BygError("instruction: empty; say what to change, e.g. \"make the circle blue\"")
    video = is_video_file(Path(image))
    if video:
        check("byg edit on a video", "video")
    out = Path(out) if out is not None else Path("edited.mp4" if video else "edited.png")
    if video and not is_video_file(Path(out)):
        raise BygError(f"-o {out}: the source is a video; give a video file name ending in .mp4, .mov or .mkv")
    if not video and Path(out).suffix.lower() not in (".png", ".jpg", ".jpeg", ".webp"):
        raise BygError(f"-o {out}: give an image file name ending in .png, .jpg or .webp")
    check_output_file(out)
    source = read_video(Path(image)) if video else load_image(Path(image))
    editor = Editor.from_run(run, checkpoint=checkpoint, weights=weights)
    total = steps or editor.inference.steps
    with Progress(TextColumn("editing"), BarColumn(), MofNCompleteColumn()) as progress:
        task = progress.add_task("edit", total=total)
        tick = lambda k: progress.update(task, completed=k + 1)  # noqa: E731
        if video:
            result = editor.edit_video(source, instruction, steps=steps, seed=seed, callback=tick)
        else:
            result = editor.edit([source], [instruction], steps=steps, seed=seed, callback=tick)[0]
    if video:
        return write_video(Path(out), result.frames, result.fps)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    result.save(out)
    return Path(out)
