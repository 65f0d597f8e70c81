"""Video captions for styled clips (appendix D.2): sample detailed captions from a VideoUFO-style file, have an
LLM (text-only) remove every style hint, and wrap each sanitised caption in a template with a randomly chosen
style, cartoon or photo-realistic. The result is a prompts JSONL, one line per caption, written resumably; the
clips are made from those prompts by video_clips.py and kept or rejected by video_select.py."""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from byg_cli.errors import BygError
from byg_cli.makedata.journal import append_jsonl, read_jsonl, rejects_path, repair_torn_tail
from byg_cli.makedata.parse import Rejected
from byg_cli.makedata.sampler import image_rng
from byg_cli.text_files import read_csv, read_text
from byg_cli.vlm import ChatBackend, ChatRequest
from byg_cli.vlm.answers import for_storage, unparseable

VIDEO_STYLES = ("cartoon", "photo-realistic")
STYLE_TEMPLATE = "{caption} The video is in a {style} style."
CAPTION_COLUMNS = ("detailed_caption", "detailedcaption", "caption", "text", "prompt", "brief_caption")
ID_COLUMNS = ("id", "video_id", "clip_id", "videoid", "uid")
# Words that still name a look after sanitising; a caption that keeps one is rejected.
STYLE_WORDS = ("cartoon", "cartoonish", "animated", "animation", "anime", "photorealistic", "photo-realistic",
               "realistic", "cgi", "3d render", "3d-rendered", "illustration", "illustrated", "painting",
               "watercolor", "sketch", "pixel art", "claymation", "cinematic")

SANITIZE_SYSTEM = "You edit video captions. You answer with the edited caption only."
SANITIZE_PROMPT = (
    "Rewrite this video caption so that it no longer says anything about the visual or artistic style: remove "
    "words such as cartoon, animated, anime, realistic, photorealistic, CGI, 3D render, illustration, painting, "
    "cinematic, film grain or camera look. Keep everything about the content: subjects, actions, setting, "
    "colors, camera motion. Answer with the rewritten caption only.\n\nCaption: {caption}"
)


@dataclass(frozen=True)
class Caption:
    id: str
    text: str


def _norm(name: str) -> str:
    return re.sub(r"[\s\-]+", "_", name.strip().lower())


def read_captions(path: Path) -> list[Caption]:
    """Captions from a CSV (VideoUFO's metadata has a detailed-caption column) or a JSONL file."""
    path = Path(path)
    if not path.is_file():
        raise BygError(f"{path}: no such captions file")
    if path.suffix.lower() in (".jsonl", ".json"):
        rows = []
        for lineno, line in enumerate(read_text(path).splitlines(), 1):
            if line.strip():
                try:
                    rows.append((lineno, json.loads(line)))
                except json.JSONDecodeError as err:
                    raise BygError(f"{path}:{lineno}: not valid JSON ({err.msg})") from None
    else:
        rows = list(read_csv(path)[1])
    if not rows:
        raise BygError(f"{path}: no captions in it")
    captions, seen = [], set()
    for lineno, row in rows:
        if not isinstance(row, dict):
            raise BygError(f"{path}:{lineno}: expected an object with a caption")
        columns = {_norm(k): k for k in row}
        text_col = next((columns[c] for c in CAPTION_COLUMNS if c in columns), None)
        if text_col is None:
            raise BygError(f"{path}:{lineno}: no caption column (expected one of Detailed_Caption, caption, text; "
                           f"found {', '.join(map(str, row))})")
        id_col = next((columns[c] for c in ID_COLUMNS if c in columns), None)
        cid = str(row[id_col]).strip() if id_col and str(row.get(id_col) or "").strip() else f"row{lineno}"
        if cid in seen:
            raise BygError(f"{path}:{lineno}: duplicate id {cid!r}")
        seen.add(cid)
        text = " ".join(str(row.get(text_col) or "").split())
        if text:
            captions.append(Caption(cid, text))
    return captions


