"""`byg user-study serve`: the 2AFC web study on Starlette + uvicorn.

URLs
- `GET /r/{token}`: the rater's page (plain HTML/JS from `static/`).
- `GET /api/state`, `POST /api/vote` (`Authorization: Bearer <rater token>`): the rater's progress and current
  comparison; a vote `{"item": KEY, "choice": "A"|"B"}` is stored as the chosen *method* and committed before
  the reply. The reply carries the next state, so resuming after a reload is just `GET /api/state`.
- `GET /media/{position}/{source|A|B}?token=<rater token>`: the media of one comparison of the rater's own pack,
  served by `FileResponse` (HTTP range requests, needed by `<video>` seeking). URLs hold no file names, so the
  method behind A/B stays hidden and no path from the URL ever reaches the file system.
- `GET /admin/counts`, `GET /admin/export` (admin token, header or `?token=`): live counts and all votes.

Status codes: 401 no token, 403 unknown token, 404 unknown item/media, 409 second vote on an item,
400 malformed vote (nested too deeply for the JSON decoder included), 413 body over `MAX_BODY_BYTES`.

The access log (`serve`) shows `<token>` in place of every token in a URL (`/r/...`, `?token=...`).
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import re
import secrets
import sqlite3
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from byg_cli.extras import require
from byg_cli.study import db
from byg_cli.study.build import RaterLink

if TYPE_CHECKING:
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response

STATIC_DIR = Path(__file__).with_name("static")
MAX_BODY_BYTES = 4096
MAX_POSITION = 2**63 - 1  # SQLite's largest integer; a larger position is no comparison of anyone's
SLOTS = ("source", "A", "B")
CRITERIA = (
    "follows the target style specified in the instruction",
    "preserves the content and structure of the original {kind}",
)


class _Connections:
    """One SQLite connection per worker thread (Starlette runs blocking work in a thread pool)."""

    def __init__(self, path: Path):
        self.path = path
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    def get(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = db.connect(self.path)
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def close_all(self) -> None:
        with self._lock:
            for conn in self._all:
                conn.close()
            self._all.clear()


def _closing(conns: _Connections):
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        yield
        conns.close_all()

    return lifespan


def _error(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    from starlette.responses import JSONResponse

    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _token_from(request: Request, *, allow_query: bool) -> str | None:
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip() or None
    if allow_query:
        return request.query_params.get("token") or None
    return None


def _missing_token() -> JSONResponse:
    return _error(401, "missing token: send 'Authorization: Bearer <token>'", {"WWW-Authenticate": "Bearer"})


def _state(conn: sqlite3.Connection, rater: sqlite3.Row, title: str) -> dict:
    pack = db.assignments(conn, rater["id"])
    voted = db.voted_item_ids(conn, rater["id"])
    current = next((a for a in pack if a.item_id not in voted), None)
    state: dict = {"rater": rater["name"], "title": title, "done": len(voted), "total": len(pack), "current": None}
    if current is not None:
        media = {slot: f"/media/{current.position}/{slot}?token={rater['token']}" for slot in SLOTS}
        state["current"] = {
            "item": current.item_key,
            "position": current.position,
            "kind": current.kind,
            "instruction": current.instruction,
            "question": f"Which {current.kind} is the better editing result?",
            "criteria": [c.format(kind=current.kind) for c in CRITERIA],
            "media": media,
        }
    return state


def create_app(db_path: Path | str) -> Starlette:
    require("starlette", "study", "the user-study server")
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException
    from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    db_path = Path(db_path)
    conns = _Connections(db_path)
    setup = db.connect(db_path)
    admin_token = db.get_meta(setup, "admin_token")
    title = db.get_meta(setup, "title")
    methods = db.method_names(setup)
    setup.close()

    def rater_or_error(token: str | None) -> sqlite3.Row | Response:
        if token is None:
            return _missing_token()
        rater = db.rater_by_token(conns.get(), token)
        if rater is None:
            return _error(403, "unknown token")
        return rater

    def admin_or_error(request: Request) -> Response | None:
        token = _token_from(request, allow_query=True)
        if token is None:
            return _missing_token()
        if not secrets.compare_digest(token.encode(), admin_token.encode()):
            return _error(403, "not the admin token")
        return None

    async def index(request: Request) -> Response:
        return PlainTextResponse("byg user study: open the rater link you were given.\n")

    async def rater_page(request: Request) -> Response:
        def check() -> bool:
            return db.rater_by_token(conns.get(), request.path_params["token"]) is not None

        if not await run_in_threadpool(check):
            return PlainTextResponse("This study link is not valid.\n", status_code=403)
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-store"})

    async def get_state(request: Request) -> Response:
        def work() -> Response:
            rater = rater_or_error(_token_from(request, allow_query=False))
            if isinstance(rater, Response):
                return rater
            return JSONResponse(_state(conns.get(), rater, title), headers={"Cache-Control": "no-store"})

        return await run_in_threadpool(work)

    async def post_vote(request: Request) -> Response:
        body = await request.body()  # Starlette's body limit answers 413 past MAX_BODY_BYTES

        def work() -> Response:
            rater = rater_or_error(_token_from(request, allow_query=False))
            if isinstance(rater, Response):
                return rater
            try:
                payload = json.loads(body)
            except (ValueError, RecursionError):
                return _error(400, "body is not JSON (or nests too deeply)")
            if not isinstance(payload, dict) or not isinstance(payload.get("item"), str):
                return _error(400, "body must be a JSON object with a string field 'item'")
            choice = payload.get("choice")
            if choice not in ("A", "B"):
                return _error(400, "field 'choice' must be 'A' or 'B'")
            conn = conns.get()
            assignment = db.assignment_for_item(conn, rater["id"], payload["item"])
            if assignment is None:
                return _error(404, f"item {payload['item']!r} is not in this rater's pack")
            chosen = assignment.a_method if choice == "A" else assignment.b_method
            try:
                conn.execute("BEGIN IMMEDIATE")
                conn.execute(
                    "INSERT INTO votes (rater_id, item_id, chosen_method_id, chosen_side) "
                    "VALUES (?, ?, (SELECT id FROM methods WHERE name = ?), ?)",
                    (rater["id"], assignment.item_id, chosen, choice),
                )
                conn.execute("COMMIT")
            except sqlite3.IntegrityError:
                conn.execute("ROLLBACK")
                return _error(409, f"item {payload['item']!r} already has a vote from this rater")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            return JSONResponse(
                {"recorded": {"item": assignment.item_key, "choice": choice}, "state": _state(conn, rater, title)},
                headers={"Cache-Control": "no-store"},
            )

        return await run_in_threadpool(work)

    async def media(request: Request) -> Response:
        slot = request.path_params["slot"]
        if slot not in SLOTS:
            return _error(404, f"unknown media slot {slot!r}")

        def work() -> Response:
            rater = rater_or_error(_token_from(request, allow_query=True))
            if isinstance(rater, Response):
                return rater
            position = request.path_params["position"]
            a = db.assignment_at(conns.get(), rater["id"], position) if position <= MAX_POSITION else None
            if a is None:
                return _error(404, "no such comparison in this rater's pack")
            path = Path({"source": a.source_path, "A": a.a_path, "B": a.b_path}[slot])
            if not path.is_file():
                return _error(404, "media file is missing on the server")
            return FileResponse(path, headers={"Cache-Control": "private, max-age=3600"})

        return await run_in_threadpool(work)

    async def admin_counts(request: Request) -> Response:
        denied = admin_or_error(request)
        if denied is not None:
            return denied

        def work() -> dict:
            conn = conns.get()
            raters = conn.execute(
                """
                SELECT r.name, (SELECT COUNT(*) FROM assignments a WHERE a.rater_id = r.id) AS total,
                       (SELECT COUNT(*) FROM votes v WHERE v.rater_id = r.id) AS done
                FROM raters r ORDER BY r.id
                """
            ).fetchall()
            by_condition: dict[str, dict[str, int]] = {}
            for row in conn.execute(
                """
                SELECT i.condition, m.name AS method, COUNT(*) AS n FROM votes v
                JOIN items i ON i.id = v.item_id JOIN methods m ON m.id = v.chosen_method_id
                GROUP BY i.condition, m.name
                """
            ):
                by_condition.setdefault(row["condition"], {m: 0 for m in methods})[row["method"]] = row["n"]
            return {
                "methods": methods,
                "votes": sum(r["done"] for r in raters),
                "planned": sum(r["total"] for r in raters),
                "raters": [dict(r) for r in raters],
                "by_condition": by_condition,
            }

        return JSONResponse(await run_in_threadpool(work), headers={"Cache-Control": "no-store"})

    async def admin_export(request: Request) -> Response:
        denied = admin_or_error(request)
        if denied is not None:
            return denied
        votes = await run_in_threadpool(lambda: [v.__dict__ for v in db.all_votes(conns.get())])
        return JSONResponse({"methods": methods, "votes": votes}, headers={"Cache-Control": "no-store"})

    async def http_error(request: Request, exc: HTTPException) -> Response:
        return _error(exc.status_code, exc.detail)

    app = Starlette(
        routes=[
            Route("/", index),
            Route("/r/{token}", rater_page),
            Route("/api/state", get_state),
            Route("/api/vote", post_vote, methods=["POST"]),
            Route("/media/{position:int}/{slot}", media),
            Route("/admin/counts", admin_counts),
            Route("/admin/export", admin_export),
            Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
        ],
        exception_handlers={HTTPException: http_error},
        lifespan=_closing(conns),
        max_body_size=MAX_BODY_BYTES,
    )
    return app


_TOKEN_IN_URL = re.compile(r"(/r/|[?&]token=)[^/?&#\s\"]+")


class HideTokens(logging.Filter):
    """Writes `<token>` over the tokens in the URLs of a log record (uvicorn's access log line)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(_TOKEN_IN_URL.sub(r"\1<token>", a) if isinstance(a, str) else a for a in record.args)
        if isinstance(record.msg, str):
            record.msg = _TOKEN_IN_URL.sub(r"\1<token>", record.msg)
        return True


def log_config() -> dict:
    """uvicorn's logging setup with `HideTokens` on every handler."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["hide_tokens"] = {"()": HideTokens}
    for handler in config["handlers"].values():
        handler["filters"] = [*handler.get("filters", []), "hide_tokens"]
    return config


def serve(db_path: Path, host: str, port: int) -> None:
    """Run the study server until interrupted."""
    uvicorn = require("uvicorn", "study", "byg user-study serve")

    uvicorn.run(create_app(db_path), host=host, port=port, log_level="info", log_config=log_config())


def rater_links(db_path: Path) -> tuple[list[RaterLink], str]:
    """The raters (name, token) and the admin token of a study, for printing the links."""
    conn = db.connect(db_path)
    try:
        raters = conn.execute("SELECT name, token FROM raters ORDER BY id").fetchall()
        return [RaterLink(r["name"], r["token"]) for r in raters], db.get_meta(conn, "admin_token")
    finally:
        conn.close()
