"""A third model family in one file: the backbone contract is all `byg train` and `byg edit` need.

The toy family is a small convolutional pixel-space denoiser conditioned on a bag-of-words text embedding, with
Kontext-like source conditioning (the source image as extra input channels). It registers itself in one line;
nothing in byg_cli/ knows its name. `byg train` trains it with the byg objective on the shapes world and
`byg edit` edits an image with it, both through the real CLI.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal, Optional

import pytest
import torch
from diffusers import ConfigMixin, ModelMixin
from diffusers.configuration_utils import register_to_config
from diffusers.loaders.peft import PeftAdapterMixin
from diffusers.utils.peft_utils import apply_lora_scale

from byg_cli.engine.schedule import sigma_grid
from byg_cli.errors import BygError
from byg_cli.models.base import Capabilities, Cond, CreateConfig, ModelConfig
from byg_cli.models.codecs import PixelCodec
from byg_cli.models.registry import Family, register_family
from byg_cli.models.shared import CachedText, CodecCalls, LoraAdapters


class ToyDenoiser(ModelMixin, ConfigMixin, PeftAdapterMixin):
    """v(y_t, t, text, source): two convolutions modulated by the time and the pooled text."""

    @register_to_config
    def __init__(self, width: int = 16, text_dim: int = 16):
        super().__init__()
        self.conv_in = torch.nn.Conv2d(3 + 3 + 1, width, 3, padding=1)  # noisy, source, "has a source"
        self.film = torch.nn.Linear(1 + text_dim, 2 * width)
        self.conv_out = torch.nn.Conv2d(width, 3, 3, padding=1)

    @apply_lora_scale("attention_kwargs")
    def forward(self, y_t, t, text, source=None, attention_kwargs=None):
        flag = torch.zeros_like(y_t[:, :1]) if source is None else torch.ones_like(y_t[:, :1])
        h = self.conv_in(torch.cat([y_t, torch.zeros_like(y_t) if source is None else source, flag], dim=1))
        scale, shift = self.film(torch.cat([t[:, None], text], dim=1)).chunk(2, dim=1)
        return self.conv_out(torch.nn.functional.silu(h * (1 + scale[..., None, None]) + shift[..., None, None]))


class BagOfWords(torch.nn.Module):
    """prompts -> Cond: one learned vector per known word, averaged."""

    def __init__(self, words: list[str], dim: int = 16):
        super().__init__()
        self.words = {w: i + 1 for i, w in enumerate(words)}
        self.table = torch.nn.Embedding(len(words) + 1, dim)

    def forward(self, prompts: list[str]) -> Cond:
        ids = [[self.words.get(w, 0) for w in p.lower().split()] or [0] for p in prompts]
        pooled = torch.stack([self.table(torch.tensor(i)).mean(0) for i in ids])
        return Cond(embeds=pooled[:, None], pooled=pooled)


class ToyCreateConfig(CreateConfig):
    width: int = 16


class ToyModelConfig(ModelConfig):
    family: Literal["toy"]
    create: Optional[ToyCreateConfig] = None


class ToyBackbone(LoraAdapters, CachedText, CodecCalls, torch.nn.Module):
    family = "toy"
    capabilities = Capabilities(samplers=("euler",))
    default_lora_targets = ("conv_in", "film", "conv_out")
    pixel_multiple = 1

    def __init__(self, transformer: ToyDenoiser, text: BagOfWords):
        super().__init__()
        self.transformer, self.text, self.codec = transformer, text, PixelCodec(1)

    @classmethod
    def from_config(cls, cfg: ToyModelConfig, dtype) -> "ToyBackbone":
        root = Path(cfg.path)
        words = json.loads((root / "words.json").read_text())["words"]
        text = BagOfWords(words, ToyDenoiser.load_config(root / "denoiser")["text_dim"])
        text.load_state_dict(torch.load(root / "text.pt"))
        model = cls(ToyDenoiser.from_pretrained(root / "denoiser"), text)
        model.requires_grad_(False)
        return model

    def adapter_modules(self):
        return {"transformer": self.transformer}

    def velocity(self, y_t, t, cond: Cond, source=None, adapter: Optional[str] = "edit"):
        kwargs = self.adapter_kwargs(adapter)
        return self.transformer(y_t, t.to(y_t).expand(y_t.shape[0]), cond.pooled.to(y_t), source,
                                attention_kwargs=kwargs)

    def sigmas(self, steps, latent_shape):
        return sigma_grid(steps, 1.0)

    def train_time_range(self):
        return None

    def trainable_parameters(self, mode, text_encoders=False):
        if mode == "lora":
            return [(f"edit.{n}", p) for n, p in self.lora_named_parameters("edit")]
        self.transformer.requires_grad_(True)
        return [(f"transformer.{n}", p) for n, p in self.transformer.named_parameters()]

    def save_base(self, root):
        raise BygError("the toy family trains LoRAs only")

    def multistep_scheduler(self, flow_shift=None):
        raise BygError("the toy family samples with Euler")

    def wrap_denoiser(self, wrap):
        raise BygError("no DDP for the toy family")

    def shard(self, fully_shard, device):
        raise BygError("no FSDP for the toy family")

    def compile_denoiser(self):
        self.transformer.compile()

    def enable_gradient_checkpointing(self):
        raise BygError("no gradient checkpointing for the toy family")

    def cache_identity(self):
        raise BygError("no encoder cache for the toy family")


def create_toy(cfg: ToyModelConfig, corpus: list[str]) -> None:
    root = Path(cfg.path)
    torch.manual_seed(cfg.create.seed)
    words = sorted({w for line in corpus for w in line.lower().split()})
    ToyDenoiser(cfg.create.width).save_pretrained(root / "denoiser")
    torch.save(BagOfWords(words).state_dict(), root / "text.pt")
    (root / "words.json").write_text(json.dumps({"words": words}))
    (root / "model_index.json").write_text(json.dumps({"_class_name": "ToyPipeline"}))


register_family(Family(name="toy", config=ToyModelConfig, backbone=ToyBackbone, create=create_toy))


RECIPE = """
[run]
dir = "{run}"
seed = 0

