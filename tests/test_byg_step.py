"""One `byg` step on a tiny random FLUX: routing, gradient paths, frozen parts, and the ablation switches."""

import pytest
import torch

from byg_cli.engine.objectives import ABLATIONS, BygConfig, BygObjective
from byg_cli.engine.schedule import TimestepSampler
from helpers.byg_step import batch, model, run_step  # noqa: F401  (fixtures)


def test_reverse_pass_sees_y0_and_cycle_gradient_reaches_the_lora_through_y_hat(model, batch):
    loss, logs, trace, calls = run_step(model, batch, batch_passes=False)
    reverse = [c for c in calls if c["adapter"] == "edit" and c["source"] is not None
               and c["source"] is not batch["pixels"] and torch.equal(c["y_t"], trace["x_t"])][0]
    assert torch.equal(reverse["source"], trace["y_0"])  # conditioned on the clean rollout end point
    assert not torch.allclose(trace["y_0"], trace["y_hat"])  # ... not on the one-step prediction
    trace["y_hat"].retain_grad()
    trace["cycle"].mean().backward()
    assert trace["y_hat"].grad is not None and trace["y_hat"].grad.abs().sum() > 0
    grads = [p.grad for p in model.lora_parameters("edit")]
    assert any(g is not None and g.abs().sum() > 0 for g in grads)


def test_rollout_uses_ema_without_grad_and_prior_uses_the_frozen_base(model, batch):
    _, _, trace, calls = run_step(model, batch, batch_passes=False)
    rollout = [c for c in calls if c["adapter"] == "ema"]
    assert len(rollout) == 4 and not any(c["requires_grad"] for c in rollout)  # 3 steps + t inserted
    prior = [c for c in calls if c["adapter"] is None]
    assert len(prior) == 4 and all(c["source"] is None and not c["requires_grad"] for c in prior)
    assert sum(c["adapter"] == "edit" and c["requires_grad"] for c in calls) == 3  # forward, reverse, identity


def test_batched_passes_give_the_same_losses(model, batch):
    _, a, _, calls_a = run_step(model, batch, batch_passes=False)
    _, b, _, calls_b = run_step(model, batch, batch_passes=True)
    assert a == pytest.approx(b, rel=1e-4, abs=1e-5)
    assert len(calls_b) == len(calls_a) - 4  # 4 prior calls -> 1, reverse + identity -> 1


def test_base_and_ema_get_no_gradient_and_t2i_output_survives_an_optimizer_step(model, batch):
    x = model.encode(batch["pixels"])
    t = torch.tensor([0.7, 0.4])
    cond = model.encode_text(list(batch["src_caption"]))
    with torch.no_grad():
        base_before = model.velocity(x, t, cond, source=None, adapter=None)
        edit_before = model.velocity(x, t, cond, source=x, adapter="edit")
    edit_params = model.lora_parameters("edit")
    optimizer = torch.optim.AdamW(edit_params, lr=1e-2)
    loss, _, _, _ = run_step(model, batch)
    model.set_adapter("edit")
    loss.backward()
    lora_ids = {id(p) for p in edit_params}
    for name, p in model.named_parameters():
        if id(p) not in lora_ids:
            assert p.grad is None, f"{name} received a gradient"
    assert all(p.grad is not None for p in edit_params)
    optimizer.step()
    with torch.no_grad():
        base_after = model.velocity(x, t, cond, source=None, adapter=None)
        edit_after = model.velocity(x, t, cond, source=x, adapter="edit")
    assert torch.equal(base_before, base_after)
    assert not torch.allclose(edit_before, edit_after)


