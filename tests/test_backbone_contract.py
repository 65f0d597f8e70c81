"""The wall around the model families: the loop, sampler, exporter and recipe reach a backbone only through its
contract (byg_cli.models.base), each family's [model] keys and each objective's [objective] keys are its own."""

from __future__ import annotations

import re
from dataclasses import asdict
from pathlib import Path

import pytest

from byg_cli.errors import BygError

ROOT = Path(__file__).resolve().parents[1]
FAMILY_FREE = ("train.py", "edit.py", "export.py", "sampling.py", "recipe.py")


def test_the_loop_sampler_exporter_and_recipe_never_probe_a_family():
    probe = re.compile(r"family *[!=]=|hasattr\(|getattr\(.*supports|\bmodel\._[a-z]|\._denoiser|isinstance\(.*Codec")
    found = [f"{name}:{n}: {line.strip()}" for name in FAMILY_FREE
             for n, line in enumerate((ROOT / "byg_cli" / name).read_text().splitlines(), 1) if probe.search(line)]
    assert found == []


@pytest.mark.parametrize("family, key, value, owner", [
    ("flux", "boundary_ratio", 0.5, "wan"), ("flux", "train_expert", '"high"', "wan"),
    ("flux", "source_timestep", '"zero"', "wan"), ("wan", "guidance", 3.5, "flux"),
    ("wan", "source_id_offset", 1.0, "flux"), ("wan", "attention_backend", '"flash"', "flux"),
])
def test_another_familys_key_is_refused_in_one_line_naming_it(tmp_path, capsys, family, key, value, owner):
    from conftest import run_main

    recipe = tmp_path / "r.toml"
    recipe.write_text(f'[model]\nfamily = "{family}"\npath = "{tmp_path}"\n{key} = {value}\n')
    code, _, err = run_main(["train", recipe], capsys)
    assert code == 2
    assert err.strip() == (f"error: {recipe}: unknown key 'model.{key}': a key of model.family = '{owner}'; this "
                           f"recipe has model.family = '{family}'")


def test_another_objectives_key_and_a_tiny_model_key_of_another_family_are_refused():
    from byg_cli.recipe import recipe_from_dict

    with pytest.raises(BygError, match=r"unknown key 'objective.loss_weighting': a key of objective.name = 't2i'; "
                                       r"this recipe has objective.name = 'byg'"):
        recipe_from_dict({"model": {"path": "x"}, "objective": {"loss_weighting": "sample"}})
    with pytest.raises(BygError, match=r"unknown key 'objective.rollout_steps': a key of objective.name = 'byg'; "
                                       r"this recipe has objective.name = 'supervised'"):
        recipe_from_dict({"model": {"path": "x"}, "objective": {"name": "supervised", "rollout_steps": 4}})
    with pytest.raises(BygError, match=r"unknown key 'model.create.ffn_dim': a key of model.family = 'wan'"):
        recipe_from_dict({"model": {"path": "x", "create": {"ffn_dim": 64}}})
    with pytest.raises(BygError, match=r"unknown key 'model.gudance' \(did you mean 'model.guidance'\?\)"):
        recipe_from_dict({"model": {"path": "x", "gudance": 2.0}})
    with pytest.raises(BygError, match=r"'model.family': unknown model family 'wna' \(did you mean 'wan'\?\)"):
        recipe_from_dict({"model": {"path": "x", "family": "wna"}})
    with pytest.raises(BygError, match=r"'objective.name': unknown objective 'bgy' \(did you mean 'byg'\?\)"):
        recipe_from_dict({"model": {"path": "x"}, "objective": {"name": "bgy"}})


