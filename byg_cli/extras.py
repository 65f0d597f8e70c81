"""Optional extras: what each installs (by import name), and the one-line error of a command that needs one
that is not installed. pyproject.toml's [project.optional-dependencies] is the other half
(tests/test_packaging.py checks the two agree)."""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from byg_cli.errors import BygError

# extra -> the packages it adds, as imported.
EXTRAS: dict[str, tuple[str, ...]] = {
    "eval": ("pyarrow", "open_clip", "matplotlib"),
    "study": ("starlette", "uvicorn", "matplotlib"),
    "video": ("av", "imageio", "imageio_ffmpeg"),
}


class MissingExtra(BygError):
    """A command needs an optional extra that is not installed."""


def _message(what: str, extras: list[str]) -> str:
    names = " and ".join(f"'{e}'" for e in extras)
    return (f"{what} needs the {names} extra{'s' if len(extras) > 1 else ''}: "
            f"pip install 'byg[{','.join(extras)}]'")


def require(module: str, extra: str, what: str) -> ModuleType:
    """`import module` (a package the `extra` extra installs); without it, `MissingExtra` naming `what`.
    A package that is there but misses one of its own dependencies is a broken install and raises as it is."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as err:
        if (err.name or "").split(".")[0] != module.split(".")[0]:
            raise
        raise MissingExtra(_message(what, [extra])) from None


def check(what: str, *extras: str) -> None:
    """Before a command starts its work: every package of `extras` is installed (found, not imported)."""
    missing = [e for e in extras if any(importlib.util.find_spec(m) is None for m in EXTRAS[e])]
    if missing:
        raise MissingExtra(_message(what, missing))
