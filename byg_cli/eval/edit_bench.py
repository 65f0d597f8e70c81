"""What GEdit-Bench and the style benchmark share: resumable generation with an editor, resumable VIEScore
judging into a JSONL store, and per-category SC / PQ / O summaries."""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Optional, Protocol, Sequence

import PIL.Image

from byg_cli.errors import BygError
from byg_cli.eval.stats import macro_average, mean_sem
from byg_cli.eval.vie_protocol import claim_store
from byg_cli.eval.viescore import JudgeItem, Judgement, VieScorer
from byg_cli.text_files import read_text


class ImageEditor(Protocol):
    """`byg_cli.edit.Editor` or anything with the same `edit` method."""

    def edit(self, images: list[PIL.Image.Image], instructions: list[str], *, steps: int = 20,
             seed: int = 0) -> list[PIL.Image.Image]: ...


def target_size(width: int, height: int, target_area: int = 512 * 512, multiple: int = 32) -> tuple[int, int]:
    """GEdit-Bench's input size rule: keep the aspect ratio at about `target_area` pixels, round both sides to
    a multiple of 32, then move the width one step of 32 towards the target area (the benchmark's
    generation script adjusts only the width, once, whichever way the area missed)."""
    ratio = width / height
    w = math.sqrt(target_area * ratio)
    h = w / ratio
    w = round(w / multiple) * multiple
    h = round(h / multiple) * multiple
    area = w * h
    if area < target_area:
        w += multiple
    elif area > target_area:
        w -= multiple
    return max(multiple, w), max(multiple, h)


def resize_for_model(image: PIL.Image.Image) -> PIL.Image.Image:
    image = image.convert("RGB")
    return image.resize(target_size(*image.size), PIL.Image.Resampling.BICUBIC)


def save_png(image: PIL.Image.Image, path: Path) -> None:
    """Write atomically, so an interrupted run never leaves a half-written output that resume would skip."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    image.save(tmp, format="PNG")
    os.replace(tmp, path)


# what opening a broken image raises
UNREADABLE_IMAGE = (OSError, ValueError, SyntaxError, PIL.Image.DecompressionBombError)


@dataclass
class PendingEdit:
    instruction: str
    output: Path
    load_input: Callable[[], PIL.Image.Image]  # the model's input, already resized
    source: str = ""  # where the input comes from, for the line saying it could not be read


def generate(pending: Iterable[PendingEdit], editor: ImageEditor, *, batch_size: int, steps: int, seed: int,
             on_done: Callable[[int], None] = lambda n: None,
             on_unreadable: Optional[Callable[[str], None]] = None) -> int:
    """Edit every pending item whose output does not exist yet; returns how many were written. With
    `on_unreadable`, an input that cannot be read is passed over (told why, in one line) instead of ending the run."""
    written, batch, images = 0, [], []

    def flush() -> int:
        outputs = editor.edit(images, [p.instruction for p in batch], steps=steps, seed=seed)
        if len(outputs) != len(batch):
            raise RuntimeError(f"editor returned {len(outputs)} images for {len(batch)} inputs")
        for item, image in zip(batch, outputs):
            save_png(image, item.output)
        on_done(len(batch))
        return len(batch)

    for item in pending:
        if item.output.exists():
            on_done(1)
            continue
        try:
            image = item.load_input()
        except UNREADABLE_IMAGE as err:
            if on_unreadable is None:
                raise
            on_unreadable(f"{item.source}: cannot read the image ({err})")
            on_done(1)
            continue
        batch.append(item)
        images.append(image)
        if len(batch) >= batch_size:
            written += flush()
            batch, images = [], []
    if batch:
        written += flush()
    return written


# -------------------------------------------------------------------------------------------------- judging


@dataclass(frozen=True)
class JudgeCase:
    key: str
    category: str
    instruction: str
    source: Path
    edited: Path
    tags: dict = field(default_factory=dict)  # e.g. {"intersection": True}


def safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "judge"


def read_judgements(path: Path) -> dict[str, Judgement]:
    out: dict[str, Judgement] = {}
    if not path.exists():
        return out
    for lineno, line in enumerate(read_text(path).splitlines(), 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            out[data["key"]] = Judgement.from_dict(data)
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise BygError(f"{path}:{lineno}: not a judgement record ({err}); delete the line to re-judge") from err
    return out


def _open_rgb(path: Path) -> PIL.Image.Image:
    with PIL.Image.open(path) as im:
        return im.convert("RGB")


def _judge_item(case: JudgeCase) -> JudgeItem | str:
    """The case's source and edited image for the judge, or why one of them cannot be read."""
    images = []
    for path in (case.source, case.edited):
        try:
            images.append(_open_rgb(path))
        except UNREADABLE_IMAGE as err:
            return f"{path}: cannot read the image ({err})"
    return JudgeItem(images[0], images[1], case.instruction)


