"""How much `train.data_workers` takes batch making off the training step, as ratios measured side by side.

A training step on an accelerator leaves the CPU idle while the GPU works; that step is stood in for by a sleep of
--step-ms (0: batch making alone). For each worker count, rounds interleaved (0, 1, 2, 0, 1, 2, ...) so that drift
in machine load hits all alike, the time per step of `BatchFeed(k)` + the stand-in step is measured over --steps
steps after the workers have started; the median over rounds is printed with its ratio to in-process batches.

Run: python benchmarks/data_workers.py [--batch 128] [--steps 40] [--step-ms 20] [--workers 0,1,2] [--rounds 3]
Writes benchmarks/results/data_workers.json (or --out).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from byg_cli.data.dataset import ShapesCaptionStream
from byg_cli.data.step_batches import BatchFeed, StepBatches


def per_step(workers: int, batch: int, steps: int, step_ms: float, start: int) -> float:
    feed = BatchFeed(StepBatches(ShapesCaptionStream(seed=0), batch), workers=workers, end=start + steps + 1)
    try:
        feed(start)  # starts the workers, not timed
        began = time.perf_counter()
        for k in range(start + 1, start + steps + 1):
            feed(k)
            time.sleep(step_ms / 1000)
        return (time.perf_counter() - began) / steps
    finally:
        feed.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--step-ms", type=float, default=20.0)
    ap.add_argument("--workers", default="0,1,2")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "data_workers.json")
    a = ap.parse_args()
    counts = [int(w) for w in a.workers.split(",")]
    times: dict[int, list[float]] = {w: [] for w in counts}
    for r in range(a.rounds):
        for w in counts:
            times[w].append(per_step(w, a.batch, a.steps, a.step_ms, start=r * 1000))
    median = {w: statistics.median(v) for w, v in times.items()}
    base = median[counts[0]]
    print(f"shapes batches of {a.batch}, a stand-in step of {a.step_ms:g} ms, median of {a.rounds} rounds")
    for w in counts:
        print(f"  data_workers={w}: {median[w] * 1000:7.1f} ms a step   ({base / median[w]:.2f}x the steps per second "
              f"of data_workers={counts[0]})")
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps({"batch": a.batch, "step_ms": a.step_ms, "steps": a.steps,
                                 "seconds_per_step": {str(w): median[w] for w in counts},
                                 "speedup": {str(w): base / median[w] for w in counts}}, indent=2))


if __name__ == "__main__":
    main()
