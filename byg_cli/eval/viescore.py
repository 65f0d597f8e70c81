"""VIEScore (Ku et al., ACL 2024) for text-guided image editing ("tie"): the two judge prompts, robust parsing
of the judge's answers, and the SC / PQ / O combination.

SC = min(editing success, over-editing), judged on [source, edited];
PQ = min(naturalness, artifacts), judged on the edited image alone;
O  = sqrt(SC * PQ). All sub-scores are on 0..10.

The prompts follow the published protocol's wording in our own words. A parse failure is recorded (with the
raw answer and the reason) and leaves the item without a score; only `random_on_parse_failure=True`
reproduces the original implementation's fallback of random integers 0..10. The parser works within the limits
of `byg_cli.vlm.answers` (text only, bounded length and nesting, every pass linear), so no answer can hang or
crash it, and the raw answers are stored cut to MAX_STORED_CHARS.

`prompts=` takes the official templates read from the user's VIEScore copy (`vie_prompts.py`); the reference's
own parsing and single-draw fallback are `vie_reference.ReferenceVieScorer` (`--protocol reference`).
"""

from __future__ import annotations

import ast
import json
import math
import random
import re
from dataclasses import asdict, dataclass, field

import PIL.Image

from byg_cli.eval.judge import ChatBackend, ChatRequest
from byg_cli.eval.vie_prompts import PromptSet
from byg_cli.vlm.answers import MAX_DEPTH, for_storage, nesting_depth, unparseable

CONTEXT = (
    "You are a professional digital artist. You will evaluate the effectiveness of AI-generated images "
    "according to the rules below. All the images and any humans in them are AI-generated, so there is no "
    "privacy concern.\n"
    "Answer in this JSON format and keep the reasoning short:\n"
    '{\n"score" : [...],\n"reasoning" : "..."\n}'
)

TWO_IMAGE_RULE = (
    "RULES:\n"
    "Two images are given: the first is the original AI-generated image, the second is an edited version of "
    "the first. The goal is to judge how well the editing instruction was carried out. The two images may "
    "look exactly the same when the edit failed."
)

SC_RULE = (
    "From 0 to 10:\n"
    "Score 1 (editing success): how well the edited image follows the editing instruction. 0 means the edited "
    "scene does not follow the instruction at all; 10 means it follows the instruction perfectly.\n"
    "Score 2 (over-editing): how much the edited image was changed beyond what the instruction asks. 0 means "
    "the edited image is completely different from the original; 10 means the edit is minimal yet effective.\n"
    "Give the output as score = [score1, score2], where score1 rates editing success and score2 rates "
    "over-editing.\n"
    "Editing instruction: <instruction>"
)

PQ_RULE = (
    "RULES:\n"
    "The image is an AI-generated image. The goal is to rate how natural it looks and how free of artifacts "
    "it is.\n"
    "From 0 to 10:\n"
    "Score 1 (naturalness): 0 means the scene looks unnatural (a wrong sense of distance, shadows or "
    "lighting); 10 means it looks entirely natural.\n"
    "Score 2 (artifacts): 0 means heavy artifacts (distortion, watermarks, scratches, blurred faces, unusual "
    "body parts, subjects not harmonised with the scene); 10 means no artifacts.\n"
    "Give the output as score = [naturalness, artifacts]."
)

DELIMITER = "||V^=^V||"
SCORE_MIN, SCORE_MAX = 0.0, 10.0


def sc_prompt(instruction: str) -> str:
    return "\n".join([CONTEXT, TWO_IMAGE_RULE, SC_RULE]).replace("<instruction>", instruction)


def pq_prompt() -> str:
    return "\n".join([CONTEXT, PQ_RULE])


# byg's own wording: scores judged with it are not comparable with published VIEScore numbers
BYG_PROMPTS = PromptSet("byg", "\n".join([CONTEXT, TWO_IMAGE_RULE, SC_RULE]), pq_prompt(), "byg_cli/eval/viescore.py")


# ----------------------------------------------------------------------------------------------- parsing


@dataclass(frozen=True)
class Parsed:
    scores: list[float] | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.scores is not None


_THINK_TAG = re.compile(r"</?think>", re.I)
_BRACES = re.compile(r"[{}]")
_SCORE_FIELD = re.compile(r"""["']?\bscores?\b["']?\s*[:=]\s*(\[[^\[\]]*\]|-?\d+(?:\.\d+)?)""", re.I)
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_NUMERIC_LIST = re.compile(r"\[\s*-?\d+(?:\.\d+)?(?:\s*,\s*-?\d+(?:\.\d+)?)*\s*\]")


MAX_CANDIDATE_CHARS = 20_000  # a verdict object is a few hundred characters


