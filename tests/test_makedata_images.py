"""The image make-data job end to end against a real loopback chat-completions server: records, rejects,
metadata, determinism, resume, and a real kill of the CLI process mid-run."""

import base64
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import run_main
from helpers.makedata_support import ChatServer, allowed_types_of, bad_answer, good_answer, make_images, user_text
from PIL import Image
from typer.testing import CliRunner

from byg_cli.cli import app
from byg_cli.data.records import read_records
from byg_cli.errors import BygError
from byg_cli.makedata.images import make_image_edits
from byg_cli.makedata.journal import read_jsonl
from byg_cli.vlm import open_backend

ROOT = Path(__file__).resolve().parents[1]


def red_of(body) -> int:
    url = body["messages"][-1]["content"][0]["image_url"]["url"]
    return Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGB").getpixel((0, 0))[0]


def good_if_even_red(body):
    """Good answer for images whose red channel is even, a 'restore' reverse instruction otherwise."""
    prompt = user_text(body)
    return good_answer(prompt) if red_of(body) % 2 == 0 else bad_answer(prompt)


def expected_split(paths):
    good = {p.name for p in paths if Image.open(p).convert("RGB").getpixel((0, 0))[0] % 2 == 0}
    return good, {p.name for p in paths} - good


def lines(path: Path) -> list[dict]:
    return read_jsonl(path) if path.exists() else []


def test_records_and_rejects(tmp_path):
    paths = make_images(tmp_path / "imgs", 9)
    out = tmp_path / "edits.jsonl"
    with ChatServer(answer=good_if_even_red) as server:
        summary = make_image_edits(tmp_path / "imgs", open_backend(server.url), out, seed=3, chunk=4)
    good, bad = expected_split(paths)
    assert good and bad
    records = read_records(out)
    assert {Path(r.media).name for r in records} == good and summary.accepted == len(good)
    for r in records:
        assert r.media_path(out.parent).is_file()
        assert r.edit_type == r.extra["allowed_types"][0] and len(r.extra["allowed_types"]) == 3
        assert r.extra["vlm_model"] == "stub-vlm" and "```json" in r.extra["vlm_raw"]
        assert r.reverse_instruction == "Change the car color to red."
    rejects = read_jsonl(tmp_path / "edits.rejects.jsonl")
    assert {Path(r["image"]).name for r in rejects} == bad and summary.rejected == len(bad)
    assert all("'restore'" in r["reason"] and r["vlm_raw"] for r in rejects)
    assert sum(summary.usage.values()) == len(good)


def test_metadata_goes_into_the_prompt_and_forces_photorealistic_edits(tmp_path):
    paths = make_images(tmp_path / "imgs", 4)
    csv = tmp_path / "meta.csv"
    rows = ["ImageID,Caption,Labels,Photorealistic"]
    rows += [f"{p.stem},a drawing number {i},Car;Tree,{'false' if i < 2 else 'true'}" for i, p in enumerate(paths)]
    csv.write_text("\n".join(rows) + "\n")

    def answer(body):
        prompt = user_text(body)
        if allowed_types_of(prompt) == ["style_change"]:
            return json.dumps({"edit_type": "style_change", "src_caption": "A pencil drawing of a car.",
                               "instruction": "Turn the drawing into a photorealistic photograph.",
                               "tgt_caption": "A photograph of a car.",
                               "reverse_instruction": "Turn the image into a pencil drawing."})
        return good_answer(prompt)

    with ChatServer(answer=answer) as server:
        make_image_edits(tmp_path / "imgs", open_backend(server.url), tmp_path / "e.jsonl", metadata=csv,
                         p_style=1.0)
    prompts = {red_of(b): user_text(b) for b in server.bodies}
    for i, p in enumerate(paths):
        prompt = prompts[Image.open(p).convert("RGB").getpixel((0, 0))[0]]
        assert f"Caption: a drawing number {i}" in prompt and "Labels: Car, Tree" in prompt
        assert (allowed_types_of(prompt) == ["style_change"]) == (i < 2)
    forced = [r for r in read_records(tmp_path / "e.jsonl") if r.extra.get("forced_photorealistic")]
    assert len(forced) == 2 and all(r.edit_type == "style_change" for r in forced)


def test_bad_metadata_and_inputs_are_named(tmp_path):
    make_images(tmp_path / "imgs", 1)
    bad = tmp_path / "meta.csv"
    bad.write_text("name,caption\nx,y\n")
    with ChatServer() as server:
        backend = open_backend(server.url)
        with pytest.raises(BygError, match=r"meta.csv: no image id column .*found name, caption"):
            make_image_edits(tmp_path / "imgs", backend, tmp_path / "e.jsonl", metadata=bad)
        bad.write_text("ImageID,photorealistic\nimg000,maybe\n")
        with pytest.raises(BygError, match=r"meta.csv:2: column 'photorealistic' has 'maybe'"):
            make_image_edits(tmp_path / "imgs", backend, tmp_path / "e.jsonl", metadata=bad)
        (tmp_path / "empty").mkdir()
        with pytest.raises(BygError, match="no JPEG, PNG or WebP images"):
            make_image_edits(tmp_path / "empty", backend, tmp_path / "e.jsonl")