def test_the_byg_section_is_the_engines_dataclass():
    """One declaration per default: the [objective] section of name = "byg" has BygConfig's fields, defaults and
    bounds, and hands the engine exactly what the recipe says."""
    from byg_cli.engine.objectives import BygConfig
    from byg_cli.recipe import recipe_from_dict

    recipe = recipe_from_dict({"model": {"path": "x"}})
    assert asdict(recipe.objective.engine_config()) == asdict(BygConfig())
    recipe = recipe_from_dict({"model": {"path": "x"}, "objective": {"lambda_id": 0.5, "ablate": ["no_cycle"]}})
    assert recipe.objective.engine_config() == BygConfig(lambda_id=0.5, ablate=("no_cycle",))
    with pytest.raises(BygError, match=r"'objective.identity_prob' input should be less than or equal to 1"):
        recipe_from_dict({"model": {"path": "x"}, "objective": {"identity_prob": 1.5}})
    with pytest.raises(BygError, match=r"unknown ablation 'no_cycles' \(did you mean 'no_cycle'\?\)"):
        recipe_from_dict({"model": {"path": "x"}, "objective": {"ablate": ["no_cycles"]}})


def test_a_run_recipe_written_by_byg_drops_other_families_keys_a_hand_written_one_keeps_them(tmp_path):
    """Run folders from before the per-family sections hold every key (the others' ignored); byg-written recipes
    (they carry `source`) load with those dropped, hand-written ones are refused."""
    from byg_cli.recipe import load_recipe

    body = '[model]\nfamily = "wan"\npath = "x"\nguidance = 3.5\n[objective]\nname = "t2i"\nrollout_steps = 10\n'
    (tmp_path / "run.toml").write_text('source = "recipes/r.toml"\n' + body)
    cfg = load_recipe(tmp_path / "run.toml", check_paths=False)
    assert cfg.model.family == "wan" and cfg.objective.name == "t2i"
    (tmp_path / "mine.toml").write_text(body)
    with pytest.raises(BygError, match=r"unknown key 'model.guidance'"):
        load_recipe(tmp_path / "mine.toml", check_paths=False)


def test_a_rollout_to_zero_with_the_edit_adapter_is_byg_edits_sampling(tiny_flux):
    """The rollout integrates on the backbone's inference grid (here FLUX's dynamically shifted one): from the
    same noise, with the same steps and the training t on a node, its clean end point is `byg edit`'s output."""
    import torch

    from byg_cli.engine.objectives import BygConfig, BygObjective
    from byg_cli.engine.rollout import bootstrap
    from byg_cli.engine.schedule import TimestepSampler, sigma_grid
    from byg_cli.models.registry import load_backbone, model_config
    from byg_cli.sampling import edit_latents

    model = load_backbone(model_config(tiny_flux), adapters=True)
    model.scheduler_config.update(use_dynamic_shifting=True, base_image_seq_len=4, max_image_seq_len=64)
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.lora_parameters("edit"):
            p.add_(0.05 * torch.randn_like(p))
    x = model.encode(torch.rand(2, 3, 16, 16) * 2 - 1)
    steps, instructions = 6, ["make the circle blue", "make it red"]
    sigmas = model.sigmas(steps, tuple(x.shape[1:]))
    assert not torch.allclose(sigmas, sigma_grid(steps, 1.0))  # the shifted grid, not the plain one
    objective = BygObjective(TimestepSampler(), BygConfig(rollout_steps=steps, rollout_adapter="edit"))
    grid, index = objective.rollout_nodes(model, x, sigmas[2].expand(2))
    cond = model.encode_text(instructions)
    noise = torch.randn(tuple(x.shape), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        y_t, y_0 = bootstrap(lambda y, s: model.velocity(y, s, cond, source=x, adapter="edit"), noise, grid, index)
    expected = edit_latents(model, x, instructions, steps, seed=0, adapter="edit")
    assert torch.allclose(y_0, expected, atol=1e-5)
    fixed = BygObjective(TimestepSampler(), BygConfig(rollout_steps=steps, rollout_shift=1.0))  # a recipe's own
    grid, index = fixed.rollout_nodes(model, x, sigmas[2].expand(2))
    k = int(index[0])
    assert grid[0, k] == sigmas[2] and torch.allclose(torch.cat([grid[0, :k], grid[0, k + 1:]]), sigma_grid(steps, 1.0))
