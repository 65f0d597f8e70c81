"""`byg eval shapes` and `byg eval shapes-edit`: the shapes world's exact evaluations (parsing only)."""

from pathlib import Path
from typing import List, Optional

import typer

from byg_cli.cli.eval import eval_app


@eval_app.command("shapes")
def eval_shapes_command(
    model: Path = typer.Option(..., "--model", help="A shapes-world base model folder (diffusers layout)."),
    out: Optional[Path] = typer.Option(None, "-o", "--out", help="Report folder (default: MODEL/../eval)."),
    count: int = typer.Option(500, "--count", min=1, help="Images to generate."),
    steps: int = typer.Option(20, "--steps", min=1, help="Euler sampling steps."),
    seed: int = typer.Option(1234, "--seed", help="Seed of the captions and the noise."),
) -> None:
    """Text-to-image accuracy of a base model: generate, read back every attribute, report JSON + table + grid."""
    from byg_cli.eval.shapes_eval import evaluate_base
    from byg_cli.models.registry import load_model_folder

    out = out or model.parent / "eval"
    summary = evaluate_base(load_model_folder(model), out, count=count, steps=steps, seed=seed)
    typer.echo((out / "shapes_t2i.md").read_text())
    typer.echo(f"wrote {out}/shapes_t2i.json, .md and _grid.png ({summary['n']} samples)")


@eval_app.command("shapes-edit")
def eval_shapes_edit_command(
    run: Path = typer.Option(..., "--run", help="A trained run folder."),
    out: Optional[Path] = typer.Option(None, "-o", "--out", help="Report folder (default: RUN/eval)."),
    per_type: int = typer.Option(50, "--per-type", min=1, help="Edits per edit type."),
    steps: int = typer.Option(20, "--steps", min=1, help="Euler sampling steps."),
    seed: int = typer.Option(4321, "--seed", help="Seed of the held-out sources and the noise."),
    edit_types: Optional[List[str]] = typer.Option(None, "--edit-type", help="Only these edit types (repeatable)."),
    weights: Optional[str] = typer.Option(None, "--weights", help="'edit' (default) or 'ema'."),
    checkpoint: str = typer.Option("latest", "--checkpoint", help="Checkpoint folder name, e.g. step-0001000."),
    identity: bool = typer.Option(True, "--identity/--no-identity",
                                  help="Also PER_TYPE identity checks: does the editor copy a source it is asked "
                                       "to keep as it is?"),
) -> None:
    """Edit success and preservation per edit type on held-out sources and instructions."""
    from byg_cli.data.shapes_edits import check_edit_types
    from byg_cli.edit import Editor
    from byg_cli.eval.shapes_eval import evaluate_edits

    check_edit_types(edit_types)
    out = out or run / "eval"
    editor = Editor.from_run(run, checkpoint=checkpoint, weights=weights)
    evaluate_edits(editor, out, per_type=per_type, steps=steps, seed=seed, edit_types=edit_types, identity=identity)
    typer.echo((out / "shapes_edit.md").read_text())


@eval_app.command("ablations")
def eval_ablations_command(
    recipe: Path = typer.Argument(..., help="The byg recipe to ablate, e.g. recipes/shapes.toml."),
    out: Path = typer.Option(Path("runs/ablations"), "-o", "--out", help="Folder for the variants and the table."),
    steps: int = typer.Option(300, "--steps", min=1, help="Training steps per variant (reduced budget)."),
    per_type: int = typer.Option(30, "--per-type", min=1, help="Held-out edits per edit type."),
    eval_steps: int = typer.Option(20, "--eval-steps", min=1, help="Sampling steps for the edits."),
    set_: Optional[List[str]] = typer.Option(None, "--set", help="Recipe override for every variant (repeatable)."),
    only: Optional[List[str]] = typer.Option(None, "--only", help="Only this variant (repeatable), e.g. full."),
) -> None:
    """Table 4: the full method, the six ablations and the supervised baseline at one budget."""
    from byg_cli.eval.ablations import run_ablations
    from byg_cli.extras import check

    check("byg eval ablations", "eval")  # its plot, after hours of training
    typer.echo(run_ablations(recipe, out, steps, per_type, eval_steps, set_ or [], only))
