"""`byg eval shapes-video --run RUN`: the video shapes world's exact evaluation (parsing only)."""

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