def test_each_ablation_removes_exactly_its_term(model, batch):
    lam = {"lambda_prior": 0.7, "lambda_id": 0.2, "lambda_cycle": 1.3, "alpha": 0.5}
    full_loss, full, full_trace, full_calls = run_step(model, batch, **lam)
    prior = full["prior_fwd"] + full["prior_rev"]
    unchanged = ("cycle", "identity", "prior_fwd", "prior_rev")

    loss, logs, _, _ = run_step(model, batch, ablate=("no_cycle",), **lam)
    assert float(loss) == pytest.approx(float(full_loss) - 1.3 * full["cycle"], rel=1e-5)
    assert {k: logs[k] for k in unchanged} == pytest.approx({k: full[k] for k in unchanged}, rel=1e-6)

    loss, logs, _, calls = run_step(model, batch, ablate=("no_regularization",), **lam)
    assert float(loss) == pytest.approx(float(full_loss) - 0.7 * prior, rel=1e-5)
    assert logs["prior_fwd"] == logs["prior_rev"] == 0.0 and not any(c["adapter"] is None for c in calls)
    assert (logs["cycle"], logs["identity"]) == pytest.approx((full["cycle"], full["identity"]), rel=1e-6)

    loss, logs, _, _ = run_step(model, batch, ablate=("no_directional",), **lam)
    assert logs["dir_fwd"] == logs["dir_rev"] == 0.0
    assert (logs["mse_fwd"], logs["mse_rev"]) == pytest.approx((full["mse_fwd"], full["mse_rev"]), rel=1e-6)
    assert float(loss) == pytest.approx(float(full_loss) - 0.7 * (full["dir_fwd"] + full["dir_rev"]), rel=1e-5)

    loss, logs, trace, _ = run_step(model, batch, ablate=("no_routing",), **lam)
    assert torch.equal(trace["reverse_source"], trace["y_hat"])
    assert (logs["prior_fwd"], logs["identity"]) == pytest.approx((full["prior_fwd"], full["identity"]), rel=1e-6)
    assert logs["cycle"] != pytest.approx(full["cycle"], rel=1e-6)

    loss, logs, trace, calls = run_step(model, batch, ablate=("no_bootstrap",), **lam)
    assert not any(c["adapter"] == "ema" for c in calls) and torch.equal(trace["y_t"], trace["x_t"])
    assert logs["identity"] == pytest.approx(full["identity"], rel=1e-6)

    objective = BygObjective(TimestepSampler(), BygConfig(identity_warmup_steps=5, identity_prob=1.0))
    ablated = BygObjective(TimestepSampler(), BygConfig(identity_warmup_steps=5, identity_prob=1.0,
                                                        ablate=("no_random_identity",)))
    g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    assert [objective.is_identity_step(s, g1) for s in range(10)] == [True] * 10
    assert [ablated.is_identity_step(s, g2) for s in range(10)] == [True] * 5 + [False] * 5
    assert set(ABLATIONS) == {"no_routing", "no_cycle", "no_directional", "no_bootstrap", "no_regularization",
                              "no_random_identity"}


def test_prior_ramp_scales_only_the_prior_term(model, batch):
    """objective.prior_ramp_steps (experimental; 0 = Algorithm 1): step 10 of a 40-step ramp after an 8-step
    warm-up weighs the prior by 3/40 of lambda_prior; every loss term itself is unchanged."""
    lam = {"lambda_prior": 0.7, "lambda_id": 0.2, "lambda_cycle": 1.3, "alpha": 0.5, "identity_warmup_steps": 8}
    full_loss, full, _, _ = run_step(model, batch, **lam)
    loss, logs, _, _ = run_step(model, batch, prior_ramp_steps=40, **lam)
    prior = full["prior_fwd"] + full["prior_rev"]
    terms = ("cycle", "identity", "prior_fwd", "prior_rev")
    assert {k: logs[k] for k in terms} == pytest.approx({k: full[k] for k in terms}, rel=1e-6)
    assert float(loss) == pytest.approx(float(full_loss) - 0.7 * prior * (1 - 3 / 40), rel=1e-5)
    ramp = BygObjective(TimestepSampler(), BygConfig(lambda_prior=2.0, identity_warmup_steps=8, prior_ramp_steps=4))
    assert [ramp.prior_weight(s) for s in (8, 9, 11, 12, 100)] == [0.5, 1.0, 2.0, 2.0, 2.0]
    assert BygObjective(TimestepSampler(), BygConfig(lambda_prior=2.0)).prior_weight(0) == 2.0


