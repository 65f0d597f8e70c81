"""VIEScore: parsing a corpus of messy judge answers, and the SC / PQ / O combination."""

import math

import PIL.Image
import torch
import pytest

from byg_cli.eval.viescore import Judgement, JudgeItem, VieScorer, parse_scores, pq_prompt, sc_prompt

GOOD = [
    ('{"score": [7, 9], "reasoning": "fine"}', [7, 9]),
    ('```json\n{\n  "score" : [6, 8],\n  "reasoning" : "ok"\n}\n```', [6, 8]),
    ('Here is my evaluation.\n{"score": [3, 10], "reasoning": "barely edited"}\nHope this helps!', [3, 10]),
    ("{'score': [5, 4], 'reasoning': 'python style quotes'}", [5, 4]),
    ('{score: [2, 7], reasoning: "unquoted keys"}', [2, 7]),
    ('{"score": [8, 6,], "reasoning": "trailing comma",}', [8, 6]),
    ('{"score": [\n  9,\n  9\n], "reasoning": "list over lines"}', [9, 9]),
    ('{"score": ["7", "8"], "reasoning": "numbers as strings"}', [7, 8]),
    ('{"score": [7.5, 8.25], "reasoning": "floats"}', [7.5, 8.25]),
    ('{"score": [6, 9], "reasoning": "the {cat} is "blue" now"}', [6, 9]),  # broken JSON, field regex
    ('||V^=^V||\n{"score": [4, 5], "reasoning": "delimited"}\n||V^=^V||', [4, 5]),
    ("[5, 6]", [5, 6]),
    ("<think>score = [1, 1] was my first idea</think>{\"score\": [8, 7], \"reasoning\": \"x\"}", [8, 7]),
    ('The format is {"score": [...]}. My answer: {"score": [3, 4], "reasoning": "r"}', [3, 4]),
    ('{"Score": [10, 0], "Reasoning": "capitalised key"}', [10, 0]),
    ('score = [4, 8]', [4, 8]),
    ("Final answer: [8, 10]", [8, 10]),
    ("Both look fine.\n\n[6, 7].", [6, 7]),
]

BAD = [
    ("", "empty"),
    ("I cannot evaluate this image.", "no score"),
    ('{"score": [11, 3], "reasoning": "out of range"}', "outside"),
    ('{"score": [7], "reasoning": "one score"}', "expected 2"),
    ('{"reasoning": "forgot the score"}', "no score"),
    ('{"score": "high", "reasoning": "words"}', "not a list of numbers"),
    ('{"score": [-1, 5]}', "outside"),
    ("I'd give it 7 out of 10 and 8 out of 10", "no score"),
    ("Scores: [7, 8, 9]", "expected 2"),
]


@pytest.mark.parametrize("text,expected", GOOD)
def test_parse_messy_but_valid_answers(text, expected):
    parsed = parse_scores(text, 2)
    assert parsed.ok, parsed.error
    assert parsed.scores == [float(v) for v in expected]


@pytest.mark.parametrize("text,reason", BAD)
def test_parse_failures_carry_a_reason(text, reason):
    parsed = parse_scores(text, 2)
    assert not parsed.ok
    assert reason in parsed.error


def test_bare_number_for_a_single_score():
    assert parse_scores("7", 1).scores == [7.0]
    assert not parse_scores("7", 2).ok


def test_prompts_carry_the_instruction_and_the_rules():
    sc = sc_prompt("make the sky pink")
    assert "Editing instruction: make the sky pink" in sc and "over-editing" in sc and "first is the original" in sc
    assert "naturalness" in pq_prompt() and "artifacts" in pq_prompt() and "<instruction>" not in sc


class ScriptedBackend:
    """Answers with the given strings in order and records the requests (images and prompts)."""

    name = "scripted"

    def __init__(self, answers):
        self.answers, self.seen = list(answers), []

    def chat(self, requests):
        self.seen.extend(requests)
        return [self.answers.pop(0) for _ in requests]


def _item(size=(32, 24)):
    return JudgeItem(PIL.Image.new("RGB", size, "red"), PIL.Image.new("RGB", (16, 16), "blue"), "make it blue")


def test_sc_pq_o_combination_and_requests():
    backend = ScriptedBackend(['{"score": [8, 2]}', '{"score": [9, 4]}'])
    (j,) = VieScorer(backend).judge([_item()])
    assert (j.sc, j.pq) == (2.0, 4.0) and j.o == pytest.approx(math.sqrt(8.0))
    sc_req, pq_req = backend.seen
    assert len(sc_req.images) == 2 and len(pq_req.images) == 1
    assert sc_req.images[1].size == (32, 24)  # edited resized to the source size, as the benchmark does
    assert pq_req.images[0].getpixel((0, 0)) == (0, 0, 255)


def test_parse_failure_is_recorded_not_replaced():
    backend = ScriptedBackend(["no idea", '{"score": [9, 4]}'])
    (j,) = VieScorer(backend).judge([_item()])
    assert j.parse_failed and j.sc is None and j.o is None and j.pq == 4.0
    assert j.sc_raw == "no idea" and "no score" in j.sc_error
    roundtrip = Judgement.from_dict(j.to_dict())
    assert roundtrip.parse_failed and roundtrip.pq == 4.0


def test_random_fill_only_when_asked():
    backend = ScriptedBackend(["no idea", '{"score": [9, 4]}'])
    (j,) = VieScorer(backend, random_on_parse_failure=True, seed=3).judge([_item()])
    assert j.parse_failed and j.random_filled == ["sc"]
    assert all(0 <= s <= 10 and s == int(s) for s in j.sc_scores) and j.o is not None


def test_judging_through_a_tiny_transformers_judge(tmp_path):
    """The transformers backend (local folder) end to end: a random tiny Qwen2-VL answers garbage, and every
    answer ends up either as valid 0..10 scores or as a counted parse failure, never as a made-up score."""
    from helpers.makedata_support import build_tiny_qwen_vl

    from byg_cli.eval.judge import open_judge

    torch.set_num_threads(1)
    backend = open_judge(str(build_tiny_qwen_vl(tmp_path / "tiny-judge")), batch_size=2)
    judgements = VieScorer(backend, max_new_tokens=12).judge([_item(), _item((40, 40))])
    assert len(judgements) == 2
    for j in judgements:
        assert isinstance(j.sc_raw, str) and isinstance(j.pq_raw, str) and not j.random_filled
        assert (j.parse_failed and j.o is None) or 0 <= j.o <= 10
