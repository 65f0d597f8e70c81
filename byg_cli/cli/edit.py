"""`byg edit IMAGE|VIDEO "instruction" [--run RUN] [-o OUT]`: parse arguments and hand over to byg_cli.edit."""

from pathlib import Path
from typing import Optional

import typer

from byg_cli.cli.app import app


@app.command("edit")
def edit_command(
    image: Path = typer.Argument(..., help="The source image (PNG, JPEG or WebP) or video (MP4, MOV, MKV, WebM)."),
    instruction: str = typer.Argument(..., help='The edit instruction, e.g. "make the circle blue".'),
    run: Optional[Path] = typer.Option(
        None, "--run", help="A trained run folder (byg train's output; default: run in byg.toml / BYG_RUN, else the "
                            "newest trained editing run under ./runs)."),
    out: Optional[Path] = typer.Option(None, "-o", "--out",
                                       help="Where to write the result (default edited.png, or edited.mp4 for a "
                                            "video: same frame count and fps as the source)."),
    steps: Optional[int] = typer.Option(None, "--steps", min=1,
                                        help="Sampling steps (default: the run's inference.steps, 20)."),
    seed: int = typer.Option(0, "--seed", help="Noise seed."),
    weights: Optional[str] = typer.Option(None, "--weights", help="'edit' (trained weights, default) or 'ema'."),
    checkpoint: str = typer.Option("latest", "--checkpoint", help="Checkpoint folder name, e.g. step-0001000."),
) -> None:
    """Edit an image (or a video, with a Wan run) with a trained run."""
    from byg_cli.edit import edit_file
    from byg_cli.project_defaults import ProjectDefaults

    run = ProjectDefaults().need("run", run, "byg edit", fallback=True)
    written = edit_file(image, instruction, run, out, steps=steps, seed=seed, weights=weights, checkpoint=checkpoint)
    typer.echo(f"wrote {written}")
