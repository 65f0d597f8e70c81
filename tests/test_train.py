"""`byg train` end to end on a tiny random FLUX folder: each objective, resume, and bad input."""

import json
import subprocess
import sys

import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from conftest import write_recipe

from byg_cli import checkpoint as ckpt
from byg_cli.cli import app


def read_losses(run):
    return [json.loads(line) for line in (run / "losses.jsonl").read_text().splitlines()]


@pytest.mark.slow
@pytest.mark.parametrize("objective", ["byg", "supervised", "t2i"])
def test_each_objective_trains_20_steps(tmp_path, tiny_flux, tiny_records, objective):
    recipe = write_recipe(tmp_path / "r.toml", tiny_flux, tiny_records, objective, **{"train.sample_every": 20})
    result = CliRunner().invoke(app, ["train", str(recipe)])
    assert result.exit_code == 0, result.output
    run = tmp_path / "run"
    losses = read_losses(run)
    assert [r["step"] for r in losses] == list(range(1, 21))
    assert all(r["loss"] == r["loss"] and r["loss"] < 1e4 for r in losses)
    assert (run / "checkpoints" / "step-0000020" / "trainable.safetensors").is_file()
    assert (run / "recipe.toml").is_file() and (run / "samples" / "step-0000020.png").is_file()
    assert list((run / "logs").iterdir()), "no TensorBoard events written"
    if objective == "byg":
        assert any(r["identity_step"] == 0.0 and "cycle" in r for r in losses)
        assert all(r["identity_step"] == 1.0 for r in losses[:2])  # identity-only warm-up
    if objective == "t2i":
        assert (run / "model" / "transformer").is_dir()


@pytest.mark.slow
def test_resume_reproduces_losses_step_for_step(tmp_path, tiny_flux, tiny_records):
    full = write_recipe(tmp_path / "a" / "r.toml", tiny_flux, tiny_records, "byg",
                        **{"train.checkpoint_every": 5}) if (tmp_path / "a").mkdir() is None else None
    part = write_recipe(tmp_path / "b" / "r.toml", tiny_flux, tiny_records, "byg",
                        **{"train.checkpoint_every": 5}) if (tmp_path / "b").mkdir() is None else None
    runner = CliRunner()
    assert runner.invoke(app, ["train", str(full)]).exit_code == 0
    first = runner.invoke(app, ["train", str(part), "--max-steps", "7"])
    assert first.exit_code == 0, first.output
    # the interrupted run saved step 7 (its last); drop it to resume from an ordinary periodic checkpoint
    import shutil
    shutil.rmtree(tmp_path / "b" / "run" / "checkpoints" / "step-0000007")
    again = runner.invoke(app, ["train", str(part), "--resume"])
    assert again.exit_code == 0, again.output
    a, b = read_losses(tmp_path / "a" / "run"), read_losses(tmp_path / "b" / "run")
    assert [r["step"] for r in b] == list(range(1, 21))
    for ra, rb in zip(a, b):
        assert ra == pytest.approx(rb, rel=1e-6, abs=1e-7), (ra, rb)


def test_max_minutes_ends_the_run_as_its_last_step_would(tmp_path, tiny_flux, tiny_records):
    recipe = write_recipe(tmp_path / "r.toml", tiny_flux, tiny_records, "t2i",
                          **{"train.steps": 50, "train.max_minutes": 1e-6, "train.sample_every": 25})
    result = CliRunner().invoke(app, ["train", str(recipe)])
    assert result.exit_code == 0, result.output
    assert "train.max_minutes" in result.output and "reached at step 1" in result.output
    run = tmp_path / "run"
    assert [r["step"] for r in read_losses(run)] == [1]
    assert (run / "checkpoints" / "step-0000001").is_dir()
    assert (run / "model" / "transformer").is_dir() and (run / "samples" / "step-0000001.png").is_file()


@pytest.mark.slow
def test_compile_trains_the_same_byg_steps_as_eager(tmp_path, tiny_flux, tiny_records):
    """train.compile: the compiled transformer (every adapter, the batched passes, LoRA saving) gives the eager
    run's losses; the speed-up is measured by benchmarks/compile_step.py, not here."""
    losses = {}
    for mode in ("eager", "compile"):
        (tmp_path / mode).mkdir()
        recipe = write_recipe(tmp_path / mode / "r.toml", tiny_flux, tiny_records, "byg",
                              **{"train.steps": 4, "train.compile": mode == "compile",
                                 "objective.identity_warmup_steps": 1})
        result = CliRunner().invoke(app, ["train", str(recipe)])
        assert result.exit_code == 0, result.output
        losses[mode] = read_losses(tmp_path / mode / "run")
        assert (tmp_path / mode / "run" / "lora" / "pytorch_lora_weights.safetensors").is_file()
    assert any("cycle" in r for r in losses["compile"])  # full byg steps, not only identity ones
    for ra, rb in zip(losses["eager"], losses["compile"]):
        assert ra == pytest.approx(rb, rel=1e-3, abs=1e-5), (ra, rb)


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "byg_cli.cli", *args], capture_output=True, text=True, timeout=120)


