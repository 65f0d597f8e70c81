"""Append-only JSONL files that survive a kill: each line is written, flushed and fsynced on its own, and a
line torn by a kill (the file does not end in a newline) is cut off when the file is opened again."""

from __future__ import annotations

import json
import os
from pathlib import Path

from byg_cli.text_files import iter_json_objects
from byg_cli.errors import BygError
from byg_cli.outputs import writing
from byg_cli.text_files import decode_utf8


def repair_torn_tail(path: Path) -> bool:
    """Cut a final line that has no newline (the one a kill interrupted). Returns True if it cut something."""
    if not path.is_file() or path.stat().st_size == 0:
        return False
    with path.open("rb+") as fh:
        data = fh.read()
        if data.endswith(b"\n"):
            return False
        keep = data.rfind(b"\n") + 1
        # a file byg did not write (a wrong -o?) is refused and left as it is
        decode_utf8(data[:keep], path)
        if not data[keep:].lstrip().startswith(b"{"):
            raise BygError(f"{path}: its last line is unfinished and is not a JSON record; not a JSONL file "
                           "written by byg? (left as it is)")
        fh.truncate(keep)
        fh.flush()
        os.fsync(fh.fileno())
    return True


def read_jsonl(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [obj for _, obj in iter_json_objects(path)]


def append_jsonl(path: Path, obj: dict) -> None:
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(obj, ensure_ascii=False) + "\n")
            fh.flush()
            os.fsync(fh.fileno())


def rejects_path(out: Path) -> Path:
    """edits.jsonl -> edits.rejects.jsonl, next to the output."""
    out = Path(out)
    stem = out.name[: -len(".jsonl")] if out.name.endswith(".jsonl") else out.name
    return out.with_name(stem + ".rejects.jsonl")
