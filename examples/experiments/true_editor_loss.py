"""Does ByG's prior loss prefer the editor we want? The perfect editor against one that forgets its source.

For evaluation edits of each core type (`evaluation_edits`, seed 1234) with their rendered ground-truth targets y, at
noise levels t, the pseudo-target a perfect editor's rollout would reach, y_t = (1 - t) y + t eps. There the
perfect editor's velocity is v = eps - y (it knows y exactly), and the frozen base's are v_src, v_tgt (what the
prior loss reads). The table gives, per edit type and t, for that perfect editor:

- L_dir = 1 - cos(v - v_src, v_tgt - v_src) (Eq. 2) against the base's prior, and against the world's exact one
  (v*(y_t, p) = (y_t - E[x | y_t, p]) / t, byg_cli/data/shapes_posterior.py): a perfect base's;
- L_MSE = mean (v - v_tgt)^2 (the anchor, before alpha);
- L_proj, the experimental `objective.prior_direction = "projection"` term (byg_cli.engine.losses
  .projected_directional_loss): only the editor's move along v_tgt - v_src is charged, against either prior;
- L_dir measured from the source (a variant of Eq. 2, not in byg): 1 - cos(v - v_copy, v_tgt - v_src) with
  v_copy = (y_t - x) / t, the velocity whose one-step prediction is the source, so the residual is the editor's
  own edit x - y_hat in image space; for the perfect editor and for the one that follows the target caption
  (whose image-space edit also redraws the layout, so this variant would charge it more if it favoured keeping it).

An editor that ignores its source and follows the target caption, v = v_tgt, scores L_dir = 0 and L_MSE = 0 by
construction, and pays instead in the cycle term (its reverse pass cannot find the source's layout again). The last
column is that price's scale: the base's own flow-matching error on the source at y_t, mean (v_src(x_t) - (eps - x))^2,
what a reverse pass that sees no source can do at best. The prior prefers the perfect editor only where
lambda_prior (L_dir + alpha L_MSE), counted for both directions, is below it.

    python examples/experiments/true_editor_loss.py MODEL_DIR [--count 64] [--threads 1]
"""

import argparse
from pathlib import Path

import torch

from byg_cli.data.images import to_tensor
from byg_cli.data.shapes import render
from byg_cli.data.shapes_edits import CORE_EDIT_TYPES, evaluation_edits
from byg_cli.data.shapes_posterior import ShapesPosterior
from byg_cli.engine.losses import directional_loss, projected_directional_loss
from byg_cli.models.flux import FluxBackbone
from prior_error import _cos, exact_velocities  # this folder's sibling script (on sys.path when run as a script)

TIMES = (0.1, 0.2, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95)


def _mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a - b).flatten(1).pow(2).mean(dim=1)


def table(model: FluxBackbone, count: int, seed: int = 1234, size: int = 32) -> None:
    posterior = ShapesPosterior(size)
    generator = torch.Generator().manual_seed(seed)
    print("| edit type | t | L_dir, base's prior | L_dir, exact prior | L_MSE | L_proj, base's prior "
          "| L_proj, exact prior | source flow error (no source seen) | L_dir from the source: perfect "
          "| same: follows the target caption |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for kind in CORE_EDIT_TYPES:
        edits = evaluation_edits(seed, count, [kind], image_size=size)
        x = model.encode(torch.stack([to_tensor(render(e.source, size)) for e in edits]))
        y = model.encode(torch.stack([to_tensor(render(e.target, size)) for e in edits]))
        c_src = model.encode_text([e.src_caption for e in edits])
        c_tgt = model.encode_text([e.tgt_caption for e in edits])
        for t in TIMES:
            tt = torch.full((len(edits),), t)
            eps = torch.randn(y.shape, generator=generator)
            y_t = (1 - t) * y + t * eps
            v = eps - y
            v_src = model.velocity(y_t, tt, c_src, source=None, adapter=None)
            v_tgt = model.velocity(y_t, tt, c_tgt, source=None, adapter=None)
            exact = exact_velocities(model, posterior, y_t, t, edits)
            x_t = (1 - t) * x + t * eps
            flow = _mse(model.velocity(x_t, tt, c_src, source=None, adapter=None), eps - x)
            v_copy = (y_t - x) / t
            cells = [directional_loss(v, v_src, v_tgt), directional_loss(v, *exact),
                     _mse(v, v_tgt), projected_directional_loss(v, v_src, v_tgt),
                     projected_directional_loss(v, *exact), flow,
                     1 - _cos(v - v_copy, v_tgt - v_src), 1 - _cos(v_tgt - v_copy, v_tgt - v_src)]
            print(f"| {kind} | {t} | " + " | ".join(f"{float(c.mean()):.3f}" for c in cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="the base (a diffusers folder)")
    parser.add_argument("--count", type=int, default=64, help="evaluation edits a type")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with torch.no_grad():
        model = FluxBackbone.load(args.model)
        model.eval()
        print(f"{args.model}: {args.count} evaluation edits a type\n")
        table(model, args.count)


if __name__ == "__main__":
    main()
