"""The video shapes world: moving-shape clips, style edits, lossless records, and the exact per-frame metrics."""

import json
from pathlib import Path

import numpy as np
import pytest

from byg_cli.data.shapes import render
from byg_cli.data.shapes_reader import read
from byg_cli.data.shapes_video import (MOTIONS, ShapeClip, ShapesVideoEditStream, render_clip, sample_clip,
                                       style_edit_for_index, write_shapes_video_dataset)
from byg_cli.data.sources import build_source
from byg_cli.data.video import VideoEditDataset, from_video_tensor, read_video
from byg_cli.eval.shapes_metrics import score_t2i
from byg_cli.eval.shapes_video_metrics import (flicker, moves_as_captioned, score_video_edit, summarize_video_base,
                                             summarize_video_edits)
from byg_cli.recipe import DataConfig


@pytest.mark.parametrize("index", range(12))
def test_clips_move_on_whole_pixels_inside_the_image_and_read_back_exactly(index):
    rng = np.random.default_rng([7, index])
    clip = sample_clip(rng, frames=9, image_size=32)
    frames = render_clip(clip, 32)
    assert frames.shape == (9, 32, 32, 3)
    dx, dy = MOTIONS[clip.direction]
    for k, attrs in enumerate(clip.attributes()):
        assert attrs.cx - attrs.size / 2 == int(attrs.cx - attrs.size / 2)  # bounding box on whole pixels
        assert 1 <= attrs.cx - attrs.size / 2 and attrs.cx + attrs.size / 2 <= 31
        got = read(frames[k]).attributes
        assert (got.shape, got.color, got.background, got.style) == (attrs.shape, attrs.color, attrs.background,
                                                                      attrs.style)
        assert abs(got.cx - attrs.cx) <= 0.5 and abs(got.cy - attrs.cy) <= 0.5
    centres = clip.centres()
    assert np.allclose(np.diff(centres, axis=0), [dx * clip.speed, dy * clip.speed])


def test_style_edits_flip_outlined_and_filled_and_keep_the_motion():
    styles = set()
    for i in range(10):
        edit = style_edit_for_index(3, i, frames=5, image_size=32)
        assert {edit.source.start.style, edit.target.start.style} == {"outlined", "filled"}
        assert np.array_equal(edit.source.centres(), edit.target.centres())
        assert edit.src_caption.endswith(f"moving {edit.source.direction}")
        assert edit.instruction != edit.reverse_instruction
        styles.add(edit.target.start.style)
        assert style_edit_for_index(3, i, 5, 32) == edit  # a pure function of (seed, index)
    assert styles == {"outlined", "filled"}


def test_dataset_records_are_lossless_and_load_for_training(tmp_path):
    path = write_shapes_video_dataset(tmp_path / "vs", count=3, frames=5, image_size=32, fps=6.0, seed=1)
    edit = style_edit_for_index(1, 0, 5, 32)
    video = read_video(tmp_path / "vs" / "clips" / "00000.mp4")
    assert video.count == 5 and video.fps == 6 and np.array_equal(video.frames, render_clip(edit.source, 32))
    item = VideoEditDataset(path, 32, 32, frames=5)[0]
    assert np.array_equal(from_video_tensor(item["pixels"]), render_clip(edit.source, 32))
    assert np.array_equal(from_video_tensor(item["target_pixels"]), render_clip(edit.target, 32))
    stream = build_source(DataConfig(kind="shapes_video_edit", resolution=32, frames=5), seed=1)
    assert isinstance(stream, ShapesVideoEditStream)
    assert np.array_equal(from_video_tensor(stream.item(0)["pixels"]), render_clip(edit.source, 32))


def _edit(i=0, frames=5):
    return style_edit_for_index(11, i, frames, 32)


def test_a_perfect_edit_scores_full_success_no_drift_and_no_flicker():
    edit = _edit()
    score = score_video_edit(edit.source, edit.target, render_clip(edit.source, 32), render_clip(edit.target, 32))
    assert score.success == [True] * 5 and score.preserved == [True] * 5
    assert score.mean_centre_error == 0.0 and score.flicker == 0.0


def test_doing_nothing_fails_every_frame_and_a_frozen_shape_breaks_the_trajectory():
    edit = _edit()
    source = render_clip(edit.source, 32)
    unchanged = score_video_edit(edit.source, edit.target, source, source)
    assert unchanged.success_rate == 0.0 and all(unchanged.preserved)
    frozen = np.stack([render(edit.target.at(0), 32)] * 5)  # edited, but the shape no longer moves
    score = score_video_edit(edit.source, edit.target, source, frozen)
    speed = edit.source.speed
    assert score.success == [True] * 5
    assert score.centre_error_px == pytest.approx([speed * k for k in range(5)])
    assert score.mean_centre_error == pytest.approx(speed * 2)