def test_resume_in_steps_equals_one_uninterrupted_run(tmp_path):
    make_images(tmp_path / "imgs", 12)
    with ChatServer(answer=good_if_even_red) as server:
        backend = open_backend(server.url)
        once = tmp_path / "once" / "edits.jsonl"
        make_image_edits(tmp_path / "imgs", backend, once, seed=5, chunk=4)
        steps = tmp_path / "steps" / "edits.jsonl"
        make_image_edits(tmp_path / "imgs", backend, steps, seed=5, chunk=4, limit=6)  # stops mid-chunk
        posts = server.posts
        again = make_image_edits(tmp_path / "imgs", backend, steps, seed=5, chunk=4)
        assert again.skipped == 6 and server.posts == posts + 6
        posts = server.posts
        third = make_image_edits(tmp_path / "imgs", backend, steps, seed=5, chunk=4)
        assert third.skipped == 12 and third.accepted == third.rejected == 0 and server.posts == posts
    for name in ("edits.jsonl", "edits.rejects.jsonl"):
        assert lines(once.with_name(name)) == lines(steps.with_name(name))  # same draws, same order
    other_seed = tmp_path / "seed6" / "edits.jsonl"
    with ChatServer(answer=good_if_even_red) as server:
        make_image_edits(tmp_path / "imgs", open_backend(server.url), other_seed, seed=6, chunk=4)
    assert [r["allowed_types"] for r in lines(other_seed)] != [r["allowed_types"] for r in lines(once)]


def cli(*args):
    return [sys.executable, "-m", "byg_cli.cli", "make-data", *map(str, args)]


def test_kill_mid_run_then_rerun_gives_every_image_exactly_once(tmp_path):
    paths = make_images(tmp_path / "imgs", 40)
    out = tmp_path / "run" / "edits.jsonl"
    rejects = out.with_name("edits.rejects.jsonl")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    args = cli(tmp_path / "imgs", "--vlm", None, "-o", out, "--seed", 2, "--concurrency", 2, "--batch-size", 2)
    with ChatServer(answer=good_if_even_red, delay=0.05) as server:
        args[args.index("None")] = server.url
        proc = subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.time() + 30
        while len(lines(out)) + len(lines(rejects)) < 8 and time.time() < deadline and proc.poll() is None:
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()
        done_at_kill = len(lines(out)) + len(lines(rejects))
        assert 8 <= done_at_kill < 40
        with open(out, "a") as fh:  # what a kill in the middle of a write leaves behind
            fh.write('{"image": "../imgs/torn')
        rerun = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
        assert rerun.returncode == 0, rerun.stderr
        assert "already done" in rerun.stderr and "edit types of the accepted records" in rerun.stderr
    seen = [r.media for r in read_records(out)] + [r["image"] for r in lines(rejects)]
    assert len(seen) == len(set(seen)) == 40  # no duplicate, no missing
    assert {Path(s).name for s in seen} == {p.name for p in paths}
    good, bad = expected_split(paths)
    assert {Path(r.media).name for r in read_records(out)} == good
    # An uninterrupted run with the same seed makes the same records.
    whole = tmp_path / "whole" / "edits.jsonl"
    with ChatServer(answer=good_if_even_red) as server:
        make_image_edits(tmp_path / "imgs", open_backend(server.url), whole, seed=2, chunk=2)
    key = lambda rows: sorted((r["image"], r["allowed_types"]) for r in rows)  # noqa: E731
    assert key(lines(out)) == key(lines(whole)) and key(lines(rejects)) == key(lines(whole.with_name(rejects.name)))


def test_cli_argument_errors(tmp_path, capsys):
    runner = CliRunner()
    result = runner.invoke(app, ["make-data", str(tmp_path / "missing"), "--vlm", "http://127.0.0.1:9"])
    assert isinstance(result.exception, BygError) and "not an images folder" in str(result.exception)
    result = runner.invoke(app, ["make-data", str(tmp_path)])
    assert "missing --vlm" in str(result.exception) and "BYG_VLM" in str(result.exception)
    code, _, err = run_main(["make-data", tmp_path, "--vlm", "http://127.0.0.1:9", "--count", "3"], capsys)
    assert code == 2 and "No such option: --count" in err and "use --limit N" in err  # --count is videos/shapes
    proc = subprocess.run(cli("videos"), env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True)
    assert proc.returncode == 2 and "error: videos: give the captions file" in proc.stderr
