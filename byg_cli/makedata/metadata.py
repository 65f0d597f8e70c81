"""OpenImages-style metadata: a CSV that tells, per image id, a caption, labels and whether it is a photograph.

Column names are matched loosely (case, spaces, dashes). Recognised columns:

    image id     ImageID | image_id | id | image | filename   (matched to the image file's name without suffix)
    caption      caption | text | description
    labels       labels (several, separated by ; or |)  or  DisplayName | label | LabelName (one per row;
                 several rows for one image are gathered, as in OpenImages' image-level label files)
    photo flag   photorealistic | is_photo | photo  (true/false/1/0/yes/no)
                 or style (photo, photograph, photorealistic, photo-realistic, real = photorealistic)
"""

from __future__ import annotations

from pathlib import Path, PurePath

from byg_cli.errors import BygError
from byg_cli.makedata.prompt import ImageContext
from byg_cli.text_files import read_csv

ID_COLUMNS = ("imageid", "image_id", "id", "image", "filename", "file")
CAPTION_COLUMNS = ("caption", "text", "description")
LABEL_COLUMNS = ("displayname", "display_name", "label", "labelname", "label_name")
FLAG_COLUMNS = ("photorealistic", "is_photo", "photo", "is_photorealistic")
PHOTO_STYLES = {"photo", "photograph", "photorealistic", "photo-realistic", "photo_realistic", "real", "realistic"}
TRUE = {"true", "1", "yes", "y", "t"}
FALSE = {"false", "0", "no", "n", "f"}


def _norm(name: str) -> str:
    return name.strip().lower().replace(" ", "_").replace("-", "_")


def _pick(columns: dict[str, str], names: tuple[str, ...]) -> str | None:
    return next((columns[n] for n in names if n in columns), None)


def image_key(path_or_id: str) -> str:
    """The id an image is known by in metadata: its file name without folders and suffix."""
    return PurePath(path_or_id.strip()).stem


def load_metadata(path: Path) -> dict[str, ImageContext]:
    path = Path(path)
    if not path.is_file():
        raise BygError(f"{path}: no such metadata file")
    header, rows = read_csv(path)
    if not header:
        raise BygError(f"{path}: empty metadata file (expected a CSV header)")
    columns = {_norm(c): c for c in header}
    id_col = _pick(columns, ID_COLUMNS)
    if id_col is None:
        raise BygError(
            f"{path}: no image id column (expected one of ImageID, image_id, id, image, filename; "
            f"found {', '.join(header)})"
        )
    caption_col = _pick(columns, CAPTION_COLUMNS)
    labels_col = columns.get("labels")
    label_col = _pick(columns, LABEL_COLUMNS)
    flag_col = _pick(columns, FLAG_COLUMNS)
    style_col = columns.get("style")
    gathered: dict[str, dict] = {}
    for lineno, row in rows:
        raw_id = (row.get(id_col) or "").strip()
        if not raw_id:
            raise BygError(f"{path}:{lineno}: empty {id_col!r}")
        entry = gathered.setdefault(image_key(raw_id), {"caption": None, "labels": [], "photo": None})
        if caption_col and (row.get(caption_col) or "").strip():
            entry["caption"] = row[caption_col].strip()
        if labels_col and row.get(labels_col):
            entry["labels"] += [x.strip() for x in row[labels_col].replace("|", ";").split(";") if x.strip()]
        if label_col and (row.get(label_col) or "").strip():
            entry["labels"].append(row[label_col].strip())
        if flag_col and (row.get(flag_col) or "").strip():
            value = row[flag_col].strip().lower()
            if value not in TRUE | FALSE:
                raise BygError(f"{path}:{lineno}: column {flag_col!r} has {row[flag_col]!r}, expected true or false")
            entry["photo"] = value in TRUE
        elif style_col and (row.get(style_col) or "").strip():
            entry["photo"] = _norm(row[style_col]) in {_norm(s) for s in PHOTO_STYLES}
    return {
        key: ImageContext(caption=e["caption"], labels=tuple(dict.fromkeys(e["labels"])), photorealistic=e["photo"])
        for key, e in gathered.items()
    }
