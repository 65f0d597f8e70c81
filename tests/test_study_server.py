"""The study server on a real uvicorn socket: votes, resuming, media with ranges, admin, and rejected requests."""

import socket
import sqlite3
import subprocess
import sys
import time

import httpx
import pytest

from byg_cli.study import db
from byg_cli.study.server import MAX_BODY_BYTES, SLOTS
from helpers.study_helpers import make_study, running_server


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("server")
    result = make_study(root, items=4, raters=3, kind="video")
    with running_server(result.path) as url:
        yield result, url


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def raw_get(url, target):
    """Send a request line exactly as written (no client-side path normalisation) and return the status code."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(f"GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return int(data.split(b" ", 2)[1])


def test_vote_records_the_chosen_method_and_resumes(study):
    result, url = study
    rater = result.raters[0]
    with httpx.Client(base_url=url, headers=bearer(rater.token)) as client:
        state = client.get("/api/state").json()
        assert (state["done"], state["total"]) == (0, 4)
        first = state["current"]
        # The page never learns which method is behind A or B.
        assert "ours" not in str(state) and "baseline" not in str(state)
        reply = client.post("/api/vote", json={"item": first["item"], "choice": "B"})
        assert reply.status_code == 200
        assert reply.json()["state"]["done"] == 1
        # Committed before the reply: a separate connection sees it at once, with the method behind B.
        conn = db.connect(result.path)
        rater_id = db.rater_by_token(conn, rater.token)["id"]
        expected = db.assignment_for_item(conn, rater_id, first["item"]).b_method
        rows = conn.execute(
            "SELECT m.name FROM votes v JOIN methods m ON m.id = v.chosen_method_id JOIN items i ON i.id = v.item_id "
            "WHERE v.rater_id = ? AND i.key = ?", (rater_id, first["item"])).fetchall()
        conn.close()
        assert [r[0] for r in rows] == [expected]
        # A fresh GET (as after a reload) resumes at the next comparison.
        again = client.get("/api/state").json()
        assert again["done"] == 1 and again["current"]["item"] != first["item"]
        assert again["current"]["item"] == reply.json()["state"]["current"]["item"]


def test_media_is_served_with_range_requests(study):
    result, url = study
    rater = result.raters[1]
    state = httpx.get(f"{url}/api/state", headers=bearer(rater.token)).json()
    media_url = url + state["current"]["media"]["A"]
    full = httpx.get(media_url)
    assert full.status_code == 200 and full.headers["accept-ranges"] == "bytes"
    assert full.headers["content-type"] == "video/mp4"
    assert "content-disposition" not in full.headers  # no file name that could reveal the method
    part = httpx.get(media_url, headers={"Range": "bytes=10-19"})
    assert part.status_code == 206
    assert part.headers["content-range"] == f"bytes 10-19/{len(full.content)}"
    assert part.content == full.content[10:20]
    tail = httpx.get(media_url, headers={"Range": "bytes=-5"})
    assert tail.status_code == 206 and tail.content == full.content[-5:]
    assert httpx.get(media_url, headers={"Range": f"bytes={len(full.content) + 10}-"}).status_code == 416


def test_admin_counts_and_export(study):
    result, url = study
    counts = httpx.get(f"{url}/admin/counts", headers=bearer(result.admin_token))
    assert counts.status_code == 200
    body = counts.json()
    assert body["planned"] == 12 and body["methods"] == ["ours", "baseline"]
    assert body["votes"] == sum(r["done"] for r in body["raters"])
    export = httpx.get(f"{url}/admin/export", params={"token": result.admin_token})
    assert export.status_code == 200
    assert len(export.json()["votes"]) == body["votes"]
    assert all(v["chosen"] in ("ours", "baseline") for v in export.json()["votes"])


def test_unknown_item_is_404(study):
    result, url = study
    token = result.raters[2].token
    reply = httpx.post(f"{url}/api/vote", headers=bearer(token), json={"item": "no-such-item", "choice": "A"})
    assert reply.status_code == 404 and "not in this rater's pack" in reply.json()["error"]
    # An item that exists but belongs to no comparison of this rater is just as unknown to them.
    assert httpx.get(f"{url}/media/99/A", params={"token": token}).status_code == 404


def test_second_vote_on_the_same_item_is_409_and_not_stored(study):
    result, url = study
    token = result.raters[2].token
    item = httpx.get(f"{url}/api/state", headers=bearer(token)).json()["current"]["item"]
    assert httpx.post(f"{url}/api/vote", headers=bearer(token), json={"item": item, "choice": "A"}).status_code == 200
    second = httpx.post(f"{url}/api/vote", headers=bearer(token), json={"item": item, "choice": "B"})
    assert second.status_code == 409 and "already has a vote" in second.json()["error"]
    conn = sqlite3.connect(result.path)
    n = conn.execute(
        "SELECT COUNT(*), MIN(chosen_side) FROM votes v JOIN raters r ON r.id = v.rater_id "
        "JOIN items i ON i.id = v.item_id WHERE r.token = ? AND i.key = ?", (token, item)).fetchone()
    assert n == (1, "A")


def test_missing_token_is_401_and_wrong_token_is_403(study):
    result, url = study
    for path in ("/api/state", "/admin/counts", "/admin/export", "/media/0/A"):
        missing = httpx.get(url + path)
        assert missing.status_code == 401, path
        assert missing.headers["www-authenticate"] == "Bearer"
        assert httpx.get(url + path, headers=bearer("not-a-token")).status_code == 403, path
    assert httpx.post(f"{url}/api/vote", json={"item": "item00", "choice": "A"}).status_code == 401
    assert httpx.post(f"{url}/api/vote", headers=bearer("nope"), json={"item": "item00", "choice": "A"}).status_code == 403
    # A rater's token opens no admin door, and the admin token is no rater.
    assert httpx.get(f"{url}/admin/counts", headers=bearer(result.raters[0].token)).status_code == 403
    assert httpx.get(f"{url}/api/state", headers=bearer(result.admin_token)).status_code == 403
    assert httpx.get(f"{url}/r/not-a-token").status_code == 403
    assert httpx.get(f"{url}/r/{result.raters[0].token}").status_code == 200


def test_path_traversal_in_media_urls_is_404(study):
    result, url = study
    token = result.raters[0].token
    for target in (
        f"/media/0/../../../../etc/passwd?token={token}",
        f"/media/0/..%2F..%2F..%2F..%2Fetc%2Fpasswd?token={token}",
        f"/media/0/%2e%2e/%2e%2e/study.db?token={token}",
        f"/media/../0/A?token={token}",
        f"/media/0/A%2F..%2F..%2Fstudy.db?token={token}",
        f"/media/0/source.mp4?token={token}",
        "/static/../db.py",
        "/static/..%2Fdb.py",
        "/static/%2e%2e/server.py",
    ):
        status = raw_get(url, target)
        assert status in (400, 404), (target, status)
    assert raw_get(url, f"/media/0/A?token={token}") == 200


def test_oversized_body_is_413(study):
    result, url = study
    token = result.raters[0].token
    big = b'{"item": "' + b"x" * (MAX_BODY_BYTES + 1) + b'", "choice": "A"}'
    reply = httpx.post(f"{url}/api/vote", headers={**bearer(token), "Content-Type": "application/json"}, content=big)
    assert reply.status_code == 413

    def chunks():  # no Content-Length: the limit must hold while streaming too
        for _ in range(4):
            yield b"x" * MAX_BODY_BYTES

    assert httpx.post(f"{url}/api/vote", headers=bearer(token), content=chunks()).status_code == 413


def test_malformed_votes_are_400(study):
    result, url = study
    token = result.raters[0].token
    item = httpx.get(f"{url}/api/state", headers=bearer(token)).json()["current"]["item"]
    for body in (b"not json", b"[1, 2]", b'{"choice": "A"}', b'{"item": "%s", "choice": "C"}' % item.encode()):
        reply = httpx.post(f"{url}/api/vote", headers=bearer(token), content=body)
        assert reply.status_code == 400, body
        assert reply.json()["error"]
    assert httpx.get(f"{url}/api/vote", headers=bearer(token)).status_code == 405


def test_deeply_nested_vote_is_400(study):
    result, url = study
    token = result.raters[0].token
    for body in (b"[" * 2000 + b"]" * 2000, b'{"item": ' + b"[" * 2000):
        assert len(body) <= MAX_BODY_BYTES
        reply = httpx.post(f"{url}/api/vote", headers=bearer(token), content=body)
        assert reply.status_code == 400 and reply.json()["error"], body[:20]


def test_media_position_past_the_database_range_is_404(study):
    result, url = study
    token = result.raters[0].token
    for position in ("99999999999999999999999", str(2**63), str(2**63 - 1)):
        for slot in SLOTS:
            assert httpx.get(f"{url}/media/{position}/{slot}", params={"token": token}).status_code == 404
    assert httpx.get(f"{url}/media/99999999999999999999999/source").status_code == 401


def test_access_log_keeps_tokens_out(tmp_path):
    """`byg user-study serve` as a user runs it: the access log shows every request, never a token."""
    result = make_study(tmp_path, items=2, raters=1)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "byg_cli.cli", "user-study", "serve", str(result.path),
                                 "--port", str(port)], stdout=out, stderr=subprocess.STDOUT)
        try:
            url, rater, admin = f"http://127.0.0.1:{port}", result.raters[0].token, result.admin_token
            deadline = time.monotonic() + 30
            while True:
                try:
                    httpx.get(url + "/", timeout=1)
                    break
                except httpx.TransportError:
                    assert time.monotonic() < deadline and proc.poll() is None, log.read_text()
                    time.sleep(0.1)
            assert httpx.get(f"{url}/r/{rater}").status_code == 200
            assert httpx.get(f"{url}/media/0/A", params={"token": rater}).status_code == 200
            assert httpx.get(f"{url}/admin/counts?token={admin}&x=1").status_code == 200
            assert httpx.get(f"{url}/admin/export", params={"token": "wrong-" + admin}).status_code == 403
        finally:
            proc.terminate()
            proc.wait(timeout=20)
    access = [line for line in log.read_text().splitlines() if "HTTP/1.1" in line]
    assert len(access) >= 5, log.read_text()
    assert not [line for line in access if rater in line or admin in line], access
    assert any("/r/<token>" in line for line in access) and any("token=<token>&x=1" in line for line in access)
