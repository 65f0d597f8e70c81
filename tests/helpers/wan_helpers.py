"""Shared pieces of the Wan tests: tiny random Wan folders and small synthetic clips."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from byg_cli.data.video import write_video


@pytest.fixture(scope="module")
def tiny_wan_a14b(tmp_path_factory) -> Path:
    from byg_cli.models.registry import quiet_hf
    from byg_cli.models.tiny_wan import TinyWanSpec, write_tiny_wan

    quiet_hf()
    return write_tiny_wan(tmp_path_factory.mktemp("models") / "tiny-wan-a14b", TinyWanSpec(variant="a14b"))


@pytest.fixture(scope="module")
def tiny_wan_ti2v(tmp_path_factory) -> Path:
    from byg_cli.models.registry import quiet_hf
    from byg_cli.models.tiny_wan import TinyWanSpec, write_tiny_wan

    quiet_hf()
    return write_tiny_wan(tmp_path_factory.mktemp("models") / "tiny-wan-ti2v", TinyWanSpec(variant="ti2v"))


def moving_square_clip(path: Path, frames: int, fps: Fraction | float, height: int = 32, width: int = 32,
                       colour=(220, 30, 30)) -> Path:
    """A square moving left to right over white: frame i is visibly different from frame i+1."""
    arr = np.full((frames, height, width, 3), 255, np.uint8)
    side = max(4, height // 4)
    for i in range(frames):
        x = int(round(i * (width - side) / max(frames - 1, 1)))
        arr[i, height // 2 - side // 2: height // 2 + side // 2, x:x + side] = colour
    return write_video(path, arr, fps)


def write_video_records(root: Path, count: int = 4, frames: int = 5, fps: float = 8.0) -> Path:
    """A JSONL file of video edit records ("video" key) over moving-square clips."""
    (root / "clips").mkdir(parents=True, exist_ok=True)
    colours = {"red": (220, 30, 30), "blue": (30, 60, 220)}
    lines = []
    for i in range(count):
        src, tgt = ("red", "blue") if i % 2 == 0 else ("blue", "red")
        moving_square_clip(root / "clips" / f"{i}.mp4", frames, fps, colour=colours[src])
        lines.append({"video": f"clips/{i}.mp4", "src_caption": f"a {src} square", "instruction":
                      f"make the square {tgt}", "tgt_caption": f"a {tgt} square",
                      "reverse_instruction": f"make the square {src}", "edit_type": "color"})
    path = root / "metadata.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return path
