"""The training objectives behind one signature: objective(batch, model, step, generator) -> (loss, logs).

`model` is a backbone (see byg_cli.models.base.Backbone): it encodes pixels and text and gives velocities
v ~= eps - y for a noisy latent y_t at time t, optionally conditioned on a source latent and with the
"edit" adapter (G_edit), the "ema" adapter (G_EMA) or no adapter (the frozen G_t2i).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Optional

import torch

from byg_cli.engine.draws import draw_noise, draw_timesteps
from byg_cli.engine.losses import flow_loss, flow_weight, prior_loss
from byg_cli.engine.posterior import posterior_velocity
from byg_cli.engine.rollout import bootstrap
from byg_cli.engine.routing import ste_route
from byg_cli.engine.schedule import TimestepSampler, rollout_grid

ABLATIONS = ("no_routing", "no_cycle", "no_directional", "no_bootstrap", "no_regularization", "no_random_identity")


def _bcast(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return t.view(-1, *([1] * (like.dim() - 1))).to(like.dtype)


def noised(x: torch.Tensor, eps: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """x_t = (1 - t) x + t eps."""
    tt = _bcast(t, x)
    return (1.0 - tt) * x + tt * eps


def _latents(batch: dict, key: str, model) -> torch.Tensor:
    cached = batch.get(key.replace("pixels", "latents"))
    if cached is not None:
        return cached
    with torch.no_grad():
        return model.encode(batch[key])


def _captions(batch: dict, key: str) -> list[str]:
    value = batch.get(key)
    if value is None and key == "caption":
        value = batch.get("src_caption")
    if value is None:
        raise KeyError(f"batch has no {key!r}")
    return list(value)


def identity_step(model, batch: dict, x: torch.Tensor, x_t: torch.Tensor, eps: torch.Tensor, t: torch.Tensor):
    """An identity-only step, (loss, logs): the source as both input and condition, under the reverse instruction
    (an edit that is already fulfilled), must come back unchanged (L_id)."""
    cond_rev = model.encode_text(_captions(batch, "reverse_instruction"))
    loss = flow_loss(model.velocity(x_t, t, cond_rev, source=x, adapter="edit"), eps - x).mean()
    return loss, {"loss": float(loss.detach()), "identity": float(loss.detach()), "identity_step": 1.0}


def _mean_logs(**terms: torch.Tensor) -> dict[str, float]:
    return {k: float(v.detach().float().mean()) for k, v in terms.items()}


class T2IObjective:
    """Flow matching of the text-to-image model (used to pretrain the shapes world's base).

    `posterior`, when given, is the data's exact denoiser (pixels): posterior(x_t, t, attributes) = E[x | x_t]
    for the batch's "attributes". The regression target is then E[eps - y | y_t] instead of one sample's eps - y:
    the same minimiser, without the target's variance (byg_cli.engine.posterior). It needs the exact pixel codec
    (latents a rearrangement of pixels), so that pixel and latent noise are the same noise."""

    name = "t2i"
    trains = "full"  # every weight of the base (byg_cli.models.base.TRAINING_MODES); a run saves the base model

    def __init__(self, timesteps: TimestepSampler, weighting: str = "velocity", posterior=None):
        self.timesteps = timesteps
        self.weighting = weighting
        self.posterior = posterior

    def __call__(self, batch: dict, model, step: int, generator: torch.Generator):
        y = _latents(batch, "pixels", model)
        cond = model.encode_text(_captions(batch, "caption"))
        t = draw_timesteps(self.timesteps, batch, y.shape[0], generator).to(y.device)
        eps = draw_noise(tuple(y.shape), batch, generator).to(y)
        y_t = noised(y, eps, t)
        target = eps - y if self.posterior is None else self._posterior_target(batch, model, y, y_t, eps, t)
        v = model.velocity(y_t, t, cond, source=None, adapter=None)
        loss = (flow_weight(t, self.weighting).to(v) * flow_loss(v, target)).mean()
        return loss, {"loss": float(loss.detach()), "flow": float(loss.detach())}

    def _posterior_target(self, batch, model, y, y_t, eps, t):
        if batch.get("attributes") is None:
            raise KeyError("objective.target = 'posterior' needs the data's attributes: the batch has none")
        codec = model.codec
        with torch.no_grad():
            x_t = codec.decode(y_t.float())  # the exact pixel codec: no clamp, no rounding
            # on the CPU, where the posterior keeps its masks (a GPU run would otherwise meet them on another device)
            y_mean = codec.encode(self.posterior(x_t.cpu(), t.float().cpu(), batch["attributes"])).to(y)
        return posterior_velocity(y_t, y, y_mean, eps, t)


class SupervisedObjective:
    """Eq. 1 on paired data: noise the ground-truth target, condition on the source (the paired baseline).
    With `copy_warmup_steps`, the first steps are ByG's identity steps (L_id alone), so that a comparison with
    ByG can give both the same copy warm-up."""

    name = "supervised"
    trains = "lora"  # the edit LoRA; a run saves (and exports) it

    def __init__(self, timesteps: TimestepSampler, copy_warmup_steps: int = 0):
        self.timesteps = timesteps
        self.copy_warmup_steps = copy_warmup_steps

    def __call__(self, batch: dict, model, step: int, generator: torch.Generator):
        x = _latents(batch, "pixels", model)
        if step < self.copy_warmup_steps:
            t = draw_timesteps(self.timesteps, batch, x.shape[0], generator).to(x.device)
            eps = draw_noise(tuple(x.shape), batch, generator).to(x)
            return identity_step(model, batch, x, noised(x, eps, t), eps, t)
        if batch.get("target_pixels") is None and batch.get("target_latents") is None:
            raise KeyError("the supervised objective needs paired data: the batch has no 'target_pixels'")
        y = _latents(batch, "target_pixels", model)
        cond = model.encode_text(_captions(batch, "instruction"))
        t = draw_timesteps(self.timesteps, batch, y.shape[0], generator).to(y.device)
        eps = draw_noise(tuple(y.shape), batch, generator).to(y)
        v = model.velocity(noised(y, eps, t), t, cond, source=x, adapter="edit")
        loss = flow_loss(v, eps - y).mean()
        return loss, {"loss": float(loss.detach()), "flow": float(loss.detach())}


def _option(default, **constraints):
    """A BygConfig default with the bounds and description the recipe's [objective] section validates it by."""
    return field(default=default, metadata=constraints)


@dataclass
class BygConfig:
    """The method's settings. The recipe's [objective] section for name = "byg" is built from these fields
    (byg_cli.recipe), so each default and bound is declared here once."""

    rollout_steps: int = _option(10, ge=1)
    rollout_shift: Optional[float] = _option(
        None, gt=0, description="the rollout's grid: sigma_grid(rollout_steps, rollout_shift); unset: the "
                                "backbone's inference grid of rollout_steps steps at the sample's size (what "
                                "`byg edit` samples on)")
    lambda_prior: float = _option(1.0, ge=0)
    lambda_id: float = _option(0.2, ge=0)
    lambda_cycle: float = _option(1.0, ge=0)
    alpha: float = _option(0.1, ge=0, description="weight of the MSE anchor in the prior loss")
    identity_warmup_steps: int = _option(200, ge=0)
    identity_prob: float = _option(0.15, ge=0, le=1)
    # Experimental, off by default (Algorithm 1 weighs the prior by lambda_prior from the first ByG step).
    prior_ramp_steps: int = _option(0, ge=0, description="experimental: the prior's weight grows linearly from 0 "
                                                         "to lambda_prior over this many steps after the identity "
                                                         "warm-up (0: Algorithm 1, the full weight at once)")
    prior_t_min: float = _option(0.0, ge=0, le=1, description="experimental: the prior terms count only for samples "
                                                             "with t >= this (0: Algorithm 1, every t)")
    prior_t_max: float = _option(1.0, ge=0, le=1, description="experimental: the prior terms count only for samples "
                                                             "with t <= this (1: Algorithm 1, every t)")
    prior_direction: Literal["cosine", "projection"] = _option(
        "cosine", description="experimental: the prior's directional term; 'cosine': Eq. 2, 1 - cos(v - v_src, "
                              "v_tgt - v_src); 'projection': only the editor's move along the caption difference is "
                              "charged (Huber of 1 - c, c its length in units of the base's move)")
    rollout_adapter: Literal["ema", "edit"] = _option(
        "ema", description="the rollout's model: G_EMA ('ema') or the current weights under no-grad ('edit')")
    batch_passes: bool = _option(True, description="reverse + identity in one forward of twice the batch; the "
                                                   "prior queries in one call")
    # Recompute the forward and reverse passes' activations in backward (torch.utils.checkpoint), reverse and
    # identity as separate passes: the step then holds one gradient pass's activations at a time (a supervised
    # step's), at the cost of two more forwards (~1.1x the step time). On by default: at FLUX / Wan scale
    # activations, not the LoRA, decide whether a step fits; the CPU shapes recipes turn it off for speed.
    checkpoint_passes: bool = _option(True, description="recompute the forward and reverse passes in backward: "
                                                        "the step's peak memory is one pass's (about a supervised "
                                                        "step's), ~1.1x the time; false = faster, ~2x the "
                                                        "activations")
    ablate: tuple[str, ...] = field(default_factory=tuple, metadata={"description": "switch parts of the method "
                                                                                    "off: " + ", ".join(ABLATIONS)})

    def __post_init__(self):
        unknown = set(self.ablate) - set(ABLATIONS)
        if unknown:
            raise ValueError(f"unknown ablation(s) {sorted(unknown)}; valid: {', '.join(ABLATIONS)}")
        if self.prior_t_min > self.prior_t_max:
            raise ValueError(f"prior_t_min ({self.prior_t_min}) is above prior_t_max ({self.prior_t_max})")
        if self.rollout_adapter not in ("ema", "edit"):
            raise ValueError("rollout_adapter must be 'ema' or 'edit'")
        if self.prior_direction not in ("cosine", "projection"):
            raise ValueError("prior_direction must be 'cosine' or 'projection'")


class BygObjective:
    """Algorithm 1: bootstrap a noisy target with a rollout, learn the edit direction from the frozen base
    (prior loss, forward and reverse), preservation from the cycle loss routed straight-through from the clean
    rollout end point to the one-step prediction, and the identity loss; identity-only steps at the start
    and at random."""

    name = "byg"
    trains = "lora"

    def __init__(self, timesteps: TimestepSampler, config: BygConfig | None = None, prior=None):
        self.timesteps = timesteps
        self.cfg = config or BygConfig()
        self.trace: dict[str, Any] | None = None  # set to {} to record the step's intermediate tensors
        # The prior's velocities: prior(model, y_t, x_t, t, c_src, c_tgt, batch) -> (v_src, v_tgt, v_src_rev,
        # v_tgt_rev); default: the frozen base G_t2i (`base_prior`). Experiments swap in another (e.g. the shapes
        # world's exact posterior, examples/experiments/byg_with_exact_prior.py).
        self.prior = prior or self.base_prior

    def base_prior(self, model, y_t, x_t, t, c_src, c_tgt, batch):
        """The frozen T2I model's velocities: source and target captions at y~_t, then swapped at x_t."""
        if self.cfg.batch_passes:
            v_prior = model.velocity(torch.cat([y_t, y_t, x_t, x_t]), t.repeat(4),
                                     type(c_src).cat([c_src, c_tgt, c_tgt, c_src]), source=None, adapter=None)
            return v_prior.chunk(4)
        return (model.velocity(y_t, t, c_src, source=None, adapter=None),
                model.velocity(y_t, t, c_tgt, source=None, adapter=None),
                model.velocity(x_t, t, c_tgt, source=None, adapter=None),
                model.velocity(x_t, t, c_src, source=None, adapter=None))

    def off(self, switch: str) -> bool:
        return switch in self.cfg.ablate

    def is_identity_step(self, step: int, generator: torch.Generator) -> bool:
        draw = float(torch.rand((), generator=generator))  # always drawn, so ablations keep the same RNG stream
        if step < self.cfg.identity_warmup_steps:
            return True
        return not self.off("no_random_identity") and draw < self.cfg.identity_prob

    def prior_weight(self, step: int) -> float:
        """lambda_prior, ramped up from 0 over `prior_ramp_steps` after the warm-up when that is set."""
        ramp = self.cfg.prior_ramp_steps
        if ramp <= 0:
            return self.cfg.lambda_prior
        return self.cfg.lambda_prior * min(1.0, max(0, step - self.cfg.identity_warmup_steps + 1) / ramp)

    def prior_mask(self, t: torch.Tensor) -> torch.Tensor:
        """1 for the samples whose t lies in [prior_t_min, prior_t_max] (all of them under Algorithm 1), else 0."""
        return ((t >= self.cfg.prior_t_min) & (t <= self.cfg.prior_t_max)).to(t.dtype)

    def rollout_nodes(self, model, x: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The rollout's per-sample grid with t inserted (rollout_grid): the backbone's own inference grid of
        `rollout_steps` steps at the latents' size, so the clean end point is what `byg edit` would sample, unless
        the recipe fixes `rollout_shift`."""
        cfg = self.cfg
        if cfg.rollout_shift is None:
            return rollout_grid(model.sigmas(cfg.rollout_steps, tuple(x.shape[1:])), t)
        return rollout_grid(cfg.rollout_steps, t, cfg.rollout_shift)

    def gradient_pass(self, model, y, t, cond, source, recompute: bool = True) -> torch.Tensor:
        """G_edit's velocity with gradient; under `checkpoint_passes` (and `recompute`) its activations are
        recomputed in backward."""
        if not (self.cfg.checkpoint_passes and recompute):
            return model.velocity(y, t, cond, source=source, adapter="edit")
        from torch.utils.checkpoint import checkpoint

        return checkpoint(lambda y_, s_: model.velocity(y_, t, cond, source=s_, adapter="edit"), y, source,
                          use_reentrant=False)

    def __call__(self, batch: dict, model, step: int, generator: torch.Generator):
        cfg = self.cfg
        x = _latents(batch, "pixels", model)
        b = x.shape[0]
        t = draw_timesteps(self.timesteps, batch, b, generator).to(x.device)
        eps = draw_noise(tuple(x.shape), batch, generator).to(x)
        x_t = noised(x, eps, t)
        if self.is_identity_step(step, generator):
            return identity_step(model, batch, x, x_t, eps, t)

        instructions = _captions(batch, "instruction")
        reverse = _captions(batch, "reverse_instruction")
        src_caps, tgt_caps = _captions(batch, "src_caption"), _captions(batch, "tgt_caption")
        texts = model.encode_text(instructions + reverse)
        cond_fwd, cond_rev = texts.take(range(b)), texts.take(range(b, 2 * b))

        # 1. Pseudo-target: one no-grad rollout from noise under G_EMA, giving y~_t and y~_0 (Alg. 1, l. 5-11).
        if self.off("no_bootstrap"):
            y_t, y_0 = x_t, None
        else:
            grid, index = self.rollout_nodes(model, x, t)

            def v_rollout(y, s):
                return model.velocity(y, s, cond_fwd, source=x, adapter=cfg.rollout_adapter)

            y_t, y_0 = bootstrap(v_rollout, eps, grid, index)

        # 2. The frozen T2I model's velocities for the prior losses (forward at y~_t, reverse at x_t).
        regularize = not self.off("no_regularization")
        if regularize:
            with torch.no_grad():
                captions = model.encode_text(src_caps + tgt_caps)
                c_src, c_tgt = captions.take(range(b)), captions.take(range(b, 2 * b))
                v_src, v_tgt, v_src_rev, v_tgt_rev = self.prior(model, y_t, x_t, t, c_src, c_tgt, batch)

        # 3. Forward pass: the edit velocity and the one-step prediction y_hat = y~_t - t v_fwd.
        v_fwd = self.gradient_pass(model, y_t, t, cond_fwd, x)
        y_hat = y_t - _bcast(t, y_t) * v_fwd

        # 4. Reverse pass conditioned on the routed clean estimate, and the identity pass: they share x_t and c_bar.
        if self.off("no_routing") or y_0 is None:
            y_cond = y_hat
        else:
            y_cond = ste_route(y_0, y_hat)
        if cfg.batch_passes and not cfg.checkpoint_passes:
            v_both = model.velocity(torch.cat([x_t, x_t]), t.repeat(2), type(cond_rev).cat([cond_rev, cond_rev]),
                                    source=torch.cat([y_cond, x]), adapter="edit")
            v_rev, v_id = v_both.chunk(2)
        else:
            v_rev = self.gradient_pass(model, x_t, t, cond_rev, y_cond)
            # The identity pass runs last, so backward reaches its nodes first and frees its activations before it
            # recomputes the other two: keeping them costs no extra peak memory, recomputing them would cost time.
            v_id = self.gradient_pass(model, x_t, t, cond_rev, x, recompute=False)

        target = eps - x
        l_cycle = flow_loss(v_rev, target)
        l_id = flow_loss(v_id, target)
        zeros = torch.zeros_like(l_cycle)
        directional = not self.off("no_directional")
        if regularize:
            p_fwd, d_fwd, m_fwd = prior_loss(v_fwd, v_src, v_tgt, cfg.alpha, directional, cfg.prior_direction)
            p_rev, d_rev, m_rev = prior_loss(v_rev, v_src_rev, v_tgt_rev, cfg.alpha, directional,
                                             cfg.prior_direction)
        else:
            p_fwd = d_fwd = m_fwd = p_rev = d_rev = m_rev = zeros
        cycle_term = zeros if self.off("no_cycle") else cfg.lambda_cycle * l_cycle
        prior_weight = self.prior_weight(step) * self.prior_mask(t).to(p_fwd)
        per_sample = cycle_term + prior_weight * (p_fwd + p_rev) + cfg.lambda_id * l_id
        loss = per_sample.mean()

        if self.trace is not None:
            self.trace.update(t=t, eps=eps, x=x, x_t=x_t, y_t=y_t, y_0=y_0, v_fwd=v_fwd, y_hat=y_hat,
                              reverse_source=y_cond, v_rev=v_rev, v_id=v_id, cycle=l_cycle, identity=l_id,
                              prior_fwd=p_fwd, prior_rev=p_rev)
        logs = _mean_logs(loss=loss, cycle=l_cycle, identity=l_id, prior_fwd=p_fwd, prior_rev=p_rev,
                          dir_fwd=d_fwd, mse_fwd=m_fwd, dir_rev=d_rev, mse_rev=m_rev)
        logs["identity_step"] = 0.0
        return loss, logs


OBJECTIVES = {o.name: o for o in (BygObjective, SupervisedObjective, T2IObjective)}


def build_objective(name: str, timesteps: TimestepSampler, byg: BygConfig | None = None,
                    weighting: str = "velocity", posterior=None, copy_warmup_steps: int = 0):
    if name == "byg":
        return BygObjective(timesteps, byg)
    if name == "supervised":
        return SupervisedObjective(timesteps, copy_warmup_steps)
    if name == "t2i":
        return T2IObjective(timesteps, weighting, posterior)
    raise ValueError(f"unknown objective {name!r}; valid: {', '.join(OBJECTIVES)}")
