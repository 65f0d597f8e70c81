"""The FLUX backbone at scale: guidance in every pass, SDPA attention, bf16 base with fp32 LoRA, gradient
checkpointing that keeps LoRA gradients, and one base transformer behind G_t2i, G_edit and G_EMA."""

import pytest
import torch
from torch.overrides import TorchFunctionMode

from conftest import write_recipe

from byg_cli.data.dataset import EditDataset
from byg_cli.data.sources import ShuffledRecords, collate
from byg_cli.engine.objectives import BygConfig, BygObjective
from byg_cli.engine.schedule import TimestepSampler
from byg_cli.errors import BygError
from byg_cli.models.flux import FluxBackbone
from byg_cli.recipe import load_recipe
from byg_cli.sampling import edit_latents, generate


def loaded(path, **kwargs):
    m = FluxBackbone.load(path, **kwargs)
    m.add_adapters(4, 4)
    with torch.no_grad():
        for p in m.lora_parameters("edit") + m.lora_parameters("ema"):
            p.normal_(0, 0.05)
    return m


@pytest.fixture
def batch(tiny_records):
    return collate([ShuffledRecords(EditDataset(tiny_records, 32)).item(i) for i in range(2)])


def byg_step(model, batch):
    objective = BygObjective(TimestepSampler(), BygConfig(rollout_steps=2, identity_warmup_steps=0, identity_prob=0,
                                                          checkpoint_passes=False))  # the plain step: 1 call per pass
    return objective(batch, model, step=5, generator=torch.Generator().manual_seed(0))[0]


def test_every_pass_carries_the_guidance_embedding(tiny_flux, batch):
    model = loaded(tiny_flux, guidance=2.5)
    seen = []

    def hook(module, args, kwargs):
        seen.append((torch.is_grad_enabled(), kwargs.get("guidance"), kwargs.get("joint_attention_kwargs")))

    model.transformer.register_forward_pre_hook(hook, with_kwargs=True)
    byg_step(model, batch).backward()  # rollout (G_EMA), prior queries (G_t2i), forward/reverse/identity (G_edit)
    training = len(seen)
    x = model.encode(batch["pixels"])
    edit_latents(model, x, list(batch["instruction"]), steps=3)  # inference
    generate(model, ["a red square"], tuple(x.shape[1:]), steps=2)  # G_t2i sampling
    assert training == 3 + 1 + 2  # 2 rollout steps + the inserted t node, one batched prior call, 2 grad calls
    assert len(seen) == training + 3 + 2
    assert sum(grad for grad, _, _ in seen) == 2
    assert sum(jak == {"scale": 0.0} for _, _, jak in seen) == 1 + 2  # the prior call and t2i sampling
    for _, guidance, _ in seen:
        assert guidance is not None and torch.all(guidance == 2.5)


def test_attention_runs_through_torch_sdpa_by_default_and_backends_are_selectable(tiny_flux, batch):
    class CountSdpa(TorchFunctionMode):
        calls = 0

        def __torch_function__(self, func, types, args=(), kwargs=None):
            if func is torch.nn.functional.scaled_dot_product_attention:
                CountSdpa.calls += 1
            return func(*args, **(kwargs or {}))

    model = loaded(tiny_flux)
    x = model.encode(batch["pixels"])
    cond = model.encode_text(list(batch["instruction"]))
    t = torch.tensor([0.5, 0.3])
    with torch.no_grad(), CountSdpa():
        v = model.velocity(x, t, cond, source=x)
    assert CountSdpa.calls == 2  # one double-stream and one single-stream block
    math = loaded(tiny_flux, attention_backend="_native_math")
    with torch.no_grad():
        math.load_lora_state_dict("edit", model.lora_state_dict("edit"))
        torch.testing.assert_close(math.velocity(x, t, cond, source=x), v, rtol=1e-4, atol=1e-5)
    with pytest.raises(BygError, match="model.attention_backend: 'no-such'"):
        FluxBackbone.load(tiny_flux, attention_backend="no-such")


def test_bf16_base_trains_fp32_lora(tiny_flux, batch):
    model = loaded(tiny_flux, dtype=torch.bfloat16)
    lora = {id(p) for p in model.lora_parameters("edit") + model.lora_parameters("ema")}
    base = [p for p in model.transformer.parameters() if id(p) not in lora]
    assert base and all(p.dtype == torch.bfloat16 for p in base)
    assert all(p.dtype == torch.float32 for p in model.lora_parameters("edit") + model.lora_parameters("ema"))
    loss = byg_step(model, batch)
    model.set_adapter("edit")
    loss.backward()
    assert torch.isfinite(loss)
    grads = [p.grad for p in model.lora_parameters("edit")]
    assert all(g is not None and g.dtype == torch.float32 for g in grads)
    assert all(p.grad is None for p in base)


