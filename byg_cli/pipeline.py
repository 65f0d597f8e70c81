"""`byg train` as a user runs it: training, then the recipe's [eval] step. Above both byg_cli.train and
byg_cli.eval, so neither imports the other."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from byg_cli.recipe import Recipe
from byg_cli.train import train


def train_and_evaluate(cfg: Recipe, run_dir: Optional[Path] = None, resume: bool = False,
                       stop_after: Optional[int] = None, quiet: bool = False, cache_only: bool = False) -> Path:
    """byg_cli.train.train, then (once the run has reached its end) the evaluation cfg.eval.after names."""
    finished = None if cfg.eval.after == "none" else (lambda run: evaluate_after_training(cfg, run, quiet))
    return train(cfg, run_dir=run_dir, resume=resume, stop_after=stop_after, quiet=quiet, cache_only=cache_only,
                 on_finished=finished)


def evaluate_after_training(cfg: Recipe, run_dir: Path, quiet: bool = False) -> dict:
    """The recipe's [eval] step: a report (JSON, markdown table, grid) in RUN/eval."""
    from byg_cli.eval.shapes_eval import evaluate_base, evaluate_edits
    from byg_cli.models.registry import load_model_folder

    e = cfg.eval
    if e.after == "shapes":
        summary = evaluate_base(load_model_folder(run_dir / "model", family=cfg.model.family), run_dir / "eval",
                                count=e.count, steps=e.steps, image_size=cfg.data.resolution, quiet=quiet)
        report = run_dir / "eval" / "shapes_t2i.md"
    elif e.after == "shapes-video-base":
        from byg_cli.eval.shapes_video_eval import evaluate_video_base

        summary = evaluate_video_base(load_model_folder(run_dir / "model", family=cfg.model.family),
                                      run_dir / "eval", count=e.count, frames=cfg.data.frames,
                                      image_size=cfg.data.resolution, steps=e.steps, quiet=quiet)
        report = run_dir / "eval" / "shapes_video_t2v.md"
    elif e.after == "shapes-video":
        from byg_cli.eval.shapes_video_eval import evaluate_run

        summary = evaluate_run(run_dir, run_dir / "eval", count=e.count, steps=e.steps, quiet=quiet)
        report = run_dir / "eval" / "shapes_video.md"
    else:
        from byg_cli.edit import Editor

        summary = evaluate_edits(Editor.from_run(run_dir), run_dir / "eval", per_type=e.per_type, steps=e.steps,
                                 edit_types=cfg.data.edit_types, image_size=cfg.data.resolution, quiet=quiet)
        report = run_dir / "eval" / "shapes_edit.md"
    if not quiet:
        print(report.read_text())
    return summary
