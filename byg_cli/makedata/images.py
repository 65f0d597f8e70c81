"""The resumable image job: for each image, draw the allowed edit types, ask the VLM, parse and check the
answer, and append an edit record (accepted) or a reject line with the reason.

Resume: an image whose path is already in the output or in the rejects file is skipped, so a re-run after a
kill neither repeats nor misses an image. Determinism: images are taken in sorted order, in fixed chunks of the
full list; an image's draws come from an RNG made from the seed and its path, and the usage-balancing state
used for a chunk is the accepted records of the chunks before it, rebuilt from the output on resume. So a
resumed run asks the VLM exactly what an uninterrupted run would have asked.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageOps
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from byg_cli.data.records import EditRecord, append_records
from byg_cli.errors import BygError
from byg_cli.makedata.journal import append_jsonl, read_jsonl, rejects_path, repair_torn_tail
from byg_cli.makedata.metadata import image_key, load_metadata
from byg_cli.makedata.parse import Rejected, parse_answer
from byg_cli.makedata.prompt import SYSTEM_PROMPT, ImageContext, build_prompt
from byg_cli.makedata.sampler import CategorySampler, image_rng
from byg_cli.makedata.taxonomy import EDIT_TYPES
from byg_cli.outputs import check_output_file
from byg_cli.vlm import ChatBackend, ChatRequest
from byg_cli.vlm.answers import for_storage

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}
MAX_SIDE = 1280  # images are shrunk to this longest side before they go to the VLM


@dataclass
class Plan:
    """What one image is asked: its allowed types and whether a photorealistic style edit is forced."""

    key: str  # the image path as written in records: relative to the output's folder
    path: Path
    allowed: list[str]
    forced: bool
    prompt: str
    seed: int


@dataclass
class ImageJobSummary:
    accepted: int = 0
    rejected: int = 0
    skipped: int = 0  # already done by an earlier run
    usage: Counter = field(default_factory=Counter)
    target: dict[str, float] = field(default_factory=dict)
    reasons: Counter = field(default_factory=Counter)


def find_images(folder: Path) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise BygError(f"{folder}: no such images folder")
    found = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not found:
        raise BygError(f"{folder}: no JPEG, PNG or WebP images in it (searched recursively)")
    return found


def record_key(image: Path, out: Path) -> str:
    return Path(os.path.relpath(image.resolve(), out.resolve().parent)).as_posix()


def load_image(path: Path) -> Image.Image:
    with Image.open(path) as img:
        img = ImageOps.exif_transpose(img).convert("RGB")
    img.thumbnail((MAX_SIDE, MAX_SIDE))
    return img


def plan_image(path: Path, key: str, context: ImageContext, sampler: CategorySampler, *, seed: int, k: int,
               p_style: float) -> Plan:
    rng = image_rng(seed, key)
    forced = context.photorealistic is False and rng.random() < p_style
    allowed = ["style_change"] if forced else sampler.draw(rng, k)
    prompt = build_prompt(allowed, context, force_photorealistic=forced)
    return Plan(key=key, path=path, allowed=allowed, forced=forced, prompt=prompt, seed=rng.randrange(2**31))


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold]make-data[/]"), BarColumn(), MofNCompleteColumn(),
        TextColumn("[green]{task.fields[accepted]} accepted[/] [red]{task.fields[rejected]} rejected[/]"),
        TimeRemainingColumn(), console=console,
    )


def make_image_edits(
    images_dir: Path,
    backend: ChatBackend,
    out: Path,
    *,
    metadata: Path | None = None,
    seed: int = 0,
    limit: int | None = None,
    k: int = 3,
    p_style: float = 0.15,
    chunk: int = 8,
    max_new_tokens: int = 1024,
    console: Console | None = None,
) -> ImageJobSummary:
    out = Path(out)
    if not 0.0 <= p_style <= 1.0:
        raise BygError(f"--p-style must be between 0 and 1, got {p_style}")
    if not 1 <= k <= len(EDIT_TYPES):
        raise BygError(f"--k must be between 1 and {len(EDIT_TYPES)}, got {k}")
    if limit is not None and limit < 1:
        raise BygError(f"--limit must be at least 1, got {limit}")
    check_output_file(out)
    console = console or Console(stderr=True)
    images = find_images(images_dir)[:limit]
    contexts = load_metadata(metadata) if metadata else {}
    rejects = rejects_path(out)
    for path in (out, rejects):
        if repair_torn_tail(path):
            console.print(f"[yellow]{path}: cut a last line left unfinished by an interrupted run[/]")
    accepted_before = {r.get("image"): r for r in read_jsonl(out)}
    rejected_before = {r.get("image"): r for r in read_jsonl(rejects)}

    sampler = CategorySampler()
    summary = ImageJobSummary(target=dict(sampler.target))
    with _progress(console) as progress:
        task = progress.add_task("images", total=len(images), accepted=0, rejected=0)
        for start in range(0, len(images), max(1, chunk)):
            batch = images[start : start + chunk]
            keys = [record_key(p, out) for p in batch]
            todo = [(p, key) for p, key in zip(batch, keys) if key not in accepted_before and key not in rejected_before]
            summary.skipped += len(batch) - len(todo)
            plans = [
                plan_image(p, key, contexts.get(image_key(p.name), ImageContext()), sampler, seed=seed, k=k,
                           p_style=p_style)
                for p, key in todo
            ]
            new_types = _run_chunk(plans, backend, out, rejects, summary, max_new_tokens)
            # The balancing state after this chunk: every accepted record of the chunk, old or new.
            for key in keys:
                edit_type = new_types.get(key) or accepted_before.get(key, {}).get("edit_type")
                if edit_type:
                    sampler.record(edit_type)
            progress.update(task, advance=len(batch), accepted=summary.accepted, rejected=summary.rejected)
    summary.usage = Counter(sampler.usage)
    print_summary(summary, out, rejects, console)
    return summary


def _run_chunk(plans: list[Plan], backend: ChatBackend, out: Path, rejects: Path, summary: ImageJobSummary,
               max_new_tokens: int) -> dict[str, str]:
    """Ask the VLM about the chunk's images and write one line per image. Returns key -> accepted edit type."""
    ready, unreadable = [], {}
    for plan in plans:
        try:
            ready.append((plan, load_image(plan.path)))
        except (OSError, ValueError, Image.DecompressionBombError) as err:
            unreadable[plan.key] = f"cannot read the image: {err}"
    answers = backend.chat([
        ChatRequest(text=plan.prompt, images=[img], system=SYSTEM_PROMPT, max_new_tokens=max_new_tokens,
                    seed=plan.seed)
        for plan, img in ready
    ]) if ready else []
    by_key = {plan.key: answer for (plan, _), answer in zip(ready, answers)}
    accepted: dict[str, str] = {}
    for plan in plans:  # written in the images' order
        answer = by_key.get(plan.key)
        extra = {"vlm_raw": for_storage(answer), "vlm_model": backend.name, "allowed_types": plan.allowed}
        if plan.forced:
            extra["forced_photorealistic"] = True
        try:
            if plan.key in unreadable:
                raise Rejected(unreadable[plan.key])
            edit = parse_answer(answer, plan.allowed, force_photorealistic=plan.forced)
        except Rejected as why:
            append_jsonl(rejects, {"image": plan.key, "reason": str(why), **extra})
            summary.rejected += 1
            summary.reasons[reason_kind(str(why))] += 1
            continue
        append_records(out, [EditRecord(media=plan.key, src_caption=edit.src_caption, instruction=edit.instruction,
                                        tgt_caption=edit.tgt_caption, reverse_instruction=edit.reverse_instruction,
                                        edit_type=edit.edit_type, extra=extra)])
        summary.accepted += 1
        accepted[plan.key] = edit.edit_type
    return accepted


