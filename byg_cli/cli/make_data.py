"""`byg make-data SOURCE [EXTRA]`: parse arguments and hand over to the data engine of that source."""

from pathlib import Path
from typing import List, Optional

import typer

from byg_cli.cli.app import app
from byg_cli.errors import BygError

SOURCES = ("shapes",)


@app.command("make-data")
def make_data_command(
    source: str = typer.Argument(..., help="What to make the edit tuples from: 'shapes' (the procedural shapes world)."),
    extra: Optional[str] = typer.Argument(None, help="For 'shapes': the output folder (same as --out)."),
    out: Optional[Path] = typer.Option(None, "-o", "--out", help="Output folder (shapes: default data/shapes)."),
    count: int = typer.Option(1000, "--count", help="Number of edit records to write."),
    seed: int = typer.Option(0, "--seed", help="Random seed; record i depends only on (seed, i)."),
    split: str = typer.Option("train", "--split", help="Instruction phrasings: 'train' or 'heldout'."),
    edit_types: Optional[List[str]] = typer.Option(
        None, "--edit-type", help="Only this edit type (repeatable): color, background, shape, style, add, remove."
    ),
    size: int = typer.Option(32, "--size", help="Image side in pixels (shapes)."),
) -> None:
    """Make unpaired edit tuples (x, p_src, p_tgt, c, c_bar, edit_type) as images + metadata.jsonl."""
    if source == "shapes":
        from byg_cli.data.shapes_dataset import write_shapes_dataset

        if extra is not None and out is not None and Path(extra) != out:
            raise BygError(f"make-data shapes: output folder given twice ({extra} and --out {out})")
        folder = out or (Path(extra) if extra is not None else Path("data/shapes"))
        metadata = write_shapes_dataset(folder, count, seed, edit_types, split, image_size=size)
        typer.echo(f"wrote {metadata}")
        return
    raise BygError(f"make-data: unknown SOURCE {source!r}; accepted sources: {', '.join(SOURCES)}")
