"""End to end in a real headless browser: Debian's chromium driven by Playwright against a real uvicorn server.

A rater opens their link, watches the synced videos, votes through the pack, reloads midway, and finishes; the
votes are in the database with the methods that were behind the clicked sides. `.ci/run` installs chromium;
without it this test fails (it never skips).
"""

import random
import re
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from byg_cli.study import db
from helpers.study_helpers import make_study, running_server

pytestmark = pytest.mark.browser  # slow too (conftest)
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
PACK = 5


@pytest.fixture
def browser():
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (`apt-get install -y chromium`, as .ci/run does)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


def video_times(page):
    return page.evaluate(
        """() => ['source', 'A', 'B'].map(s => {
               const v = document.querySelector('#media-' + s + ' video');
               return {t: v.currentTime, paused: v.paused, ready: v.readyState};
           })"""
    )


def test_rater_votes_through_a_pack_with_a_reload_midway(tmp_path, browser):
    result = make_study(tmp_path, items=PACK, raters=2, kind="video", seed=3)
    rater = result.raters[0]
    rng = random.Random(0)
    clicked = []  # (item, side)
    with running_server(result.path) as url:
        page = browser.new_page()
        page.set_default_timeout(15000)
        media_statuses = []
        page.on("response", lambda r: "/media/" in r.url and media_statuses.append(r.status))
        page.goto(f"{url}/r/{rater.token}")
        expect(page.locator("#progress")).to_have_text(f"0 / {PACK}")
        expect(page.locator("#question")).to_have_text("Which video is the better editing result?")
        expect(page.locator("#criteria li")).to_have_count(2)

        # Media URLs are opaque: no method name, no file name.
        srcs = page.eval_on_selector_all("video", "els => els.map(e => e.getAttribute('src'))")
        assert len(srcs) == 3 and all(re.fullmatch(r"/media/\d+/(source|A|B)\?token=[\w-]+", s) for s in srcs)
        assert "ours" not in page.inner_text("body") and "baseline" not in page.inner_text("body")

        # The three videos play together and stay on the original's clock.
        page.wait_for_function(
            "() => [...document.querySelectorAll('video')].every(v => v.readyState >= 2 && !v.paused && v.currentTime > 0.1)"
        )
        page.click("#pause")
        page.wait_for_function("() => [...document.querySelectorAll('video')].every(v => v.paused)")
        page.evaluate("() => { document.querySelector('#media-source video').currentTime = 1.2; }")
        page.wait_for_timeout(400)
        times = video_times(page)
        assert all(abs(v["t"] - times[0]["t"]) < 0.15 for v in times), times
        assert abs(times[0]["t"] - 1.2) < 0.05, times
        page.click("#play")
        page.wait_for_timeout(300)
        page.wait_for_function(  # all three running again, within a quarter second of each other
            """() => { const vs = [...document.querySelectorAll('video')].map(v => [v.paused, v.currentTime]);
                      const ts = vs.map(v => v[1]);
                      return vs.every(v => !v[0]) && Math.max(...ts) - Math.min(...ts) < 0.25; }""",
            timeout=5000,
        )

        def vote_once(done_before):
            item = page.get_attribute("#study", "data-item")
            side = rng.choice("AB")
            page.click(f"#vote-{side}")
            clicked.append((item, side))
            expect(page.locator("#progress")).to_have_text(f"{done_before + 1} / {PACK}")
            return item

        vote_once(0)
        vote_once(1)
        page.reload()  # midway: the server remembers where this rater is
        expect(page.locator("#progress")).to_have_text(f"2 / {PACK}")
        resumed_item = page.get_attribute("#study", "data-item")
        assert resumed_item not in {item for item, _ in clicked}
        for done in range(2, PACK):
            vote_once(done)
        expect(page.locator("#done")).to_be_visible()
        expect(page.locator("#done")).to_contain_text("Thank you")
        expect(page.locator("#study")).to_be_hidden()
        page.reload()
        expect(page.locator("#done")).to_be_visible()
        expect(page.locator("#progress")).to_have_text(f"{PACK} / {PACK}")
        page.screenshot(path=str(tmp_path / "done.png"))
        # The browser fetched the videos by byte ranges.
        assert 206 in media_statuses, media_statuses

    conn = db.connect(result.path)
    rater_id = db.rater_by_token(conn, rater.token)["id"]
    stored = {v.item: (v.side, v.chosen) for v in db.all_votes(conn) if v.rater == rater.name}
    assert len(stored) == PACK and len(clicked) == PACK and len({i for i, _ in clicked}) == PACK
    for item, side in clicked:
        shown = db.assignment_for_item(conn, rater_id, item)
        assert stored[item] == (side, shown.a_method if side == "A" else shown.b_method)
    # The other rater has not voted.
    assert conn.execute("SELECT COUNT(*) FROM votes WHERE rater_id != ?", (rater_id,)).fetchone()[0] == 0
    conn.close()


def test_image_study_with_keyboard_votes(tmp_path, browser):
    result = make_study(tmp_path, items=3, raters=1, kind="image")
    keys = ["a", "b", "b"]
    with running_server(result.path) as url:
        page = browser.new_page()
        page.set_default_timeout(15000)
        page.goto(f"{url}/r/{result.raters[0].token}")
        expect(page.locator("#question")).to_have_text("Which image is the better editing result?")
        expect(page.locator("#video-controls")).to_be_hidden()
        items = []
        for done, key in enumerate(keys):
            expect(page.locator("#progress")).to_have_text(f"{done} / 3")
            page.wait_for_function("() => [...document.querySelectorAll('.media img')].every(i => i.naturalWidth === 16)")
            items.append(page.get_attribute("#study", "data-item"))
            page.keyboard.press(key)
        expect(page.locator("#done")).to_be_visible()
    conn = db.connect(result.path)
    rater_id = db.rater_by_token(conn, result.raters[0].token)["id"]
    sides = {v.item: v.side for v in db.all_votes(conn)}
    assert sides == {item: key.upper() for item, key in zip(items, keys)}
    assert len(db.assignments(conn, rater_id)) == 3
    conn.close()
