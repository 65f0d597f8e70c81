"""The training loop. It knows nothing of any model family or of the method's maths: it loads a backbone,
builds the objective from the recipe, and runs optimisation with checkpoints, logs and sample grids."""

from __future__ import annotations

import contextlib
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import torch

from byg_cli import checkpoint as ckpt
from byg_cli.data.images import to_pil
from byg_cli.data.sources import build_source, collate
from byg_cli.engine.ema import ema_update
from byg_cli.engine.objectives import BygConfig, build_objective
from byg_cli.engine.schedule import TimestepSampler
from byg_cli.errors import BygError
from byg_cli.models.registry import load_backbone
from byg_cli.recipe import Recipe, write_recipe
from byg_cli.sampling import edit_pixels, generate
from byg_cli.visual import save_grid


@dataclass
class TrainState:
    step: int = 0
    history: list[dict] = field(default_factory=list)


def build_objective_from(cfg: Recipe, model=None):
    o = cfg.objective
    # A backbone may own only part of the time axis (a Wan2.2 A14B run that trains one expert).
    window = model.train_time_range() if hasattr(model, "train_time_range") else None
    timesteps = TimestepSampler(o.timesteps.kind, o.timesteps.mean, o.timesteps.std, o.timesteps.shift,
                                window=window)
    byg = BygConfig(rollout_steps=o.rollout_steps, rollout_shift=o.rollout_shift, lambda_prior=o.lambda_prior,
                    lambda_id=o.lambda_id, lambda_cycle=o.lambda_cycle, alpha=o.alpha,
                    identity_warmup_steps=o.identity_warmup_steps, identity_prob=o.identity_prob,
                    rollout_adapter=o.rollout_adapter, batch_passes=o.batch_passes, ablate=tuple(o.ablate))
    return build_objective(o.name, timesteps, byg)


