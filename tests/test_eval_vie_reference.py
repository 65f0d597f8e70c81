"""VIEScore with the official prompts read from the user's copy, and the reference protocol: its parsing, its
re-ask with a single-draw random fallback and its NaN for an empty category, checked by hand against byg's
stricter mode on the same answers; the official layout checked on a loopback judge that records requests.

The prompt files written here are stand-ins in VIEScore's layout (none of the official text is in byg)."""

import hashlib
import json
import math
import random
import re

import PIL.Image
import pytest
from rich.console import Console
from typer.testing import CliRunner

from byg_cli.cli import app
from byg_cli.errors import BygError
from byg_cli.eval.edit_bench import JudgeCase, summarize
from byg_cli.eval.gedit import GEditOptions, run_gedit
from byg_cli.eval.gedit_data import GROUPS
from byg_cli.eval.vie_prompts import load_prompts
from byg_cli.eval.vie_reference import ReferenceVieScorer, parse_reference
from byg_cli.eval.viescore import Judgement, JudgeItem, VieScorer, parse_scores
from helpers.eval_helpers import InvertEditor, JudgeServer, decode_data_url, write_gedit_parquet

STAND_IN = {
    "context_no_delimit.txt": 'STAND-IN CONTEXT: rate the AI images.\nAnswer as {"score": [...]}.',
    "prompts_0shot/two_image_edit_rule.txt": "STAND-IN RULE: original first, edit second.\n",
    "prompts_0shot/tie_rule_SC.txt": "STAND-IN SC: success, then over-editing.\nEditing instruction: <instruction>\n",
    "prompts_0shot/rule_PQ.txt": "STAND-IN PQ: naturalness, then artifacts.\n",
}


def write_prompt_files(root):
    """A stand-in VIEScore checkout: <root>/viescore/prompts_raw/<the four files>."""
    base = root / "viescore" / "prompts_raw"
    for name, text in STAND_IN.items():
        (base / name).parent.mkdir(parents=True, exist_ok=True)
        (base / name).write_text(text, encoding="utf-8")
    return root


def expected_sc(instruction):
    return "\n".join([STAND_IN["context_no_delimit.txt"], STAND_IN["prompts_0shot/two_image_edit_rule.txt"],
                      STAND_IN["prompts_0shot/tie_rule_SC.txt"]]).replace("<instruction>", instruction)


EXPECTED_PQ = "\n".join([STAND_IN["context_no_delimit.txt"], STAND_IN["prompts_0shot/rule_PQ.txt"]])
EXPECTED_SHA = hashlib.sha256((expected_sc("<instruction>") + "\x00" + EXPECTED_PQ).encode()).hexdigest()


# ------------------------------------------------------------------------------------------- the prompt files


def test_prompt_files_from_a_checkout_its_folders_or_vie_prompts_py(tmp_path):
    root = write_prompt_files(tmp_path / "VIEScore")
    for where in (root, root / "viescore", root / "viescore" / "prompts_raw"):
        prompts = load_prompts(where)
        assert prompts.sc("make it red") == expected_sc("make it red") and prompts.pq() == EXPECTED_PQ
        assert prompts.sha256 == EXPECTED_SHA and prompts.official
        assert prompts.files["prompts_0shot/rule_PQ.txt"] == hashlib.sha256(
            STAND_IN["prompts_0shot/rule_PQ.txt"].encode()).hexdigest()
    # the generated module: read with ast (never executed), variable names as VIEScore's parse_prompt.py makes them
    module = tmp_path / "only_module" / "vie_prompts.py"
    module.parent.mkdir()
    module.write_text("raise SystemExit('never run')\n" + "".join(
        f"_{name.removesuffix('.txt').replace('/', '_')} = {text!r}\n" for name, text in STAND_IN.items()))
    assert load_prompts(module.parent).sha256 == EXPECTED_SHA == load_prompts(module).sha256
    with pytest.raises(BygError, match="expected VIEScore's prompt files"):
        load_prompts(tmp_path / "only_module" / "..")
    (root / "viescore" / "prompts_raw" / "prompts_0shot" / "tie_rule_SC.txt").write_text("no placeholder")
    with pytest.raises(BygError, match="no <instruction> placeholder"):
        load_prompts(root)


