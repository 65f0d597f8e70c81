"""How close the base's prior is to the shapes world's exact one where ByG reads it, and how hard it pulls a copier.

For evaluation sources x of each core edit type (`evaluation_edits`, seed 1234), at noise levels t, with
x_t = (1 - t) x + t eps: the frozen base's velocities for the source and target captions (v_src, v_tgt, what the
prior loss reads) against the exact ones, v*(y, p) = (y - E[x | y, p]) / t (byg_cli/data/shapes_posterior.py):

- src error: ||v_src - v*_src|| / ||v*_tgt - v*_src||, the base's miss on the source caption in units of the exact
  edit direction;
- direction: cos(v_tgt - v_src, v*_tgt - v*_src), how well the base's caption difference points along the edit.

With `--copier RUN` (an editor trained by identity steps only, e.g. copy_and_pull.sh's OUT/copy, on the same base),
also, for colour edits at the same x_t: the copier's forward velocity v (asked to edit, source x), its residual
a = v - v_src against the base's and the exact prior, cos(a, b) with b = v_tgt - v_src, and the size of each loss
term's gradient with respect to the velocity it reads, at the recipe's weights: the directional term
(sin(a, b) / ||a||), the MSE anchor (2 alpha ||v - v_tgt|| / D) and the identity term (2 lambda_id ||v_id - (eps - x)|| / D;
the cycle term's is the same without lambda_id while the reverse pass sees a copy).

    python examples/experiments/prior_error.py MODEL_DIR [--count 64] [--copier RUN] [--threads 1]
"""

import argparse
from pathlib import Path

import torch

from byg_cli.data.images import to_tensor
from byg_cli.data.shapes import render
from byg_cli.data.shapes_edits import CORE_EDIT_TYPES, evaluation_edits
from byg_cli.data.shapes_posterior import ShapesPosterior
from byg_cli.models.flux import FluxBackbone

TIMES = (0.1, 0.3, 0.5, 0.7, 0.9)


def _norm(a: torch.Tensor) -> torch.Tensor:
    return a.flatten(1).norm(dim=1)