def reason_kind(reason: str) -> str:
    """A reject reason without its particulars (quoted values, lists), to count reasons by kind."""
    return " ".join(re.sub(r"'[^']*'|\([^)]*\)", "", reason).split(":")[0].split())


def print_summary(summary: ImageJobSummary, out: Path, rejects: Path, console: Console) -> None:
    table = Table(title="edit types of the accepted records (all runs)")
    table.add_column("edit type")
    table.add_column("records", justify="right")
    table.add_column("share", justify="right")
    table.add_column("target", justify="right")
    total = sum(summary.usage.values())
    for t in EDIT_TYPES:
        n = summary.usage.get(t.key, 0)
        share = f"{100 * n / total:.1f}%" if total else "-"
        table.add_row(t.key, str(n), share, f"{100 * summary.target.get(t.key, 0):.1f}%")
    console.print(table)
    console.print(
        f"this run: [green]{summary.accepted} accepted[/] -> {out}, [red]{summary.rejected} rejected[/] -> {rejects}"
        f", {summary.skipped} already done"
    )
    if summary.reasons:
        reasons = Table(title="reject reasons (this run)")
        reasons.add_column("reason")
        reasons.add_column("count", justify="right")
        for reason, n in summary.reasons.most_common():
            reasons.add_row(reason, str(n))
        console.print(reasons)
