"""`byg edit` against diffusers' own FluxKontextPipeline on the same tiny FLUX (AutoencoderKL, CLIP, T5 with
FLUX.1-dev's tokenizer classes) and the same edit LoRA: same source image, instruction, seed and steps.

byg's side is `byg_cli.edit.Editor.edit` (what `byg edit` runs: crop, encode, Euler over the scheduler's grid,
decode); diffusers' side is `FluxKontextPipeline.__call__` with the LoRA exported the way `byg train` exports it
(RUN/lora/pytorch_lora_weights.safetensors) and loaded with `load_lora_weights`. Repeats are interleaved (byg,
diffusers, byg, ...) and medians compared, so machine drift hits both alike. The images must agree within
tolerance (max abs difference in 0..255 units, uint8 rounding of the same image).

Run: python benchmarks/edit.py [--threads 1] [--width 256] [--res 64] [--steps 8] [--repeats 7] [--device cuda]
Writes benchmarks/results/edit.json (or --out).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from byg_cli.edit import Editor  # noqa: E402
from byg_cli.models import flux_lora  # noqa: E402
from byg_cli.models.flux import DEFAULT_LORA_TARGETS, FluxBackbone  # noqa: E402
from byg_cli.models.registry import quiet_hf  # noqa: E402
from byg_cli.models.tiny import TinyFluxSpec, write_tiny_flux  # noqa: E402

MAX_TEXT = 16


def build(args, folder: Path):
    """The tiny base folder, our backbone with a random (non-zero) edit LoRA, and that LoRA in diffusers' format."""
    head_dim = 64
    spec = TinyFluxSpec(num_layers=args.double, num_single_layers=args.single, num_heads=max(1, args.width // 64),
                        head_dim=head_dim, axes_dims_rope=(8, 28, 28), text_dim=64, max_text_length=MAX_TEXT,
                        pixel_patch=0, tokenizers="flux")
    base = write_tiny_flux(folder / "base", spec)
    model = FluxBackbone.load(base, max_sequence_length=MAX_TEXT).to(args.device)
    model.add_adapters(rank=args.rank, alpha=float(args.rank))
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.lora_parameters("edit"):
            p.copy_(torch.randn(p.shape, generator=g) * 0.05)
    model.eval()
    lora_dir = folder / "lora"
    lora_dir.mkdir()
    from safetensors.torch import save_file

    save_file(flux_lora.diffusers_state_dict(model.lora_state_dict("edit")),
              str(lora_dir / "pytorch_lora_weights.safetensors"),
              metadata={"format": "pt", **flux_lora.diffusers_metadata(args.rank, float(args.rank),
                                                                       list(DEFAULT_LORA_TARGETS))})
    return base, model, lora_dir


def source_image(res: int) -> Image.Image:
    arr = np.full((res, res, 3), 235, np.uint8)
    q = res // 4
    arr[q:3 * q, q:3 * q] = (220, 30, 30)
    return Image.fromarray(arr)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--width", type=int, default=256, help="transformer width (heads x 64)")
    p.add_argument("--double", type=int, default=2)
    p.add_argument("--single", type=int, default=2)
    p.add_argument("--res", type=int, default=64, help="image side (the tiny VAE halves it)")
    p.add_argument("--rank", type=int, default=16)
    p.add_argument("--steps", type=int, default=8, help="sampling steps")
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--tolerance", type=float, default=2.0, help="max abs pixel difference (0..255)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "edit.json")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    quiet_hf()
    from diffusers import FluxKontextPipeline

    with tempfile.TemporaryDirectory() as tmp:
        base, model, lora_dir = build(args, Path(tmp))
        editor = Editor(model, args.res)
        pipe = FluxKontextPipeline.from_pretrained(base, torch_dtype=torch.float32).to(args.device)
        pipe.set_progress_bar_config(disable=True)
        pipe.load_lora_weights(lora_dir)
        image, instruction = source_image(args.res), "make the square blue"

        def ours():
            return np.asarray(editor.edit([image], [instruction], steps=args.steps, seed=args.seed)[0])

        def theirs():
            out = pipe(image=image, prompt=instruction, height=args.res, width=args.res,
                       num_inference_steps=args.steps, guidance_scale=model.guidance,
                       generator=torch.Generator().manual_seed(args.seed), max_area=args.res ** 2,
                       _auto_resize=False, max_sequence_length=MAX_TEXT, output_type="np").images[0]
            return (out * 255.0).round().clip(0, 255).astype(np.uint8)

        def timed(fn):
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            start = time.perf_counter()
            out = fn()
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            return time.perf_counter() - start, out

        times = {"byg": [], "diffusers": []}
        images = {}
        for rep in range(args.repeats + 1):  # the first round is warm-up
            for name, fn in (("byg", ours), ("diffusers", theirs)) if rep % 2 == 0 else (("diffusers", theirs),
                                                                                         ("byg", ours)):
                dt, images[name] = timed(fn)
                if rep:
                    times[name].append(dt)
            print(f"  round {rep + 1}/{args.repeats + 1}: "
                  + ", ".join(f"{k} {v[-1]:.3f}s" for k, v in times.items() if v), file=sys.stderr, flush=True)
        gap = float(np.abs(images["byg"].astype(np.float32) - images["diffusers"].astype(np.float32)).max())
        # without the LoRA diffusers' image differs: the comparison can fail
        pipe.unload_lora_weights()
        no_lora_gap = float(np.abs(theirs().astype(np.float32) - images["byg"].astype(np.float32)).max())
    med = {k: statistics.median(v) for k, v in times.items()}
    result = {"config": {k: v for k, v in vars(args).items() if k != "out"}, "torch": torch.__version__,
              "median_s": med, "times_s": times, "max_abs_pixel_difference": gap,
              "max_abs_pixel_difference_without_lora": no_lora_gap,
              "ratios": {"byg edit/diffusers time": med["byg"] / med["diffusers"]},
              "same_image": gap <= args.tolerance}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"config: {result['config']}")
    print(f"median edit: byg {med['byg']:.3f}s, diffusers FluxKontextPipeline {med['diffusers']:.3f}s")
    print(f"byg edit/diffusers time: {med['byg'] / med['diffusers']:.3f}")
    print(f"max abs pixel difference: {gap:.1f} (tolerance {args.tolerance}; {no_lora_gap:.1f} with the LoRA "
          f"unloaded from diffusers) -> {'same image' if result['same_image'] else 'DIFFERENT IMAGES'}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
