"""ByG on the shapes world with an exact prior: the frozen base's velocities in the prior loss replaced by the
shapes world's exact ones, v*(y, p) = (y - E[x | y, p]) / t, E over every size and position of the caption's
silhouette (byg_cli/data/shapes_posterior.py). The editor is the same LoRA on the same tiny base; only the prior
queries change. An experiment (README, "ByG on the shapes world"), not a recipe option: it wraps the Trainer.

    python examples/experiments/byg_with_exact_prior.py RECIPE RUN_DIR [recipe overrides ...]
    RESUME=1 python examples/experiments/byg_with_exact_prior.py RUN/recipe.toml RUN train.steps=500 ...

Needs data.kind = "shapes_edit", the exact pixel codec and objective.batch_passes (the prior queried in one call).
"""

import os
import sys
from pathlib import Path

import torch

import byg_cli.train as T
from byg_cli.data.shapes_edits import edit_for_index
from byg_cli.data.shapes_posterior import ShapesPosterior
from byg_cli.recipe import load_recipe


def with_exact_prior(posterior: ShapesPosterior):
    """A Trainer.__init__ that builds the trainer, then routes its prior queries to `posterior`."""
    build = T.Trainer.__init__

    def init(self, cfg, run_dir):
        build(self, cfg, run_dir)
        model, objective, stream, ctx = self.model, self.objective, self.source, {}
        velocity = model.velocity

        def prior_or_model(y_t, t, cond, source=None, adapter="edit"):
            if adapter is not None or source is not None:  # the editor's own passes
                return velocity(y_t, t, cond, source=source, adapter=adapter)
            with torch.no_grad():  # a prior query: v* = (y - E[x | y, p]) / t for the captions' attributes
                mean = posterior(model.decode(y_t).float().cpu(), t.float().cpu(), ctx["attrs"])
                return (y_t - model.encode(mean).to(y_t)) / t.clamp_min(1e-4).view(-1, 1, 1, 1).to(y_t)

        def objective_with_attributes(batch, model_, step, generator):
            edits = [edit_for_index(stream.seed, int(i), stream.edit_types, stream.split, stream.size)
                     for i in batch["index"]]
            assert [e.src_caption for e in edits] == list(batch["src_caption"]), "batch and stream disagree"
            src, tgt = [e.source for e in edits], [e.target for e in edits]
            ctx["attrs"] = src + tgt + tgt + src  # the batched prior query: [y_t, y_t, x_t, x_t] x [src, tgt, tgt, src]
            return objective(batch, model_, step, generator)

        model.velocity = prior_or_model
        self.objective = objective_with_attributes

    return init


def main() -> None:
    recipe, run_dir, *overrides = sys.argv[1:]
    cfg = load_recipe(Path(recipe), [f'run.dir="{run_dir}"', *overrides])
    T.Trainer.__init__ = with_exact_prior(ShapesPosterior(cfg.data.resolution))
    T.train(cfg, resume=bool(os.environ.get("RESUME")))


if __name__ == "__main__":
    main()
