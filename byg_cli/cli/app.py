"""The Typer application object every command module registers on."""

import typer

app = typer.Typer(
    name="byg",
    help="Bootstrap Your Generator: teach a flow-matching generator to edit images and videos without pairs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """Bootstrap Your Generator: teach a flow-matching generator to edit images and videos without pairs."""
