"""A training run's folder: one `byg train` at a time (a lock), and its loss log kept to one line a step."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional

from byg_cli.errors import BygError

LOCK_NAME = ".byg-train.lock"


class RunLock:
    """An exclusive lock on a run folder for as long as a `byg train` works in it (flock: released by the OS when
    the process dies, so a killed run never leaves the folder locked)."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / LOCK_NAME
        self._fh = None

    def __enter__(self) -> "RunLock":
        import fcntl

        fh = open(self.path, "a+")
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            fh.close()
            raise BygError(f"{self.path.parent}: in use by another byg train (pid {holder}); wait for it to end "
                           f"or stop it first") from None
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        self._fh = fh
        return self

    def __exit__(self, *exc) -> None:
        if self._fh is not None:
            self._fh.close()  # closing releases the flock
            self._fh = None


def logged_steps(line: str) -> Optional[int]:
    """The step of one line of losses.jsonl, or None for a torn or foreign line."""
    try:
        record = json.loads(line)
        return int(record["step"]) if isinstance(record, dict) else None
    except (ValueError, KeyError, TypeError):
        return None


def trim_loss_log(run_dir: Path, last_step: int) -> None:
    """Keep the lines of RUN/losses.jsonl up to `last_step` (0: none), one per step, dropping torn lines (a kill
    mid-write) and the steps a killed run logged after its last checkpoint, so a resumed run appends each step
    exactly once."""
    log = Path(run_dir) / "losses.jsonl"
    if not log.is_file():
        return
    kept: dict[int, str] = {}
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        step = logged_steps(line)
        if step is not None and 0 < step <= last_step:
            kept[step] = line  # a repeated step keeps its latest line
    tmp = log.with_name(log.name + ".tmp")
    tmp.write_text("".join(kept[s] + "\n" for s in sorted(kept)), encoding="utf-8")
    os.replace(tmp, log)
