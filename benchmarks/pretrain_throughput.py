"""Samples a CPU-second for pretraining the shapes base: precision, compile, data workers, batch size, threads.

The shapes base learns geometry at the rate of the samples it sees (examples/reports/shapes_base/FINDINGS.md), so
the setting to pretrain with is the one that trains on the most samples per second of this machine without
changing the maths. Each setting runs in its own process (accelerate's mixed precision is process-global; thread
counts are too): --warmup steps (compilation happens there, reported, not counted), then --steps timed steps.
Settings run in a palindrome order (A B C ... C B A) so machine drift hits all alike; the median of the two
passes is reported, with the first step's loss (the same batch: a setting must not change the maths beyond
rounding) and the speed-up over the first setting.

Run: python benchmarks/pretrain_throughput.py [--recipe recipes/shapes_t2i_more.toml] [--steps 6] [--warmup 3]
     [--settings fp32,bf16,compile,bf16+compile,workers1,batch256]
Writes benchmarks/results/pretrain_throughput.json (or --out).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# name -> recipe overrides; every setting starts from the shipped base at the stage recipe's batch size.
SETTINGS: dict[str, list[str]] = {
    "fp32": [],
    "bf16": ['train.mixed_precision="bf16"'],
    "compile": ["train.compile=true"],
    "bf16+compile": ['train.mixed_precision="bf16"', "train.compile=true"],
    "workers1": ["train.data_workers=1"],
    "batch256": ["train.batch_size=256"],
    "threads1": ["train.threads=1"],
}


def child(recipe: Path, overrides: list[str], steps: int, warmup: int) -> None:
    """Run in a fresh process: build a Trainer, warm up, time `steps` steps, print one JSON line."""
    from byg_cli.recipe import load_recipe
    from byg_cli.train import Trainer

    cfg = load_recipe(recipe, [*overrides, "train.sample_every=0"])
    trainer = Trainer(cfg, Path(tempfile.mkdtemp(prefix="byg-bench-throughput-")))
    began = time.perf_counter()
    first_loss = trainer.step()["loss"]
    for _ in range(warmup - 1):
        trainer.step()
    warmup_s = time.perf_counter() - began
    began = time.perf_counter()
    for _ in range(steps):
        trainer.step()
    per_step = (time.perf_counter() - began) / steps
    trainer.feed.close()
    print(json.dumps({"seconds_per_step": per_step, "batch": cfg.train.batch_size, "warmup_s": warmup_s,
                      "first_loss": first_loss}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipe", type=Path, default=ROOT / "recipes" / "shapes_t2i_more.toml")
    ap.add_argument("--set", dest="overrides", action="append", default=[],
                    help="recipe override for every setting, repeatable")
    ap.add_argument("--settings", default=",".join(SETTINGS), help=f"comma-separated, from {', '.join(SETTINGS)}")
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "pretrain_throughput.json")
    ap.add_argument("--child", nargs="*", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child is not None:
        return child(a.recipe, a.child, a.steps, a.warmup)
    names = [s for s in a.settings.split(",") if s]
    unknown = [s for s in names if s not in SETTINGS]
    if unknown:
        raise SystemExit(f"--settings: unknown {', '.join(unknown)} (known: {', '.join(SETTINGS)})")
    base = a.overrides or ['model.path="examples/shapes-base"']
    runs: dict[str, list[dict]] = {s: [] for s in names}
    for name in names + names[::-1]:
        cmd = [sys.executable, __file__, "--recipe", str(a.recipe), "--steps", str(a.steps),
               "--warmup", str(a.warmup), "--child", *base, *SETTINGS[name]]
        out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        if out.returncode != 0:
            raise SystemExit(f"{name}: failed\n{out.stderr[-2000:]}")
        result = json.loads(out.stdout.strip().splitlines()[-1])
        runs[name].append(result)
        print(f"{name:14s} {result['seconds_per_step']:6.3f} s a step at batch {result['batch']}"
              f" ({result['batch'] / result['seconds_per_step']:6.1f} samples/s; first loss"
              f" {result['first_loss']:.5f})", flush=True)
    rate = {s: statistics.median(r["batch"] / r["seconds_per_step"] for r in runs[s]) for s in names}
    print(f"{a.recipe.name} ({', '.join(base)}), median of 2 passes of {a.steps} steps")
    for s in names:
        print(f"  {s:14s} {rate[s]:7.1f} samples/s   {rate[s] / rate[names[0]]:.2f}x {names[0]}")
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps({"recipe": str(a.recipe.relative_to(ROOT) if a.recipe.is_absolute() else a.recipe),
                                 "overrides": base, "steps": a.steps, "runs": runs, "samples_per_second": rate,
                                 "speedup": {s: rate[s] / rate[names[0]] for s in names}}, indent=2))


if __name__ == "__main__":
    main()
