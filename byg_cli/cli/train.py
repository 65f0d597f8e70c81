"""`byg train RECIPE`: parse arguments, load the recipe, hand over to byg_cli.train."""

from pathlib import Path
from typing import List, Optional

import typer

from byg_cli.cli.app import app


@app.command("train")
def train_command(
    recipe: Path = typer.Argument(..., help="A TOML recipe, e.g. recipes/shapes.toml."),
    set_: Optional[List[str]] = typer.Option(
        None, "--set", help="Override a recipe key, e.g. --set train.lr=1e-4 (repeatable)."
    ),
    run_dir: Optional[Path] = typer.Option(None, "--run-dir", help="Run folder (default: recipe's run.dir)."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the latest checkpoint in the run folder."),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", help="Stop after this many steps (for this invocation)."),
) -> None:
    """Train a model from a recipe (objective byg, supervised or t2i)."""
    from byg_cli.recipe import load_recipe
    from byg_cli.train import train

    cfg = load_recipe(recipe, overrides=set_ or [])
    train(cfg, run_dir=run_dir, resume=resume, stop_after=max_steps)
