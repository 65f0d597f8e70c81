"""One training step of `byg` against `supervised` on the same tiny FLUX and the same batch, as ratios.

Measured in one run, side by side (the machine is shared: only ratios mean anything):
- step time: the median over steps after warm-up; the objectives' steps are interleaved (supervised, byg,
  byg without batched passes, ...) so drift in machine load hits all of them alike;
- the pass bound of a byg step: each pass the algorithm needs, timed alone (interleaved), times its count:
  K rollout forwards at batch B (no grad), one prior forward at batch 4B (no grad), three gradient passes at
  batch B (forward + backward), one optimizer step; byg time / pass bound is the waste beyond those passes;
- peak memory: on CUDA torch.cuda.max_memory_allocated (weights, LoRA, optimizer state and activations); on
  CPU each objective runs in its own child process and reports its peak resident set size (ru_maxrss) minus the
  resident size after importing torch, diffusers, transformers and peft (so the interpreter and libraries are left out, the model is counted).
  The part above the model-loaded baseline (activations, gradients, optimizer state) is printed too;
- the rollout forward under torch.inference_mode against torch.no_grad;
- the optimisations on and off: `byg` is the default step (objective.checkpoint_passes on: the forward and
  reverse passes recomputed in backward, one pass's activations at a time, the memory-lean step); `byg plain` turns it off (faster, the passes'
  activations held together), and `byg plain` with objective.batch_passes off too.

Run: python benchmarks/train_step.py [--threads 1] [--width 256] [--res 64] [--batch 2] [--steps 3] [--device cuda]
Writes benchmarks/results/train_step.json (or --out).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from byg_cli.engine.objectives import BygConfig, BygObjective, SupervisedObjective  # noqa: E402
from byg_cli.engine.schedule import TimestepSampler, rollout_grid  # noqa: E402
from byg_cli.models.tiny import TinyFluxSpec, build_tiny_flux  # noqa: E402

COLOURS = ["red", "green", "blue", "yellow", "purple", "orange"]
SHAPES = ["circle", "square", "triangle"]


def rss_kb() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


def build(args):
    head_dim = 64
    heads = max(1, args.width // head_dim)
    spec = TinyFluxSpec(num_layers=args.double, num_single_layers=args.single, num_heads=heads, head_dim=head_dim,
                        axes_dims_rope=(8, 28, 28), text_dim=64, max_text_length=16, pixel_patch=2)
    model = build_tiny_flux(spec).to(args.device)
    model.add_adapters(rank=args.rank, alpha=float(args.rank))
    model.train()
    g = torch.Generator().manual_seed(0)
    b, r = args.batch, args.res
    src = [COLOURS[i % 6] for i in range(b)]
    tgt = [COLOURS[(i + 1) % 6] for i in range(b)]
    shape = [SHAPES[i % 3] for i in range(b)]
    with torch.no_grad():
        x = model.encode(torch.rand(b, 3, r, r, generator=g) * 2 - 1)
        y = model.encode(torch.rand(b, 3, r, r, generator=g) * 2 - 1)
    batch = {"latents": x, "target_latents": y,
             "instruction": [f"make the {s} {c}" for s, c in zip(shape, tgt)],
             "reverse_instruction": [f"make the {s} {c}" for s, c in zip(shape, src)],
             "src_caption": [f"a {c} {s}" for s, c in zip(shape, src)],
             "tgt_caption": [f"a {c} {s}" for s, c in zip(shape, tgt)]}
    params = model.lora_parameters("edit")
    optimizer = torch.optim.AdamW(params, lr=1e-4, weight_decay=1e-2)
    return model, batch, optimizer


def objectives(args) -> dict:
    ts = TimestepSampler("uniform")
    cfg = dict(rollout_steps=args.rollout_steps, identity_warmup_steps=0, identity_prob=0.0)
    return {"supervised": SupervisedObjective(ts),
            "byg": BygObjective(ts, BygConfig(**cfg)),  # the default step: checkpoint_passes on
            "byg_plain": BygObjective(ts, BygConfig(**cfg, checkpoint_passes=False)),
            "byg_unbatched": BygObjective(ts, BygConfig(**cfg, checkpoint_passes=False, batch_passes=False))}


def sync(device):
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def train_step(model, batch, optimizer, objective, step, generator):
    optimizer.zero_grad(set_to_none=True)
    loss, _ = objective(batch, model, step, generator)
    model.set_adapter("edit")
    loss.backward()
    optimizer.step()


def timed(fn, device) -> float:
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def pass_fns(model, batch, optimizer, args):
    """One callable per pass kind of a byg step, each on the shapes the engine uses."""
    x = batch["latents"]
    b = x.shape[0]
    cond = model.encode_text(batch["instruction"])
    caps4 = model.encode_text(batch["src_caption"] + batch["tgt_caption"] * 2 + batch["src_caption"])
    t = torch.full((b,), 0.5, device=x.device)
    y = torch.randn_like(x)
    params = model.lora_parameters("edit")

    def rollout(mode=torch.no_grad):
        with mode():
            model.velocity(y, t, cond, source=x, adapter="ema")

    def prior():
        with torch.no_grad():
            model.velocity(torch.cat([y] * 4), t.repeat(4), caps4, source=None, adapter=None)

    def gradient():
        v = model.velocity(y, t, cond, source=x, adapter="edit")
        grads = torch.autograd.grad(v.square().mean(), params, allow_unused=True)
        del grads

    def opt():
        for p in params:
            p.grad = torch.zeros_like(p)
        optimizer.step()

    return {"rollout": rollout, "rollout_inference_mode": lambda: rollout(torch.inference_mode), "prior": prior,
            "gradient": gradient, "optimizer": opt}


def rollout_forwards(args, b: int) -> int:
    """Euler steps of a rollout with a non-node t: rollout_steps + 1 (t splits one interval)."""
    grid, _ = rollout_grid(args.rollout_steps, torch.full((b,), 0.537), 1.0)
    return int(((grid[:, 1:] - grid[:, :-1]) != 0).any(dim=0).sum())


def measure_time(args) -> dict:
    model, batch, optimizer = build(args)
    objs = objectives(args)
    fns = pass_fns(model, batch, optimizer, args)
    gen = torch.Generator().manual_seed(0)
    times: dict[str, list[float]] = {k: [] for k in [*objs, *fns]}
    for rep in range(args.warmup + args.steps):
        for name, obj in objs.items():
            dt = timed(lambda: train_step(model, batch, optimizer, obj, 10 + rep, gen), args.device)
            if rep >= args.warmup:
                times[name].append(dt)
        for name, fn in fns.items():
            dt = timed(fn, args.device)
            if rep >= args.warmup:
                times[name].append(dt)
        print(f"  round {rep + 1}/{args.warmup + args.steps}: "
              + ", ".join(f"{k} {v[-1]:.3f}s" for k, v in times.items() if v), file=sys.stderr, flush=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    k = rollout_forwards(args, args.batch)
    bound = k * med["rollout"] + med["prior"] + 3 * med["gradient"] + med["optimizer"]
    return {"median_s": med, "rollout_forwards": k, "pass_bound_s": bound,
            "pass_bound_terms": {"rollout": f"{k} x {med['rollout']:.4f}", "prior (batch 4B)": f"1 x {med['prior']:.4f}",
                                 "gradient (fwd+bwd, batch B)": f"3 x {med['gradient']:.4f}",
                                 "optimizer": f"1 x {med['optimizer']:.4f}"}}


class LiveTensorBytes:
    """Peak bytes of live tensor storages on the CPU (what torch.cuda.max_memory_allocated counts on a GPU):
    every storage an operator creates (forward, backward, optimizer) is counted until it is freed, so the number
    does not depend on malloc's arenas and fragmentation the way the resident set size does."""

    def __init__(self, start_bytes: int = 0):
        from torch.utils._python_dispatch import TorchDispatchMode

        tracker = self
        self.live, self.peak, self.seen = start_bytes, start_bytes, set()

        class Mode(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                out = func(*args, **(kwargs or {}))
                for t in torch.utils._pytree.tree_leaves(out):
                    if isinstance(t, torch.Tensor) and t.device.type == "cpu":
                        tracker.add(t.untyped_storage())
                return out

        self.mode = Mode()

    def add(self, storage):
        import weakref

        key = storage.data_ptr()
        if key in self.seen or storage.nbytes() == 0:
            return
        self.seen.add(key)
        n = storage.nbytes()
        self.live += n
        self.peak = max(self.peak, self.live)

        def gone(key=key, n=n):
            self.seen.discard(key)
            self.live -= n

        weakref.finalize(storage, gone)


def model_bytes(model, optimizer) -> int:
    storages = {}
    for t in [*model.parameters(), *model.buffers()]:
        storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
    return sum(storages.values())


def memory_child(args) -> dict:
    """Runs in its own process: peak memory of a few steps of one objective."""
    import diffusers.models.transformers.transformer_flux  # noqa: F401  libraries in before the baseline
    import peft  # noqa: F401
    import transformers.models.clip.modeling_clip  # noqa: F401
    import transformers.models.t5.modeling_t5  # noqa: F401

    base = rss_kb()
    if str(args.device).startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    model, batch, optimizer = build(args)
    obj = objectives(args)[args.memory_child]
    gen = torch.Generator().manual_seed(0)
    sync(args.device)
    loaded = torch.cuda.memory_allocated() if str(args.device).startswith("cuda") else rss_kb() * 1024
    for step in range(2):
        train_step(model, batch, optimizer, obj, 10 + step, gen)
    sync(args.device)
    rss_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    if not str(args.device).startswith("cuda"):
        weights = model_bytes(model, optimizer)
        state = sum(v.untyped_storage().nbytes() for s in optimizer.state.values() for v in s.values()
                    if isinstance(v, torch.Tensor))
        tracker = LiveTensorBytes(weights + state)
        with tracker.mode:
            train_step(model, batch, optimizer, obj, 20, gen)
        return {"peak_bytes": tracker.peak, "above_model_bytes": tracker.peak - weights - state,
                "method": "peak bytes of live CPU tensor storages (a TorchDispatchMode tracker), counting the "
                          "model's weights and optimizer state",
                "rss_peak_bytes": rss_peak - base * 1024, "rss_above_model_bytes": rss_peak - loaded}
    if str(args.device).startswith("cuda"):
        peak = torch.cuda.max_memory_allocated()
        return {"peak_bytes": peak, "above_model_bytes": peak - loaded, "method": "torch.cuda.max_memory_allocated"}
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"peak_bytes": peak - base * 1024, "above_model_bytes": peak - loaded,
            "method": "child process ru_maxrss minus its RSS after importing torch/diffusers/transformers/peft"}


