"""Hostile model answers and servers (issue #22): the answer parsers cannot hang, recurse or crash, every bad
answer is a counted rejection, stored answers are cut to a cap, and a server trickling its answer cannot hold
a request past its deadline. Real loopback servers throughout."""

import json
import time

import pytest
from helpers.loopback import LoopbackServer, QuietJSONHandler
from helpers.makedata_support import ChatServer, good_answer, make_images, user_text
from PIL import Image
from typer.testing import CliRunner

from byg_cli.cli import app
from byg_cli.data.records import read_records
from byg_cli.errors import BygError
from byg_cli.eval.viescore import Judgement, JudgeItem, VieScorer, parse_scores
from byg_cli.makedata.images import make_image_edits
from byg_cli.makedata.journal import read_jsonl
from byg_cli.makedata.parse import Rejected, parse_answer
from byg_cli.makedata.video_captions import clean_sanitised
from byg_cli.vlm import ChatRequest, open_backend
from byg_cli.vlm.answers import MAX_PARSED_CHARS, MAX_STORED_CHARS
from byg_cli.vlm.http_backend import OpenAIChatBackend

N = MAX_PARSED_CHARS
TEN_MB = "{" * 10_000_000 + "}"
DEEP_LIST = "[" * 100_000 + "]" * 100_000
DEEP_OBJECTS = '{"a": ' * 5_000 + "1" + "}" * 5_000
# Shapes that made the old parsers quadratic or recursive, each as long as a parser reads.
ADVERSARIAL = {
    "10 MB of open braces": TEN_MB,
    "open braces at the cap": "{" * (N - 1) + "}",
    "open brackets at the cap": "[" * N,
    "nesting depth 100,000": DEEP_LIST,
    "5,000 nested objects": DEEP_OBJECTS,
    "braces and quotes": '{"' * (N // 2 - 1) + "}",
    "braces and single quotes": "{'" * (N // 2 - 1) + "}",
    "a quote run": "{" + '"' * (N - 2) + "}",
    "unclosed fences": "```" * (N // 3),
    "a fence then spaces": "```" + " " * (N - 10) + "{}",
    "unclosed think tags": "<think>" * (N // 8) + "{}",
    "a key then spaces": "{a" + " " * (N - 3) + "}",
    "an open numeric list": "[1" + ",1" * (N // 2 - 2),
    "many objects": '{"score": [1, 2, 3]}' * (N // 20),
}


def cpu_seconds(fn, *args):
    """CPU time of one call (the machine may be busy: wall time would measure the scheduler)."""
    start = time.process_time()
    result = fn(*args)
    return time.process_time() - start, result


def rejection(parse, answer) -> str | None:
    try:
        parse(answer)
    except Rejected as why:
        return str(why)
    return None


def edit_tuple(answer):
    return parse_answer(answer, ["color_change"])


@pytest.mark.parametrize("name", sorted(ADVERSARIAL))
def test_adversarial_answers_are_rejected_in_under_a_second(name):
    answer = ADVERSARIAL[name]
    seconds, reason = cpu_seconds(rejection, edit_tuple, answer)
    assert reason is not None and seconds < 1.0, (reason, seconds)
    seconds, parsed = cpu_seconds(parse_scores, answer, 2)
    assert not parsed.ok and seconds < 1.0, (parsed.error, seconds)
    seconds, _ = cpu_seconds(rejection, clean_sanitised, answer)  # the video captions' sanitiser: bounded too
    assert seconds < 1.0


@pytest.mark.parametrize("answer,reason", [
    (TEN_MB, "too long to parse (10,000,001 characters"),
    (DEEP_LIST, "nests deeper than 32 levels"),
    (DEEP_OBJECTS, "nests deeper than 32 levels"),
    ("[" * 100_000, "never closed"),
    ("x" + '{"edit_type": "color_change"' + "," * 5_000 + "}", "too long to repair"),
    (7, "not text (int: 7)"),
    ({"edit_type": "color_change"}, "not text (dict"),
    (json.dumps({"edit_type": "color_change", "src_caption": "A red car.", "instruction": "Make it blue.",
                 "tgt_caption": "A blue car " * 200, "reverse_instruction": "Make it red."}),
     "field(s) longer than 2,000 characters: tgt_caption"),
])
def test_make_data_rejections_say_why(answer, reason):
    with pytest.raises(Rejected) as info:
        parse_answer(answer, ["color_change"])
    assert reason in str(info.value)


@pytest.mark.parametrize("answer,reason", [
    ("{[1]: 2}", None),  # ast.literal_eval raised TypeError (unhashable key)
    ("{(1, [2]): 3}", None),
    (7, "not text (int: 7)"),
    ([1, 2], "not text (list"),
    ({"score": [7, 8]}, "not text (dict"),
    (DEEP_OBJECTS, "no score found"),
    (TEN_MB, "too long to parse"),
])
def test_judge_parser_rejects_without_raising(answer, reason):
    parsed = parse_scores(answer, 2)
    assert not parsed.ok and parsed.error
    assert reason is None or reason in parsed.error, parsed.error


def test_judgements_are_stored_cut_to_the_cap():
    huge = "<think>" + "hmm " * 3_000_000 + "</think>" + '{"score": [7, 8]}'
    judgement = Judgement([7.0, 8.0], None, huge, 12345)
    stored = json.loads(json.dumps(judgement.to_dict()))
    assert len(stored["sc_raw"]) < MAX_STORED_CHARS + 100
    assert stored["sc_raw"].startswith("<think>hmm") and stored["sc_raw"].endswith('{"score": [7, 8]}')
    assert "characters cut" in stored["sc_raw"] and stored["pq_raw"] == "12345"
    assert Judgement.from_dict(stored).sc == 7.0


# ---------------------------------------------------------------------------- answers through a real server


def parts(text):
    """The answer as OpenAI content parts, split in two text parts around a non-text part."""
    half = len(text) // 2
    return [{"type": "text", "text": text[:half]}, {"type": "image_url", "image_url": {"url": "x"}},
            {"type": "text", "text": text[half:]}]


CONTENTS = {  # name: (content from the prompt, accepted?, reason of the rejection)
    "content parts": (lambda prompt: parts(good_answer(prompt)), True, None),
    "int": (lambda prompt: 7, False, "not text (int: 7)"),
    "dict": (lambda prompt: json.loads(good_answer(prompt).split("```json\n")[1].split("```")[0]), False,
             "not text (dict"),
    "refusal part only": (lambda prompt: [{"type": "refusal", "refusal": "no"}], False, "not text (list"),
    "empty part list": (lambda prompt: [], False, "no JSON object"),
    "10 MB": (lambda prompt: TEN_MB, False, "too long to parse"),
    "nesting depth 100,000": (lambda prompt: DEEP_LIST, False, "nests deeper"),
    "5,000 nested objects": (lambda prompt: DEEP_OBJECTS, False, "nests deeper"),
}


@pytest.mark.parametrize("name", sorted(CONTENTS))
def test_make_data_counts_every_bad_answer_as_a_rejection(tmp_path, name):
    content, accepted, reason = CONTENTS[name]
    make_images(tmp_path / "imgs", 2)
    out = tmp_path / "edits.jsonl"
    with ChatServer(answer=lambda body: content(user_text(body))) as server:
        summary = make_image_edits(tmp_path / "imgs", open_backend(server.url), out, seed=0, chunk=2)
    assert (summary.accepted, summary.rejected) == ((2, 0) if accepted else (0, 2))
    if accepted:
        raws = [r.extra["vlm_raw"] for r in read_records(out)]
        assert [r.instruction for r in read_records(out)] == ["Change the car color to blue."] * 2
    else:
        rows = read_jsonl(tmp_path / "edits.rejects.jsonl")
        assert all(reason in row["reason"] for row in rows), rows[0]["reason"]
        raws = [row["vlm_raw"] for row in rows]
    assert len(raws) == 2 and all(isinstance(raw, str) and len(raw) < MAX_STORED_CHARS + 100 for raw in raws)


def small_item():
    return JudgeItem(Image.new("RGB", (8, 8), (200, 0, 0)), Image.new("RGB", (8, 8), (0, 0, 200)), "make it blue")


@pytest.mark.parametrize("content,scores,reason", [
    (parts('{"score": [7, 8], "reasoning": "fine"}'), [7.0, 8.0], None),
    (7, None, "not text (int: 7)"),
    ({"score": [7, 8]}, None, "not text (dict"),
    ("{[1]: 2}", None, None),
    (TEN_MB, None, "too long to parse"),
])
def test_judge_over_a_server_parses_parts_and_counts_the_rest(content, scores, reason):
    with ChatServer(answer=lambda body: content) as server:
        [judgement] = VieScorer(open_backend(server.url)).judge([small_item()])
    assert judgement.sc_scores == scores and judgement.pq_scores == scores
    assert judgement.parse_failed == (scores is None)
    if reason:
        assert reason in judgement.sc_error and reason in judgement.pq_error
    assert len(judgement.to_dict()["sc_raw"]) < MAX_STORED_CHARS + 100


# ---------------------------------------------------------------------------------------------- deadlines


class TrickleServer(LoopbackServer):
    """A loopback HTTP server answering every request one byte a second: all of it (`phase="headers"`) or,
    after the whole header, its body (`phase="body"`). A full answer would take minutes."""

    def __init__(self, phase: str):
        class Handler(QuietJSONHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers["Content-Length"]))
                body = json.dumps({"choices": [{"message": {"role": "assistant", "content": "x" * 100}}]}).encode()
                head = (f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                        f"Content-Length: {len(body)}\r\n\r\n").encode()
                slow = body if phase == "body" else head + body
                try:
                    if phase == "body":
                        self.wfile.write(head)
                    for i in range(len(slow)):
                        self.wfile.write(slow[i : i + 1])
                        time.sleep(1.0)
                except OSError:  # the client hung up
                    pass
                self.close_connection = True

        super().__init__(Handler)


@pytest.mark.parametrize("phase", ["headers", "body"])
def test_timeout_is_a_deadline_for_the_whole_request(phase):
    with TrickleServer(phase) as server:
        backend = OpenAIChatBackend(server.url, model="m", timeout=3, retries=0)
        start = time.monotonic()
        with pytest.raises(BygError) as info:
            backend.chat([ChatRequest(text="hi")])
        elapsed = time.monotonic() - start
    assert 2.9 <= elapsed < 4.5, elapsed
    assert str(info.value).endswith("no answer after 1 attempt(s) (last: timed out after 3 s)")


@pytest.mark.parametrize("value", ["-1", "0", "nan"])
def test_a_timeout_that_is_no_deadline_is_refused(tmp_path, value):
    result = CliRunner().invoke(app, ["make-data", str(tmp_path), "--vlm", "http://127.0.0.1:9", "--timeout", value])
    assert isinstance(result.exception, BygError)
    message = str(result.exception)
    assert message.startswith("--timeout must be a positive number of seconds") and "\n" not in message
    with pytest.raises(BygError, match="timeout must be a positive number of seconds"):
        OpenAIChatBackend("http://127.0.0.1:9", model="m", timeout=float(value))
