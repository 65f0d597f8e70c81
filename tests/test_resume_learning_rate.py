"""`--resume` restores the optimizer's moments and the schedule's position, but the learning rate, betas and weight
decay are the recipe's: a resume with a new `train.lr` trains at it (it used to keep the saved one)."""

from functools import partial

import torch

from byg_cli import checkpoint as ckpt
from byg_cli.engine.schedule import lr_factor


def optimizer_and_schedule(lr: float, weight_decay: float = 0.0):
    weight = torch.nn.Parameter(torch.ones(3))
    optimizer = torch.optim.AdamW([weight], lr=lr, weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, partial(lr_factor, warmup=4, decay=0, steps=100))
    return weight, optimizer, schedule


def trained_checkpoint(run_dir, steps: int = 6):
    weight, optimizer, schedule = optimizer_and_schedule(2e-3)
    for _ in range(steps):
        weight.sum().backward()
        optimizer.step()
        schedule.step()
        optimizer.zero_grad()
    return ckpt.save_checkpoint(run_dir, steps, {"trainable": {"w": weight.detach()}}, optimizer, schedule, {},
                                keep=1), optimizer


def test_a_resume_with_the_same_recipe_continues_exactly(tmp_path):
    saved_at, trained = trained_checkpoint(tmp_path)
    _, optimizer, schedule = optimizer_and_schedule(2e-3)
    ckpt.load_optimizer(saved_at, optimizer, schedule)
    assert optimizer.param_groups[0]["lr"] == trained.param_groups[0]["lr"] == 2e-3
    assert schedule.last_epoch == 6
    assert torch.equal(optimizer.state_dict()["state"][0]["exp_avg"], trained.state_dict()["state"][0]["exp_avg"])


def test_a_resume_with_a_new_lr_and_weight_decay_trains_at_them(tmp_path):
    saved_at, trained = trained_checkpoint(tmp_path)
    _, optimizer, schedule = optimizer_and_schedule(5e-4, weight_decay=0.01)
    ckpt.load_optimizer(saved_at, optimizer, schedule)
    group = optimizer.param_groups[0]
    assert group["lr"] == 5e-4 and group["initial_lr"] == 5e-4 and group["weight_decay"] == 0.01
    assert torch.equal(optimizer.state_dict()["state"][0]["exp_avg"], trained.state_dict()["state"][0]["exp_avg"])
    schedule.step()
    assert optimizer.param_groups[0]["lr"] == 5e-4  # the schedule goes on from the new base rate


def test_a_resume_inside_the_warmup_keeps_its_place_in_the_schedule(tmp_path):
    saved_at, _ = trained_checkpoint(tmp_path, steps=2)
    _, optimizer, schedule = optimizer_and_schedule(1e-3)
    ckpt.load_optimizer(saved_at, optimizer, schedule)
    assert optimizer.param_groups[0]["lr"] == 1e-3 * lr_factor(2, warmup=4, decay=0, steps=100) < 1e-3