def _without_thinking(text: str) -> str:
    """`text` with every <think>...</think> block replaced by a space (an unclosed one is kept), in one pass."""
    parts, pos, opened = [], 0, None
    for tag in _THINK_TAG.finditer(text):
        if not tag.group().startswith("</"):
            opened = tag.start() if opened is None else opened
        elif opened is not None:
            parts += [text[pos:opened], " "]
            pos, opened = tag.end(), None
    return "".join(parts) + text[pos:]


def _balanced_objects(text: str) -> list[str]:
    """Every top-level {...} span, by brace depth (braces inside reasoning text may break one; that is
    why the field regex runs after this)."""
    spans, depth, start = [], 0, None
    for brace in _BRACES.finditer(text):
        if brace.group() == "{":
            if depth == 0:
                start = brace.start()
            depth += 1
        elif depth > 0:
            depth -= 1
            if depth == 0 and start is not None:
                spans.append(text[start : brace.end()])
    return spans


def _loads_lenient(candidate: str):
    if len(candidate) > MAX_CANDIDATE_CHARS or nesting_depth(candidate) > MAX_DEPTH:
        return None
    attempts = [candidate]
    flat = candidate.replace("\r", " ").replace("\n", " ")
    no_trailing = re.sub(r",\s*([}\]])", r"\1", flat)
    # Keys are words separated by single spaces, written so that no key can make the regex backtrack for long.
    quoted_keys = re.sub(r"([{,]\s*)([A-Za-z_][A-Za-z0-9_]*(?: [A-Za-z0-9_]+)*)\s*:", r'\1"\2":', no_trailing)
    attempts += [flat, no_trailing, quoted_keys]
    for attempt in attempts:
        try:
            return json.loads(attempt)
        except ValueError:
            pass
    try:  # python-style dicts: single quotes, True/False
        return ast.literal_eval(no_trailing)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):  # TypeError: {[1]: 2}
        return None


def _as_numbers(value) -> list[float] | None:
    items = value if isinstance(value, (list, tuple)) else [value]
    out = []
    for item in items:
        if isinstance(item, bool):
            return None
        if isinstance(item, (int, float)):
            try:
                out.append(float(item))
            except OverflowError:  # an integer past float range (python-style hex literals reach it)
                return None
        elif isinstance(item, str) and re.fullmatch(r"\s*-?\d+(?:\.\d+)?\s*", item):
            out.append(float(item))
        else:
            return None
    return out


def _validated(numbers: list[float] | None, expected: int, where: str) -> Parsed:
    if numbers is None:
        return Parsed(None, f"{where}: the score is not a list of numbers")
    if len(numbers) != expected:
        return Parsed(None, f"{where}: expected {expected} scores, got {len(numbers)}")
    bad = [n for n in numbers if not (SCORE_MIN <= n <= SCORE_MAX) or math.isnan(n)]
    if bad:
        return Parsed(None, f"{where}: score(s) {bad} outside {SCORE_MIN:g}..{SCORE_MAX:g}")
    return Parsed(numbers)


def parse_scores(text: object, expected: int = 2) -> Parsed:
    """Read the judge's `score` list from a messy answer: JSON (possibly fenced, with prose around it, single
    quotes, unquoted keys, trailing commas, string numbers), the `||V^=^V||` delimiters, a `score: [..]`
    field inside broken JSON, or a bare list / bare number. Anything else is a failure with a reason."""
    if text is None or (isinstance(text, str) and not text.strip()):
        return Parsed(None, "empty answer")
    problem = unparseable(text)
    if problem:
        return Parsed(None, problem)
    body = _without_thinking(text)
    if body.count(DELIMITER) >= 2:
        body = body.split(DELIMITER)[1]
    body = re.sub(r"```(?:json|JSON|python)?", " ", body)

    candidates = _balanced_objects(body)
    first, last = body.find("{"), body.rfind("}")
    if first != -1 and last > first:
        candidates.append(body[first : last + 1])
    last_error = None
    for candidate in reversed(candidates):
        obj = _loads_lenient(candidate)
        if isinstance(obj, dict):
            key = next((k for k in obj if isinstance(k, str) and k.strip().lower() in ("score", "scores")), None)
            if key is not None:
                parsed = _validated(_as_numbers(obj[key]), expected, "json")
                if parsed.ok:
                    return parsed
                last_error = parsed.error

    match = None
    for match in _SCORE_FIELD.finditer(body):
        pass  # the last `score: ...` field wins (earlier ones tend to be the prompt's format being echoed)
    if match is not None:
        numbers = [float(n) for n in _NUMBER.findall(match.group(1))]
        return _validated(numbers, expected, "score field")

    stripped = body.strip().strip(".").strip()
    lists = _NUMERIC_LIST.findall(body)
    if lists:  # the last numeric list in the prose, e.g. "Final answer: [8, 10]"
        return _validated([float(n) for n in _NUMBER.findall(lists[-1])], expected, "bare list")
    if re.fullmatch(r"-?\d+(?:\.\d+)?", stripped):
        return _validated([float(stripped)], expected, "bare number")
    return Parsed(None, last_error or "no score found")