def measure_memory(args, name: str) -> dict:
    if str(args.device).startswith("cuda"):
        torch.cuda.empty_cache()
        args.memory_child = name
        return memory_child(args)
    cmd = [sys.executable, __file__, "--memory-child", name, *sys.argv[1:]]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=os.environ).stdout
    return json.loads(out.strip().splitlines()[-1])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--width", type=int, default=256, help="transformer width (heads x 64)")
    p.add_argument("--double", type=int, default=2, help="double-stream blocks")
    p.add_argument("--single", type=int, default=2, help="single-stream blocks")
    p.add_argument("--res", type=int, default=64, help="image side; the latent grid is res/2 (pixel codec)")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--rank", type=int, default=16)
    p.add_argument("--rollout-steps", type=int, default=10)
    p.add_argument("--steps", type=int, default=3, help="measured steps per objective (after warm-up)")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "train_step.json")
    p.add_argument("--memory-child", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.memory_child:
        print(json.dumps(memory_child(args)))
        return
    from byg_cli.models.registry import quiet_hf

    quiet_hf()
    mem = {name: measure_memory(args, name) for name in ("supervised", "byg", "byg_plain")}
    t = measure_time(args)
    med = t["median_s"]
    result = {
        "config": {k: v for k, v in vars(args).items() if k not in ("out", "memory_child")},
        "torch": torch.__version__, **t, "memory": mem,
        "ratios": {
            "byg/supervised time": med["byg"] / med["supervised"],
            "byg/pass-bound time": med["byg"] / t["pass_bound_s"],
            "byg/supervised peak memory": mem["byg"]["peak_bytes"] / mem["supervised"]["peak_bytes"],
            "byg/supervised memory above the loaded model": (mem["byg"]["above_model_bytes"]
                                                             / mem["supervised"]["above_model_bytes"]),
            **({"byg/supervised peak RSS": mem["byg"]["rss_peak_bytes"] / mem["supervised"]["rss_peak_bytes"],
                "byg plain/supervised peak RSS": (mem["byg_plain"]["rss_peak_bytes"]
                                                              / mem["supervised"]["rss_peak_bytes"])}
               if "rss_peak_bytes" in mem["byg"] else {}),
            "byg plain unbatched/batched passes time": med["byg_unbatched"] / med["byg_plain"],
            "byg plain/supervised peak memory": (mem["byg_plain"]["peak_bytes"]
                                                             / mem["supervised"]["peak_bytes"]),
            "byg plain/pass-bound time": med["byg_plain"] / t["pass_bound_s"],
            "byg/byg plain time": med["byg"] / med["byg_plain"],
            "rollout forward inference_mode/no_grad time": med["rollout_inference_mode"] / med["rollout"],
        }}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=str))
    print(f"config: {result['config']}")
    print(f"median step: supervised {med['supervised']:.3f}s, byg {med['byg']:.3f}s, "
          f"byg plain (checkpoint_passes off) {med['byg_plain']:.3f}s, "
          f"byg plain, passes not batched {med['byg_unbatched']:.3f}s; pass bound {t['pass_bound_s']:.3f}s = "
          + " + ".join(f"{k} {v}" for k, v in t["pass_bound_terms"].items()))
    print(f"peak memory ({mem['byg']['method']}): supervised {mem['supervised']['peak_bytes'] / 2**20:.1f} MiB, "
          f"byg {mem['byg']['peak_bytes'] / 2**20:.1f} MiB, "
          f"byg plain {mem['byg_plain']['peak_bytes'] / 2**20:.1f} MiB")
    for k, v in result["ratios"].items():
        print(f"{k}: {v:.3f}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
