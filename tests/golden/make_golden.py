"""Write the golden loss logs and the legacy run folders that tests/test_golden_losses.py checks against.

Each case trains a shipped recipe for 20 steps on a tiny model the recipe's [model.create] table makes from a fixed
seed (so the golden survives new stages of the shipped bases): first 10 steps, whose run folder (recipe.toml,
checkpoint, losses.jsonl) is kept as the legacy fixture, then --resume to 20, whose loss log is the golden.
Run it only when a change of the numbers is intended, and say so in CHANGELOG:
    python tests/golden/make_golden.py
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from helpers.golden_cases import CASES, overrides  # noqa: E402


def main() -> None:
    from byg_cli.recipe import load_recipe
    from byg_cli.train import train

    golden = {}
    for name, (recipe, extra) in CASES.items():
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            cfg = load_recipe(ROOT / recipe, overrides(tmp, extra))
            run = train(cfg, quiet=True, stop_after=10)
            legacy = HERE / "legacy" / name
            shutil.rmtree(legacy, ignore_errors=True)
            legacy.mkdir(parents=True)
            shutil.copy(run / "recipe.toml", legacy / "recipe.toml")
            shutil.copy(run / "losses.jsonl", legacy / "losses.jsonl")
            shutil.copytree(run / "checkpoints", legacy / "checkpoints")
            train(cfg, quiet=True, resume=True)
            golden[name] = [json.loads(line) for line in (run / "losses.jsonl").read_text().splitlines()]
            print(name, len(golden[name]), "steps")
    (HERE / "losses.json").write_text(json.dumps(golden, indent=1) + "\n")


if __name__ == "__main__":
    main()