# ------------------------------------------------------------------------------------------------- parsing

# answer -> (reference scores or None, byg scores or None); reference values worked out from its rules
SAME_ANSWERS = [
    ("8", [8], None),  # bare integer 0..10
    (" 9\n", [9], None),  # int() allows whitespace
    ("11", None, None),  # bare integer out of 0..10
    ('{"score": 8}', [8], None),  # a bare score becomes a one-element list
    ('{"score": [8, 7, 6], "reasoning": "r"}', [8, 7, 6], None),  # any length; min taken later
    ('{"score": [85, 90]}', [85, 90], None),  # no range check
    ("[8, 7]", [8, 7], [8, 7]),  # bare two-integer list
    ("[8,7]", [8, 7], [8, 7]),
    ("[8,  7]", None, [8, 7]),  # two spaces: not the reference's pattern
    ("[8, 7, 6]", None, None),  # a bare list of three is not accepted without braces
    ("```json\n{\"score\": [6, 9],\n \"reasoning\": \"fine\"}\n```", [6, 9], [6, 9]),
    ('||V^=^V||{"score": [4, 5]}||V^=^V||', [4, 5], [4, 5]),
    ("{score: 5}", [5], None),  # the reference's repair quotes the key and wraps the number
    ('{"score": [7, 8], "reasoning": "unterminated}', None, [7, 8]),  # broken JSON: byg's field regex reads it
    ('{"reasoning": "no score"}', None, None),
    ('{"score": [-1, 5]}', None, None),  # the reference's sqrt would raise
    ("Score: 7", None, None),
    ("", None, None),
]


@pytest.mark.parametrize("text,reference,byg", SAME_ANSWERS)
def test_reference_parsing_against_byg_on_the_same_answers(text, reference, byg):
    ref = parse_reference(text)
    assert ref.scores == (None if reference is None else [float(v) for v in reference]), ref.error
    assert not ref.guessed
    ours = parse_scores(text, 2)
    assert ours.scores == (None if byg is None else [float(v) for v in byg])


def test_fallback_only_without_a_json_span_and_one_draw_for_the_whole_score():
    rng, check = random.Random(5), random.Random(5)
    guessed = parse_reference("I cannot rate this.", give_up=True, rng=rng)
    assert guessed.guessed and guessed.scores == [float(check.randint(0, 10))] and "drew" in guessed.error
    broken = parse_reference('{"score": [7, 8], "reasoning": "unterminated}', give_up=True, rng=rng)
    assert not broken.ok and not broken.guessed  # braces present: the reference asks again, never guesses
    assert parse_reference("[3, 4]", give_up=True, rng=rng).guessed  # its fallback comes before the bare list
    assert parse_reference("[3, 4]").scores == [3.0, 4.0]
    # over many failures: one draw has mean 5; byg's min of two draws has mean sum_j j^2 / 121 = 385/121
    rng = random.Random(0)
    one = [parse_reference("no", give_up=True, rng=rng).scores[0] for _ in range(4000)]
    two = [min(rng.randint(0, 10), rng.randint(0, 10)) for _ in range(4000)]
    assert sum(one) / len(one) == pytest.approx(5.0, abs=0.15)
    assert sum(two) / len(two) == pytest.approx(385 / 121, abs=0.15)


class KeyedBackend:
    """Answers by (edited image's red level, SC or PQ), one answer per ask (the last one repeats)."""

    name = "keyed"

    def __init__(self, answers):
        self.answers, self.asked, self.seen = answers, {}, []

    def chat(self, requests):
        out = []
        for req in requests:
            key = (req.images[-1].getpixel((0, 0))[0], "sc" if len(req.images) == 2 else "pq")
            n = self.asked.get(key, 0)
            self.asked[key] = n + 1
            self.seen.append(req)
            seq = self.answers[key]
            out.append(seq[min(n, len(seq) - 1)])
        return out


def _items(n):
    return [JudgeItem(PIL.Image.new("RGB", (8, 8), "white"), PIL.Image.new("RGB", (8, 8), (10 * i, 0, 0)), f"e{i}")
            for i in range(n)]


