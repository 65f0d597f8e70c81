"""Video branch of make-data: captions -> LLM style-hint removal (text-only, over a loopback server) -> style
template -> (clip generation: tests/test_makedata_video_clips.py) -> manual keep/reject list and a CLIP style check
with a tiny random open_clip model -> video edit records."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from helpers.makedata_support import ChatServer, user_text

from byg_cli.data.records import read_records
from byg_cli.errors import BygError
from byg_cli.makedata.journal import read_jsonl
from byg_cli.makedata.parse import Rejected
from byg_cli.makedata.video_captions import (VIDEO_STYLES, clean_sanitised, make_video_prompts, pick_style,
                                             read_captions, sample_captions, wrap_caption)
from byg_cli.makedata.video_select import ClipStyleChecker, read_keep_list, select_clips
from byg_cli.vlm import open_backend

ROOT = Path(__file__).resolve().parents[1]
CAPTIONS = [
    ("u1", "A cartoon fox runs through a snowy forest, camera tracking it."),
    ("u2", "A photorealistic close-up of rain drops falling on a red umbrella."),
    ("u3", "Two children build a sandcastle on a beach at sunset."),
    ("u4", "An anime-style robot waves at the crowd in a busy street."),
    ("u5", "A cinematic aerial shot over green hills and a winding river."),
]


def write_captions_csv(path: Path) -> Path:
    rows = ['ID,Topic,Brief Caption,Detailed Caption']
    rows += [f'{cid},nature,short,"{text}"' for cid, text in CAPTIONS]
    path.write_text("\n".join(rows) + "\n")
    return path


def style_stripping_llm(body):
    """Acts as the sanitising LLM: drops style words; keeps 'anime-style' in to exercise the check."""
    caption = user_text(body).split("Caption: ", 1)[1]
    return re.sub(r"\b(cartoon|photorealistic|cinematic) ", "", caption)


def test_read_captions_csv_and_jsonl(tmp_path):
    caps = read_captions(write_captions_csv(tmp_path / "ufo.csv"))
    assert [(c.id, c.text) for c in caps] == CAPTIONS
    jl = tmp_path / "ufo.jsonl"
    jl.write_text("\n".join(json.dumps({"video_id": cid, "caption": t}) for cid, t in CAPTIONS) + "\n")
    assert read_captions(jl) == caps
    (tmp_path / "bad.csv").write_text("ID,title\n1,x\n")
    with pytest.raises(BygError, match=r"bad.csv:2: no caption column .*found ID, title"):
        read_captions(tmp_path / "bad.csv")
    assert sample_captions(caps, 3, seed=1) == sample_captions(caps, 3, seed=1)
    assert len(sample_captions(caps, 3, seed=1)) == 3 and sample_captions(caps, None, 0) == caps


def test_sanitised_caption_rules_and_template():
    assert clean_sanitised("<think>hmm</think>Caption: \"A fox runs.\"") == "A fox runs."
    for answer, why in [("", "empty"), ("An animated fox runs.", "'animated'"), ("A realistic fox.", "'realistic'")]:
        with pytest.raises(Rejected, match=why):
            clean_sanitised(answer)
    assert wrap_caption("A fox runs.", "cartoon") == "A fox runs. The video is in a cartoon style."
    styles = [pick_style(0, f"id{i}") for i in range(200)]
    assert styles == [pick_style(0, f"id{i}") for i in range(200)]
    assert 70 < styles.count("cartoon") < 130 and set(styles) == set(VIDEO_STYLES)
    with pytest.raises(BygError, match="unknown video style"):
        wrap_caption("x", "sepia")


def test_prompts_job_text_only_and_resumable(tmp_path):
    caps = write_captions_csv(tmp_path / "ufo.csv")
    prompts = tmp_path / "v.prompts.jsonl"
    with ChatServer(answer=style_stripping_llm, model="text-llm") as server:
        counts = make_video_prompts(caps, open_backend(server.url), prompts, seed=4, chunk=2)
        assert counts == {"written": 4, "rejected": 1, "skipped": 0}
        assert all(isinstance(b["messages"][-1]["content"], list) and
                   all(part["type"] == "text" for part in b["messages"][-1]["content"]) for b in server.bodies)
        posts = server.posts
        assert make_video_prompts(caps, open_backend(server.url), prompts, seed=4)["skipped"] == 5
        assert server.posts == posts
    rows = {r["id"]: r for r in read_jsonl(prompts)}
    assert rows["u1"]["sanitized"] == "A fox runs through a snowy forest, camera tracking it."
    assert rows["u1"]["prompt"] == wrap_caption(rows["u1"]["sanitized"], rows["u1"]["style"])
    assert rows["u1"]["llm_model"] == "text-llm" and rows["u1"]["style"] == pick_style(4, "u1")
    rejects = read_jsonl(tmp_path / "v.prompts.rejects.jsonl")
    assert [r["id"] for r in rejects] == ["u4"] and "'anime'" in rejects[0]["reason"]


def test_cli_prompts_then_t2v_names_a_missing_model_folder(tmp_path):
    caps = write_captions_csv(tmp_path / "ufo.csv")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with ChatServer(answer=style_stripping_llm) as server:
        base = [sys.executable, "-m", "byg_cli.cli", "make-data", "videos", str(caps), "--llm", server.url,
                "-o", str(tmp_path / "videos.jsonl"), "--count", "3"]
        proc = subprocess.run(base + ["--t2v", str(tmp_path / "no-wan")], env=env, capture_output=True, text=True)
    assert proc.returncode == 2
    assert f"error: --t2v {tmp_path / 'no-wan'}: no such model folder" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(read_jsonl(tmp_path / "videos.prompts.jsonl")) + len(read_jsonl(tmp_path / "videos.prompts.rejects.jsonl")) == 3


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    import open_clip
    from safetensors.torch import save_file

    folder = tmp_path_factory.mktemp("tiny-clip")
    cfg = {"embed_dim": 16, "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 8, "head_width": 16},
           "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": cfg, "preprocess_cfg": {
        "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}}))
    torch.manual_seed(0)
    model = open_clip.create_model(f"local-dir:{folder}", load_weights=False)
    save_file(model.state_dict(), folder / "open_clip_model.safetensors")
    return folder


def write_clip(path: Path, level: int) -> None:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=8)
        stream.width = stream.height = 32
        stream.pix_fmt = "yuv420p"
        for i in range(6):
            frame = np.full((32, 32, 3), (level + 20 * i) % 256, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def make_clips_setup(tmp_path):
    prompts = tmp_path / "v.prompts.jsonl"
    rows = [{"id": f"c{i}", "caption": "x", "sanitized": f"A fox number {i} runs.", "style": VIDEO_STYLES[i % 2],
             "prompt": wrap_caption(f"A fox number {i} runs.", VIDEO_STYLES[i % 2])} for i in range(5)]
    prompts.write_text("".join(json.dumps(r) + "\n" for r in rows))
    clips = tmp_path / "clips"
    clips.mkdir()
    for i in range(4):  # c4 has no clip
        write_clip(clips / f"c{i}.mp4", 40 * i)
    return prompts, clips


def test_clip_checker_scores(tiny_clip, tmp_path):
    _, clips = make_clips_setup(tmp_path)
    from byg_cli.makedata.video_select import read_frames

    checker = ClipStyleChecker(tiny_clip)
    frames = read_frames(clips / "c1.mp4", 4)
    assert len(frames) == 4
    scores = checker.style_probabilities(frames)
    assert set(scores) == set(VIDEO_STYLES) and sum(scores.values()) == pytest.approx(1.0, abs=1e-5)
    assert scores == checker.style_probabilities(frames)
    with pytest.raises(BygError, match="not an open_clip model folder"):
        ClipStyleChecker(tmp_path)


def test_keep_list_and_clip_check_select_clips_into_video_records(tiny_clip, tmp_path):
    prompts, clips = make_clips_setup(tmp_path)
    keep = tmp_path / "keep.txt"
    keep.write_text("# manual review\nc0 keep\nc1 reject  looks like a photo\n")
    assert read_keep_list(keep) == {"c0": True, "c1": False}
    out = tmp_path / "videos.jsonl"
    # threshold 1.0: the CLIP check (c2, c3) cannot pass, so only the manual keep survives
    counts = select_clips(prompts, clips, out, keep_list=keep, clip_model=tiny_clip, threshold=1.0)
    assert counts == {"kept": 1, "rejected": 4, "skipped": 0}
    rejects = {r["clip_id"]: r for r in read_jsonl(tmp_path / "videos.rejects.jsonl")}
    assert rejects["c1"]["reason"] == "rejected in the manual list"
    assert rejects["c2"]["reason"].startswith("CLIP style check: cartoon scored")
    assert rejects["c3"]["reason"].startswith("CLIP style check: photo-realistic scored")
    assert "no clip named c4.mp4" in rejects["c4"]["reason"]
    (record,) = read_records(out)
    assert record.media_kind == "video" and record.media_path(out.parent) == (clips / "c0.mp4").resolve()
    assert record.src_caption == "A fox number 0 runs. The video is in a cartoon style."
    assert record.instruction == "Turn the video to photo-realistic style"
    assert record.tgt_caption == "A fox number 0 runs. The video is in a photo-realistic style."
    assert record.reverse_instruction == "Turn the video to cartoon style" and record.edit_type == "style_change"
    assert select_clips(prompts, clips, out, keep_list=keep, clip_model=tiny_clip)["skipped"] == 5  # resumable
    # threshold 0: every CLIP-checked clip passes, with its scores kept
    out0 = tmp_path / "v0.jsonl"
    assert select_clips(prompts, clips, out0, clip_model=tiny_clip, threshold=0.0)["kept"] == 4
    assert all(set(r.extra["clip_scores"]) == set(VIDEO_STYLES) for r in read_records(out0))


def test_keep_list_errors(tmp_path):
    prompts, clips = make_clips_setup(tmp_path)
    bad = tmp_path / "keep.txt"
    bad.write_text("c0 maybe\n")
    with pytest.raises(BygError, match=r"keep.txt:1: expected 'ID keep' or 'ID reject'"):
        read_keep_list(bad)
    bad.write_text("zz keep\n")
    with pytest.raises(BygError, match=r"id\(s\) not in .*: zz"):
        select_clips(prompts, clips, tmp_path / "o.jsonl", keep_list=bad)
    bad.write_text("c0 keep\n")
    counts = select_clips(prompts, clips, tmp_path / "o.jsonl", keep_list=bad)
    assert counts["kept"] == 1 and "not reviewed" in read_jsonl(tmp_path / "o.rejects.jsonl")[0]["reason"]


def test_cli_selects_clips_into_records(tmp_path):
    from typer.testing import CliRunner

    from byg_cli.cli import app

    prompts, clips = make_clips_setup(tmp_path)
    (tmp_path / "keep.txt").write_text("c0 keep\nc3 keep\nc1 reject\n")
    result = CliRunner().invoke(app, ["make-data", "videos", "unused.csv", "-o", str(tmp_path / "v.jsonl"),
                                      "--clips", str(clips), "--keep-list", str(tmp_path / "keep.txt")])
    assert result.exit_code == 0, result.output
    assert [r.extra["clip_id"] for r in read_records(tmp_path / "v.jsonl")] == ["c0", "c3"]
