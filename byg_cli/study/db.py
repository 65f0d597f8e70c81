"""The study database: one SQLite file in WAL mode holding items, media paths, rater packs and votes.

Every connection is opened with `connect()`, which sets WAL, `synchronous=FULL` (a committed vote survives a
crash of the machine, not only of the server) and a busy timeout so concurrent writers queue instead of failing.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from byg_cli.errors import BygError

SCHEMA_VERSION = "1"

SCHEMA = """
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE methods (
    id       INTEGER PRIMARY KEY,
    name     TEXT NOT NULL UNIQUE,
    dir      TEXT NOT NULL,
    position INTEGER NOT NULL UNIQUE      -- 0 = the method whose win rate is reported ("ours")
);
CREATE TABLE items (
    id          INTEGER PRIMARY KEY,
    key         TEXT NOT NULL UNIQUE,     -- the file stem shared by the source and every method's output
    kind        TEXT NOT NULL CHECK (kind IN ('image', 'video')),
    source_path TEXT NOT NULL,
    instruction TEXT NOT NULL,
    condition   TEXT NOT NULL
);
CREATE TABLE outputs (
    item_id   INTEGER NOT NULL REFERENCES items(id),
    method_id INTEGER NOT NULL REFERENCES methods(id),
    path      TEXT NOT NULL,
    PRIMARY KEY (item_id, method_id)
);
CREATE TABLE raters (
    id    INTEGER PRIMARY KEY,
    name  TEXT NOT NULL UNIQUE,
    token TEXT NOT NULL UNIQUE
);
-- A rater's pack: which items, in which order, and which method is shown as option A.
CREATE TABLE assignments (
    rater_id    INTEGER NOT NULL REFERENCES raters(id),
    position    INTEGER NOT NULL,
    item_id     INTEGER NOT NULL REFERENCES items(id),
    a_method_id INTEGER NOT NULL REFERENCES methods(id),
    b_method_id INTEGER NOT NULL REFERENCES methods(id),
    PRIMARY KEY (rater_id, position),
    UNIQUE (rater_id, item_id)
);
-- One vote per rater per item, enforced here and not only by the server.
CREATE TABLE votes (
    id               INTEGER PRIMARY KEY,
    rater_id         INTEGER NOT NULL REFERENCES raters(id),
    item_id          INTEGER NOT NULL REFERENCES items(id),
    chosen_method_id INTEGER NOT NULL REFERENCES methods(id),
    chosen_side      TEXT NOT NULL CHECK (chosen_side IN ('A', 'B')),
    created_at       TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    UNIQUE (rater_id, item_id)
);
"""


def connect(path: Path | str, *, must_exist: bool = True) -> sqlite3.Connection:
    """Open the study database with the settings every reader and writer uses."""
    path = Path(path)
    if must_exist and not path.is_file():
        raise BygError(f"{path}: no such study database (make one with `byg user-study build`)")
    conn = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA busy_timeout=30000")
    if must_exist:
        _check_schema(conn, path)  # before anything is written: never turn someone else's file into WAL
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


def _check_schema(conn: sqlite3.Connection, path: Path) -> None:
    try:
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    except sqlite3.DatabaseError as err:
        conn.close()
        raise BygError(f"{path}: not a byg user-study database ({err})") from None
    if row is None or row["value"] != SCHEMA_VERSION:
        conn.close()
        raise BygError(f"{path}: not a byg user-study database of schema version {SCHEMA_VERSION}")


def create(path: Path) -> sqlite3.Connection:
    """Create a fresh study database at `path` (which must not exist yet) and return a connection."""
    conn = connect(path, must_exist=False)
    conn.executescript(SCHEMA)
    conn.execute("INSERT INTO meta (key, value) VALUES ('schema_version', ?)", (SCHEMA_VERSION,))
    return conn


def get_meta(conn: sqlite3.Connection, key: str) -> str:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    if row is None:
        raise BygError(f"study database has no meta key {key!r}")
    return row["value"]


@dataclass(frozen=True)
class Assignment:
    """One comparison in a rater's pack, with the media paths resolved."""

    position: int
    item_id: int
    item_key: str
    kind: str
    instruction: str
    condition: str
    source_path: str
    a_method: str
    b_method: str
    a_path: str
    b_path: str


_ASSIGNMENT_SQL = """
SELECT a.position, i.id AS item_id, i.key AS item_key, i.kind, i.instruction, i.condition, i.source_path,
       ma.name AS a_method, mb.name AS b_method, oa.path AS a_path, ob.path AS b_path
FROM assignments a
JOIN items i ON i.id = a.item_id
JOIN methods ma ON ma.id = a.a_method_id
JOIN methods mb ON mb.id = a.b_method_id
JOIN outputs oa ON oa.item_id = a.item_id AND oa.method_id = a.a_method_id
JOIN outputs ob ON ob.item_id = a.item_id AND ob.method_id = a.b_method_id
WHERE a.rater_id = ?
"""


def assignments(conn: sqlite3.Connection, rater_id: int) -> list[Assignment]:
    rows = conn.execute(_ASSIGNMENT_SQL + " ORDER BY a.position", (rater_id,)).fetchall()
    return [Assignment(**dict(row)) for row in rows]


def assignment_at(conn: sqlite3.Connection, rater_id: int, position: int) -> Assignment | None:
    row = conn.execute(_ASSIGNMENT_SQL + " AND a.position = ?", (rater_id, position)).fetchone()
    return Assignment(**dict(row)) if row else None


def assignment_for_item(conn: sqlite3.Connection, rater_id: int, item_key: str) -> Assignment | None:
    row = conn.execute(_ASSIGNMENT_SQL + " AND i.key = ?", (rater_id, item_key)).fetchone()
    return Assignment(**dict(row)) if row else None


def rater_by_token(conn: sqlite3.Connection, token: str) -> sqlite3.Row | None:
    return conn.execute("SELECT id, name, token FROM raters WHERE token = ?", (token,)).fetchone()


def voted_item_ids(conn: sqlite3.Connection, rater_id: int) -> set[int]:
    return {r["item_id"] for r in conn.execute("SELECT item_id FROM votes WHERE rater_id = ?", (rater_id,))}


def method_names(conn: sqlite3.Connection) -> list[str]:
    """Method names in build order; the first is the one whose win rate is reported."""
    return [r["name"] for r in conn.execute("SELECT name FROM methods ORDER BY position")]


@dataclass(frozen=True)
class VoteRow:
    rater: str
    item: str
    condition: str
    chosen: str
    side: str
    created_at: str


def all_votes(conn: sqlite3.Connection) -> list[VoteRow]:
    rows = conn.execute(
        """
        SELECT r.name AS rater, i.key AS item, i.condition, m.name AS chosen, v.chosen_side AS side, v.created_at
        FROM votes v JOIN raters r ON r.id = v.rater_id JOIN items i ON i.id = v.item_id
        JOIN methods m ON m.id = v.chosen_method_id
        ORDER BY v.id
        """
    ).fetchall()
    return [VoteRow(**dict(r)) for r in rows]