def test_flicker_measures_background_changes_between_frames():
    edit = _edit(frames=5)
    out = render_clip(edit.target, 32).copy()
    out[1::2, 0, 0] = 255 - out[1::2, 0, 0]  # one corner pixel blinks every other frame
    assert flicker(list(render_clip(edit.target, 32)), edit.source, edit.target) == 0.0
    blink = flicker(list(out), edit.source, edit.target)
    assert blink > 0
    summary = summarize_video_edits([score_video_edit(edit.source, edit.target, render_clip(edit.source, 32), out)])
    assert summary["clips"] == 1 and summary["frames"] == 5 and summary["flicker"] == pytest.approx(blink)
    assert summary["success_per_frame"] == 1.0 and summary["centre_error_px"] == 0.0


def test_base_scores_true_clips_as_steady_and_moving_and_catch_reversal_and_a_lost_frame():
    clips = [sample_clip(np.random.default_rng(i), 5) for i in range(4)]
    frames = [render_clip(c) for c in clips]
    requested = [c.at(k) for c in clips for k in range(5)]

    def summary(videos):
        return summarize_video_base(score_t2i([f for v in videos for f in v], requested), clips)

    exact = summary(frames)
    assert exact["steady"] == 1.0 and exact["moves_as_captioned"] == 1.0
    assert exact["per_frame"]["shape"] == 1.0 and exact["per_frame"]["crisp"] == 1.0
    reversed_first = summary([frames[0][::-1], *frames[1:]])  # same frames, played backwards: moves the other way
    assert reversed_first["per_clip"][0] == {"steady": True, "moves": False}
    lost = [f.copy() for f in frames]
    lost[1][2] = lost[1][0, 0]  # frame 2 of clip 1: background only
    scored = summary(lost)
    assert scored["per_clip"][1] == {"steady": False, "moves": False} and scored["per_clip"][2]["moves"]
    assert moves_as_captioned([(10.0, 10.0), (11.0, 10.4), (12.0, 10.8)], "right")  # drift 0.4 px a frame: allowed
    assert not moves_as_captioned([(10.0, 10.0), (11.0, 11.0), (12.0, 12.0)], "right")  # diagonal: too much drift
    assert not moves_as_captioned([(10.0, 10.0), (10.2, 10.0)], "right")  # too slow
    with pytest.raises(ValueError, match="frames"):
        summarize_video_base(score_t2i(frames[0], requested[:5]), clips)


def test_frame_count_mismatch_is_an_error():
    edit = _edit()
    with pytest.raises(ValueError, match="5 frames"):
        score_video_edit(edit.source, edit.target, render_clip(edit.source, 32), render_clip(edit.source, 32)[:4])
    assert ShapeClip.from_json(edit.source.to_json()) == edit.source


def test_the_video_pixel_codec_is_exact_and_keeps_wans_latent_layout():
    import torch

    from byg_cli.models.video_codec import VideoPixelCodec

    codec = VideoPixelCodec(patch=2, temporal=4)
    x = torch.rand(2, 3, 9, 8, 12) * 2 - 1
    z = codec.encode(x)
    assert z.shape == (2, 48, 3, 4, 6) and torch.equal(codec.decode(z), x)  # (F-1)/4 + 1 latent frames
    y = x.clone()
    y[:, :, 5] += 1  # frames 5-8 live in latent frame 2 only
    assert [bool((codec.encode(y) - z)[:, :, k].abs().sum() > 0) for k in range(3)] == [False, False, True]
    with pytest.raises(ValueError, match="4k\\+1"):
        codec.encode(x[:, :, :8])


