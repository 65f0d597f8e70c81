"""ByG on the shapes world with an exact prior: the frozen base's velocities in the prior loss replaced by the
shapes world's exact ones, v*(y, p) = (y - E[x | y, p]) / t, E over every size and position of the caption's
silhouette (byg_cli/data/shapes_posterior.py). The editor is the same LoRA on the same tiny base; only the prior
queries change. An experiment (docs/byg_on_shapes.md), not a recipe option: it hands its prior to `train` through the
objective's prior injection point (BygObjective's `prior`).

    python examples/experiments/byg_with_exact_prior.py RECIPE RUN_DIR [recipe overrides ...]
    RESUME=1 python examples/experiments/byg_with_exact_prior.py RUN/recipe.toml RUN train.steps=500 ...
    RESUME=1 MAX_STEPS=50 python ...   # stop after 50 steps of this invocation (as `byg train --max-steps`)

Needs data.kind = "shapes_edit", the exact pixel codec and objective.batch_passes (the prior queried in one call).
"""

import os
import sys
from pathlib import Path

import torch

from byg_cli.data.shapes_edits import edit_for_index
from byg_cli.data.shapes_posterior import ShapesPosterior
from byg_cli.recipe import load_recipe
from byg_cli.train import train


def exact_prior(posterior: ShapesPosterior, seed: int, size: int, edit_types):
    """BygObjective's prior: v* = (y - E[x | y, p]) / t for each query's caption attributes p, read from the
    shapes world's edit of each batch row (its index in the training stream)."""

    def prior(model, y_t, x_t, t, c_src, c_tgt, batch):
        edits = [edit_for_index(seed, int(i), edit_types, "train", size) for i in batch["index"]]
        assert [e.src_caption for e in edits] == list(batch["src_caption"]), "batch and stream disagree"
        src, tgt = [e.source for e in edits], [e.target for e in edits]
        y, tt = torch.cat([y_t, y_t, x_t, x_t]), t.repeat(4)  # [y~_t, y~_t, x_t, x_t] x [src, tgt, tgt, src]
        mean = posterior(model.decode(y).float().cpu(), tt.float().cpu(), src + tgt + tgt + src)
        return ((y - model.encode(mean).to(y)) / tt.clamp_min(1e-4).view(-1, 1, 1, 1).to(y)).chunk(4)

    return prior


def main() -> None:
    recipe, run_dir, *overrides = sys.argv[1:]
    cfg = load_recipe(Path(recipe), [f'run.dir="{run_dir}"', *overrides])
    edit_types = tuple(cfg.data.edit_types) if cfg.data.edit_types else None
    prior = exact_prior(ShapesPosterior(cfg.data.resolution), cfg.run.seed, cfg.data.resolution, edit_types)
    stop_after = int(os.environ["MAX_STEPS"]) if os.environ.get("MAX_STEPS") else None
    train(cfg, resume=bool(os.environ.get("RESUME")), stop_after=stop_after, prior=prior)


if __name__ == "__main__":
    main()
