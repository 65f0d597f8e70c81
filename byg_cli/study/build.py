"""`byg user-study build`: pair two methods' outputs per source item and write a study database.

Inputs
- `--sources DIR`: one file per item (image or video); the item's key is the file stem.
- `--method NAME=DIR` twice: each DIR holds one output per item, named by the same stem (any supported
  extension of the same kind as the source). The first method is the one whose win rate `analyze` reports.
- `--instructions FILE`: one row per item, either JSON Lines (`{"item": ..., "instruction": ..., "condition": ...}`)
  or CSV with the header `item,instruction,condition`. `condition` groups items in the analysis (for example
  `cartoon`, `photoreal`, `ood`).

Each rater gets a pack of comparisons: items are spread so every item is seen by as equal a number of raters as
possible, the order is shuffled per rater, and which method is option A is drawn per comparison.
"""

from __future__ import annotations

import random
import secrets
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from byg_cli.errors import BygError
from byg_cli.outputs import check_output_file, output_folder
from byg_cli.study import db
from byg_cli.text_files import iter_json_objects, read_csv

IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".webp", ".gif"}
VIDEO_EXTS = {".mp4", ".webm", ".ogv", ".mov"}
INSTRUCTION_FIELDS = ("item", "instruction", "condition")


@dataclass(frozen=True)
class Instruction:
    item: str
    instruction: str
    condition: str


@dataclass(frozen=True)
class RaterLink:
    name: str
    token: str


@dataclass(frozen=True)
class BuildResult:
    path: Path
    n_items: int
    methods: list[str]
    raters: list[RaterLink]
    admin_token: str
    conditions: dict[str, int]


def media_kind(path: Path) -> str | None:
    ext = path.suffix.lower()
    if ext in IMAGE_EXTS:
        return "image"
    if ext in VIDEO_EXTS:
        return "video"
    return None


def scan_media_dir(directory: Path, what: str) -> dict[str, Path]:
    """Map file stem -> path for every media file in `directory` (hidden files are ignored)."""
    if not directory.is_dir():
        raise BygError(f"{what} {directory}: not a directory")
    found: dict[str, Path] = {}
    for path in sorted(directory.iterdir()):
        if path.name.startswith("."):
            continue
        if not path.is_file():
            raise BygError(f"{what} {directory}: unexpected entry {path.name!r} (only media files are allowed)")
        if media_kind(path) is None:
            allowed = ", ".join(sorted(IMAGE_EXTS | VIDEO_EXTS))
            raise BygError(f"{what} {directory}: unknown file {path.name!r} (supported extensions: {allowed})")
        if path.stem in found:
            raise BygError(f"{what} {directory}: two files for item {path.stem!r}: {found[path.stem].name}, {path.name}")
        found[path.stem] = path.resolve()
    if not found:
        raise BygError(f"{what} {directory}: no media files")
    return found


def parse_method(spec: str) -> tuple[str, Path]:
    name, sep, directory = spec.partition("=")
    name = name.strip()
    if not sep or not name or not directory:
        raise BygError(f"--method {spec!r}: expected NAME=DIR")
    return name, Path(directory)


def read_instructions(path: Path) -> list[Instruction]:
    if not path.is_file():
        raise BygError(f"--instructions {path}: no such file")
    suffix = path.suffix.lower()
    rows: list[tuple[str, dict]] = []  # (where, row)
    if suffix in {".jsonl", ".ndjson"}:
        rows += [(f"{path}:{n}", row) for n, row in iter_json_objects(path)]
    elif suffix == ".csv":
        header, csv_rows = read_csv(path)
        missing = [k for k in INSTRUCTION_FIELDS if k not in header]
        if missing:
            raise BygError(f"{path}: CSV header lacks column(s) {', '.join(missing)}")
        rows += [(f"{path}:{n}", row) for n, row in csv_rows]
    else:
        raise BygError(f"--instructions {path}: unknown format {suffix!r} (use .jsonl or .csv)")

    out: list[Instruction] = []
    seen: set[str] = set()
    for where, row in rows:
        values = {}
        for key in INSTRUCTION_FIELDS:
            value = row.get(key)
            if not isinstance(value, str) or not value.strip():
                raise BygError(f"{where}: field {key!r} is missing or empty")
            values[key] = value.strip()
        extra = set(row) - set(INSTRUCTION_FIELDS)
        if extra:
            raise BygError(f"{where}: unknown field(s) {', '.join(sorted(extra))}")
        if values["item"] in seen:
            raise BygError(f"{where}: item {values['item']!r} appears twice")
        seen.add(values["item"])
        out.append(Instruction(**values))
    if not out:
        raise BygError(f"--instructions {path}: no rows")
    return out


def _assign_packs(
    item_ids: list[int], n_raters: int, per_rater: int, rng: random.Random
) -> list[list[int]]:
    """Give each rater `per_rater` distinct items, keeping the number of raters per item balanced."""
    seen_by = {i: 0 for i in item_ids}
    packs = []
    for _ in range(n_raters):
        order = list(item_ids)
        rng.shuffle(order)  # random tie-break among equally seen items
        order.sort(key=lambda i: seen_by[i])
        pack = order[:per_rater]
        for i in pack:
            seen_by[i] += 1
        rng.shuffle(pack)
        packs.append(pack)
    return packs


