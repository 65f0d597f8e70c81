"""`byg train RECIPE`: parse arguments, load the recipe, hand over to byg_cli.pipeline (training, then [eval])."""

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
    max_steps: Optional[int] = typer.Option(None, "--max-steps", min=1, help="Stop after this many steps (for this invocation)."),
    cache_only: bool = typer.Option(False, "--cache-only", help="Only fill the encoder cache ([cache]) and stop."),
    export_only: bool = typer.Option(
        False, "--export-only", help="Only export a checkpoint's LoRA to RUN/lora/ (the step training ends with)."),
    checkpoint: str = typer.Option("latest", "--checkpoint", help="With --export-only: e.g. step-0001000."),
    lora_format: Optional[str] = typer.Option(
        None, "--lora-format", help="With --export-only: diffusers, comfyui or both (default: recipe's export.format)."),
    weights: Optional[str] = typer.Option(None, "--weights", help="With --export-only: 'edit' or 'ema'."),
) -> None:
    """Train a model from a recipe (objective byg, supervised or t2i)."""
    from byg_cli.recipe import load_recipe

    if export_only:
        from byg_cli.export import export_run

        for path in export_run(recipe, run_dir, checkpoint=checkpoint, fmt=lora_format, weights=weights):
            typer.echo(f"wrote {path}")
        return
    from byg_cli.project_defaults import ProjectDefaults, train_overrides
    from byg_cli.pipeline import train_and_evaluate

    # train.model_path (byg.toml / BYG_TRAIN_MODEL_PATH) stands in for a recipe's model.path that does not exist
    cfg = load_recipe(recipe, overrides=train_overrides(recipe, set_ or [], ProjectDefaults()))
    train_and_evaluate(cfg, run_dir=run_dir, resume=resume, stop_after=max_steps, cache_only=cache_only)