def test_prior_band_drops_the_prior_of_exactly_the_samples_outside_it(model, batch):
    """objective.prior_t_min / prior_t_max (experimental; 0 / 1 = Algorithm 1): a sample whose t lies outside the
    band loses its prior terms and keeps its cycle and identity terms; every logged term itself is unchanged."""
    lam = {"lambda_prior": 0.7, "lambda_id": 0.2, "lambda_cycle": 1.3, "alpha": 0.5}
    full_loss, full, trace, _ = run_step(model, batch, **lam)
    t = trace["t"]
    assert len(set(t.tolist())) == len(t)  # distinct draws: a band can split the batch
    lo, hi = float(t.max()), 1.0  # the band keeps the latest draw only
    loss, logs, _, _ = run_step(model, batch, prior_t_min=lo, prior_t_max=hi, **lam)
    terms = ("cycle", "identity", "prior_fwd", "prior_rev")
    assert {k: logs[k] for k in terms} == pytest.approx({k: full[k] for k in terms}, rel=1e-6)
    outside = (t < lo) | (t > hi)
    assert 0 < int(outside.sum()) < len(t)
    dropped = 0.7 * float((trace["prior_fwd"] + trace["prior_rev"])[outside].sum()) / len(t)
    assert float(loss) == pytest.approx(float(full_loss) - dropped, rel=1e-5)
    with pytest.raises(ValueError, match="prior_t_min"):
        BygConfig(prior_t_min=0.8, prior_t_max=0.5)


def test_projection_direction_changes_only_the_directional_terms(model, batch):
    """objective.prior_direction = "projection" (experimental) swaps Eq. 2's cosine for the projected term, on the
    same velocities: the cycle, identity and MSE anchor terms are the cosine run's, and the loss sums the same way."""
    lam = {"lambda_prior": 0.7, "lambda_id": 0.2, "lambda_cycle": 1.3, "alpha": 0.5}
    _, cos, _, _ = run_step(model, batch, **lam)
    loss, proj, _, _ = run_step(model, batch, prior_direction="projection", **lam)
    same = ("cycle", "identity", "mse_fwd", "mse_rev")
    assert {k: proj[k] for k in same} == pytest.approx({k: cos[k] for k in same}, rel=1e-6)
    assert proj["dir_fwd"] != pytest.approx(cos["dir_fwd"], rel=1e-3)
    assert proj["prior_fwd"] == pytest.approx(proj["dir_fwd"] + 0.5 * proj["mse_fwd"], rel=1e-5)
    total = 1.3 * proj["cycle"] + 0.7 * (proj["prior_fwd"] + proj["prior_rev"]) + 0.2 * proj["identity"]
    assert float(loss) == pytest.approx(total, rel=1e-5)
    with pytest.raises(ValueError, match="prior_direction"):
        BygConfig(prior_direction="sine")


def test_supervised_warm_up_steps_are_byg_identity_steps(model, batch):
    """objective.copy_warmup_steps of the supervised baseline: its first steps are ByG's identity steps (the
    same loss for the same draws, no target needed), then paired steps, which need the target."""
    from byg_cli.engine.objectives import SupervisedObjective

    unpaired = {k: v for k, v in batch.items() if k not in ("target_pixels", "target_latents")}
    byg = BygObjective(TimestepSampler(), BygConfig(identity_warmup_steps=5))
    supervised = SupervisedObjective(TimestepSampler(), copy_warmup_steps=5)
    byg_loss, byg_logs = byg(unpaired, model, step=4, generator=torch.Generator().manual_seed(3))
    loss, logs = supervised(unpaired, model, step=4, generator=torch.Generator().manual_seed(3))
    assert logs["identity_step"] == byg_logs["identity_step"] == 1.0
    assert float(loss.detach()) == pytest.approx(float(byg_loss.detach()), rel=1e-6)
    with pytest.raises(KeyError, match="paired data"):
        supervised(unpaired, model, step=5, generator=torch.Generator().manual_seed(3))