@pytest.mark.slow
def test_bad_recipe_input_gives_one_line_errors(tmp_path, tiny_flux, tiny_records):
    recipe = write_recipe(tmp_path / "r.toml", tiny_flux, tiny_records, **{"train.lrr": 1e-3})
    typo = run_cli("train", str(recipe))
    wrong = run_cli("train", str(write_recipe(tmp_path / "w.toml", tiny_flux, tiny_records)), "--set",
                    "train.steps=many")
    missing = run_cli("train", str(write_recipe(tmp_path / "m.toml", tmp_path / "nowhere", tiny_records)))
    for proc, needle in ((typo, "unknown key 'train.lrr' (did you mean 'train.lr'?)"),
                         (wrong, "'train.steps'"), (missing, "model.path: folder")):
        assert proc.returncode == 2, proc.stderr
        assert needle in proc.stderr
        assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert str(tmp_path / "nowhere") in missing.stderr


def write_old_untrained_ema(folder):
    """What checkpoints of runs without G_EMA held before they stopped writing one: the "ema" LoRA as created
    (every lora_B zero), listed in state.json."""
    from safetensors.torch import save_file

    untrained = {k: torch.zeros_like(v) if "lora_B" in k else v for k, v in ckpt.load_adapter(folder, "edit").items()}
    save_file(untrained, str(folder / "ema.safetensors"))
    state = json.loads((folder / "state.json").read_text())
    (folder / "state.json").write_text(json.dumps({**state, "files": sorted(state["files"] + ["ema.safetensors"])}))


@pytest.mark.parametrize("old_file", [False, True])
def test_byg_from_a_paired_editor_starts_its_teacher_at_the_editor(tmp_path, tiny_flux, tiny_records, old_file):
    """A supervised run keeps no G_EMA, so its checkpoints hold none; ByG resumed from one (its run folder a copy of
    those checkpoints) starts G_EMA at the paired editor's weights, not at the untrained LoRA (the base). So does one
    from an older checkpoint that still holds the never-updated "ema" LoRA (`old_file`: every lora_B zero)."""
    import shutil

    (tmp_path / "a").mkdir()
    paired = write_recipe(tmp_path / "a" / "r.toml", tiny_flux, tiny_records, "supervised",
                          **{"train.steps": 4, "train.checkpoint_every": 4})
    assert CliRunner().invoke(app, ["train", str(paired)]).exit_code == 0
    start = tmp_path / "a" / "run" / "checkpoints" / "step-0000004"
    assert not (start / "ema.safetensors").exists()
    (tmp_path / "b").mkdir()
    copy = tmp_path / "b" / "run" / "checkpoints" / start.name
    shutil.copytree(start, copy)
    if old_file:
        write_old_untrained_ema(copy)
    byg = write_recipe(tmp_path / "b" / "r.toml", tiny_flux, tiny_records, "byg",
                       **{"train.steps": 5, "ema.decay": 0.5})
    result = CliRunner().invoke(app, ["train", str(byg), "--resume"])
    assert result.exit_code == 0, result.output
    assert "holds no G_EMA" in result.output
    end = tmp_path / "b" / "run" / "checkpoints" / "step-0000005"
    before, after, ema = ckpt.load_adapter(start, "edit"), ckpt.load_adapter(end, "edit"), ckpt.load_adapter(end, "ema")
    assert ema.keys() == before.keys()
    for k, v in ema.items():  # one EMA step (decay 0.5) from the paired editor's weights toward step 5's
        assert torch.allclose(v, 0.5 * before[k] + 0.5 * after[k], atol=1e-6), k


def test_a_frozen_teacher_keeps_the_untrained_ema_file_on_resume(tmp_path, tiny_flux, tiny_records):
    """ema.decay 1 keeps G_EMA as created, so its untrained file is the teacher itself and a resume keeps it."""
    recipe = write_recipe(tmp_path / "r.toml", tiny_flux, tiny_records, "byg",
                          **{"train.steps": 5, "train.checkpoint_every": 4, "ema.decay": 1.0})
    assert CliRunner().invoke(app, ["train", str(recipe), "--max-steps", "4"]).exit_code == 0
    again = CliRunner().invoke(app, ["train", str(recipe), "--resume"])
    assert again.exit_code == 0, again.output
    assert "holds no G_EMA" not in again.output
    run = tmp_path / "run" / "checkpoints"
    start, end = ckpt.load_adapter(run / "step-0000004", "ema"), ckpt.load_adapter(run / "step-0000005", "ema")
    assert not any(v.any() for k, v in end.items() if "lora_B" in k)
    assert all(torch.equal(start[k], v) for k, v in end.items())


def test_a_paired_runs_old_untrained_ema_file_is_neither_exported_nor_edited_with(tmp_path, tiny_flux, tiny_records):
    """An older supervised checkpoint still holding the never-updated "ema" LoRA: `--weights ema` refuses it in
    export and edit alike (it is the base, not a teacher), while the edit weights export."""
    recipe = write_recipe(tmp_path / "r.toml", tiny_flux, tiny_records, "supervised",
                          **{"train.steps": 2, "train.checkpoint_every": 2})
    assert CliRunner().invoke(app, ["train", str(recipe)]).exit_code == 0
    write_old_untrained_ema(tmp_path / "run" / "checkpoints" / "step-0000002")
    export = ["train", str(recipe), "--export-only", "--lora-format", "diffusers", "--weights"]
    refused = CliRunner().invoke(app, [*export, "ema"])
    assert "has no 'ema' adapter" in str(refused.exception), refused.output
    assert CliRunner().invoke(app, [*export, "edit"]).exit_code == 0
    Image.new("RGB", (32, 32), "red").save(tmp_path / "red.png")
    edited = CliRunner().invoke(app, ["edit", str(tmp_path / "red.png"), "make it blue", "--run", str(tmp_path / "run"),
                                      "--weights", "ema", "-o", str(tmp_path / "o.png")])
    assert "kept no EMA adapter" in str(edited.exception), edited.output