def test_gradient_checkpointing_recomputes_blocks_and_keeps_lora_gradients(tiny_flux, batch):
    """The identity pass has no input that requires grad: reentrant checkpointing would drop the LoRA gradients
    there; diffusers' non-reentrant default keeps them, equal to those without checkpointing."""
    grads, block_calls = [], []
    for checkpointing in (False, True):
        torch.manual_seed(0)
        model = loaded(tiny_flux)
        if checkpointing:
            model.transformer.enable_gradient_checkpointing()
        model.train()
        calls = []
        model.transformer.transformer_blocks[0].register_forward_pre_hook(lambda *a: calls.append(1))
        x = model.encode(batch["pixels"])
        eps = torch.randn(x.shape, generator=torch.Generator().manual_seed(1))
        t = torch.tensor([0.6, 0.2])
        x_t = (1 - t.view(-1, 1, 1, 1)) * x + t.view(-1, 1, 1, 1) * eps
        v = model.velocity(x_t, t, model.encode_text(list(batch["reverse_instruction"])), source=x)
        ((v - (eps - x)) ** 2).mean().backward()
        grads.append([p.grad.clone() for p in model.lora_parameters("edit")])
        block_calls.append(len(calls))
    assert block_calls == [1, 2]  # with checkpointing the block starts again in backward (recomputation)
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    assert sum(float(g.abs().sum()) for g in grads[1]) > 0


def test_one_base_transformer_serves_t2i_edit_and_ema(tmp_path, tiny_flux, tiny_records, batch):
    from diffusers import FluxTransformer2DModel

    from byg_cli.train import Trainer

    cfg = load_recipe(write_recipe(tmp_path / "r.toml", tiny_flux, tiny_records, "byg"))
    trainer = Trainer(cfg, tmp_path / "run")
    model = trainer.model
    transformers = [m for m in model.modules() if isinstance(m, FluxTransformer2DModel)]
    assert len(transformers) == 1
    fresh = FluxTransformer2DModel.from_pretrained(tiny_flux / "transformer")
    lora = {id(p) for p in model.lora_parameters("edit") + model.lora_parameters("ema")}
    base = [p for p in model.transformer.parameters() if id(p) not in lora]
    assert len(base) == len(list(fresh.parameters()))  # each base weight once: no copies for G_t2i / G_EMA
    assert len({p.untyped_storage().data_ptr() for p in base}) == len(base)
    assert sum(p.numel() for p in base) == sum(p.numel() for p in fresh.parameters())
    optimised = {id(p) for g in trainer.optimizer.param_groups for p in g["params"]}
    assert optimised == {id(p) for p in model.lora_parameters("edit")}  # the EMA adapter is never optimised
    q = model.transformer.transformer_blocks[0].attn.to_q.base_layer
    hits = []
    q.register_forward_hook(lambda *a: hits.append(1))
    x = model.encode(batch["pixels"])
    cond = model.encode_text(list(batch["instruction"]))
    with torch.no_grad():
        for adapter in (None, "edit", "ema"):
            model.velocity(x, torch.tensor([0.5, 0.5]), cond, source=None if adapter is None else x, adapter=adapter)
    assert len(hits) == 3  # G_t2i, G_edit and G_EMA all run the same base Linear


def test_flux_tokenizer_classes_load_through_autotokenizer_and_encode_like_diffusers(tmp_path):
    """A tiny folder with FLUX.1-dev's tokenizer classes (CLIPTokenizer, T5TokenizerFast), loaded with AutoTokenizer
    by byg and by diffusers' FluxKontextPipeline: both encode a prompt to the same T5 and pooled CLIP embeddings."""
    import json

    from diffusers import FluxKontextPipeline
    from transformers import CLIPTokenizer, T5TokenizerFast

    from byg_cli.models.tiny import TinyFluxSpec, write_tiny_flux

    folder = write_tiny_flux(tmp_path / "flux-tok", TinyFluxSpec(pixel_patch=0, tokenizers="flux"))
    assert json.loads((folder / "tokenizer" / "tokenizer_config.json").read_text())["tokenizer_class"] == "CLIPTokenizer"
    model = FluxBackbone.load(folder)
    assert isinstance(model.text.tokenizer, CLIPTokenizer) and isinstance(model.text.tokenizer_2, T5TokenizerFast)
    prompt = "make the square blue"
    clip_ids = model.text.tokenizer(prompt).input_ids
    assert len(clip_ids) == 2 + 4  # <|startoftext|>, one token per word, <|endoftext|>
    assert model.text.tokenizer_2(prompt).input_ids[-1] == model.text.tokenizer_2.eos_token_id
    ours = model.encode_text([prompt])
    pipe = FluxKontextPipeline.from_pretrained(folder)
    embeds, pooled, _ = pipe.encode_prompt(prompt=prompt, prompt_2=None, max_sequence_length=16)
    torch.testing.assert_close(embeds, ours.embeds)
    torch.testing.assert_close(pooled, ours.pooled)
