"""The video shapes world: one shape moving in a straight line at a constant whole-pixel speed over a plain
background, rendered per frame by the shapes world's renderer (so the exact reader reads every frame).

Its style pair mirrors the paper's cartoon <-> photo-realistic video edits: outlined (the flat, drawn look) <->
filled (the solid look), the shapes world's own two styles, which the analytic reader tells apart exactly. An edit
changes the style of the moving shape in every frame and must keep everything else, the motion included.

Geometry: the bounding box stays on whole pixels in every frame (the start is sampled so, and the speed is whole
pixels per frame), and inside the image with the shapes world's plain border, for the whole clip.
Everything is a pure function of (seed, index).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

from byg_cli.data.shapes import (COLORS, DEFAULT_IMAGE_SIZE, SHAPES, Attributes, caption, render, sample_attributes,
                                 size_range)
from byg_cli.data.shapes_edits import SPLITS, instruction
from byg_cli.data.dataset import GeneratedItems

MOTIONS: dict[str, tuple[int, int]] = {"right": (1, 0), "left": (-1, 0), "down": (0, 1), "up": (0, -1)}
STYLE_PAIR = ("outlined", "filled")  # flat/drawn <-> solid, the shapes world's cartoon <-> photo-realistic
_MARGIN_FRAC = 1 / 32


@dataclass(frozen=True)
class ShapeClip:
    """A clip: the first frame's attributes, the motion direction, speed (px per frame) and frame count."""

    start: Attributes
    direction: str
    speed: int
    frames: int

    def at(self, k: int) -> Attributes:
        dx, dy = MOTIONS[self.direction]
        return self.start.replace(cx=self.start.cx + dx * self.speed * k, cy=self.start.cy + dy * self.speed * k)

    def attributes(self) -> list[Attributes]:
        return [self.at(k) for k in range(self.frames)]

    def centres(self) -> np.ndarray:
        """(frames, 2) true centre trajectory (cx, cy) in pixels."""
        return np.array([[a.cx, a.cy] for a in self.attributes()], dtype=np.float64)

    def with_style(self, style: str) -> "ShapeClip":
        return ShapeClip(self.start.replace(style=style), self.direction, self.speed, self.frames)

    def to_json(self) -> dict[str, Any]:
        return {"start": self.start.to_json(), "direction": self.direction, "speed": self.speed,
                "frames": self.frames}

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> "ShapeClip":
        return cls(Attributes.from_json(obj["start"]), obj["direction"], int(obj["speed"]), int(obj["frames"]))


def render_clip(clip: ShapeClip, image_size: int = DEFAULT_IMAGE_SIZE) -> np.ndarray:
    """(frames, H, W, 3) uint8."""
    return np.stack([render(a, image_size) for a in clip.attributes()])


def clip_caption(clip: ShapeClip, rng: Optional[np.random.Generator] = None) -> str:
    return f"{caption(clip.start, rng)} moving {clip.direction}"


def sample_clip(rng: np.random.Generator, frames: int, image_size: int = DEFAULT_IMAGE_SIZE,
                style: Optional[str] = None, max_speed: int = 2) -> ShapeClip:
    """A random moving shape that stays whole-pixel aligned and inside the plain border in every frame."""
    direction = tuple(MOTIONS)[int(rng.integers(len(MOTIONS)))]
    margin = max(1, round(_MARGIN_FRAC * image_size))
    lo, hi = size_range(image_size)
    for _ in range(100):
        speed = int(rng.integers(1, max_speed + 1))
        travel = speed * (frames - 1)
        size = int(rng.integers(lo, hi + 1))
        room = image_size - 2 * margin - size  # free positions along one axis
        if room >= travel:
            break
    else:
        raise ValueError(f"a {frames}-frame clip does not fit a {image_size}px image; use fewer frames")
    dx, dy = MOTIONS[direction]
    along = margin + int(rng.integers(0, room - travel + 1)) + (travel if dx < 0 or dy < 0 else 0)
    across = margin + int(rng.integers(0, room + 1))
    x0, y0 = (along, across) if dx else (across, along)
    fixed = {"style": style} if style else {}
    attrs = sample_attributes(rng, image_size, **fixed)
    start = attrs.replace(cx=x0 + size / 2, cy=y0 + size / 2, size=size)
    return ShapeClip(start, direction, speed, frames)


@dataclass(frozen=True)
class ShapesVideoEdit:
    source: ShapeClip
    target: ShapeClip
    src_caption: str
    tgt_caption: str
    instruction: str
    reverse_instruction: str
    phrasing_split: str
    edit_type: str = "style"

    def record_fields(self) -> dict[str, Any]:
        return {"src_caption": self.src_caption, "instruction": self.instruction, "tgt_caption": self.tgt_caption,
                "reverse_instruction": self.reverse_instruction, "edit_type": self.edit_type,
                "src_clip": self.source.to_json(), "tgt_clip": self.target.to_json(),
                "phrasing_split": self.phrasing_split}


