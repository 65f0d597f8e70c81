"""The edit-tuple record format shared by every data source (shapes world, VLM, video) and by training.

One JSON object per line in a JSONL file. Required keys:

    image | video        path of the source media, relative to the JSONL file's folder (or absolute)
    src_caption          p_src: describes the source as observed
    instruction          c:     the forward edit instruction
    tgt_caption          p_tgt: describes the edited result only
    reverse_instruction  c_bar: a self-contained instruction that turns the edit back
    edit_type            one of the taxonomy's categories (e.g. "color", "background", "style")

Any other keys (attributes, the VLM's raw answer, the model name) are kept in `extra` and written back.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

from byg_cli.errors import BygError
from byg_cli.outputs import writing
from byg_cli.text_files import iter_json_objects

TEXT_FIELDS = ("src_caption", "instruction", "tgt_caption", "reverse_instruction", "edit_type")
MEDIA_FIELDS = ("image", "video")


@dataclass
class EditRecord:
    media: str
    src_caption: str
    instruction: str
    tgt_caption: str
    reverse_instruction: str
    edit_type: str
    media_kind: str = "image"  # "image" or "video"
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {self.media_kind: self.media}
        for name in TEXT_FIELDS:
            out[name] = getattr(self, name)
        out.update(self.extra)
        return out

    @classmethod
    def from_json(cls, obj: dict[str, Any], where: str = "record") -> "EditRecord":
        kinds = [k for k in MEDIA_FIELDS if k in obj]
        if len(kinds) != 1:
            raise BygError(f"{where}: needs exactly one of 'image' or 'video', found {kinds or 'neither'}")
        missing = [k for k in TEXT_FIELDS if not isinstance(obj.get(k), str) or not obj.get(k).strip()]
        if missing:
            raise BygError(f"{where}: missing or empty field(s) {', '.join(missing)}")
        extra = {k: v for k, v in obj.items() if k not in TEXT_FIELDS and k not in MEDIA_FIELDS}
        return cls(
            media=str(obj[kinds[0]]),
            media_kind=kinds[0],
            extra=extra,
            **{k: obj[k] for k in TEXT_FIELDS},
        )

    def media_path(self, root: Path) -> Path:
        p = Path(self.media)
        return p if p.is_absolute() else root / p


def iter_records(path: Path) -> Iterator[EditRecord]:
    path = Path(path)
    if not path.is_file():
        raise BygError(f"{path}: no such records file")
    for lineno, obj in iter_json_objects(path):
        yield EditRecord.from_json(obj, where=f"{path}:{lineno}")


def read_records(path: Path) -> list[EditRecord]:
    return list(iter_records(path))


def append_records(path: Path, records: Iterable[EditRecord]) -> None:
    """Append records, one line each, flushed and fsynced so a killed job loses at most the line in flight."""
    import os

    path = Path(path)
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as fh:
            for rec in records:
                fh.write(json.dumps(rec.to_json(), ensure_ascii=False) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
