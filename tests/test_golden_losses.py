"""Behaviour pinned: fixed-seed runs of the shipped recipes (byg, supervised and t2i on FLUX, byg on Wan) log the
losses tests/golden/losses.json holds, and run folders written before the backbone contract (tests/golden/legacy:
recipe.toml with every key of every family, a checkpoint at step 10) still load and resume to the same losses.
Regenerate both with tests/golden/make_golden.py only for an intended change of the numbers."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest

from helpers.golden_cases import CASES, overrides

GOLDEN = Path(__file__).parent / "golden"


def golden(name: str) -> list[dict]:
    return json.loads((GOLDEN / "losses.json").read_text())[name]


def assert_same_losses(logged: list[dict], expected: list[dict]) -> None:
    assert [r["step"] for r in logged] == [r["step"] for r in expected]
    for got, want in zip(logged, expected):
        assert got.keys() == want.keys(), got["step"]
        for key, value in want.items():
            assert math.isclose(got[key], value, rel_tol=2e-5, abs_tol=1e-7), (got["step"], key, got[key], value)


def losses(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "losses.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_fixed_seed_run_logs_the_golden_losses(name, tmp_path):
    from byg_cli.recipe import load_recipe
    from byg_cli.train import train

    recipe, extra = CASES[name]
    run = train(load_recipe(Path(__file__).parents[1] / recipe, overrides(tmp_path, extra)), quiet=True)
    assert_same_losses(losses(run), golden(name))


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_run_folder_written_before_the_backbone_contract_resumes(name, tmp_path):
    """The old run folder's own recipe.toml (every key of every family and objective) loads, and its step-10
    checkpoint resumes to the steps the uninterrupted run logged."""
    from byg_cli.recipe import load_recipe
    from byg_cli.train import train

    run = tmp_path / "run"
    shutil.copytree(GOLDEN / "legacy" / name, run)
    cfg = load_recipe(run / "recipe.toml", [f"run.dir='{run}'", f"model.path='{tmp_path / 'model'}'"])
    train(cfg, resume=True, quiet=True)
    assert_same_losses(losses(run), golden(name))
