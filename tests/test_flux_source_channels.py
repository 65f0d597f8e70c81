"""model.source_conditioning = "channels": the source reaches G_edit through a zero-started projection beside each
noisy token (the paper's appendix B.2 alternative to Kontext's source tokens). The base and G_t2i never see it."""

import pytest
import torch

from byg_cli.errors import BygError
from byg_cli.export import export_lora, exportable
from byg_cli.models.flux import FluxBackbone
from byg_cli.models.tiny import TinyFluxSpec, write_tiny_flux
from byg_cli.recipe import load_recipe
from conftest import write_recipe


@pytest.fixture
def folder(tmp_path):
    return write_tiny_flux(tmp_path / "m", TinyFluxSpec())


def _inputs(model):
    g = torch.Generator().manual_seed(0)
    y, source = torch.randn(2, 12, 16, 16, generator=g), torch.randn(2, 12, 16, 16, generator=g)
    return y, source, torch.tensor([0.3, 0.8]), model.encode_text(["a red circle", "a blue square"])


def test_the_source_is_invisible_until_its_lora_learns_and_the_base_keeps_its_weights(folder):
    tokens = FluxBackbone.load(folder)
    model = FluxBackbone.load(folder, source_conditioning="channels")
    assert set(model.transformer.state_dict()) - set(tokens.transformer.state_dict()) == {"x_embedder.source.weight"}
    model.add_adapters(4, 4.0)
    assert {n for n, _ in model.lora_named_parameters("edit") if "x_embedder" in n} == {
        "x_embedder.source.lora_A.edit.weight", "x_embedder.source.lora_B.edit.weight"}
    named = FluxBackbone.load(folder, source_conditioning="channels")
    named.add_adapters(4, 4.0, ("attn.to_q",))  # a recipe's own lora_targets: the source projection joins them
    assert {n.split(".lora_")[0] for n, _ in named.lora_named_parameters("edit")} >= {"x_embedder.source"}
    y, source, t, cond = _inputs(model)
    with torch.no_grad():
        base = tokens.velocity(y, t, cond, source=None, adapter=None)
        assert torch.equal(model.velocity(y, t, cond, source=None, adapter=None), base)
        # a fresh LoRA (B = 0) on a zero projection: the edit model is the base whatever the source
        assert torch.allclose(model.velocity(y, t, cond, source=source, adapter="edit"), base, atol=1e-6)
        for name, p in model.lora_named_parameters("edit"):
            if "x_embedder.source.lora_B" in name:
                p.normal_()
        edited = model.velocity(y, t, cond, source=source, adapter="edit")
        other = model.velocity(y, t, cond, source=source.flip(0), adapter="edit")
        assert edited.shape == y.shape and not torch.allclose(edited, base, atol=1e-3)
        assert not torch.allclose(edited, other, atol=1e-3)  # each sample reads its own source
        assert torch.equal(model.velocity(y, t, cond, source=None, adapter=None), base)  # G_t2i: scale 0
        assert torch.allclose(model.velocity(y, t, cond, source=source, adapter="ema"), base, atol=1e-6)


def test_a_channels_run_trains_and_edits_but_is_not_exported(tmp_path, tiny_flux, tiny_records):
    recipe = write_recipe(tmp_path / "r.toml", tiny_flux, tiny_records, "byg",
                          **{"model.source_conditioning": "channels", "train.steps": 4})
    cfg = load_recipe(recipe)
    assert cfg.model.source_conditioning == "channels" and not exportable(cfg)
    from byg_cli.train import train

    run = train(cfg, tmp_path / "run", quiet=True)
    assert not (run / "lora").exists()
    with pytest.raises(BygError, match="source_conditioning = 'channels' has no diffusers"):
        export_lora(cfg, run)
    from byg_cli.edit import Editor

    editor = Editor.from_run(run)
    assert editor.model.source_conditioning == "channels"
