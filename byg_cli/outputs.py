"""Where results are written: an output path is checked (and its folder made) before any work starts, and an
OSError while writing (a full disk, a read-only or vanished folder) is one line naming the file."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from byg_cli.errors import BygError


def _file_above(path: Path) -> Path | None:
    """The nearest existing path at or above `path`, when it is not a folder."""
    for p in [path, *path.parents]:
        if p.exists():
            return None if p.is_dir() else p
    return None


def check_output_file(out: Path, flag: str = "-o") -> None:
    """An output file whose folder can be made: refused in one line when it is a folder or a parent is a file."""
    out = Path(out)
    if out.is_dir():
        raise BygError(f"{flag} {out}: is a folder; give a file name")
    blocker = _file_above(out.parent)
    if blocker is not None:
        raise BygError(f"{flag} {out}: {blocker} is a file, not a folder")


def output_folder(folder: Path) -> Path:
    """Make the folder results go into (with its parents): refused in one line when it or a parent is a file, or
    it cannot be made."""
    folder = Path(folder)
    blocker = _file_above(folder)
    if blocker == folder:
        raise BygError(f"output folder {folder}: is a file, not a folder")
    if blocker is not None:
        raise BygError(f"output folder {folder}: {blocker} is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise BygError(f"output folder {folder}: cannot create it ({err.strerror or err})") from None
    return folder


@contextmanager
def writing(path: Path) -> Iterator[None]:
    """Turn an OSError raised while `path` is written into one line naming it."""
    try:
        yield
    except OSError as err:
        raise BygError(f"{path}: cannot write it ({err.strerror or err})") from None
