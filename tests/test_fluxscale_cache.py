"""The encoder cache: `byg train --cache-only` fills it, a second run calls neither the VAE nor the text
encoders, a changed image or model misses it; cached training equals uncached training; aspect-ratio buckets."""

import contextlib
import hashlib
import json
import shutil
from collections import Counter

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from typer.testing import CliRunner

from conftest import write_recipe

from byg_cli.cli import app
from byg_cli.data.buckets import BucketBatches, make_buckets, nearest_bucket
from byg_cli.models.tiny import TinyFluxSpec, write_tiny_flux


@contextlib.contextmanager
def count_encoder_calls():
    """Counts forward calls of the real VAE encoder, CLIP and T5 modules (a global forward pre-hook)."""
    from diffusers.models.autoencoders.vae import Encoder
    from transformers import CLIPTextModel, T5EncoderModel

    counts = Counter()
    kinds = {Encoder: "vae", CLIPTextModel: "clip", T5EncoderModel: "t5"}

    def hook(module, args):
        kind = kinds.get(type(module))
        if kind:
            counts[kind] += 1

    handle = torch.nn.modules.module.register_module_forward_pre_hook(hook)
    try:
        yield counts
    finally:
        handle.remove()


def cli(*args):
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result


def cache_recipe(root, model, records, cache_dir, **extra):
    root.mkdir(parents=True, exist_ok=True)
    return write_recipe(root / "r.toml", model, records, "byg", **{
        "cache.enabled": True, "cache.dir": str(cache_dir), "train.steps": 3, "train.threads": 1,
        "objective.rollout_steps": 2, "objective.identity_warmup_steps": 1, "export.at_end": False, **extra})


def losses(run):
    return [json.loads(line) for line in (run / "losses.jsonl").read_text().splitlines()]


def test_second_run_uses_the_cache_and_changes_invalidate_it(tmp_path, tiny_flux_vae, tiny_records):
    data = tmp_path / "data"
    shutil.copytree(tiny_records.parent, data)
    records = data / "metadata.jsonl"
    cache = tmp_path / "cache"

    first = cache_recipe(tmp_path / "a", tiny_flux_vae, records, cache)
    with count_encoder_calls() as calls:
        cli("train", first, "--cache-only")
    assert calls["vae"] > 0 and calls["clip"] > 0 and calls["t5"] > 0
    latent_files = list((cache / "latents").rglob("*.safetensors"))
    unique_images = {hashlib.sha256(p.read_bytes()).digest() for p in (data / "images").iterdir()}
    assert len(latent_files) == len(unique_images)  # keyed by content: identical images share one entry
    assert not (tmp_path / "a" / "run" / "checkpoints").exists()  # --cache-only trains nothing

    second = cache_recipe(tmp_path / "b", tiny_flux_vae, records, cache)
    with count_encoder_calls() as calls:
        cli("train", second)
    assert dict(calls) == {}, f"encoders ran although everything was cached: {dict(calls)}"
    cached_losses = losses(tmp_path / "b" / "run")

    # the cached run trains exactly like one that encodes on the fly
    plain = cache_recipe(tmp_path / "c", tiny_flux_vae, records, cache, **{"cache.enabled": False})
    cli("train", plain)
    for a, b in zip(cached_losses, losses(tmp_path / "c" / "run")):
        assert a == pytest.approx(b, rel=1e-4, abs=1e-6)

    # a changed image misses the cache: exactly that one image is encoded again, no prompt is
    arr = np.asarray(Image.open(data / "images" / "3-src.png")).copy()
    arr[0:4, 0:4] = 0
    Image.fromarray(arr).save(data / "images" / "3-src.png")
    with count_encoder_calls() as calls:
        cli("train", cache_recipe(tmp_path / "d", tiny_flux_vae, records, cache), "--cache-only")
    assert dict(calls) == {"vae": 1}
    assert len(list((cache / "latents").rglob("*.safetensors"))) == len(unique_images) + 1

    # another model (same configs, other weights) misses every entry
    other = write_tiny_flux(tmp_path / "other-model", TinyFluxSpec(pixel_patch=0), seed=1)
    with count_encoder_calls() as calls:
        cli("train", cache_recipe(tmp_path / "e", other, records, cache), "--cache-only")
    assert calls["vae"] > 0 and calls["clip"] > 0 and calls["t5"] > 0
    assert len(list((cache / "latents").iterdir())) == 2 and len(list((cache / "text").iterdir())) == 2


def test_buckets_cover_flux_sizes_and_batches_stay_in_one_bucket():
    buckets = make_buckets(1024, 16, 2.0)
    assert (1024, 1024) in buckets
    assert all(w % 16 == 0 and h % 16 == 0 and max(w / h, h / w) <= 2 for w, h in buckets)
    assert all(abs(w * h / 1024 ** 2 - 1) < 0.02 for w, h in buckets)
    assert nearest_bucket(1920, 1080, buckets) == (1360, 768)
    assert nearest_bucket(1080, 1920, buckets) == (768, 1360)

    sizes = [(24, 40)] * 5 + [(32, 32)] * 3 + [(40, 24)] * 4
    batches = BucketBatches(sizes, batch_size=2, seed=0)
    assert batches.groups_per_epoch == 3 + 2 + 2
    epoch = [batches.group(k) for k in range(batches.groups_per_epoch)]
    assert all(len({sizes[i] for i in g}) == 1 and len(g) == 2 for g in epoch)
    assert set(i for g in epoch for i in g) == set(range(12))
    assert [batches.group(k) for k in range(7, 14)] != epoch  # the next epoch reshuffles


def test_bucketed_cached_training_on_non_square_images(tmp_path, tiny_flux_vae):
    rng = np.random.default_rng(0)
    (tmp_path / "images").mkdir()
    lines = []
    for i, (w, h) in enumerate([(60, 36), (64, 40), (36, 60), (40, 64), (48, 48), (50, 50)]):
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(tmp_path / "images" / f"{i}.png")
        lines.append({"image": f"images/{i}.png", "src_caption": "a red square", "instruction": "make it blue",
                      "tgt_caption": "a blue square", "reverse_instruction": "make it red", "edit_type": "color"})
    records = tmp_path / "metadata.jsonl"
    records.write_text("".join(json.dumps(x) + "\n" for x in lines))
    recipe = cache_recipe(tmp_path / "run", tiny_flux_vae, records, tmp_path / "cache", **{
        "data.buckets": True, "data.bucket_step": 8, "train.steps": 4, "train.sample_every": 4,
        "sample.count": 2})
    cli("train", recipe)
    files = (tmp_path / "cache" / "latents").rglob("*.safetensors")
    sides = {tuple(load_file(str(p))["latents"].shape[1:]) for p in files}
    assert sides == {(20, 12), (16, 16), (12, 20)}  # (24, 40), (32, 32), (40, 24) pixels at VAE factor 2
    assert (tmp_path / "run" / "run" / "samples" / "step-0000004.png").is_file()


def test_image_digests_are_remembered_between_runs(tmp_path):
    from byg_cli.data.cached import FileDigests

    image = tmp_path / "a.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(image)
    memo = FileDigests(tmp_path / "digests.json")
    first = memo(image)
    memo.save()
    again = FileDigests(tmp_path / "digests.json")
    assert again.known and again(image) == first and not again.changed  # served from the memo
    Image.fromarray(np.full((8, 8, 3), 9, np.uint8)).save(image)
    assert again(image) != first  # size or mtime changed: hashed again
