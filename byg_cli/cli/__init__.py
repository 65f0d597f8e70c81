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
from byg_cli.cli import config as _config  # noqa: F401,E402

__all__ = ["app", "main"]


def one_line_error(message: str) -> None:
    from rich.markup import escape  # a message's own brackets ("[gedit]", "[tool.byg]") are text, not markup

    Console(stderr=True).print(f"[bold red]error:[/] {escape(' '.join(str(message).split()))}", highlight=False,
                               soft_wrap=True, markup=True)


def main() -> None:
    """`byg`: every user error (a bad flag, a bad recipe key, a bad file) is one line on stderr and exit code 2."""
    import typer
    from typer._click import exceptions as click_errors

    command = typer.main.get_command(app)
    try:
        code = command.main(standalone_mode=False)
    except BygError as err:
        one_line_error(str(err))
        sys.exit(2)
    except click_errors.NoArgsIsHelpError as err:  # `byg` or `byg eval` alone: the help text
        err.show()
        sys.exit(2)
    except click_errors.UsageError as err:
        where = f" (see `{err.ctx.command_path} --help`)" if err.ctx is not None else ""
        one_line_error(err.format_message() + where)
        sys.exit(err.exit_code)
    except (typer.Abort, click_errors.ClickException) as err:
        one_line_error(str(err) or "aborted")
        sys.exit(getattr(err, "exit_code", 1))
    sys.exit(code if isinstance(code, int) else 0)
