"""Clip generation of make-data videos: captions -> styled prompts (LLM over a loopback server) -> clips from a
tiny random Wan2.2 folder (UniPC, guidance) written as mp4 -> keep list -> video records; resumable per clip."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.makedata_support import ChatServer, user_text
from typer.testing import CliRunner

from byg_cli.cli import app
from byg_cli.data import video as video_io
from byg_cli.data.records import read_records
from byg_cli.data.video import read_video
from byg_cli.errors import BygError
from byg_cli.makedata.journal import read_jsonl
from byg_cli.makedata.video_captions import read_captions, sample_captions
from byg_cli.makedata.video_clips import ClipSettings, generate_clips, load_t2v, sample_clips
from byg_cli.models.tiny_wan import write_tiny_wan

CAPTIONS = [
    ("u1", "A cartoon fox runs through a snowy forest."),
    ("u2", "A photorealistic red car drives on a wet street."),
    ("u3", "Two dogs play with a ball on a beach."),
    ("u4", "A cinematic shot of a cat on a roof."),
    ("u5", "A small boat on a calm lake at dawn."),
]
TINY = ["--frames", "5", "--height", "16", "--width", "16", "--fps", "8", "--steps", "2"]


@pytest.fixture(scope="module")
def tiny_wan(tmp_path_factory):
    torch.set_num_threads(1)
    return write_tiny_wan(tmp_path_factory.mktemp("tiny-wan") / "wan")


def sanitiser(body):
    caption = user_text(body).split("Caption: ", 1)[1]
    return re.sub(r"\b(cartoon|photorealistic|cinematic) ", "", caption)


def write_captions(path: Path) -> Path:
    path.write_text("".join(json.dumps({"id": cid, "caption": text}) + "\n" for cid, text in CAPTIONS))
    return path


def write_prompts(path: Path, n: int) -> Path:
    path.write_text("".join(json.dumps({"id": f"c{i}", "prompt": f"a red car number {i}"}) + "\n" for i in range(n)))
    return path


def test_cli_generates_clips_and_records_and_regenerates_only_a_missing_clip(tiny_wan, tmp_path):
    caps = write_captions(tmp_path / "ufo.jsonl")
    a, b, c = [cap.id for cap in sample_captions(read_captions(caps), 3, seed=0)]
    (tmp_path / "keep.txt").write_text(f"{a} keep\n{b} reject wrong style\n")
    out = tmp_path / "out" / "videos.jsonl"
    clips = out.parent / "clips"
    with ChatServer(answer=sanitiser) as server:
        args = ["make-data", "videos", str(caps), "--llm", server.url, "--t2v", str(tiny_wan), "--count", "3",
                "-o", str(out), *TINY, "--t2v-batch", "2", "--keep-list", str(tmp_path / "keep.txt")]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
        assert sorted(p.name for p in clips.iterdir()) == sorted(f"{i}.mp4" for i in (a, b, c))
        for cid in (a, b, c):
            video = read_video(clips / f"{cid}.mp4")
            assert video.frames.shape == (5, 16, 16, 3) and video.fps == 8
        (record,) = read_records(out)
        prompt = {r["id"]: r for r in read_jsonl(out.parent / "videos.prompts.jsonl")}[a]
        assert record.media_kind == "video" and record.media_path(out.parent) == (clips / f"{a}.mp4").resolve()
        assert record.src_caption == prompt["prompt"] and record.extra["clip_id"] == a
        assert json.loads(out.read_text().splitlines()[0])["video"] == f"clips/{a}.mp4"
        rejects = {r["clip_id"]: r["reason"] for r in read_jsonl(out.parent / "videos.rejects.jsonl")}
        assert rejects == {b: "rejected in the manual list",
                           c: "not reviewed (not in the manual list and no CLIP model given)"}

        original = read_video(clips / f"{b}.mp4").frames
        kept = {cid: (clips / f"{cid}.mp4").stat().st_mtime_ns for cid in (a, c)}
        (clips / f"{b}.mp4").unlink()
        posts = server.posts
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
    assert "clips: 1 generated, 2 already there" in result.output
    assert server.posts == posts  # every caption was already sanitised
    assert {cid: (clips / f"{cid}.mp4").stat().st_mtime_ns for cid in (a, c)} == kept
    again = read_video(clips / f"{b}.mp4").frames  # made alone this time, in a batch of two before
    assert again.shape == original.shape and np.abs(again.astype(int) - original.astype(int)).max() <= 2
    assert len(read_records(out)) == 1 and len(read_jsonl(out.parent / "videos.rejects.jsonl")) == 2


def test_clips_depend_on_id_and_seed_not_on_batch(tiny_wan):
    model = load_t2v(str(tiny_wan))
    settings = ClipSettings(frames=5, height=16, width=16, steps=2)
    pair = sample_clips(model, ["a red car", "a blue dog"], ["x", "y"], settings)
    assert pair.shape == (2, 3, 5, 16, 16) and pair.min() >= -1 and pair.max() <= 1
    alone = sample_clips(model, ["a blue dog"], ["y"], settings)
    torch.testing.assert_close(alone[0], pair[1], atol=1e-4, rtol=0)
    other_seed = sample_clips(model, ["a blue dog"], ["y"], ClipSettings(frames=5, height=16, width=16, steps=2,
                                                                         seed=1))
    assert (other_seed - alone).abs().max() > 1e-3
    unguided = sample_clips(model, ["a blue dog"], ["y"], ClipSettings(frames=5, height=16, width=16, steps=2,
                                                                       guidance=1.0, guidance_2=1.0))
    assert (unguided - alone).abs().max() > 1e-3


def test_killed_run_resumes_with_every_clip_once(tiny_wan, tmp_path, monkeypatch):
    prompts = write_prompts(tmp_path / "p.jsonl", 3)
    clips = tmp_path / "clips"
    settings = ClipSettings(frames=5, height=16, width=16, steps=2)
    calls = []
    real_write = video_io.write_video

    def dies_while_writing_the_second(path, frames, fps, **kw):
        calls.append(path)
        real_write(path, frames, fps, **kw)
        if len(calls) == 2:  # the process dies after the file's bytes, before the rename
            raise KeyboardInterrupt

    monkeypatch.setattr(video_io, "write_video", dies_while_writing_the_second)
    with pytest.raises(KeyboardInterrupt):
        generate_clips(prompts, str(tiny_wan), clips, settings)
    assert sorted(p.name for p in clips.iterdir()) == [".c1.partial.mp4", "c0.mp4"]
    monkeypatch.setattr(video_io, "write_video", real_write)
    assert generate_clips(prompts, str(tiny_wan), clips, settings) == {"generated": 2, "skipped": 1}
    assert sorted(p.name for p in clips.iterdir()) == ["c0.mp4", "c1.mp4", "c2.mp4"]
    assert generate_clips(prompts, str(tiny_wan), clips, settings) == {"generated": 0, "skipped": 3}


def test_bad_clip_options_and_model_folder(tiny_wan, tmp_path):
    prompts = write_prompts(tmp_path / "p.jsonl", 1)
    with pytest.raises(BygError, match=r"--frames 6: this model needs 4k\+1 frames \(e.g. 5 or 9\)"):
        generate_clips(prompts, str(tiny_wan), tmp_path / "clips", ClipSettings(frames=6, height=16, width=16))
    with pytest.raises(BygError, match=r"--width 24: must be a multiple of 16"):
        generate_clips(prompts, str(tiny_wan), tmp_path / "clips", ClipSettings(frames=5, height=16, width=24))
    with pytest.raises(BygError, match=r"--guidance/--guidance-2 must be at least 1"):
        generate_clips(prompts, str(tiny_wan), tmp_path / "clips", ClipSettings(guidance=0.5))
    with pytest.raises(BygError, match=r"--t2v .*nowhere: no such model folder"):
        generate_clips(prompts, str(tmp_path / "nowhere"), tmp_path / "clips")
    assert not list((tmp_path / "clips").glob("*.mp4"))
