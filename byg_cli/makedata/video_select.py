"""Keep or reject generated clips whose look does not match the style they were prompted with (appendix D.2),
then write the video edit records.

Two deciders: a manual list (a text file, one `ID keep` or `ID reject [note]` per line, `#` comments) and an
automatic zero-shot CLIP check (an open_clip model given by local folder, `local-dir:` layout:
open_clip_config.json + open_clip_model.safetensors) that scores a few frames of each clip against one text per
style. A clip in the manual list gets the list's verdict; any other clip gets the CLIP verdict when a CLIP model
is given, and is left out as "not reviewed" otherwise. Every left-out clip goes to the rejects file with why.

A kept clip made with style s gives the record: video = the clip, src_caption = its styled prompt,
instruction = "Turn the video to <other style> style", tgt_caption = the sanitised caption wrapped with the other
style, reverse_instruction = "Turn the video to <s> style", edit_type = style_change.
"""

from __future__ import annotations

import os
from pathlib import Path

from PIL import Image
from rich.console import Console

from byg_cli.data.records import EditRecord, append_records
from byg_cli.errors import BygError
from byg_cli.extras import require
from byg_cli.makedata.journal import append_jsonl, read_jsonl, rejects_path, repair_torn_tail
from byg_cli.makedata.video_captions import VIDEO_STYLES, wrap_caption
from byg_cli.text_files import read_text

CLIP_TEXTS = {
    "cartoon": "a frame from a cartoon animation",
    "photo-realistic": "a frame from a photo-realistic video filmed with a real camera",
}
VIDEO_SUFFIXES = (".mp4", ".webm", ".mov", ".mkv")


def read_keep_list(path: Path) -> dict[str, bool]:
    path = Path(path)
    if not path.is_file():
        raise BygError(f"{path}: no such keep/reject list")
    verdicts: dict[str, bool] = {}
    for lineno, line in enumerate(read_text(path).splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) < 2 or parts[1].lower() not in ("keep", "reject"):
            raise BygError(f"{path}:{lineno}: expected 'ID keep' or 'ID reject', got {line!r}")
        if parts[0] in verdicts:
            raise BygError(f"{path}:{lineno}: {parts[0]!r} is listed twice")
        verdicts[parts[0]] = parts[1].lower() == "keep"
    return verdicts


