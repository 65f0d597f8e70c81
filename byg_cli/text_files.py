"""Reading the user's text files (JSONL, CSV, prompt and instruction files): bytes that are not UTF-8, or a CSV row
with more values than its header has columns, are one line naming the file and the line."""

from __future__ import annotations

import codecs
import csv
import json
from pathlib import Path
from typing import Any, Iterator

from byg_cli.errors import BygError


def decode_utf8(data: bytes, path: Path, first_line: int = 1) -> str:
    """`data` (from `path`, starting at line `first_line`) as text, or a BygError naming the line."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = first_line + data.count(b"\n", 0, err.start)
        raise BygError(f"{path}:{line}: not UTF-8 text (byte 0x{data[err.start]:02x})") from None


def utf8_lines(path: Path) -> Iterator[str]:
    """The lines of a UTF-8 file (a byte-order mark allowed), newlines kept, each decoded on its own."""
    with Path(path).open("rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            if lineno == 1 and raw.startswith(codecs.BOM_UTF8):
                raw = raw[len(codecs.BOM_UTF8):]
            yield decode_utf8(raw, path, lineno)


def read_text(path: Path) -> str:
    """The whole text of a UTF-8 file, newlines read as `Path.read_text` reads them (\\r\\n and \\r become \\n)."""
    return "".join(utf8_lines(path)).replace("\r\n", "\n").replace("\r", "\n")


def read_csv(path: Path) -> tuple[list[str], Iterator[tuple[int, dict]]]:
    """A CSV file's header and its rows as (line number, {column: value}); a row with more values than the header
    names columns is refused (a missing trailing value reads as None)."""
    reader = csv.DictReader(utf8_lines(path))
    header = list(reader.fieldnames or [])

    def rows() -> Iterator[tuple[int, dict]]:
        for lineno, row in enumerate(reader, 2):
            if None in row:
                raise BygError(f"{path}:{lineno}: this row has {len(header) + len(row[None])} values but the header "
                               f"has {len(header)} columns ({', '.join(header)})")
            yield lineno, row

    return header, rows()


def iter_json_objects(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line of a JSONL file; a bad line is an error naming it."""
    for lineno, line in enumerate(utf8_lines(path), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            raise BygError(f"{path}:{lineno}: not valid JSON ({err.msg})") from None
        if not isinstance(obj, dict):
            raise BygError(f"{path}:{lineno}: expected a JSON object")
        yield lineno, obj
