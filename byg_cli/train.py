"""The training loop. It knows nothing of any model family or of the method's maths: it loads a backbone,
builds the objective from the recipe, and runs optimisation with checkpoints, logs and sample grids."""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable, Optional

import torch

from byg_cli import checkpoint as ckpt
from byg_cli.data.images import to_pil
from byg_cli.distributed import full, like, optimizer_state_full, shard_optimizer_state
from byg_cli.data.sources import build_source
from byg_cli.data.step_batches import BatchFeed, StepBatches
from byg_cli.engine.ema import ema_update
from byg_cli.engine.objectives import OBJECTIVES, BygObjective, build_objective
from byg_cli.engine.schedule import TimestepSampler, lr_factor
from byg_cli.errors import BygError
from byg_cli.interrupts import StopRequest
from byg_cli.model_create import create_if_missing
from byg_cli.models.registry import family, load_backbone
from byg_cli.recipe import Recipe, write_recipe
from byg_cli.run_folder import RunLock, trim_loss_log
from byg_cli.sampling import edit_latents, generate
from byg_cli.visual import save_grid


@dataclass
class TrainState:
    step: int = 0


def build_objective_from(cfg: Recipe, model=None, prior=None):
    """The recipe's objective. `prior` (byg only) replaces the frozen base's prior velocities (an experiment's
    injection point, see BygObjective)."""
    o = cfg.objective
    # A backbone may own only part of the time axis (a Wan2.2 A14B run that trains one expert).
    window = model.train_time_range() if model is not None else None
    timesteps = TimestepSampler(o.timesteps.kind, o.timesteps.mean, o.timesteps.std, o.timesteps.shift,
                                window=window)
    if o.name == "byg":
        return BygObjective(timesteps, o.engine_config(), prior=prior)
    if prior is not None:
        raise BygError(f"a prior replaces ByG's prior velocities: objective.name = '{o.name}' has none")
    if o.name == "supervised":
        return build_objective(o.name, timesteps, copy_warmup_steps=o.copy_warmup_steps)
    posterior = None
    if o.target == "posterior":
        from byg_cli.data.shapes_posterior import ShapesPosterior

        if model is not None and not model.exact_codec:
            raise BygError("objective.target = 'posterior' needs a model with the exact pixel codec "
                           "(model.create.pixel_patch > 0): a VAE's latent noise is not pixel noise")
        posterior = ShapesPosterior(cfg.data.resolution)
    return build_objective(o.name, timesteps, weighting=o.loss_weighting, posterior=posterior)


def check_frame_size(cfg: Recipe, multiple: int) -> None:
    """Image / frame sides the model can tokenise, refused in one line otherwise."""
    d = cfg.data
    sides = (("bucket_step", d.bucket_step),) if d.buckets else (("resolution", d.resolution),)
    for key, value in (*sides, ("height", d.height), ("width", d.width)):
        if value is not None and value % multiple:
            low = value - value % multiple
            raise BygError(f"data.{key} = {value}: must be a multiple of {multiple} for this model (its codec and "
                           f"token size), e.g. {max(low, multiple)} or {low + multiple}")