def sample_captions(captions: list[Caption], count: int | None, seed: int) -> list[Caption]:
    """A seeded random subset (all of them when count is None), in the file's order."""
    if count is None or count >= len(captions):
        return list(captions)
    if count < 1:
        raise BygError(f"--count must be at least 1, got {count}")
    picked = set(random.Random(seed).sample(range(len(captions)), count))
    return [c for i, c in enumerate(captions) if i in picked]


def clean_sanitised(answer: object) -> str:
    """The caption in an LLM's answer, or Rejected with the reason."""
    problem = unparseable(answer)
    if problem:
        raise Rejected(problem)
    text = answer.rsplit("</think>", 1)[-1].strip()
    text = re.sub(r"^(rewritten caption|caption)\s*:\s*", "", text, flags=re.IGNORECASE).strip()
    text = " ".join(text.strip().strip('"“”').split())
    if not text:
        raise Rejected("the LLM answered with an empty caption")
    lowered = text.lower()
    for word in STYLE_WORDS:
        if re.search(r"(?<!\w)" + re.escape(word) + r"(?!\w)", lowered):
            raise Rejected(f"the sanitised caption still names a style ({word!r})")
    return text


def pick_style(seed: int, caption_id: str) -> str:
    return image_rng(seed, "video:" + caption_id).choice(VIDEO_STYLES)


def wrap_caption(caption: str, style: str) -> str:
    if style not in VIDEO_STYLES:
        raise BygError(f"unknown video style {style!r} (expected one of {', '.join(VIDEO_STYLES)})")
    return STYLE_TEMPLATE.format(caption=caption.rstrip(), style=style)


def prompts_path(out: Path) -> Path:
    out = Path(out)
    stem = out.name[: -len(".jsonl")] if out.name.endswith(".jsonl") else out.name
    return out.with_name(stem + ".prompts.jsonl")


def make_video_prompts(captions_file: Path, backend: ChatBackend, prompts: Path, *, seed: int = 0,
                       count: int | None = None, chunk: int = 8, console: Console | None = None) -> dict[str, int]:
    """Sanitise and style-wrap the sampled captions into `prompts` (resumable); rejects go next to it."""
    console = console or Console(stderr=True)
    prompts = Path(prompts)
    rejects = rejects_path(prompts)
    chosen = sample_captions(read_captions(captions_file), count, seed)
    for path in (prompts, rejects):
        repair_torn_tail(path)
    done = {r.get("id") for r in read_jsonl(prompts)} | {r.get("id") for r in read_jsonl(rejects)}
    todo = [c for c in chosen if c.id not in done]
    counts = {"written": 0, "rejected": 0, "skipped": len(chosen) - len(todo)}
    with Progress(TextColumn("[bold]captions[/]"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[written]} written, {task.fields[rejected]} rejected"),
                  console=console) as progress:
        task = progress.add_task("captions", total=len(todo), written=0, rejected=0)
        for start in range(0, len(todo), max(1, chunk)):
            batch = todo[start : start + chunk]
            answers = backend.chat([
                ChatRequest(text=SANITIZE_PROMPT.format(caption=c.text), system=SANITIZE_SYSTEM, max_new_tokens=512)
                for c in batch
            ])
            for cap, answer in zip(batch, answers):
                base = {"id": cap.id, "caption": cap.text, "llm_raw": for_storage(answer), "llm_model": backend.name}
                try:
                    clean = clean_sanitised(answer)
                except Rejected as why:
                    append_jsonl(rejects, {**base, "reason": str(why)})
                    counts["rejected"] += 1
                    continue
                style = pick_style(seed, cap.id)
                append_jsonl(prompts, {**base, "sanitized": clean, "style": style, "prompt": wrap_caption(clean, style)})
                counts["written"] += 1
            progress.update(task, advance=len(batch), **{k: counts[k] for k in ("written", "rejected")})
    console.print(f"captions: {counts['written']} written -> {prompts}, {counts['rejected']} rejected -> {rejects}, "
                  f"{counts['skipped']} already done")
    return counts