def test_both_modes_on_the_same_answers_against_hand_computed_results():
    answers = {
        (0, "sc"): ['{"score": [8, 7, 6]}'], (0, "pq"): ["9"],  # ref: SC 6, PQ 9; byg: both fail
        (10, "sc"): ['{"score": [85, 90]}'], (10, "pq"): ['{"score": [8, 9]}'],  # ref: SC 85; byg: out of range
        (20, "sc"): ["no idea", '{"score": [3, 4]}'], (20, "pq"): ['{"score": [5, 6]}', '{"score": [2, 9]}'],
        (30, "sc"): ["no idea"], (30, "pq"): ['{"score": 7}'],  # re-asked, then the fallback draws one integer
        (40, "sc"): ['{"score": [1, 2], "oops}'], (40, "pq"): ['{"score": [6, 6]}'],  # broken: never guessed
    }
    seed = 11
    ref_backend = KeyedBackend(answers)
    ref = ReferenceVieScorer(ref_backend, seed=seed).judge(_items(5))
    guess = random.Random(seed).randint(0, 10)  # the only draw: item 3's SC in the second round
    assert [(j.sc, j.pq) for j in ref] == [(6.0, 9.0), (85.0, 8.0), (3.0, 2.0), (float(guess), 7.0), (None, 6.0)]
    assert ref[0].o == pytest.approx(math.sqrt(54)) and ref[1].o == pytest.approx(math.sqrt(680))
    assert ref[2].o == pytest.approx(math.sqrt(6)) and ref[4].o is None  # PQ of the second round, as the reference
    assert ref[3].random_filled == ["sc"] and ref[3].parse_failed and not ref[2].parse_failed
    assert ref_backend.asked == {**{(r, k): 1 for r in (0, 10) for k in ("sc", "pq")},
                                 **{(r, k): 2 for r in (20, 30, 40) for k in ("sc", "pq")}}  # both asked again
    byg = VieScorer(KeyedBackend(answers), seed=seed).judge(_items(5))
    assert [(j.sc, j.pq) for j in byg] == [(None, None), (None, 8.0), (None, 5.0), (None, None), (1.0, 6.0)]
    filled = VieScorer(KeyedBackend(answers), seed=seed, random_on_parse_failure=True).judge(_items(1))[0]
    rng = random.Random(seed)
    assert filled.sc == min(rng.randint(0, 10), rng.randint(0, 10)) and len(filled.sc_scores) == 2


def test_empty_category_is_nan_in_reference_mode():
    cases = [JudgeCase("a1", "a", "i", None, None), JudgeCase("a2", "a", "i", None, None),
             JudgeCase("b1", "b", "i", None, None)]
    judgements = {"a1": Judgement([4.0, 6.0], [9.0], "", ""), "a2": Judgement([8.0], [2.0], "", ""),
                  "b1": Judgement(None, [5.0], "x", "", sc_error="no score")}
    byg = summarize(cases, judgements, ["a", "b"])
    ref = summarize(cases, judgements, ["a", "b"], empty_is_nan=True)
    # category a: SC 4 and 8 -> 6, PQ 9 and 2 -> 5.5, O = (sqrt(36) + sqrt(16)) / 2 = 5
    assert byg["average"] == pytest.approx({"sc": 6.0, "pq": 5.5, "o": 5.0})  # b drops out
    assert ref["average"] == {"sc": None, "pq": None, "o": None} and ref["empty_categories"] == ["b"]
    assert ref["categories"]["a"]["o"]["mean"] == pytest.approx(5.0)


# -------------------------------------------------------------------------------- the whole flow on loopback


def gedit_rows():
    return [dict(task_type=g, key=f"{g}_0", instruction=f"{g} edit, strength {2 + i % 8}", instruction_language="en",
                 input_image=PIL.Image.new("RGB", (24, 16), (20 * i, 100, 50)),
                 input_image_raw=PIL.Image.new("RGB", (48, 32), (20 * i, 100, 50)), Intersection_exist=True)
            for i, g in enumerate(GROUPS)]


def reference_policy(prompt, images):
    """Formats the reference accepts and byg does not; text_change's SC answer is broken JSON every time."""
    if "STAND-IN SC" in prompt or "over-editing" in prompt:
        if "text_change" in prompt:
            return '{"score": [7, 8], "reasoning": "unterminated}'
        s = int(re.search(r"strength (\d+)", prompt).group(1))
        return f'{{"score": [{s}, 10, 9], "reasoning": "r"}}'
    return "8"