def fingerprint(tensors: list[torch.Tensor]) -> str:
    """A hash of the exact bytes of some tensors (to check that every process holds the same weights)."""
    h = hashlib.sha256()
    for x in tensors:
        h.update(x.detach().float().contiguous().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


def untrained_beside_trained(ema: dict[str, torch.Tensor], trained: dict[str, torch.Tensor]) -> bool:
    """An "ema" LoRA still as created (every lora_B zero) beside a trained edit LoRA: what checkpoints of runs
    without G_EMA held before they stopped writing one. It was never a teacher."""
    def has_b(sd: dict[str, torch.Tensor]) -> bool:
        return any(bool(v.any()) for k, v in sd.items() if "lora_B" in k)

    return not has_b(ema) and has_b(trained)


class Trainer:
    def __init__(self, cfg: Recipe, run_dir: Path, prior=None):
        from accelerate import Accelerator, DistributedType
        from accelerate.utils import DistributedDataParallelKwargs

        self.cfg, self.run_dir = cfg, Path(run_dir)
        t = cfg.train
        if t.threads:
            torch.set_num_threads(t.threads)
        # Buffers (rotary tables) are identical everywhere: no per-forward broadcast. Every trainable parameter
        # gets a gradient in every step, so DDP needs no unused-parameter search.
        ddp = DistributedDataParallelKwargs(broadcast_buffers=False, find_unused_parameters=False)
        self.accelerator = Accelerator(mixed_precision=t.mixed_precision, kwargs_handlers=[ddp])
        self.rank, self.world = self.accelerator.process_index, self.accelerator.num_processes
        kind = self.accelerator.distributed_type
        if kind == DistributedType.DEEPSPEED:
            raise BygError("accelerate config: DeepSpeed is not wired into byg train; use DDP "
                           "(recipes/accelerate/ddp_8gpu.yaml) or FSDP (recipes/accelerate/fsdp_8gpu.yaml)")
        # What the objective trains: the edit LoRA ("lora": the run saves and exports it) or every weight of the
        # base ("full": the run saves a base model folder, with an EMA of the weights).
        self.trains = OBJECTIVES[cfg.objective.name].trains
        self.full_weights = self.trains == "full"
        mode = t.sharding if t.sharding != "auto" else ("fsdp" if kind == DistributedType.FSDP else "ddp")
        self.fsdp = self.world > 1 and mode == "fsdp"
        if self.fsdp and self.full_weights:
            raise BygError(f"train.sharding = 'fsdp' serves LoRA objectives (byg, supervised); "
                           f"{cfg.objective.name} runs with DDP")
        if self.fsdp and not family(cfg.model.family).capabilities.fsdp:
            raise BygError(f"train.sharding = 'fsdp': not available for the {cfg.model.family} backbone; use ddp")
        create_if_missing(cfg)
        self.model = load_backbone(cfg.model, adapters=not self.full_weights)
        check_frame_size(cfg, self.model.pixel_multiple)
        if self.fsdp:  # FSDP2 in place: base weights and both LoRAs sharded, gathered block by block in each call
            from torch.distributed.fsdp import fully_shard

            self.model.shard(fully_shard, self.accelerator.device)
        else:
            self.model.to(self.accelerator.device)
        if t.compile:
            self.model.compile_denoiser()
        self.trainable = self._select_trainable()
        self._outside_ddp: list[torch.nn.Parameter] = []
        self.ddp_module: Optional[torch.nn.Module] = None
        if self.world > 1 and not self.fsdp and self.model.capabilities.ddp_wrapper:
            # DDP over the denoiser: the edit LoRA (or, for t2i, every denoiser weight) is all-reduced in
            # backward. The EMA adapter never requires grad, so DDP never tracks it.
            self.ddp_module = self.model.wrap_denoiser(self.accelerator.prepare_model)
            in_ddp = {id(p) for p in self.ddp_module.parameters()}
            self._outside_ddp = [p for _, p in self.trainable if id(p) not in in_ddp]
        elif self.world > 1 and not self.fsdp:  # a backbone that runs its modules itself: average every gradient
            self._outside_ddp = [p for _, p in self.trainable]
        self.optimizer = torch.optim.AdamW([p for _, p in self.trainable], lr=t.lr, betas=tuple(t.betas),
                                           weight_decay=t.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, partial(lr_factor, warmup=t.lr_warmup_steps, decay=t.lr_decay_steps, steps=t.steps))
        self.objective = build_objective_from(cfg, self.model, prior)
        self.source = build_source(cfg.data, cfg.run.seed, t.batch_size)
        self.feed = BatchFeed(StepBatches(self.source, t.batch_size, self.world, self.rank), t.data_workers,
                              end=t.steps * t.grad_accum)
        # The same stream on every process: draws are made for the global batch (byg_cli.engine.draws), so the
        # run does not depend on how the batch is split, and a checkpoint resumes on any number of processes.
        self.generator = torch.Generator().manual_seed(cfg.run.seed * 1000)
        self.use_ema = cfg.objective.keeps_ema_adapter()  # the EMA LoRA follows the edit LoRA
        self.state = TrainState()
        self.shadow: Optional[list[torch.Tensor]] = None
        if self.full_weights and cfg.ema.full_weights:
            self.shadow = [p.detach().clone() for _, p in self.trainable]

    # ------------------------------------------------------------------------------------------- parameters
    def _select_trainable(self) -> list[tuple[str, torch.nn.Parameter]]:
        return self.model.trainable_parameters(self.trains, text_encoders=self.cfg.model.train_text_encoder)

    def trainable_state(self) -> dict[str, torch.Tensor]:
        return {n: full(p.detach()) for n, p in self.trainable}

    def load_trainable_state(self, state: dict[str, torch.Tensor]) -> None:
        with torch.no_grad():
            for n, p in self.trainable:
                if n not in state:
                    raise BygError(f"checkpoint lacks trainable tensor {n}")
                p.copy_(like(p, state[n]))

    def agree(self, flag: bool) -> bool:
        """The main process's `flag` on every process (so that all stop at the same step)."""
        if self.world == 1:
            return flag
        from accelerate.utils import broadcast

        return bool(broadcast(torch.tensor([float(flag)], device=self.accelerator.device), from_process=0).item())

    # ------------------------------------------------------------------------------------------- data
    def batch(self, step: int, micro: int) -> dict:
        """This process's batch for (step, micro): the same samples whether made here or by data workers."""
        return self.feed(step * self.cfg.train.grad_accum + micro)

    def prepare_cache(self, progress=None) -> Optional[dict]:
        """Fill the encoder cache (cfg.cache) and switch the data to cached latents and text embeddings; the
        VAE and text encoders then leave the accelerator. Returns the counts of new and total entries."""
        from byg_cli.data.cached import fill_cache

        from byg_cli.data.dataset import EditDataset

        c = self.cfg.cache
        dataset = self.source.dataset
        if not isinstance(dataset, EditDataset) or self.full_weights:
            raise BygError(f"cache.enabled: the encoder cache serves image edit records (data.kind = 'records'), "
                           f"not '{self.cfg.data.kind}' with objective '{self.cfg.objective.name}'")
        if not self.model.capabilities.cache:
            raise BygError(f"cache.enabled: not available for the {self.cfg.model.family} backbone")
        cached, counts = fill_cache(dataset, self.model, c.dir, batch_size=c.batch_size, rank=self.rank,
                                    world=self.world, barrier=self.accelerator.wait_for_everyone,
                                    extra_prompts=tuple(self.cfg.sample.prompts), progress=progress)
        self.source.dataset = cached
        if c.offload_encoders:
            self.model.offload_encoders("cpu")
        return counts

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
        """Every process holds the whole (unsharded) LoRA and optimizer state; the main process writes them, with
        each process's weight fingerprint, so a checkpoint resumes on any number of processes."""
        from accelerate.utils import gather_object

        tensors = {"trainable": self.trainable_state()}
        if self.use_ema:  # only a G_EMA that followed the edit LoRA: one a run never updated would pass for a teacher
            tensors["ema"] = self.model.lora_state_dict("ema")
        if self.shadow is not None:
            tensors["ema_full"] = {n: s for (n, _), s in zip(self.trainable, self.shadow)}
        mine = fingerprint([v for sd in tensors.values() for v in sd.values()])
        prints = gather_object([mine]) if self.world > 1 else [mine]
        optimizer = optimizer_state_full(self.optimizer) if self.fsdp else self.optimizer
        path = ckpt.checkpoint_dir(self.run_dir) / f"{ckpt.PREFIX}{self.state.step:07d}"
        if self.accelerator.is_main_process:
            path = ckpt.save_checkpoint(self.run_dir, self.state.step, tensors, optimizer, self.scheduler,
                                        {"rng": ckpt.rng_state(self.generator), "processes": self.world,
                                         "sharding": "fsdp" if self.fsdp else ("ddp" if self.world > 1 else "none"),
                                         "rank_fingerprints": prints}, self.cfg.train.keep_checkpoints)
        self.accelerator.wait_for_everyone()
        return path

    def expected_checkpoint_files(self) -> tuple[str, ...]:
        """The tensor files a checkpoint of this run must hold besides `trainable`, the optimizer state and what its
        state.json lists. Not "ema": a ByG run may start from a checkpoint of a run that kept none (a paired
        editor), and `resume` then starts G_EMA at the edit weights."""
        return ("ema_full",) if self.shadow is not None else ()

    def resume(self) -> None:
        """Continue from the newest checkpoint that loads; newer damaged ones (a kill mid-write, a truncated or
        deleted file) are skipped with one line saying so."""
        expected = ("trainable", *self.expected_checkpoint_files())
        latest, skipped = ckpt.newest_loadable(self.run_dir, expected)
        if self.accelerator.is_main_process:
            ckpt.warn_skipped(skipped, latest, "resuming from")
        if latest is None:
            raise BygError(f"--resume: no loadable checkpoint in {self.run_dir / 'checkpoints'}")
        trained = ckpt.load_tensors(latest, "trainable")
        self.load_trainable_state(trained)
        ema = ckpt.load_tensors(latest, "ema")
        frozen = self.cfg.ema.decay >= 1.0  # a teacher meant to stay as created: its untrained file is the teacher
        if self.use_ema and ema is not None and (frozen or not untrained_beside_trained(ema, trained)):
            self.model.load_lora_state_dict("ema", ema)
        elif self.use_ema:  # e.g. ByG from a supervised editor: the teacher starts as the editor, not as the base
            ema_update(self.model.lora_parameters("ema"), self.model.lora_parameters("edit"), 0.0)
            if self.accelerator.is_main_process:
                print(f"{latest.name} holds no G_EMA (its run kept none): G_EMA starts as its edit weights",
                      file=sys.stderr)
        ema_full = ckpt.load_tensors(latest, "ema_full")
        if ema_full is not None and self.shadow is not None:
            self.shadow = [ema_full[n].clone() for n, _ in self.trainable]
        ckpt.load_optimizer(latest, self.optimizer, self.scheduler)
        if self.fsdp:
            shard_optimizer_state(self.optimizer)
        state = ckpt.load_state(latest)
        ckpt.restore_rng(state["rng"], self.generator)
        self.state.step = int(state["step"])
        if self.accelerator.is_main_process:
            trim_loss_log(self.run_dir, self.state.step)

    @contextlib.contextmanager
    def codec_on_device(self):
        """The VAE back on the accelerator while sample grids are drawn, when caching moved it to the CPU."""
        codec = self.model.codec
        home = next((p.device for p in codec.parameters()), None)
        if home is None or home == self.accelerator.device:
            yield
            return
        codec.to(self.accelerator.device)
        try:
            yield
        finally:
            codec.to(home)

    # ------------------------------------------------------------------------------------------- samples
    @torch.no_grad()
    def sample_grid(self) -> Optional[Path]:
        """RUN/samples/step-N.png: the base's samples while it is trained in full, else edits of data items."""
        out = self.run_dir / "samples" / f"step-{self.state.step:07d}.png"
        return self._generation_grid(out) if self.full_weights else self._edit_grid(out)

    def _generation_grid(self, out: Path) -> Path:
        s = self.cfg.sample
        prompts = s.prompts or [self.source.item(i).get("caption") or self.source.item(i)["src_caption"]
                                for i in range(s.count)]
        shape = self.model.encode(self.source.item(0)["pixels"][None]).shape[1:]
        images = generate(self.model, prompts, tuple(shape), s.steps, seed=0)
        if images.dim() == 5:  # videos: one row of frames per prompt
            rows = [[to_pil(v[:, k]) for k in range(v.shape[1])] for v in images]
            return save_grid(out, rows, scale=4 if images.shape[-1] <= 64 else 1)
        rows = [[to_pil(img)] for img in images]
        return save_grid(out, rows, scale=4 if images.shape[-1] <= 64 else 1, captions=prompts)

    def _edit_grid(self, out: Path) -> Optional[Path]:
        s = self.cfg.sample
        items = self.source.batch_items(0)
        items = items[:s.count] if items is not None else [self.source.item(i) for i in range(s.count)]
        inf = self.cfg.inference
        with self.codec_on_device():
            if "latents" in items[0]:  # cached data: sources are latents
                source = torch.stack([it["latents"] for it in items]).to(self.model.device)
                pixels = self.model.decode(source)
            else:
                pixels = torch.stack([it["pixels"] for it in items])
                source = self.model.encode(pixels)
            edited = self.model.decode(edit_latents(self.model, source, [it["instruction"] for it in items], s.steps,
                                                    seed=0, sampler=inf.sampler, flow_shift=inf.flow_shift))
        if not self.accelerator.is_main_process:  # FSDP: every process samples (the calls are collective)
            return None
        if pixels.dim() == 5:  # videos (B, 3, F, H, W): first, middle and last frame of source and edit
            f = pixels.shape[2]
            picks = sorted({0, f // 2, f - 1})
            rows = [[to_pil(v[:, k]) for k in picks] + [to_pil(e[:, k]) for k in picks]
                    for v, e in zip(pixels, edited)]
            labels = [f"source {k}" for k in picks] + [f"edited {k}" for k in picks]
            return save_grid(out, rows, labels, scale=4 if pixels.shape[-1] <= 64 else 1)
        rows = [[to_pil(a), to_pil(b)] for a, b in zip(pixels, edited)]
        return save_grid(out, rows, ["source", "edited"], scale=4 if pixels.shape[-1] <= 64 else 1,
                         captions=[it["instruction"] for it in items])

    # ------------------------------------------------------------------------------------------- loop
    def step(self) -> dict[str, float]:
        t = self.cfg.train
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        logs_sum: dict[str, float] = {}
        for micro in range(t.grad_accum):
            batch = self.batch(self.state.step, micro)
            last = micro == t.grad_accum - 1
            sync = (self.accelerator.no_sync(self.ddp_module) if not last and self.ddp_module is not None
                    else contextlib.nullcontext())  # DDP: all-reduce once, after the last micro-batch
            with sync:
                with self.accelerator.autocast():
                    loss, logs = self.objective(batch, self.model, self.state.step, self.generator)
                if not self.full_weights:
                    self.model.set_adapter("edit")
                self.accelerator.backward(loss / t.grad_accum)
            for k, v in logs.items():
                logs_sum[k] = logs_sum.get(k, 0.0) + v / t.grad_accum
        params = [p for _, p in self.trainable]
        for p in self._outside_ddp:  # e.g. t2i text encoders: averaged by hand
            if p.grad is not None:
                p.grad.copy_(self.accelerator.reduce(p.grad, "mean"))
        if t.max_grad_norm > 0:
            logs_sum["grad_norm"] = float(full(torch.nn.utils.clip_grad_norm_(params, t.max_grad_norm)))
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


def check_run_dir(run_dir: Path, resume: bool) -> None:
    """Refuse, before anything is written, a run folder that cannot be trained into."""
    if str(run_dir) in ("", "."):
        raise BygError("run.dir: empty; name a folder for the run (e.g. runs/my-run)")
    for parent in [run_dir, *run_dir.parents]:
        if parent.exists() and not parent.is_dir():
            raise BygError(f"run.dir {run_dir}: {parent} is a file, not a folder")
        if parent.exists():
            break
    if resume and not ckpt.list_checkpoints(run_dir):
        raise BygError(f"--resume: no checkpoint in {run_dir / 'checkpoints'}")
    if not resume and ckpt.latest_checkpoint(run_dir) is not None:
        raise BygError(f"{run_dir} already holds checkpoints: pass --resume to continue it, or choose another "
                       f"--run-dir")


def prepare_run_dir(cfg: Recipe, run_dir: Path) -> None:
    """Under the run's lock, in the folder train() has checked and made: write the resolved recipe."""
    if not os.access(run_dir, os.W_OK):
        raise BygError(f"run.dir {run_dir}: not writable")
    # The run's own copy names its folders absolutely, so `byg edit --run` works from anywhere.
    resolved = cfg.model_copy(deep=True)
    resolved.run.dir = run_dir.resolve()
    resolved.model.path = resolved.model.path.resolve()
    if resolved.data.path is not None:
        resolved.data.path = resolved.data.path.resolve()
    write_recipe(resolved, run_dir / "recipe.toml")


def fill_cache_with_progress(trainer: Trainer, quiet: bool) -> dict:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    main = trainer.accelerator.is_main_process
    with Progress(TextColumn("[bold]caching {task.description}"), BarColumn(), MofNCompleteColumn(),
                  disable=quiet or not main) as progress:
        tasks: dict[str, int] = {}

        def report(kind: str, done: int, total: int) -> None:
            if kind not in tasks:
                tasks[kind] = progress.add_task(kind, total=total)
            progress.update(tasks[kind], completed=done)

        counts = trainer.prepare_cache(report)
    if main and not quiet:
        print("cache: " + ", ".join(f"{k} {new} new of {total}" for k, (new, total) in counts.items())
              + f" in {Path(trainer.cfg.cache.dir).resolve()}")
    return counts


def train(cfg: Recipe, run_dir: Optional[Path] = None, resume: bool = False,
          stop_after: Optional[int] = None, quiet: bool = False, cache_only: bool = False,
          prior=None, on_finished: Optional[Callable[[Path], None]] = None) -> Path:
    """Train per the recipe into run_dir (default cfg.run.dir). Returns the run folder. With `cache_only`, only
    fill the encoder cache (cfg.cache) and stop; with cfg.cache.enabled, it is filled before training.
    `on_finished(run_dir)` runs once the run has reached its end (train.steps or train.max_minutes) and written
    its model or LoRA, with the trainer's memory freed (the recipe's [eval] step: byg_cli.pipeline); `prior`:
    see build_objective_from.

    One `byg train` works in a folder at a time (a lock); Ctrl-C or SIGTERM ends the step under way, saves a
    checkpoint and stops, so `--resume` continues exactly as if the run had not been interrupted."""
    run_dir = Path(run_dir if run_dir is not None else cfg.run.dir)
    if cache_only:
        trainer = Trainer(cfg, run_dir)
        fill_cache_with_progress(trainer, quiet)
        return run_dir
    check_run_dir(run_dir, resume)
    if int(os.environ.get("RANK", "0")):  # other processes of a multi-process run: the main one holds the lock
        return _train_in(cfg, run_dir, resume, stop_after, quiet, prior, on_finished)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise BygError(f"run.dir {run_dir}: cannot create it ({err.strerror})") from None
    with RunLock(run_dir):
        prepare_run_dir(cfg, run_dir)
        ckpt.remove_temporary(run_dir)
        if not resume:  # a fresh start: forget what a run killed before its first checkpoint logged
            trim_loss_log(run_dir, 0)
        return _train_in(cfg, run_dir, resume, stop_after, quiet, prior, on_finished)


def _train_in(cfg: Recipe, run_dir: Path, resume: bool, stop_after: Optional[int], quiet: bool, prior=None,
              on_finished: Optional[Callable[[Path], None]] = None) -> Path:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from torch.utils.tensorboard import SummaryWriter

    torch.manual_seed(cfg.run.seed)
    trainer = Trainer(cfg, run_dir, prior)
    if cfg.cache.enabled:
        fill_cache_with_progress(trainer, quiet)
    if resume:
        trainer.resume()
    t = cfg.train
    end = t.steps if stop_after is None else min(t.steps, trainer.state.step + stop_after)
    main = trainer.accelerator.is_main_process
    writer = SummaryWriter(str(run_dir / "logs")) if main else None
    loss_log = (run_dir / "losses.jsonl").open("a", encoding="utf-8") if main else None
    columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("{task.fields[losses]}")]
    started = time.time()
    deadline = None if t.max_minutes is None else started + 60 * t.max_minutes
    out_of_time = stopped = False
    saved_at = trainer.state.step if resume else -1
    try:
        with StopRequest() as stop, Progress(*columns, disable=quiet or not main, transient=False) as progress:
            task = progress.add_task(f"{cfg.objective.name}", total=t.steps, completed=trainer.state.step, losses="")
            while trainer.state.step < end and not out_of_time and not stopped:
                logs = trainer.step()
                step = trainer.state.step
                if main and step % t.log_every == 0:
                    for k, v in logs.items():
                        writer.add_scalar(f"train/{k}", v, step)
                    loss_log.write(json.dumps({"step": step, **logs}) + "\n")
                    loss_log.flush()
                shown = " ".join(f"{k}={v:.3g}" for k, v in logs.items() if k not in ("lr", "identity_step"))
                progress.update(task, completed=step, losses=shown)
                out_of_time = deadline is not None and trainer.agree(time.time() > deadline)
                stopped = trainer.agree(stop.requested)
                if step % t.checkpoint_every == 0 or step == end or out_of_time or stopped:
                    trainer.save()
                    saved_at = step
                if stopped:
                    break
                if (main or trainer.fsdp) and t.sample_every and (step % t.sample_every == 0 or step == t.steps
                                                                  or out_of_time):
                    with trainer.ema_weights():
                        trainer.sample_grid()
            if stop.requested and not stopped and trainer.state.step > saved_at:  # the signal came after the last step
                trainer.save()
                saved_at, stopped = trainer.state.step, True
            stopped = stopped or stop.requested
            signal_name = stop.signal_name
    except KeyboardInterrupt:  # a second Ctrl-C: the step under way is abandoned, nothing more is written
        last = ckpt.latest_checkpoint(run_dir)
        raise BygError(f"interrupted twice during step {trainer.state.step + 1}: not saved; --resume continues from "
                       + (f"{last.name}" if last else "the start (no checkpoint yet)")) from None
    finally:
        trainer.feed.close()
        if writer is not None:
            writer.close()
            loss_log.close()
    if stopped:
        raise BygError(f"{signal_name or 'interrupted'} at step {trainer.state.step}; checkpoint saved in "
                       f"{run_dir}/checkpoints (continue with --resume)")
    finished = trainer.state.step >= t.steps or out_of_time  # train.max_minutes ends a run like its last step
    if main and out_of_time and not quiet:
        print(f"train.max_minutes ({t.max_minutes:g}) reached at step {trainer.state.step}: the run ends here")
    if main and finished and trainer.full_weights:
        with trainer.ema_weights():
            trainer.model.save_base(run_dir / "model")
    from byg_cli.export import export_lora, exportable

    if main and finished and cfg.export.at_end and exportable(cfg):
        for path in export_lora(cfg, run_dir):
            if not quiet:
                print(f"LoRA: {path}")
    if main and not quiet:
        print(f"{trainer.state.step} steps in {time.time() - started:.0f}s; run folder: {run_dir}")
    # Tear a multi-process group down while the interpreter is whole: left to exit, gloo's worker threads can
    # abort a rank ("terminate called without an active exception"). One process: nothing to do.
    trainer.accelerator.end_training()
    if main and finished and on_finished is not None:
        del trainer
        on_finished(run_dir)
    return run_dir