def build_study(
    *,
    methods: list[str],
    sources: Path,
    instructions: Path,
    output: Path,
    raters: int,
    per_rater: int | None = None,
    seed: int = 0,
    title: str = "Editing user study",
    force: bool = False,
) -> BuildResult:
    """Validate the inputs completely, then write the study database in one transaction."""
    parsed = [parse_method(spec) for spec in methods]
    if len(parsed) != 2:
        raise BygError(f"--method: a 2AFC study compares exactly two methods, got {len(parsed)}")
    if parsed[0][0] == parsed[1][0]:
        raise BygError(f"--method: both methods are named {parsed[0][0]!r}")
    if raters < 1:
        raise BygError(f"--raters {raters}: need at least one rater")

    source_files = scan_media_dir(sources, "--sources")
    rows = read_instructions(instructions)
    by_item = {r.item: r for r in rows}
    missing_rows = sorted(set(source_files) - set(by_item))
    if missing_rows:
        raise BygError(f"--instructions {instructions}: no row for source item(s) {', '.join(missing_rows)}")
    unknown_rows = sorted(set(by_item) - set(source_files))
    if unknown_rows:
        raise BygError(f"--instructions {instructions}: item(s) {', '.join(unknown_rows)} have no file in {sources}")

    outputs: dict[str, dict[str, Path]] = {}
    for name, directory in parsed:
        files = scan_media_dir(directory, f"--method {name}")
        lacking = sorted(set(source_files) - set(files))
        if lacking:
            raise BygError(f"--method {name}={directory}: missing output for item(s) {', '.join(lacking)}")
        extra = sorted(set(files) - set(source_files))
        if extra:
            names = ", ".join(files[s].name for s in extra)
            raise BygError(f"--method {name}={directory}: unknown file(s) {names} (no source item with that stem)")
        for stem, path in files.items():
            if media_kind(path) != media_kind(source_files[stem]):
                raise BygError(
                    f"--method {name}={directory}: {path.name} is a {media_kind(path)} but source "
                    f"{source_files[stem].name} is a {media_kind(source_files[stem])}"
                )
        outputs[name] = files

    n_items = len(source_files)
    per_rater = n_items if per_rater is None else per_rater
    if not 1 <= per_rater <= n_items:
        raise BygError(f"--per-rater {per_rater}: must be between 1 and the number of items ({n_items})")

    check_output_file(output)
    if output.exists():
        if not force:
            raise BygError(f"-o {output}: already exists (pass --force to replace it)")
        for suffix in ("", "-wal", "-shm"):
            Path(str(output) + suffix).unlink(missing_ok=True)
    output_folder(output.parent)

    rng = random.Random(seed)
    admin_token = secrets.token_urlsafe(18)
    links = [RaterLink(name=f"rater{r + 1:02d}", token=secrets.token_urlsafe(12)) for r in range(raters)]
    conn = None
    try:
        conn = db.create(output)
        conn.execute("BEGIN")
        for key, value in {"admin_token": admin_token, "title": title, "seed": str(seed)}.items():
            conn.execute("INSERT INTO meta (key, value) VALUES (?, ?)", (key, value))
        method_ids = {}
        for pos, (name, directory) in enumerate(parsed):
            cur = conn.execute(
                "INSERT INTO methods (name, dir, position) VALUES (?, ?, ?)", (name, str(directory.resolve()), pos)
            )
            method_ids[name] = cur.lastrowid
        item_ids = []
        for stem in sorted(source_files):
            row = by_item[stem]
            cur = conn.execute(
                "INSERT INTO items (key, kind, source_path, instruction, condition) VALUES (?, ?, ?, ?, ?)",
                (stem, media_kind(source_files[stem]), str(source_files[stem]), row.instruction, row.condition),
            )
            item_ids.append(cur.lastrowid)
            for name in method_ids:
                conn.execute(
                    "INSERT INTO outputs (item_id, method_id, path) VALUES (?, ?, ?)",
                    (cur.lastrowid, method_ids[name], str(outputs[name][stem])),
                )
        ids = list(method_ids.values())
        for link, pack in zip(links, _assign_packs(item_ids, raters, per_rater, rng)):
            rater_id = conn.execute("INSERT INTO raters (name, token) VALUES (?, ?)", (link.name, link.token)).lastrowid
            for position, item_id in enumerate(pack):
                a, b = ids if rng.random() < 0.5 else ids[::-1]
                conn.execute(
                    "INSERT INTO assignments (rater_id, position, item_id, a_method_id, b_method_id) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (rater_id, position, item_id, a, b),
                )
        conn.execute("COMMIT")
    except BaseException as err:
        if conn is not None:
            conn.close()
        for suffix in ("", "-wal", "-shm"):
            Path(str(output) + suffix).unlink(missing_ok=True)
        if isinstance(err, sqlite3.Error):  # a full disk, a folder that takes no files
            raise BygError(f"-o {output}: cannot write the study database ({err})") from None
        raise
    conn.close()

    conditions: dict[str, int] = {}
    for row in rows:
        conditions[row.condition] = conditions.get(row.condition, 0) + 1
    return BuildResult(
        path=output,
        n_items=n_items,
        methods=[name for name, _ in parsed],
        raters=links,
        admin_token=admin_token,
        conditions=conditions,
    )
