"""Load: 50 concurrent raters vote through their packs against `byg user-study serve` on loopback.

Checks zero lost and zero duplicated votes in the database; prints latency percentiles (no timing asserts).
"""

import asyncio
import os
import random
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from helpers.study_helpers import make_study

RATERS = 50
ITEMS = 16
PER_RATER = 8


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def served_study(tmp_path):
    result = make_study(tmp_path, items=ITEMS, raters=RATERS, per_rater=PER_RATER, seed=7)
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1]), "COLUMNS": "200"}
    log = (tmp_path / "server.log").open("wb")  # a file, not a pipe: the access log must never block the server
    proc = subprocess.Popen(
        [sys.executable, "-m", "byg_cli.cli", "user-study", "serve", str(result.path), "--port", str(port)],
        stdout=log, stderr=subprocess.STDOUT, env=env,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(url + "/", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"server did not start: {(tmp_path / 'server.log').read_text()}")
        time.sleep(0.1)
    try:
        yield result, url
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()
    # `serve` printed every rater's link before serving.
    printed = (tmp_path / "server.log").read_text()
    assert all(f"/r/{r.token}" in printed for r in result.raters)


async def rater_session(client, token, rng, latencies, sent):
    headers = {"Authorization": f"Bearer {token}"}

    async def timed(method, path, **kw):
        t0 = time.perf_counter()
        reply = await client.request(method, path, headers=headers, **kw)
        latencies.append(time.perf_counter() - t0)
        return reply

    state = (await timed("GET", "/api/state")).json()
    for _ in range(PER_RATER + 1):  # bounded: one vote per comparison
        if state["current"] is None:
            break
        item, choice = state["current"]["item"], rng.choice("AB")
        reply = await timed("POST", "/api/vote", json={"item": item, "choice": choice})
        assert reply.status_code == 200, reply.text
        sent.append((token, item, choice))
        if rng.random() < 0.25:  # a client retry of the same vote must not count twice
            retry = await timed("POST", "/api/vote", json={"item": item, "choice": choice})
            assert retry.status_code == 409
        state = reply.json()["state"]
    return state


@pytest.mark.slow
def test_fifty_concurrent_raters_lose_and_duplicate_nothing(served_study, capsys):
    result, url = served_study
    latencies, sent = [], []

    async def main():
        limits = httpx.Limits(max_connections=RATERS, max_keepalive_connections=RATERS)
        async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:
            return await asyncio.wait_for(asyncio.gather(*[
                rater_session(client, r.token, random.Random(i), latencies, sent)
                for i, r in enumerate(result.raters)
            ]), timeout=90)

    t0 = time.perf_counter()
    finals = asyncio.run(main())
    wall = time.perf_counter() - t0
    assert all(s["current"] is None and s["done"] == PER_RATER for s in finals)

    conn = sqlite3.connect(result.path)
    total, distinct = conn.execute("SELECT COUNT(*), COUNT(DISTINCT rater_id || ':' || item_id) FROM votes").fetchone()
    assert total == distinct == RATERS * PER_RATER == len(sent)  # none lost, none duplicated
    stored = {
        (tok, key): (side, method)
        for tok, key, side, method in conn.execute(
            "SELECT r.token, i.key, v.chosen_side, m.name FROM votes v JOIN raters r ON r.id = v.rater_id "
            "JOIN items i ON i.id = v.item_id JOIN methods m ON m.id = v.chosen_method_id")
    }
    shown = {
        (tok, key): (a, b)
        for tok, key, a, b in conn.execute(
            "SELECT r.token, i.key, ma.name, mb.name FROM assignments s JOIN raters r ON r.id = s.rater_id "
            "JOIN items i ON i.id = s.item_id JOIN methods ma ON ma.id = s.a_method_id "
            "JOIN methods mb ON mb.id = s.b_method_id")
    }
    for tok, item, choice in sent:
        a, b = shown[(tok, item)]
        assert stored[(tok, item)] == (choice, a if choice == "A" else b)

    ms = sorted(1000 * x for x in latencies)
    pct = {p: ms[min(len(ms) - 1, int(p / 100 * len(ms)))] for p in (50, 90, 95, 99)}
    with capsys.disabled():  # shown in every run, not only with -s
        print(
            f"\nload: {RATERS} raters, {len(ms)} requests, {total} votes in {wall:.2f} s; latency ms "
            + ", ".join(f"p{p}={v:.1f}" for p, v in pct.items()) + f", max={ms[-1]:.1f}"
        )
