"""Which trained editor does Algorithm 1's loss prefer? The ByG loss of saved editors, term by term, on the same batches.

`true_editor_loss.py` scores an ideal editor that knows the target; this scores real ones: LoRA states saved by
runs (a copier, a paired editor, ByG runs). Each editor is evaluated self-consistently, its own weights also
standing in for G_EMA (the rollout's teacher), so the number is the loss at that editor as a fixed point of the
bootstrap; `--teacher ema` takes instead the G_EMA its run saved beside it (the loss the run's next step saw).
Every editor sees the same batches, timesteps and noise (the recipe's training stream from its seed, drawn afresh
for each editor), with no identity-only steps, so the differences are paired; the table gives each term's mean
over the batches and, for the total, the paired standard error against the first editor.

    python examples/experiments/byg_loss_of_editors.py RECIPE NAME=CHECKPOINT_DIR [NAME=CHECKPOINT_DIR ...]
        [--batches 24] [--threads 1] [--teacher edit|ema] [--set objective.prior_direction='"projection"' ...]

A CHECKPOINT_DIR is a run's `checkpoints/step-N` folder (its trainable.safetensors holds the edit LoRA). Read the
total and each term against the editors' measured success / preservation: if the editor that keeps its sources
pays more than the one that forgets them, the loss itself prefers forgetting.
"""

import argparse
import tempfile
from pathlib import Path

import torch

from byg_cli import checkpoint as ckpt
from byg_cli.engine.ema import ema_update
from byg_cli.eval.stats import mean_sem
from byg_cli.recipe import load_recipe
from byg_cli.train import Trainer

TERMS = ("loss", "cycle", "identity", "prior_fwd", "prior_rev", "dir_fwd", "dir_rev", "mse_fwd", "mse_rev")


def losses_of(trainer: Trainer, folder: Path, batches: int, teacher: str) -> list[dict[str, float]]:
    """The objective's logged terms on each of the first `batches` training batches, for the editor in `folder`,
    with G_EMA either the editor itself (`teacher` "edit") or the run's own G_EMA saved beside it ("ema")."""
    if not folder.is_dir():
        raise SystemExit(f"{folder}: no such checkpoint folder")
    edit = ckpt.load_tensors(folder, "trainable")
    if edit is None:
        raise SystemExit(f"{folder}: no trainable.safetensors")
    trainer.load_trainable_state(edit)
    if teacher == "ema":
        ema = ckpt.load_tensors(folder, "ema")
        if ema is None:
            raise SystemExit(f"{folder}: no ema.safetensors (its run kept no G_EMA); use --teacher edit")
        trainer.model.load_lora_state_dict("ema", ema)
    else:
        ema_update(trainer.model.lora_parameters("ema"), trainer.model.lora_parameters("edit"), 0.0)  # G_EMA := G_edit
    generator = torch.Generator().manual_seed(trainer.cfg.run.seed * 1000)
    step = trainer.cfg.objective.identity_warmup_steps  # past the warm-up: every step is a ByG step
    rows = []
    with torch.no_grad():
        for k in range(batches):
            _, logs = trainer.objective(trainer.batch(k, 0), trainer.model, step, generator)
            rows.append({t: logs[t] for t in TERMS})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("recipe")
    parser.add_argument("editors", nargs="+", help="NAME=CHECKPOINT_DIR")
    parser.add_argument("--batches", type=int, default=24)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--teacher", choices=("edit", "ema"), default="edit",
                        help="G_EMA for the rollout: the editor's own weights, or the G_EMA its run saved beside it")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    editors = [e.split("=", 1) for e in args.editors]
    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_recipe(Path(args.recipe), [f'run.dir="{tmp}"', "objective.identity_prob=0.0",
                                               f"train.threads={args.threads}", *args.overrides])
        trainer = Trainer(cfg, Path(tmp))
        results = {name: losses_of(trainer, Path(folder), args.batches, args.teacher) for name, folder in editors}
    first = results[editors[0][0]]
    print(f"{args.batches} batches of {cfg.train.batch_size}; teacher {args.teacher}; "
          f"direction {cfg.objective.prior_direction}, "
          f"alpha {cfg.objective.alpha}, lambda prior / cycle / id {cfg.objective.lambda_prior} / "
          f"{cfg.objective.lambda_cycle} / {cfg.objective.lambda_id}")
    print("| editor | total (paired SE against the first) | " + " | ".join(TERMS[1:]) + " |")
    print("|---|---:|" + "---:|" * (len(TERMS) - 1))
    for name, rows in results.items():
        mean = {t: sum(r[t] for r in rows) / len(rows) for t in TERMS}
        paired = mean_sem(r["loss"] - f["loss"] for r, f in zip(rows, first))
        print(f"| {name} | {mean['loss']:.3f} ({paired.mean:+.3f} ± {paired.sem:.3f}) | "
              + " | ".join(f"{mean[t]:.3f}" for t in TERMS[1:]) + " |")


if __name__ == "__main__":
    main()