def style_edit_for_index(seed: int, index: int, frames: int, image_size: int = DEFAULT_IMAGE_SIZE,
                         split: str = "train") -> ShapesVideoEdit:
    """Style edit number `index` of the stream fixed by `seed`: outlined -> filled or filled -> outlined."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    rng = np.random.default_rng([seed, index])
    source = sample_clip(rng, frames, image_size, style=STYLE_PAIR[int(rng.integers(2))])
    target = source.with_style("filled" if source.start.style == "outlined" else "outlined")
    return ShapesVideoEdit(
        source=source, target=target, src_caption=clip_caption(source, rng), tgt_caption=clip_caption(target, rng),
        instruction=instruction(source.start, target.start, "style", rng, split),
        reverse_instruction=instruction(target.start, source.start, "style", rng, split), phrasing_split=split)


def caption_clip_for_index(seed: int, index: int, frames: int,
                           image_size: int = DEFAULT_IMAGE_SIZE) -> tuple[ShapeClip, str]:
    """Text-to-video sample number `index` of the stream fixed by `seed`: a clip (either style) and its caption."""
    rng = np.random.default_rng([seed, index])
    clip = sample_clip(rng, frames, image_size, style=STYLE_PAIR[int(rng.integers(2))])
    return clip, clip_caption(clip, rng)


def write_shapes_video_dataset(out_dir: Path, count: int, frames: int, image_size: int = DEFAULT_IMAGE_SIZE,
                               fps: float = 8.0, seed: int = 0, split: str = "train") -> Path:
    """Video edit records (the "video" key) with lossless clips and their ground-truth targets
    ("target_video"), plus the clips' attributes for exact scoring. Returns the metadata.jsonl path."""
    from byg_cli.data.video import write_video

    out_dir = Path(out_dir)
    (out_dir / "clips").mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(count):
        edit = style_edit_for_index(seed, i, frames, image_size, split)
        write_video(out_dir / "clips" / f"{i:05d}.mp4", render_clip(edit.source, image_size), fps, lossless=True)
        write_video(out_dir / "clips" / f"{i:05d}-target.mp4", render_clip(edit.target, image_size), fps,
                    lossless=True)
        lines.append({"video": f"clips/{i:05d}.mp4", **edit.record_fields(),
                      "target_video": f"clips/{i:05d}-target.mp4"})
    path = out_dir / "metadata.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def shapes_video_corpus() -> list[str]:
    """Every word of the video shapes world's captions and instructions (for a tiny model's tokenizer)."""
    from byg_cli.data.shapes_edits import shapes_corpus

    return shapes_corpus() + [f"moving {d}" for d in MOTIONS] + [" ".join(COLORS + SHAPES)]


class ShapesVideoEditStream(GeneratedItems):
    """Endless video style edits for training (`data.kind = "shapes_video_edit"`): item i is
    `style_edit_for_index(seed, i, ...)`, pixels (3, F, H, W) and its ground-truth target in [-1, 1]."""

    def __init__(self, seed: int, frames: int, image_size: int = DEFAULT_IMAGE_SIZE, split: str = "train"):
        self.seed, self.frames, self.size, self.split = seed, frames, image_size, split

    def item(self, index: int) -> dict[str, Any]:
        from byg_cli.data.video import to_video_tensor

        edit = style_edit_for_index(self.seed, index, self.frames, self.size, self.split)
        fields = edit.record_fields()
        return {"index": index, "pixels": to_video_tensor(render_clip(edit.source, self.size)),
                "target_pixels": to_video_tensor(render_clip(edit.target, self.size)),
                **{k: fields[k] for k in ("src_caption", "instruction", "tgt_caption", "reverse_instruction",
                                          "edit_type")}}


class ShapesVideoCaptionStream(GeneratedItems):
    """Endless (clip, caption) pairs for pretraining a text-to-video base (`data.kind = "shapes_video_t2v"`):
    item i is the source clip of style edit i with its caption ("a red outlined circle ... moving left")."""

    def __init__(self, seed: int, frames: int, image_size: int = DEFAULT_IMAGE_SIZE):
        self.seed, self.frames, self.size = seed, frames, image_size

    def item(self, index: int) -> dict[str, Any]:
        from byg_cli.data.video import to_video_tensor

        clip, text = caption_clip_for_index(self.seed, index, self.frames, self.size)
        return {"index": index, "pixels": to_video_tensor(render_clip(clip, self.size)), "caption": text}
