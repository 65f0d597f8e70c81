"""The paper's Table 4 in the shapes world: the full method, its six ablations and the supervised baseline, each
trained from one recipe at one (reduced) budget and scored on the same held-out edits. Resumable: a variant
whose report exists is read back, a variant with checkpoints continues."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional, Sequence

from byg_cli import checkpoint as ckpt
from byg_cli.eval.shapes_metrics import write_json, write_markdown
from byg_cli.recipe import load_recipe

VARIANTS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("full", "byg", ()),
    ("w/o gradient routing", "byg", ("no_routing",)),
    ("w/o cycle loss", "byg", ("no_cycle",)),
    ("w/o directional loss", "byg", ("no_directional",)),
    ("w/o bootstrapping", "byg", ("no_bootstrap",)),
    ("w/o regularization loss", "byg", ("no_regularization",)),
    ("w/o random identity steps", "byg", ("no_random_identity",)),
    ("supervised (paired)", "supervised", ()),
)


def slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name).strip("_").replace("__", "_")


def run_variant(recipe: Path, name: str, objective: str, ablate: Sequence[str], out: Path, steps: int,
                per_type: int, eval_steps: int, overrides: Sequence[str], quiet: bool) -> dict:
    from byg_cli.edit import Editor
    from byg_cli.eval.shapes_eval import evaluate_edits
    from byg_cli.train import train

    run_dir = out / slug(name)
    report = run_dir / "eval" / "shapes_edit.json"
    if report.is_file():
        return json.loads(report.read_text())["summary"]
    ablations = "[" + ", ".join(f'"{a}"' for a in ablate) + "]"
    switches = [f"objective.ablate={ablations}"] if objective == "byg" else []
    cfg = load_recipe(recipe, [*overrides, *switches, f"train.steps={steps}", 'eval.after="none"',
                               "train.sample_every=0"], objective=objective)
    latest = ckpt.latest_checkpoint(run_dir)
    if latest is None or ckpt.load_state(latest)["step"] < steps:
        train(cfg, run_dir=run_dir, resume=latest is not None, quiet=quiet)
    return evaluate_edits(Editor.from_run(run_dir), run_dir / "eval", per_type=per_type, steps=eval_steps,
                          edit_types=cfg.data.edit_types, image_size=cfg.data.resolution, quiet=quiet)


def ablation_table(rows: list[tuple[str, dict]]) -> str:
    types = [t for t in ("color", "background", "shape", "style", "add", "remove") if t in rows[0][1]["per_type"]]
    copies = all("identity" in summary["per_type"] for _, summary in rows)
    head = "| method | edit success | source preservation | " + " | ".join(f"{t} succ / pres" for t in types)
    head += " | copies the source (identity) |" if copies else " |"
    lines = [head, "|---|---:|---:|" + "---:|" * (len(types) + copies)]
    for name, summary in rows:
        avg = summary["average"] or {"success": float("nan"), "preservation": float("nan")}
        per = " | ".join(f"{100 * summary['per_type'][t]['success']:.0f} / "
                         f"{100 * summary['per_type'][t]['preservation']:.0f}" for t in types)
        if copies:
            per += f" | {100 * summary['per_type']['identity']['preservation']:.0f}%"
        lines.append(f"| {name} | {100 * avg['success']:.1f}% | {100 * avg['preservation']:.1f}% | {per} |")
    return "\n".join(lines) + "\n"


def plot_table(rows: list[tuple[str, dict]], path: Path) -> None:
    from byg_cli.eval.report import pyplot

    plt = pyplot("eval", "byg eval ablations (its plot)")

    names = [n for n, _ in rows]
    succ = [100 * (s["average"] or {}).get("success", 0.0) for _, s in rows]
    pres = [100 * (s["average"] or {}).get("preservation", 0.0) for _, s in rows]
    fig, ax = plt.subplots(figsize=(9, 3.6))
    x = range(len(names))
    ax.bar([i - 0.2 for i in x], succ, 0.4, label="edit success")
    ax.bar([i + 0.2 for i in x], pres, 0.4, label="source preservation")
    ax.set_xticks(list(x), names, rotation=25, ha="right", fontsize=8)
    ax.set_ylabel("%")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run_ablations(recipe: Path, out: Path, steps: int, per_type: int = 30, eval_steps: int = 20,
                  overrides: Sequence[str] = (), only: Optional[Sequence[str]] = None, quiet: bool = False) -> str:
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for name, objective, ablate in VARIANTS:
        if only and slug(name) not in only and name not in only:
            continue
        rows.append((name, run_variant(recipe, name, objective, ablate, out, steps, per_type, eval_steps,
                                       overrides, quiet)))
    table = ablation_table(rows)
    types = (rows[0][1]["average"] or {}).get("types", [])
    header = (f"Ablations of `{recipe}` at {steps} training steps each; edit success and preservation averaged over "
              f"the {', '.join(types) or 'no core'} edits ({per_type} held-out edits per type).\n\n")
    write_markdown(out / "ablations.md", header + table)
    write_json(out / "ablations.json", {"recipe": str(recipe), "steps": steps, "per_type": per_type,
                                        "rows": [{"method": n, **s} for n, s in rows]})
    plot_table(rows, out / "ablations.png")
    return header + table
