"""Evaluate a trained video shapes-world run: edit held-out style edits and score them exactly per frame."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import torch

from byg_cli.data.shapes_video import render_clip, style_edit_for_index
from byg_cli.data.video import to_video_tensor
from byg_cli.eval.shapes_video_metrics import score_video_edit, summarize_video_edits

EVAL_SEED = 10_007  # a seed the training stream (run.seed) does not use by default


@torch.no_grad()
def evaluate_editor(editor, count: int, frames: int, image_size: int, seed: int = EVAL_SEED,
                    steps: Optional[int] = None, split: str = "heldout") -> dict[str, Any]:
    """Edit `count` clips (phrasings of `split`) with an `Editor` and summarise the per-frame scores."""
    scores = []
    for i in range(count):
        edit = style_edit_for_index(seed, i, frames, image_size, split)
        pixels = to_video_tensor(render_clip(edit.source, image_size))[None]
        out = editor.sample_pixels(pixels, [edit.instruction], steps, seed=i)[0]
        scores.append(score_video_edit(edit.source, edit.target, pixels[0], out))
    summary = summarize_video_edits(scores)
    summary["per_clip"] = [s.to_json() for s in scores]
    return summary


def evaluate_run(run: Path, count: int = 32, steps: Optional[int] = None, split: str = "heldout") -> dict[str, Any]:
    from byg_cli.edit import Editor

    editor = Editor.from_run(Path(run))
    data = editor.data
    return evaluate_editor(editor, count, data.frames, data.resolution, steps=steps, split=split)