class Trainer:
    def __init__(self, cfg: Recipe, run_dir: Path):
        from accelerate import Accelerator

        self.cfg, self.run_dir = cfg, Path(run_dir)
        t = cfg.train
        if t.threads:
            torch.set_num_threads(t.threads)
        self.accelerator = Accelerator(mixed_precision=t.mixed_precision)
        self.rank, self.world = self.accelerator.process_index, self.accelerator.num_processes
        self.is_t2i = cfg.objective.name == "t2i"
        self.model = load_backbone(cfg.model, adapters=not self.is_t2i)
        self.model.to(self.accelerator.device)
        self.trainable = self._select_trainable()
        self.optimizer = torch.optim.AdamW([p for _, p in self.trainable], lr=t.lr, betas=tuple(t.betas),
                                           weight_decay=t.weight_decay)
        warm = t.lr_warmup_steps
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: min(1.0, (s + 1) / warm) if warm else 1.0)
        self.objective = build_objective_from(cfg, self.model)
        self.source = build_source(cfg.data, cfg.run.seed)
        self.generator = torch.Generator().manual_seed(cfg.run.seed * 1000 + self.rank)
        self.use_ema = not self.is_t2i and cfg.objective.name == "byg" and cfg.objective.rollout_adapter == "ema"
        self.state = TrainState()
        self.shadow: Optional[list[torch.Tensor]] = None
        if self.is_t2i and cfg.ema.full_weights:
            self.shadow = [p.detach().clone() for _, p in self.trainable]

    # ------------------------------------------------------------------------------------------- parameters
    def _select_trainable(self) -> list[tuple[str, torch.nn.Parameter]]:
        m = self.model
        if self.is_t2i:
            m.transformer.requires_grad_(True)
            named = [(f"transformer.{n}", p) for n, p in m.transformer.named_parameters()]
            if self.cfg.model.train_text_encoder and hasattr(m, "text_modules"):  # Wan: UMT5
                for folder, module in m.text_modules().items():
                    module.requires_grad_(True)
                    named += [(f"{folder}.{n}", p) for n, p in module.named_parameters()]
                m.text_trainable = True
            elif self.cfg.model.train_text_encoder:
                m.text.t5.requires_grad_(True)
                m.text.clip.requires_grad_(True)
                m.text_trainable = True
                named += [(f"text_encoder_2.{n}", p) for n, p in m.text.t5.named_parameters()]
                named += [(f"text_encoder.{n}", p) for n, p in m.text.clip.named_parameters()]
            return named
        return [(f"edit.{n}", p) for n, p in m.lora_named_parameters("edit")]

    def trainable_state(self) -> dict[str, torch.Tensor]:
        return {n: p.detach() for n, p in self.trainable}

    def load_trainable_state(self, state: dict[str, torch.Tensor]) -> None:
        with torch.no_grad():
            for n, p in self.trainable:
                if n not in state:
                    raise BygError(f"checkpoint lacks trainable tensor {n}")
                p.copy_(state[n])

    # ------------------------------------------------------------------------------------------- data
    def batch(self, step: int, micro: int) -> dict:
        t = self.cfg.train
        per_step = t.batch_size * self.world
        first = (step * t.grad_accum + micro) * per_step + self.rank * t.batch_size
        return collate([self.source.item(first + i) for i in range(t.batch_size)])

    # ------------------------------------------------------------------------------------------- checkpoints
    @contextlib.contextmanager
    def ema_weights(self):
        """Temporarily put the full-weight EMA (t2i) into the model."""
        if self.shadow is None:
            yield
            return
        params = [p for _, p in self.trainable]
        live = [p.detach().clone() for p in params]
        with torch.no_grad():
            for p, s in zip(params, self.shadow):
                p.copy_(s)
        try:
            yield
        finally:
            with torch.no_grad():
                for p, v in zip(params, live):
                    p.copy_(v)

    def save(self) -> Path:
        tensors = {"trainable": self.trainable_state()}
        if not self.is_t2i:
            tensors["ema"] = self.model.lora_state_dict("ema")
        if self.shadow is not None:
            tensors["ema_full"] = {n: s for (n, _), s in zip(self.trainable, self.shadow)}
        return ckpt.save_checkpoint(self.run_dir, self.state.step, tensors, self.optimizer, self.scheduler,
                                    {"rng": ckpt.rng_state(self.generator)}, self.cfg.train.keep_checkpoints)

    def resume(self) -> None:
        latest = ckpt.latest_checkpoint(self.run_dir)
        if latest is None:
            raise BygError(f"--resume: no checkpoint in {self.run_dir / 'checkpoints'}")
        self.load_trainable_state(ckpt.load_tensors(latest, "trainable"))
        ema = ckpt.load_tensors(latest, "ema")
        if ema is not None and not self.is_t2i:
            self.model.load_lora_state_dict("ema", ema)
        ema_full = ckpt.load_tensors(latest, "ema_full")
        if ema_full is not None and self.shadow is not None:
            self.shadow = [ema_full[n].clone() for n, _ in self.trainable]
        ckpt.load_optimizer(latest, self.optimizer, self.scheduler)
        state = ckpt.load_state(latest)
        ckpt.restore_rng(state["rng"], self.generator)
        self.state.step = int(state["step"])
        log = self.run_dir / "losses.jsonl"
        if log.is_file():
            kept = [line for line in log.read_text().splitlines()
                    if line.strip() and json.loads(line)["step"] <= self.state.step]
            log.write_text("".join(line + "\n" for line in kept))

    # ------------------------------------------------------------------------------------------- samples
    @torch.no_grad()
    def sample_grid(self) -> Optional[Path]:
        s = self.cfg.sample
        out = self.run_dir / "samples" / f"step-{self.state.step:07d}.png"
        if self.is_t2i:
            prompts = s.prompts or [self.source.item(i).get("caption") or self.source.item(i)["src_caption"]
                                    for i in range(s.count)]
            shape = self.model.encode(self.source.item(0)["pixels"][None]).shape[1:]
            images = generate(self.model, prompts, tuple(shape), s.steps, seed=0)
            if images.dim() == 5:  # videos: one row of frames per prompt
                rows = [[to_pil(v[:, k]) for k in range(v.shape[1])] for v in images]
                return save_grid(out, rows, scale=4 if images.shape[-1] <= 64 else 1)
            rows = [[to_pil(img) for img in images]]
            return save_grid(out, rows, scale=4 if images.shape[-1] <= 64 else 1)
        items = [self.source.item(i) for i in range(s.count)]
        pixels = torch.stack([it["pixels"] for it in items])
        inf = self.cfg.inference
        edited = edit_pixels(self.model, pixels, [it["instruction"] for it in items], s.steps, seed=0,
                             sampler=inf.sampler, flow_shift=inf.flow_shift)
        if pixels.dim() == 5:  # videos (B, 3, F, H, W): first, middle and last frame of source and edit
            f = pixels.shape[2]
            picks = sorted({0, f // 2, f - 1})
            rows = [[to_pil(v[:, k]) for k in picks] + [to_pil(e[:, k]) for k in picks]
                    for v, e in zip(pixels, edited)]
            labels = [f"source {k}" for k in picks] + [f"edited {k}" for k in picks]
            return save_grid(out, rows, labels, scale=4 if pixels.shape[-1] <= 64 else 1)
        rows = [[to_pil(a), to_pil(b)] for a, b in zip(pixels, edited)]
        return save_grid(out, rows, ["source", "edited"], scale=4 if pixels.shape[-1] <= 64 else 1)

    # ------------------------------------------------------------------------------------------- loop
    def step(self) -> dict[str, float]:
        t = self.cfg.train
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        logs_sum: dict[str, float] = {}
        for micro in range(t.grad_accum):
            batch = self.batch(self.state.step, micro)
            with self.accelerator.autocast():
                loss, logs = self.objective(batch, self.model, self.state.step, self.generator)
            if not self.is_t2i:
                self.model.set_adapter("edit")
            self.accelerator.backward(loss / t.grad_accum)
            for k, v in logs.items():
                logs_sum[k] = logs_sum.get(k, 0.0) + v / t.grad_accum
        params = [p for _, p in self.trainable]
        if t.max_grad_norm > 0:
            logs_sum["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(params, t.max_grad_norm))
        self.optimizer.step()
        self.scheduler.step()
        if self.use_ema:
            ema_update(self.model.lora_parameters("ema"), self.model.lora_parameters("edit"), self.cfg.ema.decay)
        if self.shadow is not None:  # warm-up: average over the steps so far until `decay` takes over
            decay = min(self.cfg.ema.decay, (1 + self.state.step) / (10 + self.state.step))
            ema_update(self.shadow, params, decay)
        self.state.step += 1
        logs_sum["lr"] = self.scheduler.get_last_lr()[0]
        if any(not math.isfinite(v) for v in logs_sum.values()):
            raise BygError(f"training diverged at step {self.state.step}: {logs_sum}")
        return logs_sum


def prepare_run_dir(cfg: Recipe, run_dir: Path, resume: bool) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    if not resume and ckpt.latest_checkpoint(run_dir) is not None:
        raise BygError(f"{run_dir} already holds checkpoints: pass --resume to continue it, or choose another "
                       f"--run-dir")
    # The run's own copy names its folders absolutely, so `byg edit --run` works from anywhere.
    resolved = cfg.model_copy(deep=True)
    resolved.model.path = resolved.model.path.resolve()
    if resolved.data.path is not None:
        resolved.data.path = resolved.data.path.resolve()
    write_recipe(resolved, run_dir / "recipe.toml")


def train(cfg: Recipe, run_dir: Optional[Path] = None, resume: bool = False,
          stop_after: Optional[int] = None, quiet: bool = False) -> Path:
    """Train per the recipe into run_dir (default cfg.run.dir). Returns the run folder."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from torch.utils.tensorboard import SummaryWriter

    run_dir = Path(run_dir or cfg.run.dir)
    prepare_run_dir(cfg, run_dir, resume)
    torch.manual_seed(cfg.run.seed)
    trainer = Trainer(cfg, run_dir)
    if resume:
        trainer.resume()
    t = cfg.train
    end = t.steps if stop_after is None else min(t.steps, trainer.state.step + stop_after)
    main = trainer.accelerator.is_main_process
    writer = SummaryWriter(str(run_dir / "logs")) if main else None
    loss_log = (run_dir / "losses.jsonl").open("a") if main else None
    columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("{task.fields[losses]}")]
    started = time.time()
    try:
        with Progress(*columns, disable=quiet or not main, transient=False) as progress:
            task = progress.add_task(f"{cfg.objective.name}", total=t.steps, completed=trainer.state.step, losses="")
            while trainer.state.step < end:
                logs = trainer.step()
                step = trainer.state.step
                if main and step % t.log_every == 0:
                    for k, v in logs.items():
                        writer.add_scalar(f"train/{k}", v, step)
                    loss_log.write(json.dumps({"step": step, **logs}) + "\n")
                    loss_log.flush()
                shown = " ".join(f"{k}={v:.3g}" for k, v in logs.items() if k not in ("lr", "identity_step"))
                progress.update(task, completed=step, losses=shown)
                if step % t.checkpoint_every == 0 or step == end:
                    trainer.save()
                if main and t.sample_every and (step % t.sample_every == 0 or step == t.steps):
                    with trainer.ema_weights():
                        trainer.sample_grid()
    except KeyboardInterrupt:
        if trainer.state.step > 0:
            trainer.save()
        raise BygError(f"interrupted at step {trainer.state.step}; checkpoint saved in {run_dir}/checkpoints "
                       f"(continue with --resume)") from None
    finally:
        if writer is not None:
            writer.close()
            loss_log.close()
    if main and trainer.state.step >= t.steps and trainer.is_t2i:
        with trainer.ema_weights():
            trainer.model.save_base(run_dir / "model")
    if main and not quiet:
        print(f"{trainer.state.step} steps in {time.time() - started:.0f}s; run folder: {run_dir}")
    if main and trainer.state.step >= t.steps and cfg.eval.after != "none":
        del trainer
        evaluate_after_training(cfg, run_dir, quiet)
    return run_dir


def evaluate_after_training(cfg: Recipe, run_dir: Path, quiet: bool = False) -> dict:
    """The recipe's [eval] step: a report (JSON, markdown table, grid) in RUN/eval."""
    from byg_cli.eval.shapes_eval import evaluate_base, evaluate_edits

    e = cfg.eval
    if e.after == "shapes":
        from byg_cli.models.registry import load_model_folder

        summary = evaluate_base(load_model_folder(run_dir / "model"), run_dir / "eval", count=e.count, steps=e.steps,
                                image_size=cfg.data.resolution, quiet=quiet)
        report = run_dir / "eval" / "shapes_t2i.md"
    else:
        from byg_cli.edit import Editor

        summary = evaluate_edits(Editor.from_run(run_dir), run_dir / "eval", per_type=e.per_type, steps=e.steps,
                                 edit_types=cfg.data.edit_types, image_size=cfg.data.resolution, quiet=quiet)
        report = run_dir / "eval" / "shapes_edit.md"
    if not quiet:
        print(report.read_text())
    return summary