def open_store(store: Path, scorer: VieScorer) -> dict[str, Judgement]:
    """The judgements already in `store`, its protocol checked against the scorer's and recorded. Runs before any
    work, so a damaged or differently judged store is refused before edits are made or anything is written."""
    done = read_judgements(store)
    claim_store(store, scorer.describe())
    return done


def judge(cases: Sequence[JudgeCase], scorer: VieScorer, store: Path, *, batch_size: int = 8,
          retry_failed: bool = False, on_done: Callable[[int], None] = lambda n: None,
          on_unreadable: Callable[[str], None] = lambda why: None) -> dict[str, Judgement]:
    """Judge every case that has an edited image and no stored judgement (or a failed one with
    `retry_failed`). Each batch is appended to `store` as soon as it is answered. A case whose image cannot be
    read (a corrupt file) is left unjudged, so a later run judges it once the file is replaced, and reported
    through `on_unreadable`."""
    done = open_store(store, scorer)
    todo = []
    for case in cases:
        previous = done.get(case.key)
        if previous is not None and not (retry_failed and previous.parse_failed):
            on_done(1)
        elif not case.edited.exists():
            on_done(1)  # reported as missing by the summary
        else:
            todo.append(case)
    store.parent.mkdir(parents=True, exist_ok=True)
    for start in range(0, len(todo), batch_size):
        batch = todo[start : start + batch_size]
        chunk, items = [], []
        for case in batch:
            item = _judge_item(case)
            if isinstance(item, str):
                on_unreadable(item)
            else:
                chunk.append(case)
                items.append(item)
        judgements = scorer.judge(items) if items else []
        with store.open("a", encoding="utf-8") as fh:
            for case, judgement in zip(chunk, judgements):
                record = {"key": case.key, "category": case.category, "instruction": case.instruction,
                          **case.tags, **judgement.to_dict()}
                fh.write(json.dumps(record, ensure_ascii=False) + "\n")
                done[case.key] = judgement
        on_done(len(batch))
    return {c.key: done[c.key] for c in cases if c.key in done}


def report_unreadable(unreadable: Sequence[str], console, done: str = "judged") -> None:
    """One line per item the editor or judge could not see (counted as missing or unjudged in the tables), then
    what to do."""
    for why in unreadable:
        console.print(f"not {done}: {why}", style="yellow", markup=False, highlight=False, soft_wrap=True)
    if unreadable:
        console.print(f"{len(unreadable)} item(s) not {done} because an image could not be read: replace the "
                      f"file(s) (or delete an edit to generate it again) and run again to have them {done}",
                      style="yellow", markup=False, highlight=False, soft_wrap=True)


# ------------------------------------------------------------------------------------------------ summaries


METRICS = ("sc", "pq", "o")


