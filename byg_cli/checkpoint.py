"""Atomic training checkpoints: a folder per step, written under a temporary name and renamed when complete."""

from __future__ import annotations

import json
import os
import random
import shutil
import sys
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from byg_cli.file_checks import safetensors_problem

PREFIX = "step-"


def checkpoint_dir(run_dir: Path) -> Path:
    return Path(run_dir) / "checkpoints"


def list_checkpoints(run_dir: Path) -> list[Path]:
    root = checkpoint_dir(run_dir)
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and p.name.startswith(PREFIX) and (p / "state.json").is_file()]
    return sorted(found, key=lambda p: int(p.name[len(PREFIX):]))


def latest_checkpoint(run_dir: Path) -> Optional[Path]:
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


def rng_state(generator: torch.Generator) -> dict[str, Any]:
    return {"generator": generator.get_state().tolist(), "torch": torch.get_rng_state().tolist(),
            "numpy": np.random.get_state()[1].tolist(), "numpy_pos": int(np.random.get_state()[2]),
            "python": list(random.getstate()[1])}


def restore_rng(state: dict[str, Any], generator: torch.Generator) -> None:
    generator.set_state(torch.tensor(state["generator"], dtype=torch.uint8))
    torch.set_rng_state(torch.tensor(state["torch"], dtype=torch.uint8))
    np.random.set_state(("MT19937", np.array(state["numpy"], dtype=np.uint32), state["numpy_pos"], 0, 0.0))
    random.setstate((3, tuple(state["python"]), None))