def read_frames(video: Path, count: int = 4) -> list[Image.Image]:
    """`count` frames spread over the clip, decoded with PyAV."""
    av = require("av", "video", "reading a video file")

    try:
        with av.open(str(video)) as container:
            frames = [f.to_image() for f in container.decode(video=0)]
    except (av.error.FFmpegError, OSError) as err:
        raise BygError(f"{video}: cannot decode the video ({err})") from None
    if not frames:
        raise BygError(f"{video}: no video frames in it")
    step = max(1, len(frames) // count)
    return frames[::step][:count]


class ClipStyleChecker:
    """Zero-shot style scores of frames with an open_clip model from a local folder."""

    def __init__(self, folder: Path, device: str = "cpu"):
        import torch

        open_clip = require("open_clip", "eval", "the CLIP style check (--clip)")

        folder = Path(folder)
        if not (folder / "open_clip_config.json").is_file():
            raise BygError(f"{folder}: not an open_clip model folder (no open_clip_config.json)")
        self.torch = torch
        self.model, _, self.preprocess = open_clip.create_model_and_transforms(f"local-dir:{folder}", device=device)
        self.model.eval()
        self.device = device
        tokenizer = open_clip.get_tokenizer(f"local-dir:{folder}")
        with torch.no_grad():
            self.text = self.model.encode_text(tokenizer([CLIP_TEXTS[s] for s in VIDEO_STYLES]).to(device),
                                               normalize=True)

    def style_probabilities(self, frames: list[Image.Image]) -> dict[str, float]:
        """Per style, the probability CLIP gives it, averaged over the frames."""
        torch = self.torch
        with torch.no_grad():
            pixels = torch.stack([self.preprocess(f.convert("RGB")) for f in frames]).to(self.device)
            image = self.model.encode_image(pixels, normalize=True)
            probs = (self.model.logit_scale.exp() * image @ self.text.T).softmax(-1).mean(0)
        return {s: float(p) for s, p in zip(VIDEO_STYLES, probs)}


def find_clip(clips_dir: Path, clip_id: str) -> Path | None:
    return next((clips_dir / f"{clip_id}{s}" for s in VIDEO_SUFFIXES if (clips_dir / f"{clip_id}{s}").is_file()), None)


def video_record(prompt: dict, clip_key: str) -> EditRecord:
    style = prompt["style"]
    other = next(s for s in VIDEO_STYLES if s != style)
    return EditRecord(
        media=clip_key, media_kind="video", src_caption=prompt["prompt"],
        instruction=f"Turn the video to {other} style", tgt_caption=wrap_caption(prompt["sanitized"], other),
        reverse_instruction=f"Turn the video to {style} style", edit_type="style_change",
        extra={"clip_id": prompt["id"], "source_style": style},
    )


def select_clips(prompts: Path, clips_dir: Path, out: Path, *, keep_list: Path | None = None,
                 clip_model: Path | None = None, threshold: float = 0.5, frames: int = 4,
                 console: Console | None = None) -> dict[str, int]:
    """Decide keep/reject for each prompt's clip and write records (kept) and rejects (with reason). Resumable."""
    console = console or Console(stderr=True)
    clips_dir, out = Path(clips_dir), Path(out)
    if not clips_dir.is_dir():
        raise BygError(f"{clips_dir}: no such clips folder")
    if keep_list is None and clip_model is None:
        raise BygError("give a manual keep/reject list (--keep-list), a CLIP model folder (--clip), or both")
    if not 0.0 <= threshold <= 1.0:
        raise BygError(f"--clip-threshold must be between 0 and 1, got {threshold}")
    verdicts = read_keep_list(keep_list) if keep_list else {}
    rows = read_jsonl(Path(prompts))
    if not rows:
        raise BygError(f"{prompts}: no prompts in it")
    known = {r["id"] for r in rows}
    unknown = sorted(set(verdicts) - known)
    if unknown:
        raise BygError(f"{keep_list}: id(s) not in {prompts}: {', '.join(unknown[:5])}")
    checker = ClipStyleChecker(clip_model) if clip_model else None
    rejects = rejects_path(out)
    for path in (out, rejects):
        repair_torn_tail(path)
    done = {r.get("clip_id") for r in read_jsonl(out)} | {r.get("clip_id") for r in read_jsonl(rejects)}
    counts = {"kept": 0, "rejected": 0, "skipped": 0}
    for row in rows:
        if row["id"] in done:
            counts["skipped"] += 1
            continue
        clip = find_clip(clips_dir, row["id"])
        reason, scores = None, None
        if clip is None:
            reason = f"no clip named {row['id']}.mp4 (or .webm/.mov/.mkv) in {clips_dir}"
        elif row["id"] in verdicts:
            reason = None if verdicts[row["id"]] else "rejected in the manual list"
        elif checker is not None:
            scores = checker.style_probabilities(read_frames(clip, frames))
            if scores[row["style"]] < threshold:
                reason = f"CLIP style check: {row['style']} scored {scores[row['style']]:.2f} < {threshold:.2f}"
        else:
            reason = "not reviewed (not in the manual list and no CLIP model given)"
        if reason:
            append_jsonl(rejects, {"clip_id": row["id"], "video": clip and str(clip), "reason": reason,
                                   "clip_scores": scores})
            counts["rejected"] += 1
            continue
        record = video_record(row, Path(os.path.relpath(clip.resolve(), out.resolve().parent)).as_posix())
        if scores is not None:
            record.extra["clip_scores"] = scores
        append_records(out, [record])
        counts["kept"] += 1
    console.print(f"clips: {counts['kept']} kept -> {out}, {counts['rejected']} rejected -> {rejects}, "
                  f"{counts['skipped']} already done")
    return counts