def _cos(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.cosine_similarity(a.flatten(1), b.flatten(1), dim=1)


def exact_velocities(model: FluxBackbone, posterior: ShapesPosterior, y_t: torch.Tensor, t: float,
                     edits) -> tuple[torch.Tensor, torch.Tensor]:
    """The world's exact velocities at y_t for each edit's source and target captions:
    v*(y, p) = (y - E[x | y, p]) / t."""
    tt, pixels = torch.full((len(edits),), t), model.decode(y_t)
    source, target = [(y_t - model.encode(posterior(pixels, tt, [getattr(e, side) for e in edits]))) / t
                      for side in ("source", "target")]
    return source, target


class Probe:
    """One edit type's evaluation sources, their captions and the exact posterior, on one backbone."""

    def __init__(self, model: FluxBackbone, edit_type: str, count: int, seed: int = 1234, size: int = 32):
        self.model, self.edits = model, evaluation_edits(seed, count, [edit_type], image_size=size)
        self.x = model.encode(torch.stack([to_tensor(render(e.source, size)) for e in self.edits]))
        self.posterior = ShapesPosterior(size)
        self.c_src = model.encode_text([e.src_caption for e in self.edits])
        self.c_tgt = model.encode_text([e.tgt_caption for e in self.edits])
        self.generator = torch.Generator().manual_seed(seed)

    def at(self, t: float) -> dict[str, torch.Tensor]:
        """x_t, eps and the base's and exact velocities for both captions at noise level t."""
        m, n = self.model, len(self.edits)
        eps = torch.randn(self.x.shape, generator=self.generator)
        tt = torch.full((n,), t)
        x_t = (1 - t) * self.x + t * eps
        exact_src, exact_tgt = exact_velocities(m, self.posterior, x_t, t, self.edits)
        return dict(t=tt, eps=eps, x_t=x_t, exact_src=exact_src, exact_tgt=exact_tgt,
                    src=m.velocity(x_t, tt, self.c_src, source=None, adapter=None),
                    tgt=m.velocity(x_t, tt, self.c_tgt, source=None, adapter=None))


def prior_table(model: FluxBackbone, count: int) -> None:
    print("src error (median) / direction (mean cos):\n")
    print("| t | " + " | ".join(CORE_EDIT_TYPES) + " |")
    print("|---:|" + "---:|" * len(CORE_EDIT_TYPES))
    probes = [Probe(model, kind, count) for kind in CORE_EDIT_TYPES]
    for t in TIMES:
        cells = []
        for probe in probes:
            v = probe.at(t)
            b_exact = v["exact_tgt"] - v["exact_src"]
            error = _norm(v["src"] - v["exact_src"]) / _norm(b_exact)
            cells.append(f"{float(error.median()):.2f} / {float(_cos(v['tgt'] - v['src'], b_exact).mean()):.2f}")
        print(f"| {t} | " + " | ".join(cells) + " |")


def copier_table(model: FluxBackbone, count: int, alpha: float, lambda_id: float) -> None:
    probe = Probe(model, "color", count)
    instruction = model.encode_text([e.instruction for e in probe.edits])
    reverse = model.encode_text([e.reverse_instruction for e in probe.edits])
    dim = probe.x[0].numel()
    print(f"\ncopier on colour edits; gradient norms w.r.t. the velocity (alpha {alpha}, lambda_id {lambda_id}):\n")
    print("| t | ‖a‖ base / exact | cos(a, b) base / exact | directional | MSE anchor | identity | cycle |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for t in TIMES:
        v = probe.at(t)
        fwd = model.velocity(v["x_t"], v["t"], instruction, source=probe.x, adapter="edit")
        ident = model.velocity(v["x_t"], v["t"], reverse, source=probe.x, adapter="edit")
        a, a_exact = fwd - v["src"], fwd - v["exact_src"]
        cos, cos_exact = _cos(a, v["tgt"] - v["src"]), _cos(a_exact, v["exact_tgt"] - v["exact_src"])
        directional = (1 - cos ** 2).clamp_min(0).sqrt() / _norm(a)
        anchor = 2 * alpha * _norm(fwd - v["tgt"]) / dim
        id_error = 2 * _norm(ident - (v["eps"] - probe.x)) / dim
        print(f"| {t} | {float(_norm(a).mean()):.1f} / {float(_norm(a_exact).mean()):.1f} "
              f"| {float(cos.mean()):.2f} / {float(cos_exact.mean()):.2f} | {float(directional.mean()):.4f} "
              f"| {float(anchor.mean()):.4f} | {float(lambda_id * id_error.mean()):.4f} | {float(id_error.mean()):.4f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="the base (a diffusers folder)")
    parser.add_argument("--count", type=int, default=64, help="evaluation sources an edit type")
    parser.add_argument("--copier", type=Path, help="a run folder: an identity-trained editor on this base")
    parser.add_argument("--alpha", type=float, default=0.1)
    parser.add_argument("--lambda-id", type=float, default=0.2)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with torch.no_grad():
        if args.copier is None:
            model = FluxBackbone.load(args.model)
        else:
            from byg_cli.edit import Editor
            from byg_cli.recipe import load_recipe

            base = Path(load_recipe(args.copier / "recipe.toml", check_paths=False).model.path)
            if base.resolve() != args.model.resolve():
                raise SystemExit(f"--copier {args.copier}: trained on {base}, not on {args.model}")
            model = Editor.from_run(args.copier).model
            print(f"copier {args.copier}")
        model.eval()
        print(f"{args.model}: {args.count} evaluation edits a type\n")
        prior_table(model, args.count)
        if args.copier is not None:
            copier_table(model, args.count, args.alpha, args.lambda_id)


if __name__ == "__main__":
    main()
