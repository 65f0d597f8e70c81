"""The newest trained editing run under a folder (`./runs`): what `byg edit` uses when no run is configured."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import NamedTuple, Optional

from byg_cli import checkpoint as ckpt


class FoundRun(NamedTuple):
    run: Path
    checkpoint: Path


def _objective(run: Path) -> Optional[str]:
    try:
        tree = tomllib.loads((run / "recipe.toml").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    objective = tree.get("objective")
    name = objective.get("name", "byg") if isinstance(objective, dict) else "byg"
    return name if isinstance(name, str) else None


def _holds_edit_lora(checkpoint: Path) -> bool:
    """Whether the checkpoint's trainable tensors are the "edit" LoRA (a t2i run's are the base's own weights)."""
    from safetensors import safe_open

    try:
        with safe_open(str(checkpoint / "trainable.safetensors"), framework="numpy") as f:
            return any(key.startswith("edit.") for key in f.keys())
    except Exception:  # missing, torn or not safetensors: not a usable editor checkpoint
        return False


def newest_edit_run(root: Path = Path("runs")) -> Optional[FoundRun]:
    """The run folder under `root` (one or two levels down) whose newest checkpoint holding a trained edit LoRA
    was written last; text-to-image runs are left out. None when there is none."""
    best, best_time = None, float("-inf")
    if not Path(root).is_dir():
        return None
    for recipe in sorted([*Path(root).glob("*/recipe.toml"), *Path(root).glob("*/*/recipe.toml")]):
        run = recipe.parent
        if _objective(run) in (None, "t2i"):
            continue
        for found in reversed(ckpt.list_checkpoints(run)):
            if _holds_edit_lora(found):
                written = (found / "state.json").stat().st_mtime
                if written > best_time:
                    best, best_time = FoundRun(run, found), written
                break
    return best
