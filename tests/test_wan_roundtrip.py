"""A tiny random Wan folder end to end: `byg train` (ByG) on video records, then `byg edit clip.mp4`."""

import json
from fractions import Fraction

import pytest
from conftest import write_recipe
from typer.testing import CliRunner
from helpers.wan_helpers import moving_square_clip, tiny_wan_a14b, write_video_records  # noqa: F401  (fixture)

from byg_cli.cli import app
from byg_cli.data.video import read_video
from byg_cli.edit import Editor
from byg_cli.errors import BygError
from byg_cli.recipe import load_recipe


@pytest.fixture(scope="module")
def wan_run(tmp_path_factory, tiny_wan_a14b):
    root = tmp_path_factory.mktemp("wan-run")
    records = write_video_records(root / "data", count=4, frames=7, fps=8.0)
    recipe = write_recipe(root / "r.toml", tiny_wan_a14b, records, "byg", **{
        "model.family": "wan", "data.height": 32, "data.width": 32, "data.frames": 5,
        "objective.rollout_steps": 2, "objective.identity_warmup_steps": 1, "objective.identity_prob": 0.0,
        "objective.rollout_adapter": "edit", "objective.timesteps": {"kind": "logit_normal", "shift": 12.0},
        "train.steps": 3, "train.checkpoint_every": 3, "train.sample_every": 3,
        "inference.frames": 5, "inference.steps": 2})
    result = CliRunner().invoke(app, ["train", str(recipe), "--run-dir", str(root / "run")])
    assert result.exit_code == 0, result.output
    return root / "run"


@pytest.mark.slow
def test_byg_trains_on_video_records_and_moves_the_edit_lora(wan_run):
    losses = [json.loads(line) for line in (wan_run / "losses.jsonl").read_text().splitlines()]
    assert [row["step"] for row in losses] == [1, 2, 3]
    assert losses[0]["identity_step"] == 1.0 and losses[1]["identity_step"] == 0.0
    assert all(row["cycle"] > 0 and row["prior_fwd"] > 0 for row in losses[1:])
    from byg_cli.checkpoint import latest_checkpoint, load_tensors

    trained = load_tensors(latest_checkpoint(wan_run), "trainable")
    lora_b = [v for k, v in trained.items() if "lora_B" in k]
    assert lora_b and any(v.abs().sum() > 0 for v in lora_b)  # peft initialises B to zero: training moved it
    assert any(k.startswith("edit.transformer_2.") for k in trained)  # both experts carry a LoRA
    assert (wan_run / "samples" / "step-0000003.png").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("frames, fps", [(7, Fraction(12)), (11, Fraction(30000, 1001))])
def test_byg_edit_writes_an_mp4_with_the_sources_frame_count_and_fps(tmp_path, wan_run, frames, fps):
    # inference.frames = 5 caps the clip: both sources are sampled onto 5 frames and the output holds frames
    clip = moving_square_clip(tmp_path / "clip.mp4", frames, fps, height=40, width=48)
    out = tmp_path / "out" / "edited.mp4"
    result = CliRunner().invoke(app, ["edit", str(clip), "make the square blue", "--run", str(wan_run),
                                      "-o", str(out)])
    assert result.exit_code == 0, result.output
    edited = read_video(out)
    assert edited.count == frames and edited.fps == fps
    assert edited.frames.shape[1:] == (32, 32, 3)  # the model's grid (data.height x data.width)


@pytest.mark.slow
def test_short_videos_are_edited_frame_for_frame(tmp_path, wan_run):
    editor = Editor.from_run(wan_run)
    assert editor.inference.sampler == "auto" and editor.model.capabilities.samplers[0] == "unipc"
    video = read_video(moving_square_clip(tmp_path / "c.mp4", 3, 10))
    a = editor.edit_video(video, "make the square blue", steps=2, seed=1)
    b = editor.edit_video(video, "make the square blue", steps=2, seed=1)
    assert a.count == 3 and a.fps == 10 and (a.frames == b.frames).all()
    assert not (a.frames[0] == a.frames[2]).all()  # the held padding frames were dropped, not the real ones


@pytest.mark.slow
def test_video_edit_errors_name_the_problem(tmp_path, wan_run):
    clip = moving_square_clip(tmp_path / "c.mp4", 5, 8)
    result = CliRunner().invoke(app, ["edit", str(clip), "x", "--run", str(wan_run), "-o", str(tmp_path / "o.png")])
    assert isinstance(result.exception, BygError) and "give a video file name" in str(result.exception)
    from PIL import Image

    Image.new("RGB", (32, 32)).save(tmp_path / "i.png")
    result = CliRunner().invoke(app, ["edit", str(tmp_path / "i.png"), "x", "--run", str(wan_run),
                                      "-o", str(tmp_path / "o.png")])
    assert isinstance(result.exception, BygError) and "edits videos" in str(result.exception)


def test_the_paper_video_recipe_loads_with_appendix_b2_values():
    cfg = load_recipe("recipes/wan_video.toml", check_paths=False)
    assert cfg.model.family == "wan" and cfg.model.lora_rank == 64
    assert cfg.train.lr == 1e-4 and cfg.train.batch_size == 8 and cfg.train.steps == 750
    assert cfg.objective.identity_prob == pytest.approx(0.10) and cfg.objective.rollout_adapter == "edit"
    assert cfg.objective.timesteps.kind == "logit_normal" and cfg.objective.timesteps.shift == 12.0
    assert (cfg.data.height, cfg.data.width) == (320, 576)
    inf = cfg.inference
    assert (inf.sampler, inf.height, inf.width, inf.frames) == ("unipc", 480, 832, 81)
