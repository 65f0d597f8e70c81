"""`byg eval video` end to end on tiny videos with tiny models from local paths: per-method mean ± SEM,
report files, the per-video cache, and the CLI."""

import json

import numpy as np
import PIL.Image
import pytest
import torch
from rich.console import Console
from typer.testing import CliRunner

from byg_cli.cli import app
from byg_cli.errors import BygError
from byg_cli.eval.video import VideoModels, read_captions, run_video
from byg_cli.eval.video_io import write_video
from byg_cli.eval.video_models import ClipEncoder, DinoEncoder, FlowEstimator, load_aesthetic_head
from helpers.eval_helpers import make_tiny_clip, make_tiny_dino, make_tiny_raft, moving_square_video

torch.set_num_threads(1)
QUIET = Console(file=open("/dev/null", "w"))


def write_frames(folder, frames):
    folder.mkdir(parents=True)
    for i, frame in enumerate(frames):
        PIL.Image.fromarray(frame).save(folder / f"{i:03d}.png")


@pytest.fixture
def videos(tmp_path):
    moving = moving_square_video(n_frames=6, size=128, step=6)
    still = np.repeat(moving[:1], 6, axis=0)
    write_video(tmp_path / "src" / "a.mp4", moving, fps=8)
    write_frames(tmp_path / "src" / "b", still)
    write_video(tmp_path / "same" / "a.mp4", moving, fps=8)
    write_frames(tmp_path / "same" / "b", still)
    write_video(tmp_path / "inv" / "a.mp4", 255 - moving, fps=8)  # b missing for this method
    (tmp_path / "captions.jsonl").write_text(
        '{"id": "a", "source_caption": "a yellow square", "target_caption": "a blue square"}\n'
        '{"id": "b", "source_caption": "a still photo", "target_caption": "a still cartoon"}\n')
    return tmp_path


def test_video_benchmark_end_to_end(videos, tmp_path):
    clip = ClipEncoder(make_tiny_clip(tmp_path / "clip"))
    torch.save({"weight": torch.ones(1, 32) / 32, "bias": torch.tensor([5.0])}, tmp_path / "head.pth")
    # precomputed tracks for the "inv" method: its points all move right, like the square, never up
    # and for the source: one tracklet moving right, one moving up
    (tmp_path / "tracks" / "inv").mkdir(parents=True)
    (tmp_path / "tracks" / "source").mkdir(parents=True)
    t = np.arange(6, dtype=np.float32)
    right, up = np.stack([t, np.zeros(6)], -1), np.stack([np.zeros(6), -t], -1)
    np.save(tmp_path / "tracks" / "inv" / "a.npy", np.stack([right] * 3))
    np.save(tmp_path / "tracks" / "source" / "a.npy", np.stack([right, up]))
    models = VideoModels(clip=clip, dino=DinoEncoder(make_tiny_dino(tmp_path / "dino")),
                         flow=FlowEstimator(make_tiny_raft(tmp_path / "raft.pth"), variant="small", iters=3),
                         aesthetic_head=load_aesthetic_head(tmp_path / "head.pth", 32),
                         tracks_dir=tmp_path / "tracks", track_grid=4)
    out = tmp_path / "out"
    result = run_video(videos / "src", {"same": videos / "same", "inv": videos / "inv"}, videos / "captions.jsonl",
                       out, models, console=QUIET)
    s = result["summary"]
    assert s["source"]["temporal_flicker"]["n"] == 2 and s["inv"]["temporal_flicker"]["n"] == 1
    per_video = json.loads((out / "video-metrics.json").read_text())["per_video"]
    # a still video does not flicker; the identical edit flickers as its source
    assert per_video["source"]["b"]["temporal_flicker"] == pytest.approx(1.0)
    assert per_video["same"]["a"]["temporal_flicker"] == pytest.approx(per_video["source"]["a"]["temporal_flicker"])
    # identical edit: DINO similarity 1, CLIP direction 0 (no image change)
    assert s["same"]["dino_sim"]["mean"] == pytest.approx(1.0, abs=1e-5)
    assert s["same"]["clip_dir"]["mean"] == pytest.approx(0.0, abs=1e-6)
    # motion fidelity from the given tracks: corr(edit, src) = [[1, 0]] x 3 -> (1 + (1 + 0) / 2) / 2 = 0.75
    assert per_video["inv"]["a"]["motion_fidelity"] == pytest.approx(0.75)
    # video b has no tracks on disk: the built-in tracker follows the same flows in both identical videos
    assert per_video["same"]["b"]["motion_fidelity"] > 0.9
    # aesthetic: a head of ones/32 on a unit vector plus bias 5, / 10 -> between (5 - sqrt(32)/32) / 10 and (5 + ...) / 10
    assert 0.48 < s["source"]["aesthetic"]["mean"] < 0.52
    # dynamic degree is a fraction of videos, SEM over 2 videos
    assert s["source"]["dynamic_degree"]["n"] == 2 and s["source"]["dynamic_degree"]["mean"] in (0.0, 0.5, 1.0)
    assert result["summary"]["inv"]["motion_fidelity"]["n"] == 1
    md = (out / "video-metrics.md").read_text()
    assert "| Method | CLIP dir ↑ | DINO Sim. ↑ | Motion Fid. ↑ |" in md
    assert "| source | – | – | – |" in md and " ± " in md and "inv: 1" in md  # one missing edit for inv
    assert (out / "video-metrics.png").read_bytes()[:4] == b"\x89PNG"

    # cached per video: a second run computes nothing (models are not even touched)
    cached = run_video(videos / "src", {"same": videos / "same", "inv": videos / "inv"}, videos / "captions.jsonl",
                       out, VideoModels(tracks_dir=tmp_path / "tracks"), console=QUIET)
    assert cached["summary"]["same"]["dino_sim"] == s["same"]["dino_sim"]


def test_cli_video_without_models_reports_flicker(videos, tmp_path):
    out = tmp_path / "cli-out"
    result = CliRunner().invoke(app, ["eval", "video", "--source", str(videos / "src"), "--edited",
                                      f"ours={videos / 'same'}", "--captions", str(videos / "captions.jsonl"),
                                      "--out", str(out), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    data = json.loads((out / "video-metrics.json").read_text())
    assert data["methods"]["ours"]["temporal_flicker"]["n"] == 2
    assert data["methods"]["ours"]["clip_dir"]["n"] == 0  # no --clip: skipped, said so
    assert "skipping CLIP dir" in result.output


def test_captions_errors_name_the_line(tmp_path):
    bad = tmp_path / "c.jsonl"
    bad.write_text('{"id": "a", "source_caption": "x", "target_caption": "y"}\n{"id": "b", "source_caption": "x"}\n')
    with pytest.raises(BygError, match=r"c.jsonl:2: field 'target_caption'"):
        read_captions(bad)
    good = tmp_path / "c.json"
    good.write_text('{"a": {"source_caption": "x", "target_caption": "y"}}')
    assert read_captions(good) == {"a": ("x", "y")}