def save_checkpoint(run_dir: Path, step: int, tensors: dict[str, dict[str, torch.Tensor]],
                    optimizer: torch.optim.Optimizer, scheduler, state: dict[str, Any], keep: int) -> Path:
    root = checkpoint_dir(run_dir)
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"{PREFIX}{step:07d}"
    tmp = root / f".tmp-{final.name}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        tmp.mkdir()
        for name, sd in tensors.items():
            save_file({k: v.detach().contiguous().cpu() for k, v in sd.items()}, str(tmp / f"{name}.safetensors"))
        opt_state = optimizer if isinstance(optimizer, dict) else optimizer.state_dict()  # a dict: already gathered
        torch.save({"optimizer": opt_state, "scheduler": scheduler.state_dict()}, tmp / "optimizer.pt")
        files = sorted([f"{name}.safetensors" for name in tensors] + ["optimizer.pt"])
        (tmp / "state.json").write_text(json.dumps({"step": step, "files": files, **state}))
        for f in tmp.iterdir():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        if final.exists():
            shutil.rmtree(final)
    except (OSError, SafetensorError) as err:  # a full disk, a quota: the previous checkpoints stay as they were
        shutil.rmtree(tmp, ignore_errors=True)
        from byg_cli.errors import BygError

        why = getattr(err, "strerror", None) or str(err).split(": ")[-1]
        raise BygError(f"{root}: cannot write the checkpoint of step {step} ({why}); the newest complete one is "
                       f"kept for --resume") from None
    os.replace(tmp, final)
    for old in list_checkpoints(run_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def remove_temporary(run_dir: Path) -> list[Path]:
    """Delete half-written checkpoint folders (`.tmp-step-*`) left by a killed run; call with the run's lock held.
    Returns what was removed."""
    root = checkpoint_dir(run_dir)
    found = sorted(root.glob(".tmp-*")) if root.is_dir() else []
    for p in found:
        shutil.rmtree(p, ignore_errors=True)
    return found


def checkpoint_problem(ckpt: Path, expected: tuple[str, ...] = ()) -> Optional[str]:
    """Why a checkpoint folder cannot be resumed from, or None: an unreadable state.json, a tensor file missing
    (the ones its state.json lists, and `expected` names such as "ema"), empty or truncated, a torn optimizer.pt."""
    import zipfile

    try:
        state = json.loads((Path(ckpt) / "state.json").read_text())
        int(state["step"])
    except (OSError, ValueError, KeyError, TypeError, UnicodeDecodeError):
        return "state.json is empty or unreadable"
    listed = state.get("files") if isinstance(state.get("files"), list) else []
    names = sorted({*map(str, listed), *(f"{e}.safetensors" for e in expected), "optimizer.pt"})
    for name in names:
        f = Path(ckpt) / name
        if name.endswith(".safetensors"):
            problem = safetensors_problem(f)
        elif not f.is_file():
            problem = "missing"
        else:
            try:
                with zipfile.ZipFile(f) as z:
                    problem = None if z.testzip() is None else "corrupt"
            except (zipfile.BadZipFile, OSError, EOFError):
                problem = "truncated or corrupt"
        if problem:
            return f"{name}: {problem}"
    return None


def newest_loadable(run_dir: Path, expected: tuple[str, ...] = ()) -> tuple[Optional[Path], list[str]]:
    """The newest checkpoint that can be loaded, and one line per newer one that cannot ("step-0000200:
    ema.safetensors: truncated")."""
    skipped = []
    for found in reversed(list_checkpoints(run_dir)):
        problem = checkpoint_problem(found, expected)
        if problem is None:
            return found, skipped
        skipped.append(f"{found.name}: {problem}")
    return None, skipped


def warn_skipped(skipped: list[str], found: Optional[Path], verb: str) -> None:
    """One warning line on stderr naming the damaged checkpoints `newest_loadable` passed over and the one
    `verb` ("using", "resuming from") goes on with."""
    if skipped:
        print(f"warning: skipping damaged checkpoint(s) {'; '.join(skipped)}"
              + (f"; {verb} {found.name}" if found else ""), file=sys.stderr)


def load_tensors(ckpt: Path, name: str) -> Optional[dict[str, torch.Tensor]]:
    f = Path(ckpt) / f"{name}.safetensors"
    return load_file(str(f)) if f.is_file() else None


def resolve_checkpoint(run_dir: Path, name: str = "latest") -> Path:
    """RUN/checkpoints/<name>, or the latest one; a clear error when there is none."""
    from byg_cli.errors import BygError

    run_dir = Path(run_dir)
    if name == "latest":
        found, skipped = newest_loadable(run_dir)
        warn_skipped(skipped, found, "using")
        if found is None:
            kind = "loadable checkpoint" if skipped else "checkpoint"
            raise BygError(f"--run {run_dir}: no {kind} in {checkpoint_dir(run_dir)}")
        return found
    found = checkpoint_dir(run_dir) / name
    if not (found / "state.json").is_file():
        raise BygError(f"--checkpoint {name}: no such checkpoint in {checkpoint_dir(run_dir)}")
    problem = checkpoint_problem(found)
    if problem:
        raise BygError(f"--checkpoint {name}: damaged ({problem})")
    return found


def load_adapter(ckpt: Path, adapter: str, run_keeps_ema: bool = True) -> Optional[dict[str, torch.Tensor]]:
    """One LoRA adapter of an editing checkpoint, keyed like peft's state dict without the adapter name
    (e.g. transformer_blocks.0.attn.to_q.lora_A.weight): "edit" (the trained weights) or "ema". "ema" is None for a
    run that kept no G_EMA (`run_keeps_ema` False): such runs' older checkpoints hold the LoRA as created, never a
    teacher."""
    if adapter == "ema" and not run_keeps_ema:
        return None
    if adapter == "edit":
        trained = load_tensors(ckpt, "trainable")
        return None if trained is None else {k[len("edit."):].replace(".edit.", "."): v for k, v in trained.items()}
    return load_tensors(ckpt, adapter)


def load_state(ckpt: Path) -> dict[str, Any]:
    return json.loads((Path(ckpt) / "state.json").read_text())


def load_optimizer(ckpt: Path, optimizer, scheduler) -> None:
    """The optimizer's moments and the schedule's position from the checkpoint; the learning rate, betas and weight
    decay stay the recipe's (a resume with `--set train.lr=...` trains at the new rate, not the saved one)."""
    recipe = [{"initial_lr": g["initial_lr"], "betas": g["betas"], "weight_decay": g["weight_decay"]}
              for g in optimizer.param_groups]
    blob = torch.load(Path(ckpt) / "optimizer.pt", weights_only=False)
    optimizer.load_state_dict(blob["optimizer"])
    scheduler.load_state_dict(blob["scheduler"])
    scheduler.base_lrs = [r["initial_lr"] for r in recipe]
    for group, wanted, factor in zip(optimizer.param_groups, recipe, scheduler.lr_lambdas):
        group.update(wanted, lr=wanted["initial_lr"] * factor(scheduler.last_epoch))
