"""Cheap checks that a file on disk is whole before a library is handed it (a killed copy, a torn download)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional


def safetensors_problem(path: Path) -> Optional[str]:
    """Why a .safetensors file cannot be loaded (missing, empty, truncated, a torn header), or None. Reads only
    the header: the data's extent it declares must be the file's size."""
    path = Path(path)
    if not path.is_file():
        return "missing"
    size = path.stat().st_size
    try:
        with open(path, "rb") as fh:
            n = int.from_bytes(fh.read(8), "little")
            if size < 8 or n <= 0 or 8 + n > size:
                return f"empty or truncated ({size} bytes)"
            header = json.loads(fh.read(n))
        end = max((int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"), default=0)
    except (ValueError, KeyError, TypeError, IndexError, OSError, UnicodeDecodeError, AttributeError):
        return "unreadable header"
    if 8 + n + end != size:
        return f"truncated ({size} of {8 + n + end} bytes)"
    return None


def json_problem(path: Path) -> Optional[str]:
    """Why a JSON file cannot be read as a JSON object, or None."""
    try:
        value = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        return f"not valid JSON ({str(err).splitlines()[0][:80]})"
    return None if isinstance(value, dict) else "not a JSON object"


def model_folder_problem(root: Path) -> Optional[str]:
    """The first file of a diffusers-format model folder that cannot be loaded, as 'FILE: why', or None: every
    JSON config must parse and every .safetensors weight file must be whole."""
    root = Path(root)
    for f in sorted(root.rglob("*.json")):
        problem = json_problem(f)
        if problem:
            return f"{f}: {problem}"
    for f in sorted(root.rglob("*.safetensors")):
        problem = safetensors_problem(f)
        if problem:
            return f"{f}: {problem}"
    return None
