"""The Wan backbone: same-RoPE source tokens, per-token source time, experts, adapters, VAE and text encoding."""

import pytest
import torch
from helpers.wan_helpers import tiny_wan_a14b, tiny_wan_ti2v  # noqa: F401  (fixtures)

from byg_cli.models.wan import WanBackbone
from byg_cli.sampling import unipc_sample

PROMPTS = ["a red circle", "make the square blue on a white background"]


def _latent(model, frames=5, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return model.encode(torch.rand(2, 3, frames, size, size, generator=g) * 2 - 1)


@pytest.fixture(scope="module")
def a14b(tiny_wan_a14b):
    return WanBackbone.load(tiny_wan_a14b)


@pytest.fixture(scope="module")
def ti2v(tiny_wan_ti2v):
    return WanBackbone.load(tiny_wan_ti2v)


def test_source_token_i_gets_noisy_token_i_rotary_phases_and_output_is_sliced_back(a14b):
    z = _latent(a14b)
    src = _latent(a14b, seed=1)
    n = z.shape[2] * (z.shape[3] // 2) * (z.shape[4] // 2)  # patch (1, 2, 2)
    seen = {}
    expert = a14b.transformer

    def at_attention(module, args):
        seen["tokens"], seen["rotary"] = args[0].shape[1], args[3]

    def at_proj_out(module, args):
        seen["out_tokens"] = args[0].shape[1]

    hooks = [expert.blocks[0].attn1.register_forward_pre_hook(at_attention),
             expert.proj_out.register_forward_pre_hook(at_proj_out)]
    try:
        v = a14b.velocity(z, torch.tensor([0.95, 0.95]), a14b.encode_text(PROMPTS), source=src, adapter=None)
    finally:
        for h in hooks:
            h.remove()
    cos, sin = seen["rotary"]
    assert seen["tokens"] == 2 * n and cos.shape[1] == 2 * n
    # source token i (position N + i) has exactly the phases of noisy token i, and those are the plain RoPE's
    assert torch.equal(cos[:, n:], cos[:, :n]) and torch.equal(sin[:, n:], sin[:, :n])
    plain_cos, plain_sin = expert.rope(z)
    assert torch.equal(cos[:, :n], plain_cos) and torch.equal(sin[:, :n], plain_sin)
    assert len(torch.unique(cos[0, :n, 0], dim=0)) > 1  # the positions really differ from token to token
    # only the noisy tokens reach the output projection; the result has the noisy latent's shape
    assert seen["out_tokens"] == n and v.shape == z.shape


@pytest.mark.parametrize("variant", ["a14b", "ti2v"])
def test_source_equal_to_noisy_reproduces_the_plain_forward_on_the_same_t_path(variant, request):
    model = request.getfixturevalue(variant)
    z = _latent(model, size=64 if variant == "ti2v" else 32)
    cond = model.encode_text(PROMPTS)
    t = torch.tensor([0.95, 0.3])  # a14b: one sample per expert
    model.source_zero_time = False
    try:
        plain = model.velocity(z, t, cond)
        doubled = model.velocity(z, t, cond, source=z)
        other = model.velocity(z, t, cond, source=_latent(model, size=64 if variant == "ti2v" else 32, seed=3))
    finally:
        model.source_zero_time = variant == "ti2v"
    assert torch.allclose(doubled, plain, atol=1e-5, rtol=1e-5)
    assert (other - plain).abs().max() > 1e-3  # the source does reach the output


def test_clean_source_tokens_carry_timestep_zero_where_the_model_has_per_token_time(a14b, ti2v):
    def embedder_timesteps(model, t):
        z = _latent(model, size=64 if model is ti2v else 32)
        seen = []
        hook = model.transformer.condition_embedder.register_forward_pre_hook(
            lambda mod, args: seen.append(args[0].detach().clone()))
        try:
            model.velocity(z, t, model.encode_text(PROMPTS), source=z, adapter=None)
        finally:
            hook.remove()
        return seen[0], z

    assert ti2v.expand_timesteps and ti2v.source_zero_time
    ts, z = embedder_timesteps(ti2v, torch.tensor([0.5, 0.8]))
    n = z.shape[2] * (z.shape[3] // 2) * (z.shape[4] // 2)
    per_sample = ts.view(2, 2 * n)
    assert torch.allclose(per_sample[:, :n], torch.tensor([[500.0], [800.0]]).expand(2, n))
    assert torch.equal(per_sample[:, n:], torch.zeros(2, n))
    assert not a14b.expand_timesteps and not a14b.source_zero_time
    ts, _ = embedder_timesteps(a14b, torch.tensor([0.95, 0.9]))
    assert ts.shape == (2,) and torch.allclose(ts, torch.tensor([950.0, 900.0]))


def test_each_sample_goes_to_the_expert_that_owns_its_t(a14b):
    z = _latent(a14b)
    calls = {"transformer": [], "transformer_2": []}
    hooks = [getattr(a14b, name).patch_embedding.register_forward_pre_hook(
        lambda mod, args, name=name: calls[name].append(args[0].shape[0])) for name in calls]
    try:
        a14b.velocity(z, torch.tensor([0.9, 0.5]), a14b.encode_text(PROMPTS), source=z)
        a14b.velocity(z, torch.tensor([0.875, 0.99]), a14b.encode_text(PROMPTS))
    finally:
        for h in hooks:
            h.remove()
    # first call: one sample each, noisy + source patch-embedded; second: both at or above the boundary
    assert calls["transformer"] == [1, 1, 2] and calls["transformer_2"] == [1, 1]
    assert a14b.expert_for(torch.tensor([0.875, 0.8749])).tolist() == [True, False]


@pytest.mark.slow
def test_lora_scale_zero_is_the_base_and_gradients_reach_the_edit_adapter(tiny_wan_a14b):
    model = WanBackbone.load(tiny_wan_a14b)
    model.enable_gradient_checkpointing()  # diffusers' non-reentrant checkpointing: LoRA grads survive it
    checkpointed = []
    for expert in (model.transformer, model.transformer_2):
        inner = expert._gradient_checkpointing_func
        expert._gradient_checkpointing_func = lambda *a, inner=inner: checkpointed.append(1) or inner(*a)
    z, cond = _latent(model), model.encode_text(PROMPTS)
    t = torch.tensor([0.95, 0.3])
    with torch.no_grad():
        base = model.velocity(z, t, cond, source=z)
    model.add_adapters(rank=4, alpha=4)
    names = [n for n, _ in model.lora_named_parameters("edit")]
    assert any(n.startswith("transformer.") for n in names) and any(n.startswith("transformer_2.") for n in names)
    with torch.no_grad():
        for p in model.lora_parameters("edit"):
            p.add_(0.05 * torch.randn_like(p))
    with torch.no_grad():
        assert torch.allclose(model.velocity(z, t, cond, source=z, adapter=None), base, atol=1e-6)
        ema = model.velocity(z, t, cond, source=z, adapter="ema")
    assert torch.allclose(ema, base, atol=1e-6)  # ema was copied from edit before the perturbation
    v = model.velocity(z, t, cond, source=z, adapter="edit")
    assert (v - base).abs().max() > 1e-4
    with torch.no_grad():
        model.velocity(z, t, cond, source=z, adapter=None)  # a base call between forward and backward
    model.set_adapter("edit")
    v.pow(2).mean().backward()
    assert len(checkpointed) == 4  # 2 blocks x 2 experts, in the grad pass only
    grads = {n: p.grad for n, p in model.lora_named_parameters("edit")}
    assert all(g is not None for g in grads.values())
    for expert in ("transformer.", "transformer_2."):
        assert any(g.abs().sum() > 0 for n, g in grads.items() if n.startswith(expert))
    assert not any(p.requires_grad for p in model.lora_parameters("ema"))


def test_training_one_expert_restricts_t_and_adapters(tiny_wan_a14b):
    high = WanBackbone.load(tiny_wan_a14b, train_expert="high")
    high.add_adapters(rank=2, alpha=2)
    assert all(n.startswith("transformer.") for n, _ in high.lora_named_parameters("edit"))
    assert high.train_time_range() == (0.875, 1.0)
    low = WanBackbone.load(tiny_wan_a14b, train_expert="low", boundary_ratio=0.6)
    assert low.boundary_ratio == 0.6 and low.train_time_range()[1] < 0.6
    from byg_cli.engine.schedule import TimestepSampler

    t = TimestepSampler("logit_normal", shift=12.0, window=high.train_time_range())(2000, torch.Generator())
    assert float(t.min()) >= 0.875 and float(t.max()) <= 1.0 and float(t.std()) > 1e-3


def test_vae_latents_are_normalised_as_the_pipeline_does(a14b):
    vae = a14b.codec.vae
    pixels = torch.rand(1, 3, 5, 32, 32) * 2 - 1
    raw = vae.encode(pixels).latent_dist.mode()
    mean = torch.tensor(vae.config.latents_mean).view(1, -1, 1, 1, 1)
    std = torch.tensor(vae.config.latents_std).view(1, -1, 1, 1, 1)
    z = a14b.encode(pixels)
    assert z.shape == (1, 16, 2, 4, 4)  # (F-1)/4 + 1 frames, 8x spatial
    assert torch.allclose(z, (raw - mean) / std, atol=1e-5)
    assert torch.allclose(a14b.decode(z), vae.decode(raw).sample.clamp(-1, 1), atol=1e-5)


def test_prompt_embeddings_are_zero_past_each_prompts_length(a14b):
    cond = a14b.encode_text(["a red circle", "make the square blue on a white background"])
    lengths = a14b.text.tokenizer(["a red circle", "make the square blue on a white background"],
                                  return_length=True)["length"]
    nonzero = (cond.embeds.abs().sum(-1) > 0).sum(1).tolist()
    assert nonzero == list(lengths) and nonzero[0] < nonzero[1] < cond.embeds.shape[1]
    assert cond.pooled is None


def test_unipc_lands_on_the_data_point_and_queries_the_pipelines_timesteps(a14b):
    target = torch.randn(1, 16, 2, 4, 4)
    seen = []

    def exact_velocity(y, s):  # the flow from noise to a single data point: v = (y - x0) / s
        seen.append(round(float(s[0]) * 1000))
        return (y - target) / s.view(-1, 1, 1, 1, 1)

    out = unipc_sample(exact_velocity, torch.randn(1, 16, 2, 4, 4), a14b.multistep_scheduler(flow_shift=3.0), 10)
    # not exact: like WanPipeline, the model is queried at the scheduler's integer timesteps (999, not 999.999)
    assert torch.allclose(out, target, atol=1e-2)
    assert seen == [999, 964, 923, 875, 818, 750, 667, 563, 429, 251]  # backbones.md section 6
