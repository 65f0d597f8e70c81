"""Turn a VLM's answer into an edit tuple, or say exactly why it cannot be one (appendix D.1).

`extract_json_object` finds the single JSON object in an answer: it skips a reasoning model's <think> part,
prefers the inside of a markdown code fence, parses strictly where it can and otherwise repairs the usual
slips (trailing commas, single quotes, comments) with the json-repair library; a list holding one object
counts as that object. `check_edit` then applies the rules: all five fields present as non-empty strings, an
allowed edit type, a self-contained reverse instruction, and a target caption that describes only the result.
Every failure raises `Rejected` with a one-line reason that goes to the rejects file.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import json_repair

from byg_cli.makedata.taxonomy import normalise_edit_type

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

_FENCE = re.compile(r"```[a-zA-Z0-9_-]*\s*\n?(.*?)```", re.DOTALL)
_QUOTED = re.compile(r"\"[^\"]*\"|“[^”]*”")


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


def _strict_objects(text: str) -> list:
    """Every JSON value that parses strictly at an opening brace/bracket, left to right, not overlapping."""
    decoder = json.JSONDecoder()
    found, pos = [], 0
    while True:
        starts = [i for i in (text.find("{", pos), text.find("[", pos)) if i >= 0]
        if not starts:
            return found
        start = min(starts)
        try:
            value, end = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            pos = start + 1
            continue
        if isinstance(value, (dict, list)):
            found.append(value)
        pos = end


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


def extract_json_object(answer: str) -> dict:
    text = _strip_thinking(answer)
    fenced = [block for block in _FENCE.findall(text) if "{" in block]
    if fenced:
        text = fenced[0]
    first = min((i for i in (text.find("{"), text.find("[")) if i >= 0), default=-1)
    if first < 0:
        raise Rejected("no JSON object in the answer")
    last = max(text.rfind("}"), text.rfind("]"))
    if last < first:
        raise Rejected("the JSON object is never closed (answer cut off?)")
    strict = _strict_objects(text)
    if len(strict) > 1 and sum(isinstance(v, dict) for v in strict) > 1:
        raise Rejected(f"the answer holds {sum(isinstance(v, dict) for v in strict)} JSON objects; expected exactly one")
    if strict:
        return _single_object(strict[0])
    repaired = json_repair.loads(text[first : last + 1], skip_json_loads=True)
    if repaired in ("", None, [], {}):
        raise Rejected("the answer's JSON could not be parsed or repaired")
    return _single_object(repaired)


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


def parse_answer(answer: str, allowed: list[str], *, force_photorealistic: bool = False) -> ParsedEdit:
    """extract_json_object + check_edit; raises Rejected with the reason."""
    return check_edit(extract_json_object(answer), allowed, force_photorealistic=force_photorealistic)
