"""The transformers backend and the image job through a real tiny random Qwen2-VL (garbage answers)."""

import json

import pytest
import torch
from helpers.makedata_support import build_tiny_qwen_vl, make_images
from PIL import Image

from byg_cli.data.records import read_records
from byg_cli.errors import BygError
from byg_cli.makedata.images import make_image_edits
from byg_cli.makedata.journal import read_jsonl
from byg_cli.vlm import ChatBackend, ChatRequest, open_backend

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tiny_qwen(tmp_path_factory):
    return build_tiny_qwen_vl(tmp_path_factory.mktemp("tiny-qwen2-vl"))


@pytest.fixture(scope="module")
def backend(tiny_qwen):
    return open_backend(str(tiny_qwen), batch_size=2)


@pytest.mark.parametrize("family", ["qwen2_vl", "qwen2_5_vl", "qwen3_vl"])
def test_batched_answers_match_one_by_one_with_images_and_text_only(family, tiny_qwen, tmp_path):
    folder = tiny_qwen if family == "qwen2_vl" else build_tiny_qwen_vl(tmp_path / family, family)
    backend = open_backend(str(folder), batch_size=2)
    assert isinstance(backend, ChatBackend) and backend.name == folder.name
    assert backend.model.config.model_type == family
    red, blue = Image.new("RGB", (64, 48), (255, 0, 0)), Image.new("RGB", (30, 90), (0, 0, 255))
    reqs = [
        ChatRequest(text="a red car", images=[red], system="answer in json", max_new_tokens=6),
        ChatRequest(text="the dog on the street", images=[blue], max_new_tokens=6),
        ChatRequest(text="remove the cat", max_new_tokens=6),  # text-only
        ChatRequest(text="a red car now", images=[red, blue], max_new_tokens=6),
        ChatRequest(text="color", max_new_tokens=3),
    ]
    batched = backend.chat(reqs)
    singles = [backend.chat([r])[0] for r in reqs]
    assert len(batched) == 5 and all(isinstance(a, str) for a in batched)
    assert batched == singles  # left padding: batching does not change greedy answers
    assert any(a for a in batched)  # the random model does say something


def test_sampling_with_a_seed_is_reproducible(backend):
    req = ChatRequest(text="a red car", max_new_tokens=8, temperature=1.0, seed=3)
    assert backend.chat([req]) == backend.chat([req])


def test_image_job_rejects_every_garbage_answer_with_a_reason(tiny_qwen, tmp_path):
    images = make_images(tmp_path / "imgs", 5)
    out = tmp_path / "out" / "edits.jsonl"
    summary = make_image_edits(tmp_path / "imgs", open_backend(str(tiny_qwen), batch_size=4), out, seed=1, chunk=4,
                               max_new_tokens=40)
    assert summary.accepted == 0 and summary.rejected == 5
    assert not out.exists() or read_records(out) == []
    rejects = read_jsonl(out.with_name("edits.rejects.jsonl"))
    assert sorted(r["image"] for r in rejects) == sorted(f"../imgs/{p.relative_to(tmp_path / 'imgs').as_posix()}"
                                                         for p in images)
    for r in rejects:
        assert r["reason"] and r["vlm_model"].startswith("tiny-qwen2-vl") and len(r["allowed_types"]) == 3
        assert isinstance(r["vlm_raw"], str)
        assert r["reason"].startswith(KNOWN_REASONS), r["reason"]


KNOWN_REASONS = ("no JSON object", "the JSON object is never closed", "the answer's JSON", "the answer holds",
                 "missing field", "field(s) not a string", "empty field", "edit_type")


def test_not_a_qwen_vl_folder(tmp_path):
    with pytest.raises(BygError, match="no such model folder"):
        open_backend(str(tmp_path / "missing"))
    with pytest.raises(BygError, match="no config.json"):
        open_backend(str(tmp_path))
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with pytest.raises(BygError, match="'llama' is not a Qwen-VL-family model"):
        open_backend(str(tmp_path))
