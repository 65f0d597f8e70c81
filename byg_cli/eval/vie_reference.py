"""`--protocol reference`: VIEScore's own answer handling (TIGER-AI-Lab/VIEScore, `mllm_output_to_dict` and
`VIEScore.evaluate`), reproduced so that byg's numbers can sit next to published ones.

What the reference does with an answer, in order:

1. exactly two `||V^=^V||` delimiters: the text between them is the JSON;
2. else the span from the first `{` to the last `}`;
3. no such span: a bare two-integer list (`[8, 7]`, one optional space after the comma), else a bare integer
   0..10 (`"8"`), else a failure;
4. the JSON is read with `json.loads` after dropping newlines; a `score` that is not a list becomes a one-element
   list (`{"score": 8}`); if that fails, a crude repair (quote `word:` keys, wrap bare numbers in a list, quote
   other values) is tried once;
5. SC = min(score list), PQ = min(score list), O = sqrt(SC * PQ): any length, no range check
   (`[8, 7, 6]` -> 6, `[85, 90]` -> 85).

When either answer of an item fails, the reference asks both questions again and parses the new answers with
its fallback on: an answer with no `{...}` span then gets ONE random integer 0..10 as its whole score list
(byg's own fallback draws two and takes their min). An answer with a broken `{...}` span never gets the
fallback; the reference asks again without end, byg stops after `max_rounds` and records the failure. Answers
the reference would crash on (no `score` key, an empty or non-numeric list, a negative minimum under the square
root) are recorded as failures.
"""

from __future__ import annotations

import json
import math
import random
import re
from dataclasses import dataclass

from byg_cli.eval.viescore import DELIMITER, Judgement, JudgeItem, VieScorer
from byg_cli.vlm.answers import unparseable

_TWO_INTS = re.compile(r"^\[\d+, ?\d+\]$")
_KEY = re.compile(r"(\w+):")
_FIELD = re.compile(r'(".*?"):(.*?)(,|})')
_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")
_LITERAL = re.compile(r"^(true|false|null)$", re.I)
NO_SPAN = "no {...} span, bare two-integer list or bare integer 0..10"
MAX_REPAIR_CHARS = 4_000  # the repair's regex is quadratic in the worst case; a verdict is a few hundred chars


@dataclass(frozen=True)
class RefParsed:
    scores: list[float] | None
    error: str | None = None
    guessed: bool = False  # scores drawn by the random fallback

    @property
    def ok(self) -> bool:
        return self.scores is not None


def _repaired(text: str) -> str:
    """The reference's one-shot JSON repair, step for step (it rarely yields valid JSON)."""
    def value(match: re.Match) -> str:
        key, raw, end = match.group(1), match.group(2).strip(), match.group(3)
        if _NUMBER.match(raw):
            raw = f"[{raw}]"
        elif not _LITERAL.match(raw):
            raw = f'"{raw}"'
        return f"{key}: {raw}{end}"

    return _FIELD.sub(value, _KEY.sub(r'"\1":', text))


def _load(text: str):
    """The reference's `json.loads`, its list-wrapping of a bare score and its repair; None when all fail."""
    try:
        data = json.loads(text)
        if not isinstance(data["score"], list):
            data["score"] = [data["score"]]
        return data
    except Exception:  # the reference catches everything here, a missing key included
        pass
    if len(text) > MAX_REPAIR_CHARS:
        return None
    try:
        return json.loads(_repaired(text))  # returned as it is, without the list-wrapping
    except Exception:
        return None


def _bare_integer(text: str) -> int | None:
    try:
        number = int(text)  # Python's int(): surrounding whitespace allowed, as in the reference
    except ValueError:
        return None
    return number if 0 <= number <= 10 else None


