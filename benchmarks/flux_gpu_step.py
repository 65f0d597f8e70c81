"""GPU check of the real-size path: a tiny-but-wide FLUX (FLUX.1-dev's width: 24 heads x 128, T5/CLIP width
4096, guidance embedding; only 2 double + 4 single blocks) in bf16 on CUDA, trained by `byg_cli.train.Trainer`
exactly as `byg train` does, with a tiny AutoencoderKL whose 256 px images give 64 x 64 = 4096 noisy tokens (+4096
source tokens), the token count of a 1024 px FLUX.1-dev image. Prints step time and peak memory of the
`supervised` and `byg` objectives side by side (with and without gradient checkpointing) and the ratios.

Run on a GPU machine:  python benchmarks/flux_gpu_step.py [--steps 5] [--res 256] [--out results.json]
Exits with a message (code 2) when no CUDA device is present.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def write_data(root: Path, res: int, count: int = 8) -> Path:
    from PIL import Image

    (root / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    lines = []
    for i in range(count):
        for tag in ("src", "tgt"):
            Image.fromarray(rng.integers(0, 255, (res, res, 3), dtype=np.uint8)).save(root / "images" / f"{i}-{tag}.png")
        lines.append({"image": f"images/{i}-src.png", "src_caption": "a red square on a white background",
                      "instruction": "make the square blue", "tgt_caption": "a blue square on a white background",
                      "reverse_instruction": "make the square red", "edit_type": "color",
                      "target_image": f"images/{i}-tgt.png"})
    (root / "metadata.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    return root / "metadata.jsonl"


def measure(model_dir: Path, records: Path, objective: str, checkpointing: bool, res: int, steps: int,
            run_dir: Path) -> dict:
    from byg_cli.recipe import recipe_from_dict
    from byg_cli.train import Trainer

    cfg = recipe_from_dict({
        "run": {"dir": str(run_dir)},
        "model": {"path": str(model_dir), "dtype": "bfloat16", "lora_rank": 64, "lora_alpha": 64,
                  "gradient_checkpointing": checkpointing},
        "data": {"kind": "records", "path": str(records), "resolution": res},
        "objective": {"name": objective, **({"rollout_steps": 10, "identity_warmup_steps": 0, "identity_prob": 0.0}
                                            if objective == "byg" else {})},
        "train": {"steps": steps + 2, "batch_size": 1, "lr": 3e-4, "weight_decay": 1e-2, "sample_every": 0,
                  "mixed_precision": "bf16"},
    })
    cuda = torch.cuda.is_available()
    trainer = Trainer(cfg, run_dir)
    trainer.step()  # warm-up (allocator, kernels)
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(steps):
        trainer.step()
    if cuda:
        torch.cuda.synchronize()
    seconds = (time.perf_counter() - start) / steps
    peak = torch.cuda.max_memory_allocated() / 2 ** 30 if cuda else float("nan")
    del trainer
    if cuda:
        torch.cuda.empty_cache()
    return {"objective": objective, "checkpointing": checkpointing, "step_s": seconds, "peak_gib": peak}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--res", type=int, default=256, help="pixels; tokens = (res/4)^2 with the tiny VAE")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--smoke", action="store_true",
                        help="check the script on the CPU with a narrow model (prints no measurement)")
    args = parser.parse_args()
    if args.smoke:
        args.steps, args.res = 1, 32
    elif not torch.cuda.is_available():
        print("flux_gpu_step: no CUDA device here; this benchmark needs a GPU (nothing was measured).")
        return 2
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from byg_cli.models.registry import quiet_hf
    from byg_cli.models.tiny import TinyFluxSpec, write_tiny_flux

    quiet_hf()
    spec = TinyFluxSpec(num_layers=2, num_single_layers=4, num_heads=24, head_dim=128, axes_dims_rope=(16, 56, 56),
                        text_dim=4096, text_layers=1, text_heads=32, max_text_length=512, pixel_patch=0,
                        guidance_embeds=True)
    if args.smoke:
        spec = TinyFluxSpec(pixel_patch=0, max_text_length=16)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model_dir = write_tiny_flux(tmp / "wide-flux", spec)
        records = write_data(tmp / "data", args.res)
        for checkpointing in (False, True):
            for objective in ("supervised", "byg"):
                row = measure(model_dir, records, objective, checkpointing, args.res, args.steps,
                              tmp / f"run-{objective}-{checkpointing}")
                rows.append(row)
                print(json.dumps(row), flush=True)
    if args.smoke:
        print("smoke run on the CPU: the script works; these numbers are not measurements")
        return 0
    print(f"\n{torch.cuda.get_device_name()}, {args.res}px -> {(args.res // 4) ** 2} noisy tokens, batch 1, bf16, "
          f"LoRA rank 64, 10 rollout steps")
    print("| checkpointing | supervised s/step | byg s/step | ratio | supervised peak GiB | byg peak GiB |")
    print("|---|---|---|---|---|---|")
    for ck in (False, True):
        sup = next(r for r in rows if r["objective"] == "supervised" and r["checkpointing"] == ck)
        byg = next(r for r in rows if r["objective"] == "byg" and r["checkpointing"] == ck)
        print(f"| {ck} | {sup['step_s']:.3f} | {byg['step_s']:.3f} | {byg['step_s'] / sup['step_s']:.2f}x | "
              f"{sup['peak_gib']:.2f} | {byg['peak_gib']:.2f} |")
    if args.out:
        args.out.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