def summarize(cases: Sequence[JudgeCase], judgements: dict[str, Judgement],
              categories: Sequence[str] | None = None, *, empty_is_nan: bool = False) -> dict:
    """Per category: mean ± SEM of SC, PQ and O over scored items, with counts of items, missing outputs and
    parse failures; "average" is the macro average of the category means (GEdit-Bench's Average), "pooled"
    the mean over all scored items. A category without a scored item drops out of the average, or, with
    `empty_is_nan` (the reference protocol), makes it NaN (null in the JSON; "empty_categories" names them)."""
    order = list(categories) if categories else sorted({c.category for c in cases})
    per_cat: dict[str, dict] = {}
    pooled: dict[str, list[float]] = {m: [] for m in METRICS}
    for cat in order:
        members = [c for c in cases if c.category == cat]
        values: dict[str, list[float]] = {m: [] for m in METRICS}
        failures = missing = random_filled = 0
        for case in members:
            j = judgements.get(case.key)
            if j is None:
                missing += 1
                continue
            failures += int(j.parse_failed)
            random_filled += int(bool(j.random_filled))
            if j.o is not None:
                for m in METRICS:
                    values[m].append(getattr(j, m))
        entry = {"n": len(members), "scored": len(values["o"]), "unjudged": missing,
                 "parse_failures": failures, "random_filled": random_filled}
        for m in METRICS:
            entry[m] = mean_sem(values[m]).to_dict()
            pooled[m].extend(values[m])
        per_cat[cat] = entry
    empty = [c for c, e in per_cat.items() if e["scored"] == 0]
    if empty_is_nan and empty:
        average = {m: None for m in METRICS}
    else:
        average = {m: _none_if_nan(macro_average({c: _mean_or_nan(e[m]) for c, e in per_cat.items()}))
                   for m in METRICS}
    totals = {k: sum(e[k] for e in per_cat.values())
              for k in ("n", "scored", "unjudged", "parse_failures", "random_filled")}
    return {"categories": per_cat, "average": average, "empty_categories": empty,
            "pooled": {m: mean_sem(pooled[m]).to_dict() for m in METRICS}, "totals": totals}


def _mean_or_nan(entry: dict) -> float:
    return float("nan") if entry["mean"] is None else entry["mean"]


def _none_if_nan(value: float) -> float | None:
    return None if math.isnan(value) else value



# ---------------------------------------------------------------------------------------- opening the parts


def open_editor(run: Path, checkpoint: str = "latest") -> ImageEditor:
    """The trained editor of a run folder (`byg edit`'s Editor)."""
    try:
        from byg_cli.edit import Editor
    except ImportError as err:
        raise BygError("editing with --run needs `byg edit` (byg_cli/edit.py), which this build lacks") from err
    if not run.is_dir():
        raise BygError(f"--run {run}: not a run folder")
    return Editor.from_run(run, checkpoint=checkpoint)


@dataclass
class JudgeOptions:
    spec: str | None = None  # local model path or OpenAI-compatible URL; None = do not judge
    model: str | None = None
    name: str | None = None  # folder name of the judgements; default the backend's name
    concurrency: int = 8
    timeout: float = 120
    retries: int = 3
    random_on_parse_failure: bool | None = None  # None: the protocol's default (byg: off, reference: on)
    seed: int = 42
    max_new_tokens: int | None = None  # None: 512, or the reference's 1400 with official prompts
    prompts: Path | None = None  # a VIEScore checkout (or its prompt files); None = byg's own wording
    protocol: str | None = None  # "byg" or "reference"; None = "reference" when prompts are given


PROTOCOLS = ("byg", "reference")
REFERENCE_MAX_TOKENS = 1400  # what VIEScore's OpenAI client asks for


def open_scorer(opts: JudgeOptions) -> VieScorer | None:
    """The VIEScore scorer for the options: prompts, protocol and request layout resolved, the judge opened.
    A bad --prompts folder or --protocol is reported even when no judge is given."""
    from byg_cli.eval.vie_prompts import load_prompts

    protocol = opts.protocol or ("reference" if opts.prompts is not None else "byg")
    if protocol not in PROTOCOLS:
        raise BygError(f"--protocol {protocol!r}: choose from {PROTOCOLS}")
    prompts = load_prompts(opts.prompts) if opts.prompts is not None else None
    if opts.spec is None:
        return None
    from byg_cli.eval.judge import open_judge
    from byg_cli.eval.vie_reference import ReferenceVieScorer

    official = prompts is not None
    backend = open_judge(opts.spec, model=opts.model, concurrency=opts.concurrency, timeout=opts.timeout,
                         retries=opts.retries, layout="reference" if official else "byg")
    kwargs = dict(seed=opts.seed, prompts=prompts,
                  max_new_tokens=opts.max_new_tokens or (REFERENCE_MAX_TOKENS if official else 512))
    if opts.random_on_parse_failure is not None:
        kwargs["random_on_parse_failure"] = opts.random_on_parse_failure
    return (ReferenceVieScorer if protocol == "reference" else VieScorer)(backend, **kwargs)
