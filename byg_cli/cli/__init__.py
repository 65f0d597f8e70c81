"""Command-line entry point. Each subcommand lives in its own module and only parses arguments."""

import sys

from rich.console import Console

from byg_cli.cli.app import app
from byg_cli.errors import BygError

# Importing a command module registers its command(s) on `app`.
from byg_cli.cli import train as _train  # noqa: F401,E402
from byg_cli.cli import eval as _eval  # noqa: F401,E402
from byg_cli.cli import eval_shapes as _eval_shapes  # noqa: F401,E402
from byg_cli.cli import eval_shapes_video as _eval_shapes_video  # noqa: F401,E402
from byg_cli.cli import make_data as _make_data  # noqa: F401,E402
from byg_cli.cli import edit as _edit  # noqa: F401,E402
from byg_cli.cli import study as _study  # noqa: F401,E402

__all__ = ["app", "main"]


def main() -> None:
    try:
        app()
    except BygError as err:
        Console(stderr=True).print(f"[bold red]error:[/] {err}", highlight=False, soft_wrap=True)
        sys.exit(2)
