"""Interrupted and damaged runs: Ctrl-C at any point of a step, kill -9, a damaged checkpoint, a torn loss log,
two `byg train` in one folder. Each must resume to exactly the losses of a run that was never interrupted."""

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from conftest import write_recipe

from byg_cli import checkpoint as ckpt
from byg_cli.cli import app
from byg_cli.errors import BygError
from byg_cli.run_folder import RunLock

STEPS = 12
SETTINGS = {"train.steps": STEPS, "train.checkpoint_every": 4, "train.keep_checkpoints": 5}


def losses(run):
    return [json.loads(line) for line in (run / "losses.jsonl").read_text().splitlines()]


def same_losses(a, b):
    assert [r["step"] for r in b] == [r["step"] for r in a] == list(range(1, STEPS + 1))
    for ra, rb in zip(a, b):
        assert ra == pytest.approx(rb, rel=1e-6, abs=1e-7), (ra, rb)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, tiny_flux, tiny_records):
    """An uninterrupted byg run's losses."""
    root = tmp_path_factory.mktemp("reference")
    recipe = write_recipe(root / "r.toml", tiny_flux, tiny_records, "byg", **SETTINGS)
    result = CliRunner().invoke(app, ["train", str(recipe)])
    assert result.exit_code == 0, result.output
    return losses(root / "run")


def interrupt_at(monkeypatch, target, attr, call):
    """Send this process SIGINT inside the `call`-th call of target.attr (a real signal, handled by Python at
    the next bytecode of the main thread)."""
    original, calls = getattr(target, attr), {"n": 0}

    def wrapped(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == call:
            os.kill(os.getpid(), signal.SIGINT)
        return original(*args, **kwargs)

    monkeypatch.setattr(target, attr, wrapped)
    return calls


# Points inside Trainer.step: after the objective drew from the generator (inside the loss), after the gradient
# clipping (before the optimizer step), right after the optimizer and scheduler steps (the EMA update), and while
# a periodic checkpoint is being written.
POINTS = [("loss", "byg_cli.engine.losses", "directional_loss", 5),
          ("before optimizer", "torch.nn.utils", "clip_grad_norm_", 6),
          ("after optimizer", "byg_cli.train", "ema_update", 7),
          ("in checkpoint", "byg_cli.checkpoint", "save_checkpoint", 1)]


@pytest.mark.slow
@pytest.mark.parametrize("point", POINTS, ids=[p[0] for p in POINTS])
def test_ctrl_c_anywhere_in_a_step_resumes_exactly(tmp_path, tiny_flux, tiny_records, reference, monkeypatch, point):
    import importlib

    _, module, attr, call = point
    recipe = write_recipe(tmp_path / "r.toml", tiny_flux, tiny_records, "byg", **SETTINGS)
    run = tmp_path / "run"
    with monkeypatch.context() as patch:
        calls = interrupt_at(patch, importlib.import_module(module), attr, call)
        result = CliRunner().invoke(app, ["train", str(recipe)])
    assert calls["n"] >= call, f"{module}.{attr} was not reached"
    assert isinstance(result.exception, BygError), result.output
    assert "SIGINT at step" in str(result.exception) and "--resume" in str(result.exception)
    stopped = int(str(result.exception).split("at step ")[1].split(";")[0])
    assert 0 < stopped < STEPS and ckpt.load_state(ckpt.latest_checkpoint(run))["step"] == stopped
    assert [r["step"] for r in losses(run)] == list(range(1, stopped + 1))
    again = CliRunner().invoke(app, ["train", str(recipe), "--resume"])
    assert again.exit_code == 0, again.output
    same_losses(reference, losses(run))


def start(recipe, *extra):
    return subprocess.Popen([sys.executable, "-m", "byg_cli.cli", "train", str(recipe), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "BYG_TEST_THREADS": "1"})


def logged(run):
    log = run / "losses.jsonl"
    return len(log.read_text().splitlines()) if log.is_file() else 0


def wait_for_steps(proc, run, n, timeout=120):
    deadline = time.time() + timeout
    while logged(run) < n and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)