def test_gedit_with_official_prompt_files_on_a_loopback_judge(tmp_path):
    data = write_gedit_parquet(tmp_path / "gedit" / "data" / "train.parquet", gedit_rows()).parent.parent
    out = tmp_path / "results"
    null = Console(file=open("/dev/null", "w"))
    run_gedit(GEditOptions(data=data, out=out, method="invert"), InvertEditor(), None, console=null)  # edits only
    prompts_dir = write_prompt_files(tmp_path / "VIEScore")
    with JudgeServer(reference_policy) as server:
        cli = CliRunner().invoke(app, ["eval", "gedit", "--data", str(data), "--out", str(out), "--method", "invert",
                                       "--judge", server.url, "--judge-model", "judge", "--prompts", str(prompts_dir)])
        assert cli.exit_code == 0, cli.output
        bodies = list(server.requests)
    # exactly the templates of the files, text first, then JPEG images, the reference's max_tokens
    assert len(bodies) == 22 + 2  # 11 items x (SC + PQ), text_change asked again
    rows = {r["instruction"]: r for r in gedit_rows()}
    sc_texts = set()
    for body in bodies:
        (message,) = body["messages"]
        content = message["content"]
        assert message["role"] == "user" and content[0]["type"] == "text" and body["max_tokens"] == 1400
        urls = [part["image_url"]["url"] for part in content[1:]]
        assert all(u.startswith("data:image/jpeg;base64,") for u in urls)
        if len(urls) == 2:
            instruction = next(i for i in rows if expected_sc(i) == content[0]["text"])
            sc_texts.add(instruction)
            assert decode_data_url(urls[0]).size == (24, 16) == decode_data_url(urls[1]).size
        else:
            assert content[0]["text"] == EXPECTED_PQ and len(urls) == 1
    assert sc_texts == set(rows)
    # the report names the prompts by hash and follows the reference's rules
    (report_json,) = (out / "reports").glob("gedit-en-judge__viescore-*-reference.json")
    assert EXPECTED_SHA[:8] in report_json.name
    report = json.loads(report_json.read_text())
    protocol = report["protocol"]["invert"]
    assert protocol["prompts"]["sha256"] == EXPECTED_SHA and protocol["protocol"] == "reference"
    assert sorted(protocol["prompts"]["files"]) == sorted(STAND_IN) and report["comparable_with_published"]
    fullset = report["methods"]["invert"]["fullset"]
    for i, group in enumerate(GROUPS):  # SC = min(s, 10, 9) = s, PQ = 8
        mean = fullset["categories"][group]["o"]["mean"]
        assert mean is None if group == "text_change" else mean == pytest.approx(math.sqrt(8 * (2 + i % 8)))
    assert fullset["average"]["o"] is None and fullset["empty_categories"] == ["text_change"]  # NaN, as the reference
    md = report_json.with_suffix(".md").read_text()
    assert f"sha256 {EXPECTED_SHA[:12]}" in md and "official templates" in md and "NaN" in md

    # the same answers under byg's own prompts and parsing: every answer fails, and the report says the
    # scores would not be comparable anyway
    with JudgeServer(reference_policy) as server:
        cli = CliRunner().invoke(app, ["eval", "gedit", "--data", str(data), "--out", str(out), "--method", "invert",
                                       "--judge", server.url, "--judge-model", "judge"])
        assert cli.exit_code == 0, cli.output
        assert "STAND-IN" not in json.dumps(server.requests)
    byg_report = json.loads((out / "reports" / "gedit-en-judge.json").read_text())
    assert byg_report["methods"]["invert"]["fullset"]["totals"]["scored"] == 0
    assert not byg_report["comparable_with_published"]
    assert "NOT comparable" in (out / "reports" / "gedit-en-judge.md").read_text()

    # judgements of one protocol never mix with another's in the same folder
    with JudgeServer(reference_policy) as server:
        cli = CliRunner().invoke(app, ["eval", "gedit", "--data", str(data), "--out", str(out), "--method", "invert",
                                       "--judge", server.url, "--judge-model", "judge", "--judge-name", "judge",
                                       "--prompts", str(prompts_dir)])
    assert isinstance(cli.exception, BygError) and "judged with byg prompts" in str(cli.exception)


