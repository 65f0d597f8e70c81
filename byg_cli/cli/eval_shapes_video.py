"""`byg eval shapes-video --run RUN` and `byg eval shapes-video-base --model PATH`: the video shapes world's exact
evaluations (parsing only)."""

from pathlib import Path
from typing import Optional

import typer

from byg_cli.cli.eval import eval_app


@eval_app.command("shapes-video")
def eval_shapes_video_command(
    run: Path = typer.Option(..., "--run", help="A trained video shapes-world run (recipes/shapes_video.toml)."),
    out: Optional[Path] = typer.Option(None, "-o", "--out", help="Report folder (default: RUN/eval)."),
    count: int = typer.Option(32, "--count", min=1, help="Held-out clips to edit."),
    steps: Optional[int] = typer.Option(None, "--steps", min=1, help="Sampling steps (default: the run's)."),
    seed: int = typer.Option(10_007, "--seed", help="Seed of the held-out clips and the noise."),
    weights: Optional[str] = typer.Option(None, "--weights", help="'edit' (default) or 'ema'."),
) -> None:
    """Per-frame edit success, preservation, centre trajectory and flicker of outlined <-> filled edits."""
    from byg_cli.eval.shapes_video_eval import evaluate_run

    out = out or run / "eval"
    evaluate_run(run, out, count=count, steps=steps, seed=seed, weights=weights)
    typer.echo((out / "shapes_video.md").read_text())
    typer.echo(f"wrote {out}/shapes_video.json, .md and _grid.png")


@eval_app.command("shapes-video-base")
def eval_shapes_video_base_command(
    model: Path = typer.Option(..., "--model", help="A video shapes-world base folder (recipes/shapes_video_t2v.toml)."),
    out: Optional[Path] = typer.Option(None, "-o", "--out", help="Report folder (default: MODEL/../eval)."),
    count: int = typer.Option(64, "--count", min=1, help="Clips to generate."),
    frames: int = typer.Option(9, "--frames", min=1, help="Frames per clip (4k+1)."),
    size: int = typer.Option(32, "--size", min=16, help="Frame size (px)."),
    steps: int = typer.Option(20, "--steps", min=1, help="Euler sampling steps."),
    seed: int = typer.Option(2_024, "--seed", help="Seed of the captions and the noise."),
) -> None:
    """Text-to-video accuracy of a base: every frame read back, plus steadiness and motion as captioned."""
    from byg_cli.eval.shapes_video_eval import evaluate_video_base
    from byg_cli.models.registry import load_model_folder

    out = out or model.parent / "eval"
    summary = evaluate_video_base(load_model_folder(model, family="wan"), out, count=count, frames=frames,
                                  image_size=size, steps=steps, seed=seed)
    typer.echo((out / "shapes_video_t2v.md").read_text())
    typer.echo(f"wrote {out}/shapes_video_t2v.json, .md and _grid.png ({summary['clips']} clips)")