@pytest.mark.slow
def test_sigint_and_kill_at_random_times_then_resume(tmp_path, tiny_flux, tiny_records, reference):
    """A real `byg train` process: SIGINT at a random moment, then kill -9 (one before the first checkpoint, one
    near a later one), each followed by a restart; every step is logged exactly once and the losses are the
    uninterrupted run's."""
    rng = random.Random(7)
    recipe = write_recipe(tmp_path / "r.toml", tiny_flux, tiny_records, "byg", **SETTINGS)
    run = tmp_path / "run"
    # kill -9 before the first checkpoint: the re-run starts over without repeating the steps it logged
    proc = start(recipe)
    wait_for_steps(proc, run, 2)
    proc.kill()
    proc.wait()
    assert ckpt.latest_checkpoint(run) is None
    # SIGINT at a random moment inside steps 3-6: the step ends, a checkpoint is written, exit code 2
    proc = start(recipe)
    wait_for_steps(proc, run, rng.randint(3, 6))
    time.sleep(rng.uniform(0.0, 0.3))
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 2 and "checkpoint saved" in err and "Traceback" not in err, err
    # kill -9 somewhere around the next checkpoint (step 8)
    proc = start(recipe, "--resume")
    wait_for_steps(proc, run, 7)
    time.sleep(rng.uniform(0.0, 0.5))
    proc.kill()
    proc.wait()
    proc = start(recipe, "--resume")
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err
    assert not list((run / "checkpoints").glob(".tmp-*"))
    same_losses(reference, losses(run))


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["truncate trainable", "empty state", "delete ema", "truncate optimizer"])
def test_a_damaged_latest_checkpoint_falls_back_to_the_newest_that_loads(tmp_path, tiny_flux, tiny_records,
                                                                       reference, damage):
    recipe = write_recipe(tmp_path / "r.toml", tiny_flux, tiny_records, "byg", **SETTINGS)
    run = tmp_path / "run"
    first = CliRunner().invoke(app, ["train", str(recipe), "--max-steps", "8"])
    assert first.exit_code == 0, first.output
    latest = run / "checkpoints" / "step-0000008"
    if damage == "truncate trainable":
        f = latest / "trainable.safetensors"
        f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    elif damage == "empty state":
        (latest / "state.json").write_text("")
    elif damage == "delete ema":
        (latest / "ema.safetensors").unlink()
    else:
        f = latest / "optimizer.pt"
        f.write_bytes(f.read_bytes()[:100])
    # a torn last line of the loss log, as a kill mid-write leaves it
    with open(run / "losses.jsonl", "a") as fh:
        fh.write('{"step": 9, "loss": 0.5')
    again = CliRunner().invoke(app, ["train", str(recipe), "--resume"])
    assert again.exit_code == 0, again.output
    warning = [line for line in again.output.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1 and "step-0000008" in warning[0] and "resuming from step-0000004" in warning[0]
    same_losses(reference, losses(run))


@pytest.mark.slow
def test_export_and_edit_skip_a_damaged_latest_checkpoint(tmp_path, tiny_flux, tiny_records):
    recipe = write_recipe(tmp_path / "r.toml", tiny_flux, tiny_records, "byg", **SETTINGS)
    run = tmp_path / "run"
    assert CliRunner().invoke(app, ["train", str(recipe), "--max-steps", "8"]).exit_code == 0
    (run / "checkpoints" / "step-0000008" / "ema.safetensors").write_bytes(b"")
    found = ckpt.resolve_checkpoint(run)
    assert found.name == "step-0000004"
    with pytest.raises(BygError, match="damaged"):
        ckpt.resolve_checkpoint(run, "step-0000008")


def test_one_train_at_a_time_in_a_folder(tmp_path, tiny_flux, tiny_records):
    recipe = write_recipe(tmp_path / "r.toml", tiny_flux, tiny_records, "byg", **SETTINGS)
    run = tmp_path / "run"
    run.mkdir()
    with RunLock(run):
        result = CliRunner().invoke(app, ["train", str(recipe)])
    assert isinstance(result.exception, BygError) and "in use by another byg train" in str(result.exception)
    assert not (run / "losses.jsonl").exists() and not (run / "recipe.toml").exists()


def test_resume_of_a_missing_folder_creates_nothing(tmp_path, tiny_flux, tiny_records):
    recipe = write_recipe(tmp_path / "r.toml", tiny_flux, tiny_records, "byg", **SETTINGS)
    result = CliRunner().invoke(app, ["train", str(recipe), "--resume"])
    assert isinstance(result.exception, BygError) and "no checkpoint" in str(result.exception)
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_orphan_temporary_checkpoints_are_removed(tmp_path, tiny_flux, tiny_records):
    recipe = write_recipe(tmp_path / "r.toml", tiny_flux, tiny_records, "byg", **SETTINGS)
    run = tmp_path / "run"
    assert CliRunner().invoke(app, ["train", str(recipe), "--max-steps", "4"]).exit_code == 0
    orphan = run / "checkpoints" / ".tmp-step-0000008-12345"
    shutil.copytree(run / "checkpoints" / "step-0000004", orphan)
    assert CliRunner().invoke(app, ["train", str(recipe), "--resume", "--max-steps", "1"]).exit_code == 0
    assert not orphan.exists()


@pytest.mark.slow
def test_a_full_disk_while_checkpointing_is_one_line_and_leaves_no_half_checkpoint(tmp_path, tiny_flux,
                                                                                     tiny_records, capsys):
    """A real full disk: the run folder on a tiny tmpfs (needs mount rights, as root in a container)."""
    from conftest import run_main

    run = tmp_path / "small-disk"
    run.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=160k", "tmpfs", str(run)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        recipe = write_recipe(tmp_path / "r.toml", tiny_flux, tiny_records, "byg",
                              **{**SETTINGS, "run.dir": str(run)})
        code, _, err = run_main(["train", recipe], capsys)
        assert code == 2 and "Traceback" not in err, err
        assert "cannot write the checkpoint" in err and len(err.strip().splitlines()) == 1, err
        assert not list((run / "checkpoints").glob(".tmp-*"))
    finally:
        subprocess.run(["umount", str(run)], capture_output=True)
