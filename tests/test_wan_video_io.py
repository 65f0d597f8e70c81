"""Video files: reading (PyAV), writing (imageio-ffmpeg), frame plans for 4k+1 clips, video edit records."""

import json
from fractions import Fraction

import numpy as np
import pytest
import torch
from helpers.wan_helpers import moving_square_clip, write_video_records

from byg_cli.data.sources import build_source
from byg_cli.data.video import (VideoEditDataset, clip_indices, edit_plan, fit_frames, from_video_tensor,
                                model_frame_count, read_video, to_video_tensor, write_video)
from byg_cli.errors import BygError
from byg_cli.recipe import DataConfig, recipe_from_dict


def test_write_then_read_keeps_frame_count_fps_and_content(tmp_path):
    path = moving_square_clip(tmp_path / "a.mp4", frames=7, fps=Fraction(30000, 1001), height=32, width=48)
    video = read_video(path)
    assert video.count == 7 and video.fps == Fraction(30000, 1001) and video.frames.shape == (7, 32, 48, 3)
    # the square moves: its column of mass shifts right frame after frame
    red = (video.frames[..., 0].astype(int) - video.frames[..., 2].astype(int)) > 100
    centres = [np.nonzero(m)[1].mean() for m in red]
    assert all(b > a for a, b in zip(centres, centres[1:]))
    picked = read_video(path, [6, 0, 0, 20])  # any order, repeats, past the end holds the last frame
    assert picked.frames.shape[0] == 4
    assert np.array_equal(picked.frames[1], video.frames[0]) and np.array_equal(picked.frames[3], video.frames[6])
    assert np.array_equal(picked.frames[0], video.frames[6])


@pytest.mark.parametrize("width", [32, 48, 125])
def test_lossless_clips_read_back_exactly_at_narrow_and_odd_widths(tmp_path, width):
    pixels = np.random.default_rng(width).integers(0, 256, (5, 32, width, 3), dtype=np.uint8)
    path = write_video(tmp_path / "a.mp4", pixels, 8, lossless=True)
    assert np.array_equal(read_video(path).frames, pixels)
    assert np.array_equal(read_video(path, [4, 1]).frames, pixels[[4, 1]])


def test_decord_misreads_48_pixel_wide_clips_which_is_why_byg_reads_with_pyav(tmp_path):
    """The mis-decode behind the PyAV default (docs/video_readers.md): decord 0.6.0, eva-decord 0.6.1 and decord2
    3.4.0 all return this clip's frames as (32, 48, 4) with wrong values. Runs only where decord imports; if it
    fails, that decord reads the clip: re-measure with examples/experiments/video_readers.py."""
    decord = pytest.importorskip("decord")
    pixels = np.random.default_rng(0).integers(0, 256, (5, 32, 48, 3), dtype=np.uint8)
    path = write_video(tmp_path / "a.mp4", pixels, 8, lossless=True)
    frame = decord.VideoReader(str(path))[2].asnumpy()
    assert frame.shape != (32, 48, 3) or not np.array_equal(frame, pixels[2])


def test_tensor_conversion_and_fit_to_the_grid(tmp_path):
    frames = np.random.default_rng(0).integers(0, 256, (5, 30, 50, 3), dtype=np.uint8)
    t = to_video_tensor(frames)
    assert t.shape == (3, 5, 30, 50) and t.min() >= -1 and t.max() <= 1
    assert np.array_equal(from_video_tensor(t), frames)
    assert fit_frames(frames, 32, 16).shape == (5, 16, 32, 3)


@pytest.mark.parametrize("n", list(range(1, 24)))
def test_edit_plan_gives_4k_plus_1_clips_and_maps_back_to_every_source_frame(n):
    most = 9
    clip, back = edit_plan(n, most)
    assert (len(clip) - 1) % 4 == 0 and len(clip) <= most and len(back) == n
    assert all(0 <= i < n for i in clip) and all(0 <= j < len(clip) for j in back)
    if n <= most:  # every output frame is the edit of its own source frame
        assert [clip[j] for j in back] == list(range(n)) and len(clip) == model_frame_count(n, most)
    else:  # nearest edited frame in time, in order
        assert back == sorted(back) and back[0] == 0 and back[-1] == len(clip) - 1
        assert all(abs(clip[j] - i) <= n / (most - 1) for i, j in enumerate(back))


def test_clip_indices_consecutive_or_resampled():
    assert clip_indices(24.0, 5) == [0, 1, 2, 3, 4]
    assert clip_indices(24.0, 5, fps=12.0) == [0, 2, 4, 6, 8]


def test_video_records_load_as_clips_at_the_recipes_size(tmp_path):
    records = write_video_records(tmp_path, count=2, frames=7, fps=8.0)
    cfg = DataConfig(kind="records", path=records, height=16, width=24, frames=5)
    source = build_source(cfg, seed=0)
    item = source.item(0)
    assert item["pixels"].shape == (3, 5, 16, 24) and item["instruction"].startswith("make the square")
    half = VideoEditDataset(records, 16, 16, frames=5, fps=4.0)[0]["pixels"]  # every other source frame
    full = VideoEditDataset(records, 16, 16, frames=5)[0]["pixels"]
    assert torch.allclose(half[:, 1], full[:, 2]) and not torch.allclose(half[:, 1], full[:, 1])


def test_video_errors_name_the_problem(tmp_path):
    with pytest.raises(BygError, match="no such file"):
        read_video(tmp_path / "missing.mp4")
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    with pytest.raises(BygError, match="bad.mp4: cannot"):
        read_video(bad)
    images = tmp_path / "images.jsonl"
    images.write_text(json.dumps({"image": "a.png", "src_caption": "a", "instruction": "b", "tgt_caption": "c",
                                  "reverse_instruction": "d", "edit_type": "color"}) + "\n")
    with pytest.raises(BygError, match="reads video records"):
        VideoEditDataset(images, 16, 16, 5)
    with pytest.raises(BygError, match="data.frames.*4k\\+1"):
        recipe_from_dict({"model": {"path": "m", "family": "wan"}, "data": {"frames": 8}})


def test_write_video_creates_the_folder(tmp_path):
    out = write_video(tmp_path / "sub" / "x.mp4", np.zeros((3, 16, 16, 3), np.uint8), 5)
    assert read_video(out).count == 3
