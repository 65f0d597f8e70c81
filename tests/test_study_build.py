"""`byg user-study build`: pairing, packs, tokens, and clear errors for mismatched inputs."""

import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from byg_cli.cli import app
from byg_cli.errors import BygError
from byg_cli.study.build import build_study
from helpers.study_helpers import make_study, write_png


def test_build_pairs_outputs_and_balances_packs(tmp_path):
    result = make_study(tmp_path, items=6, raters=4, per_rater=3)
    assert result.n_items == 6 and result.methods == ["ours", "baseline"]
    assert result.conditions == {"cartoon": 3, "photoreal": 3}
    tokens = [r.token for r in result.raters] + [result.admin_token]
    assert len(set(tokens)) == 5 and all(len(t) >= 16 for t in tokens)

    conn = sqlite3.connect(result.path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    outputs = conn.execute(
        "SELECT i.key, m.name, o.path FROM outputs o JOIN items i ON i.id = o.item_id JOIN methods m ON m.id = o.method_id"
    ).fetchall()
    assert len(outputs) == 12
    assert all(Path(p).name.startswith(key) and Path(p).parent.name == method for key, method, p in outputs)
    # 4 raters x 3 items = 12 comparisons over 6 items: every item seen by exactly 2 raters, none twice by one.
    per_item = Counter(i for (i,) in conn.execute("SELECT item_id FROM assignments"))
    assert sorted(per_item.values()) == [2] * 6
    per_rater = Counter(r for (r,) in conn.execute("SELECT rater_id FROM assignments"))
    assert sorted(per_rater.values()) == [3] * 4
    # A/B sides are drawn: both methods appear as option A.
    a_methods = {m for (m,) in conn.execute("SELECT a_method_id FROM assignments")}
    assert len(a_methods) == 2
    assert {c for (c,) in conn.execute("SELECT condition FROM items")} == {"cartoon", "photoreal"}


def test_build_reads_csv_instructions(tmp_path):
    make_study(tmp_path, items=2)
    csv_path = tmp_path / "instructions.csv"
    csv_path.write_text('item,instruction,condition\nitem00,"Make it a cartoon, please",cartoon\nitem01,Photo,ood\n')
    result = build_study(
        methods=[f"ours={tmp_path / 'ours'}", f"baseline={tmp_path / 'baseline'}"], sources=tmp_path / "sources",
        instructions=csv_path, output=tmp_path / "csv.db", raters=1,
    )
    assert result.conditions == {"cartoon": 1, "ood": 1}
    rows = sqlite3.connect(result.path).execute("SELECT key, instruction FROM items ORDER BY key").fetchall()
    assert rows == [("item00", "Make it a cartoon, please"), ("item01", "Photo")]


def _build(tmp_path, **overrides):
    kwargs = dict(
        methods=[f"ours={tmp_path / 'ours'}", f"baseline={tmp_path / 'baseline'}"], sources=tmp_path / "sources",
        instructions=tmp_path / "instructions.jsonl", output=tmp_path / "again.db", raters=2,
    )
    kwargs.update(overrides)
    return build_study(**kwargs)


@pytest.mark.parametrize(
    "breakage, message",
    [
        (lambda d: (d / "ours" / "item01.png").unlink(), "--method ours=.*missing output for item\\(s\\) item01"),
        (lambda d: write_png(d / "baseline" / "extra.png", (1, 2, 3)), "--method baseline=.*unknown file\\(s\\) extra.png"),
        (lambda d: (d / "ours" / "notes.txt").write_text("x"), "unknown file 'notes.txt'"),
        (lambda d: write_png(d / "ours" / "item00.jpg", (1, 2, 3)), "two files for item 'item00'"),
        (lambda d: (d / "ours" / "item00.png").rename(d / "ours" / "item00.mp4"), "item00.mp4 is a video but source"),
        (lambda d: write_png(d / "sources" / "item99.png", (1, 2, 3)), "no row for source item\\(s\\) item99"),
        (lambda d: (d / "sources" / "item00.png").unlink(), "item\\(s\\) item00 have no file in"),
        (lambda d: (d / "instructions.jsonl").write_text('{"item": "item00", "instruction": "x"}\n'),
         "instructions.jsonl:1: field 'condition' is missing or empty"),
        (lambda d: (d / "instructions.jsonl").write_text("{not json\n"), "instructions.jsonl:1: not valid JSON"),
        (lambda d: (d / "instructions.jsonl").write_text(
            '{"item": "item00", "instruction": "x", "condition": "c", "colour": "red"}\n'), "unknown field\\(s\\) colour"),
    ],
)
def test_build_rejects_mismatched_inputs(tmp_path, breakage, message):
    make_study(tmp_path, items=3)
    breakage(tmp_path)
    with pytest.raises(BygError, match=message):
        _build(tmp_path)
    assert not (tmp_path / "again.db").exists()


def test_build_rejects_bad_options(tmp_path):
    make_study(tmp_path, items=3)
    with pytest.raises(BygError, match="exactly two methods, got 1"):
        _build(tmp_path, methods=[f"ours={tmp_path / 'ours'}"])
    with pytest.raises(BygError, match="expected NAME=DIR"):
        _build(tmp_path, methods=["ours", f"baseline={tmp_path / 'baseline'}"])
    with pytest.raises(BygError, match="--per-rater 4: must be between 1 and the number of items \\(3\\)"):
        _build(tmp_path, per_rater=4)
    with pytest.raises(BygError, match="--instructions .*unknown format '.txt'"):
        (tmp_path / "i.txt").write_text("x")
        _build(tmp_path, instructions=tmp_path / "i.txt")
    with pytest.raises(BygError, match="already exists \\(pass --force"):
        _build(tmp_path, output=tmp_path / "study.db")
    assert _build(tmp_path, output=tmp_path / "study.db", force=True).n_items == 3


def test_cli_build_prints_rater_links(tmp_path):
    make_study(tmp_path, items=2)
    result = CliRunner().invoke(app, [
        "user-study", "build", "--method", f"ours={tmp_path / 'ours'}", "--method", f"base={tmp_path / 'baseline'}",
        "--sources", str(tmp_path / "sources"), "--instructions", str(tmp_path / "instructions.jsonl"),
        "-o", str(tmp_path / "cli.db"), "--raters", "3", "--base-url", "http://study.example:9000",
    ], terminal_width=200)
    assert result.exit_code == 0, result.output
    tokens = [t for (t,) in sqlite3.connect(tmp_path / "cli.db").execute("SELECT token FROM raters")]
    assert len(tokens) == 3
    for token in tokens:
        assert f"http://study.example:9000/r/{token}" in result.output
    assert "Admin token:" in result.output


def test_cli_reports_bad_input_as_one_line_error(tmp_path):
    make_study(tmp_path, items=2)
    (tmp_path / "ours" / "item01.png").unlink()
    proc = subprocess.run(
        [sys.executable, "-m", "byg_cli.cli", "user-study", "build", "--method", f"ours={tmp_path / 'ours'}",
         "--method", f"base={tmp_path / 'baseline'}", "--sources", str(tmp_path / "sources"),
         "--instructions", str(tmp_path / "instructions.jsonl"), "-o", str(tmp_path / "x.db")],
        capture_output=True, text=True, timeout=120, env={"PYTHONPATH": str(Path(__file__).parents[1]), "COLUMNS": "300"},
    )
    assert proc.returncode == 2
    assert "error:" in proc.stderr and "missing output for item(s) item01" in proc.stderr
    assert "Traceback" not in proc.stderr
