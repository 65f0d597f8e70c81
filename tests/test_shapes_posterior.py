"""The shapes world's exact denoiser (objective.target = "posterior"): its candidate set is the sampler's support,
its algebra matches a brute-force Gaussian posterior over full renders, and a t2i run trains on it."""

import math

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from conftest import write_recipe

from byg_cli.cli import app
from byg_cli.data.images import to_tensor
from byg_cli.data.shapes import PALETTE, Attributes, caption_for_index, render, sample_attributes, size_range
from byg_cli.data.shapes_posterior import ShapesPosterior
from byg_cli.engine.posterior import posterior_velocity
from byg_cli.errors import BygError


@pytest.fixture(scope="module")
def posterior():
    return ShapesPosterior(32)


def test_candidates_are_the_samplers_support_with_its_probabilities(posterior):
    rng = np.random.default_rng(3)
    drawn = [sample_attributes(rng) for _ in range(4000)]
    index = {g: i for i, g in enumerate(posterior.geometry)}
    assert len(index) == len(posterior)  # no candidate twice
    hits = np.bincount([index[(a.cx, a.cy, a.size)] for a in drawn], minlength=len(posterior))
    assert float(torch.logsumexp(posterior.log_prior, 0)) == pytest.approx(0.0, abs=1e-9)
    # The prior puts more mass on large shapes (fewer positions each): check it against draw frequencies by size.
    sizes = np.array([g[2] for g in posterior.geometry])
    prior = posterior.log_prior.exp().numpy()
    for size in size_range(32):
        expected = prior[sizes == size].sum() * len(drawn)
        assert abs(hits[sizes == size].sum() - expected) < 4 * math.sqrt(expected)


def brute_force_mean(x_t, t, attrs, posterior):
    """E[x | x_t] by rendering every candidate and weighing it by prior x Gaussian likelihood."""
    renders = torch.stack([to_tensor(render(attrs.replace(cx=cx, cy=cy, size=s))) for cx, cy, s in posterior.geometry])
    loglik = -((x_t[None].double() - (1 - t) * renders.double()) ** 2).flatten(1).sum(1) / (2 * t * t)
    w = torch.softmax(posterior.log_prior + loglik, 0)
    return (w[:, None, None, None] * renders.double()).sum(0).float()


@pytest.mark.parametrize("t", [0.85, 0.93, 0.98])
def test_posterior_mean_matches_brute_force(posterior, t):
    attrs, _ = caption_for_index(11, 2, 32, 0.0)
    attrs = attrs.replace(style="outlined")
    x = to_tensor(render(attrs))
    x_t = (1 - t) * x + t * torch.randn(x.shape, generator=torch.Generator().manual_seed(int(t * 100)))
    exact = posterior(x_t[None], torch.tensor([t]), [attrs])[0]
    assert torch.allclose(exact, brute_force_mean(x_t, t, attrs, posterior), atol=1e-5)
    assert (exact - x).abs().max() > 1e-3  # at this noise the posterior is not yet certain: a real average


def test_posterior_is_the_image_at_low_noise_and_the_prior_mean_at_pure_noise(posterior):
    attrs = [caption_for_index(21, i, 32, 0.0)[0] for i in range(4)] + [Attributes(None, None, "cyan", None)]
    x = torch.stack([to_tensor(render(a)) for a in attrs])
    g = torch.Generator().manual_seed(0)
    low = posterior(0.9 * x + 0.1 * torch.randn(x.shape, generator=g), torch.full((5,), 0.1), attrs)
    assert torch.allclose(low, x, atol=1e-6)
    # t = 1: x_t says nothing; the mean is the prior-weighted coverage, whatever the noise
    a = attrs[0]
    one = posterior(torch.randn(2, 3, 32, 32, generator=g), torch.ones(2), [a, a])
    assert torch.allclose(one[0], one[1], atol=1e-6)
    coverage = posterior.log_prior.exp() @ posterior.masks(a.shape, a.style)
    fg, bg = (torch.tensor(PALETTE[c]) / 127.5 - 1 for c in (a.color, a.background))
    assert torch.allclose(one[0], (bg[:, None] + coverage.float()[None] * (fg - bg)[:, None]).view(3, 32, 32),
                          atol=1e-5)


def test_posterior_velocity_is_the_samples_target_where_certain():
    y, eps = torch.randn(2, 12, 16, 16), torch.randn(2, 12, 16, 16)
    t = torch.tensor([0.2, 0.9])
    y_t = (1 - t.view(-1, 1, 1, 1)) * y + t.view(-1, 1, 1, 1) * eps
    assert torch.equal(posterior_velocity(y_t, y, y, eps, t), eps - y)
    mean = torch.zeros_like(y)
    assert torch.allclose(posterior_velocity(y_t, y, mean, eps, t), y_t / t.view(-1, 1, 1, 1), atol=1e-5)


@pytest.mark.slow
def test_t2i_trains_on_the_posterior_target(tmp_path, tiny_flux, tiny_records):
    recipe = write_recipe(tmp_path / "r.toml", tiny_flux, tiny_records, "t2i",
                          **{"objective.target": "posterior", "data.kind": "shapes_t2i", "train.steps": 4})
    result = CliRunner().invoke(app, ["train", str(recipe)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "run" / "model" / "transformer").is_dir()


def test_posterior_target_outside_the_shapes_world_is_refused(tmp_path, tiny_flux, tiny_records):
    from byg_cli.recipe import load_recipe

    recipe = write_recipe(tmp_path / "r.toml", tiny_flux, tiny_records, "t2i", **{"objective.target": "posterior"})
    with pytest.raises(BygError, match=r"objective.target = 'posterior' needs .* data.kind = 'shapes_t2i'"):
        load_recipe(recipe)