def _score_list(data) -> RefParsed:
    """What `min(data["score"])` and the square root of the reference make of the parsed answer."""
    if not isinstance(data, dict) or "score" not in data:
        return RefParsed(None, "no 'score' key (the reference raises)")
    scores = data["score"]
    if not isinstance(scores, list) or not scores:
        return RefParsed(None, "'score' is not a non-empty list (the reference raises)")
    if not all(isinstance(s, (int, float)) and math.isfinite(s) for s in scores):
        return RefParsed(None, "'score' holds non-numbers (the reference raises)")
    values = [float(s) for s in scores]  # JSON true/false count as 1/0, as Python's min() sees them
    if min(values) < 0:
        return RefParsed(None, "negative score (the reference's square root raises)")
    return RefParsed(values)


def parse_reference(text: object, *, give_up: bool = False, rng: random.Random | None = None) -> RefParsed:
    """One answer as the reference reads it; `give_up` is its fallback round (one random integer 0..10).
    Within byg's limits on answers: no text, or too long, is a failure and never guessed."""
    text = "" if text is None else text
    problem = unparseable(text)
    if problem:
        return RefParsed(None, problem)
    if text.count(DELIMITER) == 2:
        start, end = text.find(DELIMITER) + len(DELIMITER), text.rfind(DELIMITER)
    else:
        start, end = text.find("{"), text.rfind("}") + 1
        if start == -1 or end == 0:
            listed = text[text.find("[") : text.rfind("]") + 1]
            if give_up:
                guess = (rng or random).randint(0, 10)
                return RefParsed([float(guess)], f"{NO_SPAN}; the random fallback drew {guess}", guessed=True)
            if _TWO_INTS.match(listed):
                try:
                    return _score_list({"score": json.loads(listed)})
                except ValueError:  # non-ASCII digits match the pattern but are not JSON
                    return RefParsed(None, "the bare list does not parse (the reference raises)")
            number = _bare_integer(text)
            if number is not None:
                return RefParsed([float(number)])
            return RefParsed(None, NO_SPAN)
    if start == end:
        return RefParsed(None, "empty JSON span")
    data = _load(text[start:end].strip().replace("\n", ""))
    if data is None:
        return RefParsed(None, "the JSON span does not parse, even after the reference's repair")
    return _score_list(data)


class ReferenceVieScorer(VieScorer):
    """VIEScore with the reference's parsing, re-asking and single-draw random fallback."""

    protocol = "reference"

    def __init__(self, backend, *, random_on_parse_failure: bool = True, max_rounds: int = 2, **kwargs):
        super().__init__(backend, random_on_parse_failure=random_on_parse_failure, **kwargs)
        self.max_rounds = max(1, max_rounds)

    def judge(self, items: list[JudgeItem]) -> list[Judgement]:
        requests = [self.requests(item) for item in items]
        results: list[tuple] = [()] * len(items)
        pending = list(range(len(items)))
        for round_ in range(1, self.max_rounds + 1):
            give_up = self.random_on_parse_failure and round_ > 1
            flat = [req for i in pending for req in requests[i]]
            answers = self.backend.chat(flat)
            if len(answers) != len(flat):
                raise RuntimeError(f"judge returned {len(answers)} answers for {len(flat)} requests")
            still = []
            for k, i in enumerate(pending):  # SC before PQ, as the reference draws its guesses
                sc_raw, pq_raw = answers[2 * k], answers[2 * k + 1]
                sc = parse_reference(sc_raw, give_up=give_up, rng=self.rng)
                pq = parse_reference(pq_raw, give_up=give_up, rng=self.rng)
                results[i] = (sc_raw, pq_raw, sc, pq)
                if not (sc.ok and pq.ok):
                    still.append(i)
            pending = still
            if not pending:
                break
        return [self._from_reference(*r) for r in results]

    @staticmethod
    def _from_reference(sc_raw: str, pq_raw: str, sc: RefParsed, pq: RefParsed) -> Judgement:
        filled = [name for name, p in (("sc", sc), ("pq", pq)) if p.guessed]
        return Judgement(sc.scores, pq.scores, sc_raw, pq_raw, sc.error, pq.error, random_filled=filled)
