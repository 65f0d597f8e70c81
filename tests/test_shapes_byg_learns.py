"""A regression guard for the method itself: a short ByG run from the shipped shapes base must move colour-edit
success well above the untrained LoRA's. No pairs are used; success is read back from pixels exactly."""

from pathlib import Path

import pytest

from byg_cli.edit import Editor
from byg_cli.eval.shapes_eval import evaluate_edits
from byg_cli.recipe import load_recipe
from byg_cli.train import train

ROOT = Path(__file__).resolve().parents[1]
BASE = ROOT / "examples" / "shapes-base"
STEPS = 120


def colour_success(editor, out: Path) -> float:
    summary = evaluate_edits(editor, out, per_type=24, steps=10, seed=99, edit_types=["color"], quiet=True)
    return summary["per_type"]["color"]["success"]


def test_a_short_byg_run_learns_colour_edits(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    cfg = load_recipe(ROOT / "recipes" / "shapes_quick.toml", [
        f'run.dir="{tmp_path / "run"}"', f"train.steps={STEPS}", 'eval.after="none"', "train.sample_every=0",
        f"train.checkpoint_every={STEPS}", "train.threads=2"])
    run = train(cfg, quiet=True)
    trained = colour_success(Editor.from_run(run), tmp_path / "after")
    untrained = Editor.from_run(run)
    with pytest.MonkeyPatch.context():
        for p in untrained.model.lora_parameters("edit"):
            p.data.zero_()  # LoRA B = A = 0: the base with the source tokens and no learned edit
    before = colour_success(untrained, tmp_path / "before")
    print(f"colour-edit success: untrained {before:.2f}, after {STEPS} ByG steps {trained:.2f}")
    assert trained >= 0.6 and trained >= before + 0.35
