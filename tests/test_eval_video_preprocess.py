"""The video metrics' preprocessing as their reference scripts do it, each against values worked out by hand:
CLIP directional similarity squashes the whole frame (InstructPix2Pix's ClipSimilarity), the aesthetic score
resizes VBench's float frames without antialiasing or clamping, and dynamic degree follows VBench's check_move
when a single frame is sampled."""

import numpy as np
import pytest
import torch
from torchvision import transforms as T

from byg_cli.eval import video_metrics as vm
from byg_cli.eval.video import VideoModels, VideoScorer
from byg_cli.eval.video_io import Video
from byg_cli.eval.video_models import CLIP_PREPROCESS, squash_normalize, vbench_clip_normalize

torch.set_num_threads(1)
IDENTITY = ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))  # mean, std: the output is the resized image in [0, 1] units

# Bicubic (a = -0.75) halfway between two pixels: weights -0.09375, 0.59375, 0.59375, -0.09375.
NEAR, FAR = 1.25 * 0.5**3 - 2.25 * 0.5**2 + 1, -0.75 * 1.5**3 + 3.75 * 1.5**2 - 6 * 1.5 + 3


def as_tensor(frame: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(frame).permute(2, 0, 1)[None]


def test_bicubic_weights_by_hand():
    assert (NEAR, FAR) == (0.59375, -0.09375) and 2 * NEAR + 2 * FAR == 1.0


def test_clip_dir_squashes_the_whole_frame():
    # 2x4 frame, left half black, right half white, to 2x2: columns sample x = 0.5 and 2.5 (edges clamped)
    frame = np.zeros((2, 4, 3), np.uint8)
    frame[:, 2:] = 255
    out = squash_normalize(as_tensor(frame), 2, *IDENTITY)[0, 0]
    assert out.flatten().tolist() == pytest.approx([FAR, 2 * NEAR + FAR] * 2)  # [-0.09375, 1.09375]: not clamped
    # the crop keeps the aspect ratio and cuts the centre two columns: [0, 1]
    crop = CLIP_PREPROCESS["crop"](as_tensor(frame), 2, *IDENTITY)[0, 0]
    assert crop.flatten().tolist() == pytest.approx([0.0, 1.0] * 2)


def test_clip_dir_on_480x832_frames_sees_the_left_edge():
    # a white band in columns 0..99: squashed, it lands in output columns 0..26 (100 * 224 / 832 = 26.9);
    # the centre crop starts at column (832 - 480) / 2 = 176 and never sees it
    frame = np.zeros((480, 832, 3), np.uint8)
    frame[:, :100] = 255
    squashed = squash_normalize(as_tensor(frame), 224, *IDENTITY)[0, 0]
    cropped = CLIP_PREPROCESS["crop"](as_tensor(frame), 224, *IDENTITY)[0, 0]
    assert squashed.shape == cropped.shape == (224, 224)
    assert squashed[:, :25].min() > 0.99 and squashed[:, 28:].abs().max() < 0.02
    assert cropped.abs().max() == 0.0


def test_aesthetic_resize_as_vbench_by_hand():
    # vertical stripes 0, 0, 255, 255, ... on 448x448 -> 224x224 (scale 2, no antialiasing): output column i
    # samples x = 2i + 0.5; even i sees (255, 0, 0, 255) -> 2 * FAR * 255 = -47.8125, odd i sees
    # (0, 255, 255, 0) -> 2 * NEAR * 255 = 302.8125; VBench's frames are floats, so nothing is rounded or clamped
    frame = np.zeros((448, 448, 3), np.uint8)
    frame[:, (np.arange(448) % 4) >= 2] = 255
    out = vbench_clip_normalize(as_tensor(frame), 224, *IDENTITY)[0, 0] * 255
    assert out.shape == (224, 224)
    assert out[100, 2:-2:2].tolist() == pytest.approx([2 * FAR * 255] * 110)
    assert out[100, 3:-2:2].tolist() == pytest.approx([2 * NEAR * 255] * 110)
    # torchvision's v1 transforms on the same float tensor, antialias off as in the torchvision < 0.16 VBench pins
    v1 = T.Compose([T.Resize(224, interpolation=T.InterpolationMode.BICUBIC, antialias=False), T.CenterCrop(224)])
    assert torch.allclose(out / 255, v1(as_tensor(frame).float())[0, 0] / 255, atol=1e-5)
    # a 480x832 frame keeps its aspect ratio (224x388) and is centre-cropped
    wide = torch.zeros(1, 3, 480, 832, dtype=torch.uint8)
    assert vbench_clip_normalize(wide, 224, *IDENTITY).shape == (1, 3, 224, 224)


class StillFlow:
    """A flow estimator that finds no motion and counts its calls."""

    def __init__(self):
        self.calls = 0

    def pair_flows(self, frames):
        self.calls += 1
        assert len(frames) >= 2, "RAFT asked for flow with fewer than two frames"
        return torch.zeros(len(frames) - 1, 2, *frames.shape[1:3])


def test_dynamic_degree_single_sampled_frame_is_not_dynamic(tmp_path):
    # one sampled frame: round(4 * 1 / 16) = 0 pairs needed, but check_move's loop has no pair to answer in
    assert vm.dynamic_thresholds(64, 64, 1, fps=8) == (1.5, 0)
    assert not vm.is_dynamic([], 64, 64, 1, 8)
    # two sampled frames: round(4 * 2 / 16) = round(0.5) = 0, and check_move answers "moving" after the first
    # pair whatever its score
    assert vm.dynamic_thresholds(64, 64, 2, fps=8) == (1.5, 0) and vm.is_dynamic([0.0], 64, 64, 2, 8)
    frames = np.zeros((2, 64, 64, 3), np.uint8)
    flow = StillFlow()
    scorer = VideoScorer(VideoModels(flow=flow))
    # 2 frames of a 16 fps file: every round(16 / 8) = 2nd frame is sampled, so one frame
    assert scorer.no_reference(Video(frames, 16.0, tmp_path / "v.mp4"))["dynamic_degree"] == 0.0
    assert flow.calls == 0
    assert scorer.no_reference(Video(frames, 8.0, tmp_path / "v.mp4"))["dynamic_degree"] == 1.0
    assert flow.calls == 1


def test_cached_numbers_made_with_other_preprocessing_are_recomputed(tmp_path):
    import json

    import PIL.Image
    from rich.console import Console

    from byg_cli.eval.video import run_video

    for name, level in (("src", 0), ("ours", 51)):
        folder = tmp_path / name / "a"
        folder.mkdir(parents=True)
        for i, value in enumerate((0, level, 0)):
            PIL.Image.new("RGB", (8, 8), (value,) * 3).save(folder / f"{i}.png")
    (tmp_path / "caps.jsonl").write_text('{"id": "a", "source_caption": "x", "target_caption": "y"}\n')
    stale = tmp_path / "out" / "per-video" / "ours" / "a.json"
    stale.parent.mkdir(parents=True)
    stale.write_text(json.dumps({"temporal_flicker": 0.123}))  # no settings: made by an older byg
    quiet = Console(file=open("/dev/null", "w"))
    result = run_video(tmp_path / "src", {"ours": tmp_path / "ours"}, tmp_path / "caps.jsonl", tmp_path / "out",
                       VideoModels(), console=quiet)
    # frames 0, 51, 0: both pairs differ by 51 -> (255 - 51) / 255 = 0.8
    assert result["summary"]["ours"]["temporal_flicker"]["mean"] == pytest.approx(0.8)
    assert json.loads(stale.read_text())["settings"] == VideoModels().settings()
    md = (tmp_path / "out" / "video-metrics.md").read_text()
    assert "static-camera clips only" in md and "CLIP dir preprocessing: squash" in md


def test_a_captions_file_of_one_line(tmp_path):
    from byg_cli.eval.video import read_captions

    one = tmp_path / "one.jsonl"
    one.write_text('{"id": "a", "source_caption": "x", "target_caption": "y"}\n')
    assert read_captions(one) == {"a": ("x", "y")}
