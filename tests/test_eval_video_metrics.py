"""Each video metric against a case worked out by hand, and the models loading from local paths."""

import math

import numpy as np
import pytest
import torch

from byg_cli.eval import video_metrics as vm
from byg_cli.eval.motion_fidelity import motion_fidelity, tracklet_correlation, tracks_from_flows
from byg_cli.eval.video_io import Video, read_video, write_video
from byg_cli.eval.video_models import ClipEncoder, DinoEncoder, FlowEstimator, load_aesthetic_head
from byg_cli.errors import BygError
from helpers.eval_helpers import make_tiny_clip, make_tiny_dino, make_tiny_raft, moving_square_video

torch.set_num_threads(1)


def test_temporal_flickering_by_hand():
    # grey levels 0, 51, 0, 51: every pair differs by 51 -> (255 - 51) / 255 = 0.8
    frames = np.stack([np.full((4, 5, 3), v, np.uint8) for v in (0, 51, 0, 51)])
    assert vm.temporal_flickering(frames) == pytest.approx(0.8)
    # 0 -> 10 -> 40: pair means 10 and 30, mean 20 -> 235 / 255
    frames = np.stack([np.full((2, 2, 3), v, np.uint8) for v in (0, 10, 40)])
    assert vm.temporal_flickering(frames) == pytest.approx(235 / 255)
    # half the pixels change by 100 in one pair: mean diff 50 over one pair
    a = np.zeros((2, 2, 3), np.uint8)
    b = a.copy()
    b[0] = 100
    assert vm.temporal_flickering(np.stack([a, b])) == pytest.approx(205 / 255)


def test_directional_similarity_with_constructed_embeddings():
    e = torch.eye(3)
    # image moves from e0 to e1, text moves from e0 to e1: same direction
    assert float(vm.directional_similarity(e[:1], e[1:2], e[0], e[1])) == pytest.approx(1.0)
    # text moves from e0 to e2: directions (-1, 1, 0) and (-1, 0, 1), cos = 1 / (sqrt2 sqrt2) = 0.5
    assert float(vm.directional_similarity(e[:1], e[1:2], e[0], e[2])) == pytest.approx(0.5)
    # opposite edit: image from e1 to e0 -> -1; embeddings are normalised first, so scale does not matter
    assert float(vm.directional_similarity(3 * e[1:2], 0.5 * e[:1], e[0], 7 * e[1])) == pytest.approx(-1.0)
    # per frame: two frames, each with its own value
    sims = vm.directional_similarity(torch.stack([e[0], e[0]]), torch.stack([e[1], e[2]]), e[0], e[1])
    assert sims.tolist() == pytest.approx([1.0, 0.5])


def test_per_frame_cosine_by_hand():
    src = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    edit = torch.tensor([[2.0, 0.0], [1.0, -1.0]])
    assert vm.per_frame_cosine(src, edit).tolist() == pytest.approx([1.0, 0.0])


def square_flow(size=64, square=16, u=10.0, v=0.0):
    """The flow of a 16x16 square moving by (u, v) over a static background."""
    flow = torch.zeros(2, size, size)
    flow[0, 24 : 24 + square, 8 : 8 + square] = u
    flow[1, 24 : 24 + square, 8 : 8 + square] = v
    return flow


def test_dynamic_degree_on_synthetic_motion():
    # 256 moving pixels of 4096 (6.25 % > 5 %): the top int(4096 * 0.05) = 204 magnitudes are all 10
    assert vm.top_fraction_mean(square_flow()) == pytest.approx(10.0)
    # (6, 8) has magnitude 10 too
    assert vm.top_fraction_mean(square_flow(u=6.0, v=8.0)) == pytest.approx(10.0)
    # a 8x8 square (64 pixels) fills only part of the top 204: mean = 64 * 10 / 204
    small = square_flow(square=8)
    assert vm.top_fraction_mean(small) == pytest.approx(640 / 204)
    # thresholds: 6 * min(H, W) / 256 and round(4 T / 16); slow frame rates raise the threshold
    assert vm.dynamic_thresholds(64, 80, 8, fps=8) == (1.5, 2)
    assert vm.dynamic_thresholds(480, 832, 41, fps=16) == (11.25, 10)
    assert vm.dynamic_thresholds(64, 64, 8, fps=4) == (3.0, 2)
    moving = [vm.top_fraction_mean(square_flow()) for _ in range(7)]  # 8 frames, 7 pairs
    still = [vm.top_fraction_mean(torch.zeros(2, 64, 64)) for _ in range(7)]
    once = still[:6] + moving[:1]
    assert vm.is_dynamic(moving, 64, 64, 8, 8) and not vm.is_dynamic(still, 64, 64, 8, 8)
    assert not vm.is_dynamic(once, 64, 64, 8, 8)  # needs 2 pairs above 1.5
    assert vm.is_dynamic(once[:5] + moving[:2], 64, 64, 8, 8)
    # the dataset score is the fraction of dynamic videos: 3 of 4 -> 0.75
    assert np.mean([1.0, 1.0, 1.0, 0.0]) == 0.75


def test_video_sampling_for_dynamic_degree(tmp_path):
    frames = moving_square_video(n_frames=8)
    path = write_video(tmp_path / "v.mp4", frames, fps=16)
    video = read_video(path)
    assert video.frames.shape == frames.shape and video.fps == pytest.approx(16)
    assert np.abs(video.frames.astype(int) - frames).mean() < 3  # near-lossless round trip
    assert len(video.subsampled_for_motion()) == 4  # every round(16 / 8) = 2nd frame
    folder_video = Video(frames, 8.0, tmp_path)
    assert len(folder_video.subsampled_for_motion()) == 8


