"""`byg config`: the project defaults in force here (byg.toml, pyproject.toml [tool.byg], BYG_* variables) and
where each value comes from."""

from typing import List, Optional

import typer

from byg_cli.cli.app import app
from byg_cli.errors import BygError


@app.command("config")
def config_command(
    set_: Optional[List[str]] = typer.Option(
        None, "--set", help="KEY=VALUE as a command's flag would give it, to see what wins (repeatable), e.g. "
                            "--set run=runs/flux."),
) -> None:
    """Show the project defaults in force (from flags, BYG_* variables, byg.toml, pyproject.toml or the default)."""
    from byg_cli.project_defaults import BY_NAME, ProjectDefaults, report

    flags = {}
    for text in set_ or []:
        name, sep, value = text.partition("=")
        if not sep or name.strip() not in BY_NAME:
            raise BygError(f"--set {text}: expected KEY=VALUE with KEY one of {', '.join(BY_NAME)}")
        flags[name.strip()] = value.strip()
    for line in report(ProjectDefaults(), flags):
        typer.echo(line)
