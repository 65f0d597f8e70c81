"""The limits every parser of a model's answer shares, so that no answer can hang, recurse or bloat a file.

An answer is parsed only if it is text of at most `MAX_PARSED_CHARS` characters (`unparseable` says why not),
JSON in it is read only up to `MAX_DEPTH` levels of nesting (`nesting_depth` measures it in one pass, without
recursion), and what is stored of it is at most `MAX_STORED_CHARS` characters (`for_storage`: the head and the
tail, where a reasoning model's thinking and its verdict are).
"""

from __future__ import annotations

import re
import reprlib

MAX_PARSED_CHARS = 200_000  # about 50k tokens: beyond any answer length a job asks for
MAX_DEPTH = 32  # an edit tuple or a judge's verdict nests two levels
MAX_STORED_CHARS = 20_000

_BRACKETS = re.compile(r"[\[\]{}()]")


def unparseable(answer: object) -> str | None:
    """Why `answer` is not parsed at all (not text, or too long), or None when it may be."""
    if not isinstance(answer, str):
        return f"the answer is not text ({type(answer).__name__}: {reprlib.repr(answer)})"
    if len(answer) > MAX_PARSED_CHARS:
        return f"the answer is too long to parse ({len(answer):,} characters, at most {MAX_PARSED_CHARS:,})"
    return None


def nesting_depth(text: str) -> int:
    """The deepest nesting of brackets of any kind in `text` (strings not skipped: an upper bound for JSON)."""
    depth = deepest = 0
    for match in _BRACKETS.finditer(text):
        if match.group() in "[{(":
            depth += 1
            deepest = max(deepest, depth)
        elif depth:
            depth -= 1
    return deepest


def for_storage(answer: object) -> str | None:
    """The answer as kept in a JSONL file: text, at most MAX_STORED_CHARS characters of it, the cut marked
    (None stays None: no answer)."""
    if answer is None:
        return None
    text = answer if isinstance(answer, str) else reprlib.repr(answer)
    if len(text) <= MAX_STORED_CHARS:
        return text
    half = MAX_STORED_CHARS // 2
    return f"{text[:half]}[... {len(text) - 2 * half:,} characters cut ...]{text[-half:]}"