@pytest.mark.slow
def test_pretrain_then_byg_then_score_on_the_video_shapes_world(tmp_path):
    """The pipeline of recipes/shapes_video_t2v.toml and recipes/shapes_video.toml at toy size, 2 steps each."""
    from byg_cli.eval.shapes_video_eval import evaluate_run
    from byg_cli.recipe import load_recipe
    from byg_cli.pipeline import train_and_evaluate as train

    tiny = ["model.create.num_layers=1", "model.create.num_heads=2", "model.create.head_dim=12",
            "model.create.ffn_dim=32", "model.create.text_dim=16", "data.resolution=16", "data.frames=5",
            "train.steps=2", "train.batch_size=2", "train.sample_every=2", "train.checkpoint_every=2",
            "sample.count=1", "sample.steps=2", "train.threads=1", "eval.count=2", "eval.steps=2"]
    base = train(load_recipe("recipes/shapes_video_t2v.toml", [
        f"model.path='{tmp_path / 'init'}'", f"run.dir='{tmp_path / 't2v'}'", *tiny]), quiet=True)
    assert (base / "model" / "pixel_codec").is_dir() and (base / "model" / "text_encoder").is_dir()
    assert (base / "samples" / "step-0000002.png").is_file()
    after = json.loads((base / "eval" / "shapes_video_t2v.json").read_text())  # the recipe's [eval] step
    assert after["clips"] == 2 and after["frames"] == 10
    from typer.testing import CliRunner

    from byg_cli.cli import app

    result = CliRunner().invoke(app, ["eval", "shapes-video-base", "--model", str(base / "model"), "--count", "2",
                                      "--frames", "5", "--size", "16", "--steps", "2"])
    assert result.exit_code == 0, result.output
    assert "moves as captioned" in result.output
    report = json.loads((base / "eval" / "shapes_video_t2v.json").read_text())
    assert report["clips"] == 2 and report["frames"] == 10 and len(report["frame_readings"]) == 10
    assert report["per_frame"] == after["per_frame"]  # same captions, noise and steps as the recipe's [eval]
    assert (base / "eval" / "shapes_video_t2v_grid.png").is_file()
    run = train(load_recipe("recipes/shapes_video.toml", [
        f"model.path='{base / 'model'}'", f"run.dir='{tmp_path / 'byg'}'", "objective.rollout_steps=2",
        "objective.identity_warmup_steps=1", *[t for t in tiny if not t.startswith("model.create")]]), quiet=True)
    after = json.loads((run / "eval" / "shapes_video.json").read_text())  # the recipe's [eval] step
    summary = evaluate_run(run, count=2, steps=2)
    assert after["summary"] == summary
    assert summary["clips"] == 2 and summary["frames"] == 10
    for key in ("success_per_frame", "preservation_per_frame", "pixel_agreement", "shape_lost_fraction"):
        assert 0.0 <= summary[key] <= 1.0
    assert summary["flicker"] >= 0.0
    result = CliRunner().invoke(app, ["eval", "shapes-video", "--run", str(run), "--count", "2", "--steps", "2"])
    assert result.exit_code == 0, result.output
    assert "success / frame" in result.output
    report = json.loads((run / "eval" / "shapes_video.json").read_text())
    assert report["summary"] == summary and len(report["clips"]) == 2  # same seeds: the same edits and scores
    assert (run / "eval" / "shapes_video_grid.png").is_file()


@pytest.mark.slow
def test_the_video_recipe_trains_from_the_committed_base_on_a_fresh_checkout(tmp_path, monkeypatch):
    """recipes/shapes_video.toml as shipped (model.path = examples/shapes-video-base), cut to 2 steps, ends with its
    evaluation; the committed base is a two-stage pretrained Wan folder, not a random one."""
    from byg_cli.models.registry import load_model_folder
    from byg_cli.recipe import load_recipe
    from byg_cli.pipeline import train_and_evaluate as train

    root = Path(__file__).resolve().parents[1]
    monkeypatch.chdir(root)
    run = train(load_recipe(root / "recipes" / "shapes_video.toml", [
        f"run.dir='{tmp_path / 'run'}'", "train.steps=2", "objective.identity_warmup_steps=1", "train.batch_size=1",
        "train.sample_every=0", "train.checkpoint_every=2", "eval.count=1", "eval.steps=2"]), quiet=True)
    report = json.loads((run / "eval" / "shapes_video.json").read_text())
    assert report["summary"]["clips"] == 1 and report["summary"]["frames"] == 9
    base = load_model_folder(root / "examples" / "shapes-video-base", family="wan")
    assert base.transformer.config.num_attention_heads * base.transformer.config.attention_head_dim == 256


def test_a_video_evaluation_after_an_image_recipe_is_refused_when_the_recipe_is_read():
    from byg_cli.errors import BygError
    from byg_cli.recipe import load_recipe

    root = Path(__file__).resolve().parents[1]
    with pytest.raises(BygError, match=r"shapes.toml: eval.after = 'shapes-video' needs a video .*'flux'"):
        load_recipe(root / "recipes" / "shapes.toml", ['eval.after="shapes-video"'], check_paths=False)
    with pytest.raises(BygError, match=r"eval.after = 'shapes-edit' needs an image .*'wan'"):
        load_recipe(root / "recipes" / "shapes_video.toml", ['eval.after="shapes-edit"'], check_paths=False)
