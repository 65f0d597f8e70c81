"""The memory-lean byg step (objective.checkpoint_passes): same losses and LoRA gradients as the plain step,
with the gradient passes recomputed in backward; and the set_adapter shortcut keeps the EMA frozen."""

import torch

from helpers.byg_step import batch, model, run_step  # noqa: F401  (fixtures)


def _loss_and_grads(model, batch, **cfg):
    for p in model.lora_parameters("edit"):
        p.grad = None
    loss, logs, _, calls = run_step(model, batch, **cfg)
    model.set_adapter("edit")
    loss.backward()
    return logs, [p.grad.clone() for p in model.lora_parameters("edit")], calls


def test_checkpointed_passes_give_the_same_losses_and_gradients(model, batch):  # noqa: F811
    logs_a, grads_a, _ = _loss_and_grads(model, batch)
    logs_b, grads_b, calls = _loss_and_grads(model, batch, checkpoint_passes=True)
    assert logs_a == logs_b or all(abs(logs_a[k] - logs_b[k]) <= 1e-5 + 1e-4 * abs(logs_a[k]) for k in logs_a)
    assert any(g.abs().sum() > 0 for g in grads_a)
    for a, b in zip(grads_a, grads_b):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    # forward, reverse and identity run as three separate gradient passes of batch B
    grad_calls = [c for c in calls if c["adapter"] == "edit" and c["requires_grad"]]
    assert len(grad_calls) == 3 and all(c["y_t"].shape[0] == 2 for c in grad_calls)


def test_ema_stays_frozen_across_adapter_switches(model, batch):  # noqa: F811
    _loss_and_grads(model, batch)
    model.set_adapter("ema")
    model.set_adapter("ema")
    assert not any(p.requires_grad for p in model.lora_parameters("ema"))
    model.set_adapter("edit")
    assert all(p.requires_grad for p in model.lora_parameters("edit"))
    assert not any(p.requires_grad for p in model.lora_parameters("ema"))


def test_checkpointed_passes_are_the_default_and_a_recipe_turns_them_off(tmp_path, tiny_flux, tiny_records):
    from conftest import write_recipe

    from byg_cli.recipe import load_recipe
    from byg_cli.train import build_objective_from

    default = load_recipe(write_recipe(tmp_path / "a.toml", tiny_flux, tiny_records, "byg"))
    fast = load_recipe(write_recipe(tmp_path / "b.toml", tiny_flux, tiny_records, "byg",
                                    **{"objective.checkpoint_passes": False}))
    assert build_objective_from(default).cfg.checkpoint_passes  # memory-lean by default
    assert not build_objective_from(fast).cfg.checkpoint_passes