def test_motion_fidelity_by_hand():
    t = torch.arange(4, dtype=torch.float32)
    right = torch.stack([t * 2, torch.zeros(4)], -1)  # moves +x
    up = torch.stack([torch.zeros(4), -t], -1)  # moves -y
    src = torch.stack([right, up])
    assert tracklet_correlation(src, src).tolist() == [[1.0, 0.0], [0.0, 1.0]]
    assert motion_fidelity(src, src) == pytest.approx(1.0)
    assert motion_fidelity(src, src, "reference-code") == pytest.approx(0.0)  # the identity subtraction
    swapped = torch.stack([up, right])
    assert motion_fidelity(src, swapped) == pytest.approx(1.0)
    assert motion_fidelity(src, swapped, "reference-code") == pytest.approx(1.0)
    both_right = torch.stack([right, right])
    # corr(edit, src) = [[1, 0], [1, 0]]: edit->src maxima 1, 1; src->edit maxima 1, 0 -> (1 + 0.5) / 2
    assert motion_fidelity(src, both_right) == pytest.approx(0.75)
    assert motion_fidelity(src, both_right, "reference-code") == pytest.approx(0.5)
    # a point that never moves correlates 0 with everything (no NaN)
    still = torch.zeros(1, 4, 2)
    assert tracklet_correlation(still, src).tolist() == [[0.0, 0.0]]
    # half the steps reversed: (1 - 1 + 1) / 3
    zigzag = torch.tensor([[[0.0, 0], [1, 0], [0, 0], [1, 0]]])
    assert float(tracklet_correlation(zigzag, right[None])) == pytest.approx(1 / 3)


def test_tracks_follow_a_constant_flow():
    flows = torch.zeros(3, 2, 32, 32)
    flows[:, 0], flows[:, 1] = 2.0, 1.0
    tracks = tracks_from_flows(flows, grid_size=4)
    assert tracks.shape == (16, 4, 2)
    assert torch.allclose(tracks[5, 1:] - tracks[5, :-1], torch.tensor([2.0, 1.0]).expand(3, 2))
    assert float(tracks[..., 0].max()) <= 31 and float(tracks[..., 1].max()) <= 31  # kept inside the frame


def test_models_load_from_local_paths(tmp_path):
    frames = moving_square_video(n_frames=3)
    clip = ClipEncoder(make_tiny_clip(tmp_path / "clip"))
    emb = clip.images(frames)
    assert emb.shape == (3, 32) and torch.allclose(emb.norm(dim=-1), torch.ones(3))
    txt = clip.texts(["a photo", "a cartoon"])
    assert txt.shape == (2, 32)
    dino = DinoEncoder(make_tiny_dino(tmp_path / "dino"))
    feats = dino.cls(frames)
    assert feats.shape == (3, 32)
    assert vm.per_frame_cosine(feats, dino.cls(frames)).tolist() == pytest.approx([1.0] * 3, abs=1e-5)
    flow = FlowEstimator(make_tiny_raft(tmp_path / "raft.pth"), variant="small", iters=2)
    flows = flow.pair_flows(moving_square_video(n_frames=3, size=130)[:, :, :124])  # 130x124 pads to 136x128
    assert flows.shape == (2, 2, 136, 128) and torch.isfinite(flows).all()
    with pytest.raises(BygError, match="at least 128"):
        flow.pair_flows(moving_square_video(n_frames=2, size=64))
    with pytest.raises(BygError, match="do not fit torchvision's raft_large"):
        FlowEstimator(tmp_path / "raft.pth", variant="large")


def test_aesthetic_head_by_hand(tmp_path):
    clip = ClipEncoder(make_tiny_clip(tmp_path / "clip"))
    frames = moving_square_video(n_frames=2)
    unit = clip.images(frames[:1], preprocess="vbench")[0]
    # a head whose weight is 10x the first frame's unit embedding scores that frame 10 * 1 / 10 = 1.0
    torch.save({"weight": 10 * unit[None], "bias": torch.tensor([0.5])}, tmp_path / "head.pth")
    head = load_aesthetic_head(tmp_path / "head.pth", clip.embed_dim)
    with torch.no_grad():
        scores = vm.aesthetic_scores(clip.images(frames[[0, 0]], preprocess="vbench"), head)
    assert scores.tolist() == pytest.approx([1.05, 1.05], abs=1e-5)  # (10 * 1 + 0.5) / 10
    torch.save({"weight": torch.zeros(1, 768), "bias": torch.zeros(1)}, tmp_path / "l14.pth")
    with pytest.raises(BygError, match="expects 768-d embeddings but the CLIP model gives 32-d"):
        load_aesthetic_head(tmp_path / "l14.pth", clip.embed_dim)
    assert not math.isnan(float(scores.mean()))


def test_clip_from_an_openai_checkpoint_file(tmp_path):
    from helpers.eval_helpers import make_tiny_openai_clip

    clip = ClipEncoder(make_tiny_openai_clip(tmp_path / "ViT-tiny.pt"))
    assert clip.size == 32 and clip.embed_dim == 32
    emb = clip.images(moving_square_video(n_frames=2))
    txt = clip.texts(["a source caption", "a target caption"])
    assert emb.shape == (2, 32) and txt.shape == (2, 32) and torch.isfinite(txt).all()
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(BygError, match="not an OpenAI CLIP checkpoint"):
        ClipEncoder(tmp_path / "junk.pt")
