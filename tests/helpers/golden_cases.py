"""The recipes the golden loss test trains (tests/golden/make_golden.py writes their golden logs)."""

from __future__ import annotations

from pathlib import Path

# A tiny FLUX-architecture shapes model made from a fixed seed (not the shipped base, which grows by stages).
TINY_FLUX = ["model.create.vocabulary='shapes'", "model.create.num_layers=1", "model.create.num_single_layers=1",
             "model.create.num_heads=2", "model.create.head_dim=16", "model.create.axes_dims_rope=[4,6,6]",
             "model.create.text_dim=16", "model.create.text_layers=1", "model.create.text_heads=2",
             "model.create.shift=3.0", "model.create.seed=5", "data.resolution=16"]
TINY_WAN = ["model.create.vocabulary='shapes'", "model.create.num_layers=1", "model.create.num_heads=2",
            "model.create.head_dim=12", "model.create.ffn_dim=32", "model.create.text_dim=16",
            "model.create.seed=5", "data.resolution=16", "data.frames=5"]

CASES = {
    "byg_flux": ("recipes/shapes_quick.toml", [*TINY_FLUX, "objective.identity_warmup_steps=4"]),
    "supervised_flux": ("recipes/shapes_supervised.toml", [*TINY_FLUX, "train.batch_size=4"]),
    "t2i_flux": ("recipes/shapes_t2i.toml", [*TINY_FLUX, "train.batch_size=8", "train.lr_warmup_steps=5"]),
    "byg_wan": ("recipes/shapes_video.toml", [*TINY_WAN, "train.batch_size=2", "objective.rollout_steps=2",
                                              "objective.identity_warmup_steps=4"]),
}


def overrides(tmp: Path, extra: list[str]) -> list[str]:
    """The shared settings: 20 steps, a checkpoint at 10, one thread, no grids, exports or evaluations."""
    return [f"run.dir='{tmp / 'run'}'", f"model.path='{tmp / 'model'}'", "train.steps=20", "train.threads=1",
            "train.checkpoint_every=10", "train.log_every=1", "train.sample_every=0", "train.lr_decay_steps=0",
            "export.at_end=false", "eval.after='none'", "run.seed=7", *extra]
