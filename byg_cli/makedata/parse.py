"""Turn a VLM's answer into an edit tuple, or say exactly why it cannot be one (appendix D.1).

`extract_json_object` finds the single JSON object in an answer: it skips a reasoning model's <think> part,
prefers the inside of a markdown code fence, parses strictly where it can and otherwise repairs the usual
slips (trailing commas, single quotes, comments) with the json-repair library; a list holding one object
counts as that object. It reads only text within the limits of `byg_cli.vlm.answers` and finds the candidate
objects in one linear pass, so no answer can make it hang or recurse. `check_edit` then applies the rules: all
five fields present as non-empty strings of at most MAX_FIELD_CHARS, an allowed edit type, a self-contained
reverse instruction, and a target caption that describes only the result. Every failure raises `Rejected` with
a one-line reason that goes to the rejects file.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import json_repair

from byg_cli.makedata.taxonomy import normalise_edit_type
from byg_cli.vlm.answers import MAX_DEPTH, unparseable

FIELDS = ("edit_type", "src_caption", "instruction", "tgt_caption", "reverse_instruction")

# The reverse instruction must state the inverse edit itself, never point at an earlier state.
REVERSE_FORBIDDEN = ("restore", "restores", "restored", "restoring", "revert", "reverts", "reverted", "undo",
                     "undoes", "original", "originally", "previous", "previously", "back to", "as before",
                     "as it was")
# The target caption describes the edited image as if it had always looked that way ...
TEMPORAL_FORBIDDEN = ("now", "changed to", "changed into", "turned into", "has been", "have been", "had been",
                      "after the edit", "edited", "anymore", "instead of", "replaced by", "replaced with",
                      "is replaced", "was replaced", "was removed", "has become", "no longer")
# ... and says what is there, not what is missing.
NEGATIVE_FORBIDDEN = ("without", "no", "not", "missing", "absent", "lacking", "devoid of", "removed", "gone")

_JSON_TOKENS = re.compile(r'[{}\[\]"\\]')
_QUOTED = re.compile(r"\"[^\"]*\"|“[^“”]*”")  # each alternative stops at its next opening mark: linear
MAX_REPAIR_CHARS = 4_000  # json-repair is quadratic on some hostile text; an edit tuple is ~600 characters
MAX_FIELD_CHARS = 2_000


class Rejected(Exception):
    """The answer cannot become a record; str(self) is the reason."""


@dataclass(frozen=True)
class ParsedEdit:
    edit_type: str
    src_caption: str
    instruction: str
    tgt_caption: str
    reverse_instruction: str


def _strip_thinking(answer: str) -> str:
    if "</think>" in answer:
        return answer.rsplit("</think>", 1)[1]
    return answer


def _fenced_blocks(text: str) -> list[str]:
    """The inside of every ``` fence (language tag included), fences paired left to right."""
    blocks, pos = [], 0
    while (start := text.find("```", pos)) >= 0:
        end = text.find("```", start + 3)
        if end < 0:
            break
        blocks.append(text[start + 3 : end])
        pos = end + 3
    return blocks


def _json_spans(text: str) -> tuple[list[tuple[int, int]], int]:
    """The outermost closed {...} / [...] spans, left to right (JSON strings inside brackets skipped), and the
    deepest nesting reached: one pass with an explicit stack, so linear time and no recursion."""
    spans: list[tuple[int, int]] = []
    opened: list[int] = []
    deepest, in_string, escaped_at = 0, False, -1
    for match in _JSON_TOKENS.finditer(text):
        i, ch = match.start(), match.group()
        if in_string:
            if i == escaped_at:
                continue
            if ch == "\\":
                escaped_at = i + 1
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = bool(opened)
        elif ch in "{[":
            opened.append(i)
            deepest = max(deepest, len(opened))
        elif ch in "}]" and opened:  # closes the innermost open bracket (a mismatch fails to parse later)
            start = opened.pop()
            while spans and spans[-1][0] > start:
                spans.pop()
            spans.append((start, i + 1))
    return spans, deepest


def _strict(candidate: str):
    try:
        return json.loads(candidate)
    except (ValueError, RecursionError):
        return None


def _repaired(candidate: str):
    if len(candidate) > MAX_REPAIR_CHARS:
        raise Rejected(f"the answer's JSON does not parse and is too long to repair ({len(candidate):,} characters)")
    try:
        value = json_repair.loads(candidate, skip_json_loads=True)
    except Exception as err:  # a heuristic library on hostile text: whatever it raises is a rejection
        raise Rejected(f"the answer's JSON could not be parsed or repaired ({type(err).__name__})") from None
    if value in ("", None, [], {}):
        raise Rejected("the answer's JSON could not be parsed or repaired")
    return value


