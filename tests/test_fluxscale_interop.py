"""Interop: a few byg steps on a tiny random FLUX folder (tiny AutoencoderKL, CLIP, T5), the LoRA that
`byg train` exports to RUN/lora/, loaded by diffusers' own FluxKontextPipeline on the base folder: same seed and
steps give the image `byg edit` gives. The ComfyUI export is the same LoRA under the original FLUX names."""

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file
from typer.testing import CliRunner

from conftest import write_recipe

from byg_cli.cli import app
from byg_cli.data.images import to_tensor
from byg_cli.models.flux import unpack
from byg_cli.sampling import edit_latents
from byg_cli.edit import Editor
from byg_cli.export import COMFYUI_FILE, DIFFUSERS_FILE
from byg_cli.recipe import load_recipe
from byg_cli.train import train


@pytest.fixture(scope="module")
def vae_run(tmp_path_factory, tiny_flux_vae, tiny_records):
    root = tmp_path_factory.mktemp("vae-run")
    recipe = write_recipe(root / "r.toml", tiny_flux_vae, tiny_records, "byg", **{
        "train.steps": 4, "train.lr": 1e-2, "train.threads": 1, "objective.rollout_steps": 2,
        "objective.identity_warmup_steps": 1, "model.lora_rank": 4, "model.lora_alpha": 8.0})
    return train(load_recipe(recipe), quiet=True)


