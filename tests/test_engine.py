"""Unit tests of the engine's maths on plain tensors."""

import pytest
import torch

from byg_cli.engine.ema import ema_update
from byg_cli.engine.losses import directional_loss, flow_loss, flow_weight, prior_loss, projected_directional_loss
from byg_cli.engine.rollout import bootstrap
from byg_cli.engine.routing import ste_route
from byg_cli.engine.schedule import TimestepSampler, lr_factor, rollout_grid, sigma_grid, time_shift


def test_ste_route_value_is_clean_and_gradient_reaches_only_the_one_step_tensor():
    clean = torch.randn(3, 4, requires_grad=True)
    one_step = torch.randn(3, 4, requires_grad=True)
    routed = ste_route(clean, one_step)
    assert torch.equal(routed, clean)
    weights = torch.randn(3, 4)
    (routed * weights).sum().backward()
    assert clean.grad is None
    assert torch.equal(one_step.grad, weights)


def test_rollout_grid_inserts_t_as_a_node():
    t = torch.tensor([0.37, 0.5, 1.0, 0.01])
    grid, index = rollout_grid(4, t)
    assert grid.shape == (4, 6)
    assert torch.all(grid[:, :-1] >= grid[:, 1:])
    assert torch.allclose(grid[:, 0], torch.ones(4)) and torch.all(grid[:, -1] == 0)
    assert torch.equal(grid[torch.arange(4), index], t)
    assert torch.allclose(sigma_grid(4), torch.tensor([1.0, 0.75, 0.5, 0.25, 0.0]))


def test_bootstrap_follows_the_closed_form_straight_flow():
    # The field of the straight path y_s = (1 - s) x0 + s eps is v(y, s) = (y - x0) / s; Euler integrates it exactly.
    x0, eps = torch.randn(3, 2, 4, 4), torch.randn(3, 2, 4, 4)
    t = torch.tensor([0.8, 0.3, 0.55])
    grid, index = rollout_grid(5, t)
    y_t, y_0 = bootstrap(lambda y, s: (y - x0) / s.view(-1, 1, 1, 1), eps, grid, index)
    expected_t = (1 - t.view(-1, 1, 1, 1)) * x0 + t.view(-1, 1, 1, 1) * eps
    assert torch.allclose(y_t, expected_t, atol=1e-5)
    assert torch.allclose(y_0, x0, atol=1e-5)


def test_bootstrap_matches_hand_integrated_euler_and_y_t_lies_on_the_trajectory_to_y_0():
    a = -1.3  # dy/ds = a * y; Euler multiplies by (1 + a * ds) at each step
    eps = torch.randn(2, 3)
    t = torch.tensor([0.6, 0.15])
    grid, index = rollout_grid(4, t)
    y_t, y_0 = bootstrap(lambda y, s: a * y, eps, grid, index)
    for b in range(2):
        nodes = grid[b].tolist()
        factor_t = factor_0 = 1.0
        for k in range(len(nodes) - 1):
            step = 1 + a * (nodes[k + 1] - nodes[k])
            factor_0 *= step
            if k < int(index[b]):
                factor_t *= step
        assert torch.allclose(y_t[b], eps[b] * factor_t, atol=1e-6)
        assert torch.allclose(y_0[b], eps[b] * factor_0, atol=1e-6)
        # continuing from y_t at t along the same grid reaches the same y_0
        y = y_t[b]
        for k in range(int(index[b]), len(nodes) - 1):
            y = y + (nodes[k + 1] - nodes[k]) * a * y
        assert torch.allclose(y, y_0[b], atol=1e-6)


def test_prior_loss_is_zero_for_an_aligned_prediction_equal_to_v_tgt():
    v_src, v_tgt = torch.randn(4, 3, 8, 8), torch.randn(4, 3, 8, 8)
    total, dirl, mse = prior_loss(v_tgt.clone(), v_src, v_tgt, alpha=0.5)
    assert torch.allclose(total, torch.zeros(4), atol=1e-6)
    assert torch.allclose(dirl, torch.zeros(4), atol=1e-6) and torch.equal(mse, torch.zeros(4))
    # per sample: one misaligned sample does not move the others
    v = v_tgt.clone()
    v[1] = v_src[1] - (v_tgt[1] - v_src[1])
    total, dirl, _ = prior_loss(v, v_src, v_tgt, alpha=0.5)
    assert torch.allclose(dirl[1], torch.tensor(2.0)) and dirl[[0, 2, 3]].abs().max() < 1e-6