[model]
family = "toy"
path = "{model}"
lora_rank = 4
lora_alpha = 4
create = {{ seed = 0 }}

[data]
kind = "shapes_edit"
resolution = 16
edit_types = ["color"]

[objective]
name = "byg"
rollout_steps = 2
identity_warmup_steps = 2
checkpoint_passes = false

[train]
steps = 6
batch_size = 4
lr = 1e-2
checkpoint_every = 6
sample_every = 6
threads = 1

[sample]
steps = 2
count = 2
"""


def test_a_family_defined_in_one_test_file_trains_with_byg_and_edits(tmp_path, capsys):
    from PIL import Image

    from byg_cli.checkpoint import latest_checkpoint, load_adapter
    from conftest import run_main

    run, recipe = tmp_path / "run", tmp_path / "toy.toml"
    recipe.write_text(RECIPE.format(run=run, model=tmp_path / "toy-model"))
    code, _, err = run_main(["train", recipe], capsys)
    assert code == 0, err
    logged = [json.loads(line) for line in (run / "losses.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logged] == [1, 2, 3, 4, 5, 6]
    assert [r["identity_step"] for r in logged[:2]] == [1.0, 1.0]  # the identity warm-up, then ByG steps
    byg_steps = [r for r in logged if r["identity_step"] == 0.0]
    assert byg_steps and all(r["prior_fwd"] > 0 and r["cycle"] > 0 for r in byg_steps)
    lora = load_adapter(latest_checkpoint(run), "edit")
    assert any(k.endswith("lora_B.weight") and v.abs().sum() > 0 for k, v in lora.items())  # it learnt (B starts 0)
    assert (run / "samples" / "step-0000006.png").is_file()

    from byg_cli.data.shapes import Attributes, render

    source = tmp_path / "circle.png"
    Image.fromarray(render(Attributes("circle", "red", "white", "filled", 8.0, 8.0, 5.0), 16)).save(source)
    out = tmp_path / "edited.png"
    code, _, err = run_main(["edit", source, "make the circle blue", "--run", run, "-o", out, "--steps", "3"],
                            capsys)
    assert code == 0, err
    assert Image.open(out).size == (16, 16)


def test_the_toy_family_keys_are_refused_in_another_family():
    from byg_cli.recipe import recipe_from_dict

    with pytest.raises(BygError, match=r"unknown key 'model.create.width': a key of model.family = 'toy'; this "
                                       r"recipe has model.family = 'flux'"):
        recipe_from_dict({"model": {"path": "x", "create": {"width": 8}}})