# ------------------------------------------------------------------------------------------------ scoring


@dataclass
class Judgement:
    sc_scores: list[float] | None
    pq_scores: list[float] | None
    sc_raw: str
    pq_raw: str
    sc_error: str | None = None
    pq_error: str | None = None
    random_filled: list[str] = field(default_factory=list)  # which of "sc"/"pq" got random scores

    @property
    def sc(self) -> float | None:
        return min(self.sc_scores) if self.sc_scores else None

    @property
    def pq(self) -> float | None:
        return min(self.pq_scores) if self.pq_scores else None

    @property
    def o(self) -> float | None:
        if self.sc is None or self.pq is None:
            return None
        return math.sqrt(self.sc * self.pq)

    @property
    def parse_failed(self) -> bool:
        return self.sc_error is not None or self.pq_error is not None

    def to_dict(self) -> dict:
        """The stored record: the raw answers cut to MAX_STORED_CHARS (a judge can answer megabytes)."""
        out = asdict(self)
        out.update(sc_raw=for_storage(self.sc_raw), pq_raw=for_storage(self.pq_raw), sc=self.sc, pq=self.pq, o=self.o)
        return out

    @classmethod
    def from_dict(cls, data: dict) -> "Judgement":
        names = ("sc_scores", "pq_scores", "sc_raw", "pq_raw", "sc_error", "pq_error", "random_filled")
        return cls(**{k: data[k] for k in names if k in data})


@dataclass(frozen=True)
class JudgeItem:
    source: PIL.Image.Image
    edited: PIL.Image.Image
    instruction: str


class VieScorer:
    """Asks a chat backend the two VIEScore questions for each (source, edited, instruction), with byg's
    parsing (`protocol = "byg"`); `prompts` picks the wording (byg's own, or the official files)."""

    protocol = "byg"

    def __init__(self, backend: ChatBackend, *, random_on_parse_failure: bool = False, seed: int = 42,
                 max_new_tokens: int = 512, prompts: PromptSet | None = None):
        self.backend = backend
        self.random_on_parse_failure = random_on_parse_failure
        self.rng = random.Random(seed)
        self.seed = seed
        self.max_new_tokens = max_new_tokens
        self.prompts = prompts or BYG_PROMPTS

    def describe(self) -> dict:
        """What decides the scores besides the judge model: the prompts (and their hash), the parsing
        protocol and the request layout. Stored next to the judgements and printed in the reports."""
        return {"protocol": self.protocol, "prompts": self.prompts.describe(),
                "layout": getattr(self.backend, "layout", "byg"), "max_new_tokens": self.max_new_tokens}

    @property
    def store_name(self) -> str:
        """Default folder name of the judgements: the backend's name, plus the prompts and protocol unless
        they are byg's defaults (so judgements under different protocols never mix)."""
        if self.prompts.name == "byg" and self.protocol == "byg":
            return self.backend.name
        return f"{self.backend.name}__{self.prompts.name}-{self.prompts.sha256[:8]}-{self.protocol}"

    def requests(self, item: JudgeItem) -> list[ChatRequest]:
        source = item.source.convert("RGB")
        edited = item.edited.convert("RGB")
        if edited.size != source.size:  # as the benchmark's scorer: compare at the source's size
            edited = edited.resize(source.size, PIL.Image.Resampling.BICUBIC)
        common = dict(max_new_tokens=self.max_new_tokens, temperature=0.0, seed=self.seed)
        return [
            ChatRequest(text=self.prompts.sc(item.instruction), images=[source, edited], **common),
            ChatRequest(text=self.prompts.pq(), images=[edited], **common),
        ]

    def judge(self, items: list[JudgeItem]) -> list[Judgement]:
        requests = [req for item in items for req in self.requests(item)]
        answers = self.backend.chat(requests)
        if len(answers) != len(requests):
            raise RuntimeError(f"judge returned {len(answers)} answers for {len(requests)} requests")
        return [self._judgement(answers[2 * i], answers[2 * i + 1]) for i in range(len(items))]

    def _judgement(self, sc_raw: str, pq_raw: str) -> Judgement:
        sc, pq = parse_scores(sc_raw, 2), parse_scores(pq_raw, 2)
        judgement = Judgement(sc.scores, pq.scores, sc_raw, pq_raw, sc.error, pq.error)
        if self.random_on_parse_failure:
            if judgement.sc_scores is None:
                judgement.sc_scores = [float(self.rng.randint(0, 10)) for _ in range(2)]
                judgement.random_filled.append("sc")
            if judgement.pq_scores is None:
                judgement.pq_scores = [float(self.rng.randint(0, 10)) for _ in range(2)]
                judgement.random_filled.append("pq")
        return judgement
