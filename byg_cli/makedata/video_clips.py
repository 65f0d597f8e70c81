"""Styled clips for the video data (appendix D.2): one text-to-video clip per styled prompt, made with the Wan2.2
base model (G_t2i: the backbone with no adapter and no source) from a local diffusers folder.

Sampling follows WanPipeline: UniPC with flow prediction over the folder's scheduler config, classifier-free
guidance against a negative prompt (Wan2.2 T2V-A14B: scale 4.0 on the high-noise expert, 3.0 on the low-noise
one), 81 frames of 480x832 at 16 fps in 40 steps by default. Each clip's noise is drawn from a generator seeded by
(seed, clip id), so a clip does not depend on which batch it lands in or on which clips were already made.

Each clip is written to a hidden partial file and renamed to `<clips_dir>/<id>.mp4` only when complete; a re-run
skips the ids whose clip exists, so a killed run picks up where it stopped and every clip is made exactly once.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from byg_cli.errors import BygError
from byg_cli.makedata.journal import read_jsonl
from byg_cli.makedata.video_select import find_clip


@dataclass(frozen=True)
class ClipSettings:
    frames: int = 81
    height: int = 480
    width: int = 832
    fps: float = 16.0
    steps: int = 40
    guidance: float = 4.0  # classifier-free guidance scale (the high-noise expert's, for two-expert models)
    guidance_2: float = 3.0  # the low-noise expert's scale (two-expert models only)
    negative_prompt: str = ""
    batch_size: int = 1
    seed: int = 0

    def check(self) -> None:
        for name in ("frames", "height", "width", "steps", "batch_size"):
            if getattr(self, name) < 1:
                raise BygError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if self.fps <= 0:
            raise BygError(f"--fps must be positive, got {self.fps}")
        if self.guidance < 1 or self.guidance_2 < 1:
            raise BygError(f"--guidance/--guidance-2 must be at least 1 (1 = no guidance), got "
                           f"{self.guidance}/{self.guidance_2}")


def clip_seed(seed: int, clip_id: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}\0clip:{clip_id}".encode()).digest()[:8], "big") >> 1


def latent_shape(model, settings: ClipSettings) -> tuple[int, int, int, int]:
    """(C, F', H', W') of a clip, after checking the grid fits the codec and the transformer's patches."""
    codec = model.codec
    space, time = codec.scale_factor, codec.temporal_factor
    p_t, p_h, p_w = model.transformer.config.patch_size
    if (settings.frames - 1) % time:
        raise BygError(f"--frames {settings.frames}: this model needs {time}k+1 frames (e.g. "
                       f"{(settings.frames - 1) // time * time + 1} or {((settings.frames - 1) // time + 1) * time + 1})")
    for name, side, patch in (("height", settings.height, p_h), ("width", settings.width, p_w)):
        if side % (space * patch):
            raise BygError(f"--{name} {side}: must be a multiple of {space * patch} for this model "
                           f"({space}x codec, {patch}x patches)")
    frames = (settings.frames - 1) // time + 1
    if frames % p_t:
        raise BygError(f"--frames {settings.frames}: {frames} latent frames do not split into {p_t}-frame patches")
    return codec.latent_channels, frames, settings.height // space, settings.width // space


@torch.no_grad()
def sample_clips(model, prompts: list[str], clip_ids: list[str], settings: ClipSettings,
                 callback: Optional[Callable[[int], None]] = None) -> torch.Tensor:
    """Text-to-video with the base model: pixels (B, 3, F, H, W) in [-1, 1]."""
    from byg_cli.sampling import unipc_sample

    shape = latent_shape(model, settings)
    noise = torch.stack([torch.randn(shape, generator=torch.Generator().manual_seed(clip_seed(settings.seed, cid)))
                         for cid in clip_ids]).to(model.device, torch.float32)
    cond = model.encode_text(list(prompts))
    guided = settings.guidance > 1 or (model.transformer_2 is not None and settings.guidance_2 > 1)
    uncond = model.encode_text([settings.negative_prompt] * len(prompts)) if guided else None

    def velocity(y, s):
        v = model.velocity(y, s, cond, source=None, adapter=None)
        scale = settings.guidance if bool(model.expert_for(s).all()) else settings.guidance_2
        if uncond is None or scale == 1:
            return v
        v_neg = model.velocity(y, s, uncond, source=None, adapter=None)
        return v_neg + scale * (v - v_neg)

    latents = unipc_sample(velocity, noise, model.multistep_scheduler(), settings.steps, callback)
    return model.decode(latents)


def partial_path(clips_dir: Path, clip_id: str) -> Path:
    return clips_dir / f".{clip_id}.partial.mp4"


def load_t2v(path: str):
    """The Wan text-to-video base from a local folder, on the GPU in bfloat16 when there is one."""
    from byg_cli.models.registry import load_backbone, model_config

    if not Path(path).is_dir():
        raise BygError(f"--t2v {path}: no such model folder (give a local Wan2.2 diffusers folder)")
    cuda = torch.cuda.is_available()
    model = load_backbone(model_config(path, "wan", dtype="bfloat16" if cuda else "float32"), adapters=False)
    model.eval()
    return model.to("cuda") if cuda else model


def generate_clips(prompts: Path, t2v: str, clips_dir: Path, settings: ClipSettings = ClipSettings(),
                   console: Console | None = None) -> dict[str, int]:
    """Make `<clips_dir>/<id>.mp4` for every prompt in the prompts JSONL that has no clip yet. Resumable."""
    from byg_cli.data.video import from_video_tensor, write_video

    console = console or Console(stderr=True)
    settings.check()
    if not Path(prompts).is_file():
        raise BygError(f"{prompts}: no such prompts file")
    rows = read_jsonl(Path(prompts))
    if not rows:
        raise BygError(f"{prompts}: no prompts in it")
    clips_dir = Path(clips_dir)
    clips_dir.mkdir(parents=True, exist_ok=True)
    for stale in clips_dir.glob(".*.partial.mp4"):  # left by a killed run
        stale.unlink()
    todo = [r for r in rows if find_clip(clips_dir, r["id"]) is None]
    counts = {"generated": 0, "skipped": len(rows) - len(todo)}
    if todo:
        model = load_t2v(t2v)
        latent_shape(model, settings)  # bad sizes fail before any work
        with Progress(TextColumn("[bold]clips[/]"), BarColumn(), MofNCompleteColumn(),
                      TextColumn("step {task.fields[step]}/{task.fields[steps]}"), TimeElapsedColumn(),
                      console=console) as progress:
            task = progress.add_task("clips", total=len(todo), step=0, steps=settings.steps)
            for start in range(0, len(todo), settings.batch_size):
                batch = todo[start : start + settings.batch_size]
                videos = sample_clips(model, [r["prompt"] for r in batch], [r["id"] for r in batch], settings,
                                      callback=lambda i: progress.update(task, step=i + 1))
                for row, video in zip(batch, videos):
                    partial = partial_path(clips_dir, row["id"])
                    write_video(partial, from_video_tensor(video), settings.fps)
                    os.replace(partial, clips_dir / f"{row['id']}.mp4")
                    counts["generated"] += 1
                    progress.update(task, advance=1)
    console.print(f"clips: {counts['generated']} generated, {counts['skipped']} already there -> {clips_dir}")
    return counts