def _single_object(value) -> dict:
    if isinstance(value, dict):
        return value
    if isinstance(value, list):
        objects = [v for v in value if isinstance(v, dict)]
        if len(objects) == 1 and len(value) == 1:
            return objects[0]
        if len(objects) > 1:
            raise Rejected(f"the answer holds {len(objects)} JSON objects; expected exactly one")
    raise Rejected("the answer's JSON is not an object")


def extract_json_object(answer: object) -> dict:
    problem = unparseable(answer)
    if problem:
        raise Rejected(problem)
    text = _strip_thinking(answer)
    fenced = [block for block in _fenced_blocks(text) if "{" in block]
    if fenced:
        text = fenced[0]
    first = min((i for i in (text.find("{"), text.find("[")) if i >= 0), default=-1)
    if first < 0:
        raise Rejected("no JSON object in the answer")
    last = max(text.rfind("}"), text.rfind("]"))
    if last < first:
        raise Rejected("the JSON object is never closed (answer cut off?)")
    spans, deepest = _json_spans(text)
    if deepest > MAX_DEPTH:
        raise Rejected(f"the answer's JSON nests deeper than {MAX_DEPTH} levels")
    strict = [v for v in (_strict(text[s:e]) for s, e in spans) if isinstance(v, (dict, list))]
    objects = sum(isinstance(v, dict) for v in strict)
    if len(strict) > 1 and objects > 1:
        raise Rejected(f"the answer holds {objects} JSON objects; expected exactly one")
    if strict:
        return _single_object(strict[0])
    return _single_object(_repaired(text[first : last + 1]))


def _find_phrase(text: str, phrases: tuple[str, ...]) -> str | None:
    """The first forbidden phrase occurring as whole words, outside quoted text (quoted text is content)."""
    plain = _QUOTED.sub(" ", text).lower().replace("’", "'")
    for phrase in phrases:
        if re.search(r"(?<![\w'])" + re.escape(phrase) + r"(?![\w'])", plain):
            return phrase
    return None


def check_edit(obj: dict, allowed: list[str], *, force_photorealistic: bool = False) -> ParsedEdit:
    missing = [f for f in FIELDS if f not in obj]
    if missing:
        raise Rejected(f"missing field(s): {', '.join(missing)}")
    bad = [f for f in FIELDS if not isinstance(obj[f], str)]
    if bad:
        raise Rejected(f"field(s) not a string: {', '.join(bad)}")
    values = {f: " ".join(obj[f].split()) for f in FIELDS}
    empty = [f for f in FIELDS if not values[f]]
    if empty:
        raise Rejected(f"empty field(s): {', '.join(empty)}")
    long = [f for f in FIELDS if len(values[f]) > MAX_FIELD_CHARS]
    if long:
        raise Rejected(f"field(s) longer than {MAX_FIELD_CHARS:,} characters: {', '.join(long)}")
    edit_type = normalise_edit_type(values["edit_type"])
    if edit_type is None:
        raise Rejected(f"edit_type {values['edit_type']!r} is not one of the taxonomy's edit types")
    if edit_type not in allowed:
        raise Rejected(f"edit_type {edit_type!r} was not among the allowed types ({', '.join(allowed)})")
    word = _find_phrase(values["reverse_instruction"], REVERSE_FORBIDDEN)
    if word:
        raise Rejected(f"reverse_instruction is not self-contained: it refers to an earlier state ({word!r})")
    word = _find_phrase(values["tgt_caption"], TEMPORAL_FORBIDDEN)
    if word:
        raise Rejected(f"tgt_caption uses temporal language ({word!r})")
    word = _find_phrase(values["tgt_caption"], NEGATIVE_FORBIDDEN)
    if word:
        raise Rejected(f"tgt_caption uses negative phrasing ({word!r})")
    if values["tgt_caption"].lower() == values["src_caption"].lower():
        raise Rejected("tgt_caption is the same as src_caption")
    if values["instruction"].lower() == values["reverse_instruction"].lower():
        raise Rejected("reverse_instruction is the same as instruction")
    if force_photorealistic:
        said = (values["instruction"] + " " + values["tgt_caption"]).lower()
        if "photo" not in said and "realistic" not in said:
            raise Rejected("forced photorealistic style edit, but neither instruction nor tgt_caption asks for a photo")
    return ParsedEdit(edit_type=edit_type, **{f: values[f] for f in FIELDS if f != "edit_type"})


def parse_answer(answer: object, allowed: list[str], *, force_photorealistic: bool = False) -> ParsedEdit:
    """extract_json_object + check_edit; raises Rejected with the reason."""
    return check_edit(extract_json_object(answer), allowed, force_photorealistic=force_photorealistic)