def test_diffusers_kontext_pipeline_with_the_exported_lora_edits_like_byg(vae_run, tiny_flux_vae, tiny_records):
    from diffusers import FluxKontextPipeline

    lora_file = vae_run / "lora" / DIFFUSERS_FILE
    assert lora_file.is_file()  # written by byg train at the end
    with safe_open(str(lora_file), "pt") as f:
        meta = f.metadata()
    assert "lora_adapter_metadata" in meta and "[objective]" in meta["byg_recipe"] and meta["byg_adapter"] == "edit"

    source = Image.open(tiny_records.parent / "images" / "2-src.png").convert("RGB")
    instruction = "make the square blue"
    steps, seed = 4, 7
    editor = Editor.from_run(vae_run)
    ours = np.asarray(editor.edit([source], [instruction], steps=steps, seed=seed)[0]).astype(np.float32)

    pipe = FluxKontextPipeline.from_pretrained(tiny_flux_vae, dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    pipe.load_lora_weights(vae_run / "lora")  # finds pytorch_lora_weights.safetensors
    cfg = load_recipe(vae_run / "recipe.toml", check_paths=False)
    h, w = source.height, source.width
    theirs = pipe(image=source, prompt=instruction, height=h, width=w, num_inference_steps=steps,
                  guidance_scale=cfg.model.guidance, generator=torch.Generator().manual_seed(seed),
                  max_area=h * w, _auto_resize=False, max_sequence_length=cfg.model.max_sequence_length or 16,
                  output_type="np").images[0] * 255.0
    assert theirs.shape == ours.shape
    assert np.abs(theirs - ours).max() <= 2.0, np.abs(theirs - ours).max()  # uint8 rounding of the same image

    # the final latents, before decoding, agree to float precision; without the LoRA they do not
    model = editor.model
    src = model.encode(to_tensor(source)[None])
    ours_lat = edit_latents(model, src, [instruction], steps, seed=seed)

    def kontext_latents():
        tokens = pipe(image=source, prompt=instruction, height=h, width=w, num_inference_steps=steps,
                      guidance_scale=cfg.model.guidance, generator=torch.Generator().manual_seed(seed),
                      max_area=h * w, _auto_resize=False, max_sequence_length=16, output_type="latent").images
        return unpack(tokens, *src.shape[1:])

    gap = float((kontext_latents() - ours_lat).abs().max())
    assert gap < 1e-4, gap
    pipe.unload_lora_weights()
    assert float((kontext_latents() - ours_lat).abs().max()) > 100 * max(gap, 1e-6)


def test_comfyui_export_is_the_same_lora_under_original_flux_names(vae_run):
    result = CliRunner().invoke(app, ["train", str(vae_run / "recipe.toml"), "--export-only",
                                      "--lora-format", "comfyui", "--weights", "ema"])
    assert result.exit_code == 0, result.output
    comfy = load_file(str(vae_run / "lora" / COMFYUI_FILE))
    ours = Editor.from_run(vae_run).model.lora_state_dict("ema")
    # ema export: compare against the EMA adapter (scale alpha / rank = 8 / 4)
    scale = 8.0 / 4

    def delta(prefix, parts):
        return torch.cat([ours[f"{prefix}.{p}.lora_B.weight"] @ ours[f"{prefix}.{p}.lora_A.weight"] for p in parts]) * scale

    def comfy_delta(name):
        down, up = comfy[f"lora_unet_{name}.lora_down.weight"], comfy[f"lora_unet_{name}.lora_up.weight"]
        return up @ down * (float(comfy[f"lora_unet_{name}.alpha"]) / down.shape[0])

    checks = {"double_blocks_0_img_attn_qkv": ("transformer_blocks.0", ("attn.to_q", "attn.to_k", "attn.to_v")),
              "double_blocks_0_txt_mlp_2": ("transformer_blocks.0", ("ff_context.net.2",)),
              "single_blocks_0_linear1": ("single_transformer_blocks.0",
                                          ("attn.to_q", "attn.to_k", "attn.to_v", "proj_mlp"))}
    for name, (prefix, parts) in checks.items():
        torch.testing.assert_close(comfy_delta(name), delta(prefix, parts), rtol=1e-5, atol=1e-7)
    assert delta("transformer_blocks.0", ("attn.to_q",)).abs().max() > 0
    # the 13 default targets are 8 original modules of a double block and linear1 of a single block
    names = {k.split(".")[0][len("lora_unet_"):] for k in comfy}
    assert names == {f"double_blocks_0_{m}" for m in ("img_attn_qkv", "img_attn_proj", "txt_attn_qkv",
                                                     "txt_attn_proj", "img_mlp_0", "img_mlp_2", "txt_mlp_0",
                                                     "txt_mlp_2")} | {"single_blocks_0_linear1"}


def test_diffusers_reads_the_comfyui_names_back_into_the_same_lora(vae_run):
    """diffusers' own sd-scripts ("kohya") converter maps the ComfyUI export back to per-projection LoRAs.
    (Its single-block split hard-codes FLUX.1-dev's widths, so the tiny model's double block is compared.)"""
    from diffusers import FluxKontextPipeline

    CliRunner().invoke(app, ["train", str(vae_run / "recipe.toml"), "--export-only", "--lora-format", "both"])
    comfy = load_file(str(vae_run / "lora" / COMFYUI_FILE))
    double = {k: v for k, v in comfy.items() if k.startswith("lora_unet_double_blocks_")}
    converted = FluxKontextPipeline.lora_state_dict(double)
    exported = load_file(str(vae_run / "lora" / DIFFUSERS_FILE))
    double_keys = {k for k in exported if k.startswith("transformer.transformer_blocks.")}
    assert set(converted) == double_keys
    for key in (k for k in double_keys if ".lora_A." in k):
        b_key = key.replace(".lora_A.", ".lora_B.")
        # kohya LoRAs carry their scale in the weights (alpha / rank = 2 here); diffusers loads them at scale 1
        torch.testing.assert_close(converted[b_key] @ converted[key], 2.0 * exported[b_key] @ exported[key],
                                   rtol=1e-5, atol=1e-7)


def test_export_errors_name_the_problem(tmp_path, tiny_flux, tiny_records, vae_run):
    empty = write_recipe(tmp_path / "r.toml", tiny_flux, tiny_records, "byg")
    result = CliRunner().invoke(app, ["train", str(empty), "--export-only"])
    assert result.exit_code != 0 and "no checkpoint in" in str(result.exception)
    result = CliRunner().invoke(app, ["train", str(vae_run / "recipe.toml"), "--export-only", "--lora-format", "ckpt"])
    assert "--lora-format ckpt: use diffusers, comfyui or both" in str(result.exception)
    result = CliRunner().invoke(app, ["train", str(vae_run / "recipe.toml"), "--export-only", "--checkpoint", "step-9"])
    assert "--checkpoint step-9: no such checkpoint" in str(result.exception)
