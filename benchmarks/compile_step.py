"""`train.compile` (torch.compile of the denoiser) against eager training steps, as ratios measured side by side.

Eager and compiled each get their own Trainer built from one recipe; each first runs --warmup steps (compilation
happens there and is reported, not counted), then rounds of --steps steps are interleaved (eager, compiled, eager,
...) so that drift in machine load hits both alike. Prints the median seconds a step, the speed-up, and the first
step's loss of each (the same batch: compiling must not change the maths). Mixed precision is one setting per
process (accelerate's state is global): pass --set train.mixed_precision=\"bf16\" to measure both under it.

Run: python benchmarks/compile_step.py [--recipe recipes/shapes_t2i_more.toml] [--set train.batch_size=128]
     [--steps 5] [--rounds 3] [--warmup 3]
Writes benchmarks/results/compile_step.json (or --out).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from byg_cli.recipe import load_recipe  # noqa: E402
from byg_cli.train import Trainer  # noqa: E402


def build(recipe: Path, overrides: list[str], setting: str) -> Trainer:
    cfg = load_recipe(recipe, [*overrides, f"train.compile={'true' if setting == 'compile' else 'false'}",
                               "train.sample_every=0"])
    return Trainer(cfg, Path(tempfile.mkdtemp(prefix=f"byg-bench-{setting}-")))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipe", type=Path, default=ROOT / "recipes" / "shapes_t2i_more.toml")
    ap.add_argument("--set", dest="overrides", action="append", default=[],
                    help="recipe override, repeatable (default: the shipped base, batch 128)")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "compile_step.json")
    a = ap.parse_args()
    overrides = a.overrides or ['model.path="examples/shapes-base"', "train.batch_size=128"]
    settings = ["eager", "compile"]
    trainers, first_loss, warmup_s = {}, {}, {}
    for s in settings:
        trainers[s] = build(a.recipe, overrides, s)
        began = time.perf_counter()
        first_loss[s] = trainers[s].step()["loss"]
        for _ in range(a.warmup - 1):
            trainers[s].step()
        warmup_s[s] = time.perf_counter() - began
        print(f"{s}: {a.warmup} warm-up steps in {warmup_s[s]:.1f} s (first loss {first_loss[s]:.5f})", flush=True)
    times: dict[str, list[float]] = {s: [] for s in settings}
    for _ in range(a.rounds):
        for s in settings:
            began = time.perf_counter()
            for _ in range(a.steps):
                trainers[s].step()
            times[s].append((time.perf_counter() - began) / a.steps)
    median = {s: statistics.median(v) for s, v in times.items()}
    print(f"{a.recipe} ({', '.join(overrides)}), median of {a.rounds} rounds of {a.steps} steps")
    for s in settings:
        print(f"  {s:14s} {median[s]:7.3f} s a step   {median[settings[0]] / median[s]:.2f}x {settings[0]}")
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps({"recipe": str(a.recipe), "overrides": overrides, "steps": a.steps,
                                 "seconds_per_step": median, "warmup_seconds": warmup_s, "first_loss": first_loss,
                                 "speedup": {s: median[settings[0]] / median[s] for s in settings}}, indent=2))


if __name__ == "__main__":
    main()
