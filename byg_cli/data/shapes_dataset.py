"""Write a shapes-world edit dataset to disk in the shared record format (`byg make-data shapes`).

Layout of `out/`:

    images/<id>.png          the source image x
    images/<id>_target.png   the rendered ground-truth edit (for the supervised baseline and evaluation only;
                             the byg objective never reads it)
    metadata.jsonl           one `EditRecord` per line; extra keys: id, src_attributes, tgt_attributes,
                             phrasing_split, target_image
    shapes_dataset.json      the settings the folder was made with (seed, split, edit types, image size)

Record `i` depends only on (seed, i), so a re-run with the same settings skips the ids already written and a
larger `count` extends the folder; different settings for an existing folder are refused.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Optional

from PIL import Image
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from byg_cli.data.records import EditRecord, append_records, iter_records
from byg_cli.data.shapes import DEFAULT_IMAGE_SIZE, render
from byg_cli.data.shapes_edits import EDIT_TYPES, SPLITS, edit_for_index, edit_tuple
from byg_cli.errors import BygError
from byg_cli.outputs import output_folder, writing
from byg_cli.text_files import read_text

METADATA = "metadata.jsonl"
MANIFEST = "shapes_dataset.json"
_FLUSH_EVERY = 64


def _check_settings(out: Path, settings: dict) -> None:
    manifest = out / MANIFEST
    if manifest.is_file():
        try:
            old = json.loads(read_text(manifest))
        except json.JSONDecodeError as err:
            raise BygError(f"{manifest}: not valid JSON ({err.msg})") from None
        changed = {k: (old.get(k), v) for k, v in settings.items() if old.get(k) != v}
        if changed:
            what = ", ".join(f"{k} {a!r} -> {b!r}" for k, (a, b) in changed.items())
            raise BygError(f"{out}: already holds a shapes dataset made with other settings ({what}); "
                           "use another --out folder or the same settings to resume")
    elif (out / METADATA).is_file():
        raise BygError(f"{out / METADATA}: exists but {MANIFEST} does not; not a shapes dataset folder to resume")
    else:
        with writing(manifest):
            manifest.write_text(json.dumps(settings, indent=2) + "\n")


def _written_ids(metadata: Path) -> set[str]:
    if not metadata.is_file():
        return set()
    ids = set()
    for rec in iter_records(metadata):
        if "id" not in rec.extra:
            raise BygError(f"{metadata}: a record without 'id' ({rec.media}); not written by make-data shapes")
        ids.add(str(rec.extra["id"]))
    return ids


def _save_png(pixels, path: Path) -> None:
    with writing(path):
        Image.fromarray(pixels).save(path)


def record_id(index: int) -> str:
    return f"{index:06d}"


MIN_IMAGE_SIZE, MAX_IMAGE_SIZE = 16, 1024


def write_shapes_dataset(
    out: Path,
    count: int,
    seed: int,
    edit_types: Optional[Iterable[str]] = None,
    split: str = "train",
    image_size: int = DEFAULT_IMAGE_SIZE,
) -> Path:
    """Write `count` edit records (ids 000000..count-1) to `out`; returns the metadata.jsonl path."""
    out = Path(out)
    if count < 0:
        raise BygError(f"--count must be >= 0, got {count}")
    if seed < 0:
        raise BygError(f"--seed must be >= 0, got {seed}")
    if split not in SPLITS:
        raise BygError(f"--split must be one of {', '.join(SPLITS)}, got {split!r}")
    types = list(edit_types) if edit_types else list(EDIT_TYPES)
    unknown = [t for t in types if t not in EDIT_TYPES]
    if unknown:
        raise BygError(f"unknown edit type(s) {', '.join(unknown)}; choose from {', '.join(EDIT_TYPES)}")
    if not MIN_IMAGE_SIZE <= image_size <= MAX_IMAGE_SIZE:
        raise BygError(f"--size {image_size}: the shapes world renders {MIN_IMAGE_SIZE} to {MAX_IMAGE_SIZE} px "
                       f"images")

    output_folder(out)
    _check_settings(out, {"seed": seed, "split": split, "edit_types": types, "image_size": image_size})
    metadata = out / METADATA
    done = _written_ids(metadata)
    todo = [i for i in range(count) if record_id(i) not in done]
    output_folder(out / "images")

    pending: list[EditRecord] = []
    columns = (TextColumn("shapes"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, transient=False) as progress:
        task = progress.add_task("write", total=count, completed=count - len(todo))
        for index in todo:
            rid = record_id(index)
            edit = edit_for_index(seed, index, types, split, image_size)
            src, tgt = f"images/{rid}.png", f"images/{rid}_target.png"
            _save_png(render(edit.source, image_size), out / src)
            _save_png(render(edit.target, image_size), out / tgt)
            fields = edit_tuple(edit)
            text = {k: fields.pop(k) for k in ("src_caption", "instruction", "tgt_caption", "reverse_instruction", "edit_type")}
            pending.append(EditRecord(media=src, extra={"id": rid, **fields, "target_image": tgt}, **text))
            if len(pending) >= _FLUSH_EVERY:
                append_records(metadata, pending)
                pending.clear()
            progress.advance(task)
        if pending:
            append_records(metadata, pending)
    if not metadata.exists():  # count == 0
        metadata.touch()
    return metadata