def test_bad_prompts_folder_is_reported_before_anything_runs(tmp_path):
    data = write_gedit_parquet(tmp_path / "d" / "x.parquet", gedit_rows()[:1]).parent
    result = CliRunner().invoke(app, ["eval", "gedit", "--data", str(data), "--method", "m", "--judge",
                                      "http://127.0.0.1:9/v1", "--prompts", str(tmp_path)])
    assert isinstance(result.exception, BygError) and "expected VIEScore's prompt files" in str(result.exception)
    result = CliRunner().invoke(app, ["eval", "gedit", "--data", str(data), "--method", "m", "--judge",
                                      "http://127.0.0.1:9/v1", "--protocol", "strict"])
    assert isinstance(result.exception, BygError) and "choose from" in str(result.exception)


def test_reference_parsing_within_byg_limits_on_answers():
    import time

    assert not parse_reference(12, give_up=True).ok  # no text: a failure, never guessed
    start = time.perf_counter()
    hostile = '{' + '"a" ' * 40_000 + '}'  # many quotes, no colon: the repair's regex would crawl
    assert not parse_reference(hostile).ok and not parse_reference("9" * 50_000).ok
    assert time.perf_counter() - start < 2.0


def test_styles_with_official_prompt_files_on_a_loopback_judge(tmp_path):
    """`byg eval styles --prompts DIR`: the same templates, the reference's parsing, the report names them."""
    from byg_cli.eval.styles import TO_STYLE, cases_from_folders, run_styles

    photo = tmp_path / "photo"
    photo.mkdir()
    PIL.Image.new("RGB", (24, 16), (40, 90, 200)).save(photo / "p0.png")
    out = tmp_path / "out"
    run_styles(cases_from_folders(photo, None, ["lego"]), out, "invert", InvertEditor(), None,
               console=Console(file=open("/dev/null", "w")))

    def policy(prompt, images):
        return '{"score": [4, 7, 5]}' if "STAND-IN SC" in prompt else '{"score": 6}'

    with JudgeServer(policy) as server:
        cli = CliRunner().invoke(app, ["eval", "styles", "--photo", str(photo), "--style", "lego", "--out", str(out),
                                       "--method", "invert", "--judge", server.url, "--judge-model", "judge",
                                       "--prompts", str(write_prompt_files(tmp_path / "VIEScore"))])
        assert cli.exit_code == 0, cli.output
        texts = sorted(body["messages"][0]["content"][0]["text"] for body in server.requests)
    assert texts == sorted([expected_sc("Turn this photo into a Lego style image"), EXPECTED_PQ])
    (report_json,) = (out / "reports").glob("styles-judge__viescore-*-reference.json")
    report = json.loads(report_json.read_text())
    assert report["protocol"]["invert"]["prompts"]["sha256"] == EXPECTED_SHA and report["comparable_with_published"]
    direction = report["methods"]["invert"][TO_STYLE]
    assert (direction["semantic"], direction["quality"]) == (4.0, 6.0)  # min(4, 7, 5); a bare score 6
    assert direction["overall"] == pytest.approx(math.sqrt(24))
    assert f"sha256 {EXPECTED_SHA[:12]}" in report_json.with_suffix(".md").read_text()


def test_a_store_from_before_the_protocol_record_resumes_as_byg(tmp_path):
    from byg_cli.eval.vie_protocol import claim_store, read_protocol

    store = tmp_path / "judgements.jsonl"
    store.write_text('{"key": "k"}\n')
    byg = VieScorer(KeyedBackend({})).describe() | {"layout": "chat-template"}
    claim_store(store, byg)  # an old store of a local judge: accepted, and now recorded
    assert read_protocol(store)["prompts"]["sha256"] == byg["prompts"]["sha256"]
    fresh = tmp_path / "other.jsonl"
    fresh.write_text('{"key": "k"}\n')
    with pytest.raises(BygError, match="judged with byg prompts, byg protocol"):
        claim_store(fresh, ReferenceVieScorer(KeyedBackend({})).describe())