def test_directional_term_is_invariant_to_scaling_the_edit_direction():
    v, v_src, v_tgt = torch.randn(3, 16), torch.randn(3, 16), torch.randn(3, 16)
    base = directional_loss(v, v_src, v_tgt)
    for k in (0.01, 3.0, 250.0):
        scaled = v_src + k * (v_tgt - v_src)
        assert torch.allclose(directional_loss(v, v_src, scaled), base, atol=1e-6)
    assert not torch.allclose(directional_loss(v, v_src, v_src - (v_tgt - v_src)), base)


def test_projected_directional_term_charges_only_the_move_along_the_caption_difference():
    """objective.prior_direction = "projection" (experimental): what the editor does orthogonally to d = v_tgt - v_src
    costs nothing (1 - cos charges it), its length along d is charged by Huber(1 - c), linear beyond 1 of c = 1."""
    g = torch.Generator().manual_seed(0)
    v_src, v_tgt = torch.randn(3, 16, generator=g), torch.randn(3, 16, generator=g)
    d = v_tgt - v_src
    side = torch.randn(3, 16, generator=g)
    side -= (side * d).sum(1, keepdim=True) / d.pow(2).sum(1, keepdim=True) * d  # orthogonal to d, per sample
    for c, want in ((1.0, 0.0), (0.0, 0.5), (0.5, 0.125), (4.0, 2.5), (-2.0, 2.5)):
        v = v_src + c * d + 5 * side
        got = projected_directional_loss(v, v_src, v_tgt)
        assert torch.allclose(got, torch.full((3,), want), atol=1e-5), (c, got)
    assert directional_loss(v_tgt + 5 * side, v_src, v_tgt).min() > 0.1  # the cosine charges the orthogonal move
    total, dirl, mse = prior_loss(v_tgt + side, v_src, v_tgt, alpha=0.5, direction="projection")
    assert torch.allclose(dirl, torch.zeros(3), atol=1e-5) and torch.allclose(total, 0.5 * mse)


def test_prior_loss_without_directional_keeps_only_the_weighted_mse():
    v, v_src, v_tgt = torch.randn(2, 5), torch.randn(2, 5), torch.randn(2, 5)
    total, dirl, mse = prior_loss(v, v_src, v_tgt, alpha=0.3, directional=False)
    assert torch.equal(dirl, torch.zeros(2)) and torch.allclose(total, 0.3 * mse)


def test_timestep_samplers_cover_their_ranges():
    g = torch.Generator().manual_seed(0)
    u = TimestepSampler("uniform")(20000, g)
    assert 0 < u.min() and u.max() <= 1 and abs(float(u.mean()) - 0.5) < 0.01
    ln = TimestepSampler("logit_normal", shift=12.0)(20000, g)
    plain = TimestepSampler("logit_normal")(20000, g)
    assert float(ln.median()) > 0.85 > float(plain.median())  # shift 12 biases toward noise
    assert torch.allclose(time_shift(torch.tensor([0.0, 0.5, 1.0]), 3.0), torch.tensor([0.0, 0.75, 1.0]))


def test_ema_update_moves_toward_the_parameters():
    ema, params = [torch.zeros(3)], [torch.ones(3)]
    ema_update(ema, params, decay=0.9)
    assert torch.allclose(ema[0], torch.full((3,), 0.1))


def test_lr_factor_warms_up_holds_then_decays_linearly_to_zero():
    f = [lr_factor(s, warmup=4, decay=10, steps=30) for s in range(30)]
    assert f[:4] == [0.25, 0.5, 0.75, 1.0]
    assert all(x == 1.0 for x in f[4:20])
    assert f[20:] == pytest.approx([(30 - s) / 10 for s in range(20, 30)])
    assert lr_factor(40, decay=10, steps=30) == 0.0  # past the end (a run extended without a new schedule)
    assert [lr_factor(s) for s in (0, 5, 1000)] == [1.0, 1.0, 1.0]


def test_sample_weighting_turns_the_velocity_error_into_the_clean_sample_error():
    g = torch.Generator().manual_seed(0)
    x, eps, v_hat = (torch.randn(4, 3, 8, 8, generator=g) for _ in range(3))
    t = torch.tensor([0.1, 0.4, 0.8, 1.0])
    y_t = (1 - t.view(-1, 1, 1, 1)) * x + t.view(-1, 1, 1, 1) * eps
    x_hat = y_t - t.view(-1, 1, 1, 1) * v_hat
    weighted = flow_weight(t, "sample") * flow_loss(v_hat, eps - x)
    torch.testing.assert_close(weighted, flow_loss(x_hat, x))
    assert torch.equal(flow_weight(t, "velocity"), torch.ones(4))
    with pytest.raises(ValueError, match="weighting"):
        flow_weight(t, "eps")
