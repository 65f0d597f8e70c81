"""Video shapes-world evaluations that run a model, scored exactly per frame by the analytic reader.

- A trained run (`byg eval shapes-video --run RUN`): held-out style edits; writes `shapes_video.json` (summary and
  per-clip scores), `shapes_video.md` (the table) and `shapes_video_grid.png` (per clip: a row of source frames, a
  row of edited frames).
- The text-to-video base (`byg eval shapes-video-base --model PATH`): one clip per sampled caption; writes
  `shapes_video_t2v.json`, `.md` and `_grid.png` (a row of frames per clip, captioned).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import torch

from byg_cli.data.images import to_pil
from byg_cli.data.shapes_video import caption_clip_for_index, render_clip, style_edit_for_index
from byg_cli.data.video import to_video_tensor
from byg_cli.eval.shapes_eval import quiet_progress, sample_base
from byg_cli.eval.shapes_metrics import T2I_ATTRIBUTES, score_t2i, write_json, write_markdown
from byg_cli.eval.shapes_video_metrics import score_video_edit, summarize_video_base, summarize_video_edits
from byg_cli.visual import save_grid

EVAL_SEED = 10_007  # a seed the training stream (run.seed) does not use by default
GRID_CLIPS = 6
BASE_SEED = 2_024


def video_markdown(summary: dict[str, Any]) -> str:
    centre = summary["centre_error_px"]
    return "\n".join([
        "| clips | frames | success / frame | whole-clip success | preservation / frame | pixel agreement "
        "| centre error (px) | shape lost | flicker (0-255) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| {summary['clips']} | {summary['frames']} | {100 * summary['success_per_frame']:.1f}% "
        f"| {100 * summary['clip_success']:.1f}% | {100 * summary['preservation_per_frame']:.1f}% "
        f"| {100 * summary['pixel_agreement']:.1f}% | {'-' if centre is None else f'{centre:.2f}'} "
        f"| {100 * summary['shape_lost_fraction']:.1f}% | {summary['flicker']:.2f} |",
    ]) + "\n"


@torch.no_grad()
def evaluate_editor(editor, count: int, frames: int, image_size: int, out: Optional[Path] = None,
                    seed: int = EVAL_SEED, steps: Optional[int] = None, split: str = "heldout",
                    quiet: bool = False) -> dict[str, Any]:
    """Edit `count` clips (phrasings of `split`) with an `Editor`, score them and (with `out`) write the report."""
    scores, rows = [], []
    with quiet_progress(quiet) as progress:
        task = progress.add_task("editing held-out clips", total=count)
        for i in range(count):
            edit = style_edit_for_index(seed, i, frames, image_size, split)
            pixels = to_video_tensor(render_clip(edit.source, image_size))[None]
            output = editor.sample_pixels(pixels, [edit.instruction], steps, seed=seed + i)[0]
            scores.append(score_video_edit(edit.source, edit.target, pixels[0], output))
            if i < GRID_CLIPS:
                rows += [[to_pil(pixels[0][:, k]) for k in range(frames)],
                         [to_pil(output[:, k]) for k in range(frames)]]
            progress.update(task, completed=i + 1)
    summary = summarize_video_edits(scores)
    if out is not None:
        out = Path(out)
        write_json(out / "shapes_video.json", {"summary": summary, "clips": [s.to_json() for s in scores]})
        write_markdown(out / "shapes_video.md", video_markdown(summary))
        save_grid(out / "shapes_video_grid.png", rows, [f"frame {k}" for k in range(frames)],
                  scale=4 if image_size <= 64 else 1)
    return summary


def evaluate_run(run: Path, out: Optional[Path] = None, count: int = 32, steps: Optional[int] = None,
                 seed: int = EVAL_SEED, split: str = "heldout", weights: Optional[str] = None,
                 quiet: bool = False) -> dict[str, Any]:
    """Score a video shapes-world run (its recipe gives the frames and size); the report goes to `out`."""
    from byg_cli.edit import Editor

    editor = Editor.from_run(Path(run), weights=weights)
    data = editor.data
    return evaluate_editor(editor, count, data.frames, data.resolution, out, seed=seed, steps=steps, split=split,
                           quiet=quiet)


def video_base_markdown(summary: dict[str, Any]) -> str:
    acc = summary["per_frame"]
    cols = [k for k in (*T2I_ATTRIBUTES, "crisp") if k in acc]
    head = ("| clips | frames | " + " | ".join(f"{c} / frame" for c in cols)
            + " | steady (every frame reads the same) | moves as captioned |")
    row = (f"| {summary['clips']} | {summary['frames']} | " + " | ".join(f"{100 * acc[c]:.1f}%" for c in cols)
           + f" | {100 * summary['steady']:.1f}% | {100 * summary['moves_as_captioned']:.1f}% |")
    return "\n".join([head, "|---:|" + "---:|" * (len(cols) + 3), row]) + "\n"


@torch.no_grad()
def evaluate_video_base(model, out: Optional[Path], count: int = 64, frames: int = 9, image_size: int = 32,
                        steps: int = 20, seed: int = BASE_SEED, batch: int = 16, quiet: bool = False) -> dict[str, Any]:
    """Generate one clip per caption of the text-to-video stream (`caption_clip_for_index`), read every frame back
    against the clip's attributes at that frame, and score whether the clip is steady and moves as captioned.
    Positions are the sampler's to choose: per-frame scores use the requested shape, colour, style and
    background, and crispness against a clean render of what is read back."""
    clips, captions = zip(*[caption_clip_for_index(seed, i, frames, image_size) for i in range(count)])
    with quiet_progress(quiet) as progress:
        task = progress.add_task("sampling the video base", total=count)
        videos = sample_base(model, captions, to_video_tensor(render_clip(clips[0], image_size)), steps, seed, batch,
                             lambda done: progress.update(task, completed=done))
    per_frame = score_t2i([v[:, k] for v in videos for k in range(frames)],
                          [clip.at(k) for clip in clips for k in range(frames)])
    summary = summarize_video_base(per_frame, clips)
    if out is not None:
        out = Path(out)
        write_json(out / "shapes_video_t2v.json", {**summary, "captions": list(captions),
                                                   "frame_readings": per_frame["samples"]})
        write_markdown(out / "shapes_video_t2v.md", video_base_markdown(summary))
        shown = range(min(GRID_CLIPS, count))
        save_grid(out / "shapes_video_t2v_grid.png", [[to_pil(videos[i][:, k]) for k in range(frames)] for i in shown],
                  [f"frame {k}" for k in range(frames)], scale=4 if image_size <= 64 else 1,
                  captions=[captions[i] for i in shown])
    return summary
