"""Record a finished pretraining stage of examples/shapes-base: its scores (from the run's `byg eval shapes`
report) go into stages.json, the report it replaces moves to stage<N-1>/, the run's report becomes the shipped
one beside this script, and the learning curve is redrawn with its fits (plot_stages.py).

    python examples/reports/shapes_base/add_stage.py 5 runs/shapes_t2i_stage5 --minutes 120 --threads 2

It does not touch the model: ship the weights first (`cp -r runs/shapes_t2i_stageN/model/* examples/shapes-base/`).
"""

import argparse
import json
import shutil
import sys
import tomllib
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPORT = ("shapes_t2i.json", "shapes_t2i.md", "shapes_t2i_grid.png")
SCORES = {"background": "background", "color": "color", "shape": "shape", "style": "style", "crisp": "crisp",
          "all_correct": "all"}


def stage_entry(stage: int, run: Path, minutes: float, threads: str, before: dict) -> dict:
    """The stages.json entry of the stage trained in `run`, cumulative over the stages before it."""
    recipe = tomllib.loads((run / "recipe.toml").read_text())
    report = json.loads((run / "eval" / "shapes_t2i.json").read_text())
    accuracy, by_style = report["accuracy"], report["by_request"]["style"]
    last = max((run / "checkpoints").glob("step-*"), key=lambda p: int(p.name.split("-")[1]))
    steps, batch = int(json.loads((last / "state.json").read_text())["step"]), int(recipe["train"]["batch_size"])
    return {"stage": stage, "recipe": f"recipes/shapes_t2i_stage{stage}.toml", "steps": steps, "batch": batch,
            "samples": before["samples"] + steps * batch, "cpu_minutes": round(before["cpu_minutes"] + minutes),
            "threads": int(threads) if threads.isdigit() else threads,
            "scores": {**{key: round(100 * accuracy[name], 1) for key, name in SCORES.items()},
                       **{f"crisp_{style}": round(100 * by_style[style]["crisp"], 1) for style in ("filled", "outlined")}}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("stage", type=int)
    ap.add_argument("run", type=Path, help="the stage's run folder (its recipe.toml, checkpoints/, eval/)")
    ap.add_argument("--minutes", type=float, required=True, help="wall minutes the stage trained")
    ap.add_argument("--threads", default="2", help="torch threads it ran on (a number, or words)")
    args = ap.parse_args()
    data = json.loads((HERE / "stages.json").read_text())
    stages = data["stages"]
    if any(s["stage"] == args.stage for s in stages):
        sys.exit(f"stages.json: stage {args.stage} is already recorded")
    if not (args.run / "eval" / "shapes_t2i.json").is_file():
        sys.exit(f"{args.run}: no eval/shapes_t2i.json (the stage's `byg eval shapes` report)")
    entry = stage_entry(args.stage, args.run, args.minutes, args.threads, stages[-1])
    previous = HERE / f"stage{stages[-1]['stage']}"
    previous.mkdir(exist_ok=True)
    for name in REPORT:
        shutil.move(HERE / name, previous / name)
        shutil.copy(args.run / "eval" / name, HERE / name)
    stages.append(entry)
    (HERE / "stages.json").write_text(json.dumps(data, indent=1) + "\n")
    print(json.dumps(entry))
    sys.path.insert(0, str(HERE))
    import plot_stages

    plot_stages.main()


if __name__ == "__main__":
    main()
