"""`byg user-study analyze`: votes from the database into JSON, markdown and a bar chart PNG."""

import json

import pytest
from PIL import Image
from typer.testing import CliRunner

from byg_cli.cli import app
from byg_cli.errors import BygError
from byg_cli.study import db
from byg_cli.study.report import analyze_study
from helpers.study_helpers import make_study


def vote_all(path, pick):
    """Every rater votes on every comparison of their pack; `pick(condition)` names the chosen method."""
    conn = db.connect(path)
    rows = conn.execute(
        "SELECT s.rater_id, s.item_id, i.condition, ma.name AS a, mb.name AS b FROM assignments s "
        "JOIN items i ON i.id = s.item_id JOIN methods ma ON ma.id = s.a_method_id JOIN methods mb ON mb.id = s.b_method_id"
    ).fetchall()
    for r in rows:
        chosen = pick(r["condition"])
        conn.execute(
            "INSERT INTO votes (rater_id, item_id, chosen_method_id, chosen_side) "
            "VALUES (?, ?, (SELECT id FROM methods WHERE name = ?), ?)",
            (r["rater_id"], r["item_id"], chosen, "A" if r["a"] == chosen else "B"),
        )
    conn.close()
    return len(rows)


def test_analyze_writes_json_markdown_and_chart(tmp_path):
    study = make_study(tmp_path, items=6, raters=3, per_rater=4)
    n = vote_all(study.path, lambda cond: "ours" if cond == "cartoon" else "baseline")
    result = CliRunner().invoke(app, ["user-study", "analyze", str(study.path), "--out", str(tmp_path / "out")],
                                terminal_width=300)
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "out" / "user_study.json").read_text())
    assert (data["ours"], data["other"]) == ("ours", "baseline")
    assert data["overall"]["votes"] == n == 12
    assert data["conditions"]["cartoon"]["win_rate"] == 1.0
    assert data["conditions"]["photoreal"]["win_rate"] == 0.0
    cartoon_votes = data["conditions"]["cartoon"]["votes"]
    assert data["overall"]["wins"] == cartoon_votes
    # Everyone agrees within each condition: kappa is 1 when the item has >= 2 raters and both methods win somewhere.
    assert data["overall"]["agreement"]["kappa"] == pytest.approx(1.0)
    md = (tmp_path / "out" / "user_study.md").read_text()
    assert "| cartoon |" in md and "| photoreal |" in md and "| **overall** |" in md and "100.0% ± 0.0%" in md
    with Image.open(tmp_path / "out" / "user_study.png") as png:
        assert png.format == "PNG" and png.width > 400 and png.height > 200
    assert "user_study.png" in result.output


def test_analyze_other_method_and_default_folder(tmp_path):
    study = make_study(tmp_path, items=4, raters=2)
    vote_all(study.path, lambda cond: "ours")
    analysis = analyze_study(study.path, ours="baseline")
    assert analysis.json_path.parent == tmp_path / "study-analysis"
    assert analysis.result["overall"]["win_rate"] == 0.0
    assert analysis.result["overall"]["per_rater"]["prefer_other"] == 2


def test_analyze_rejects_bad_input(tmp_path):
    study = make_study(tmp_path, items=2, raters=1)
    with pytest.raises(BygError, match="no votes yet"):
        analyze_study(study.path)
    vote_all(study.path, lambda cond: "ours")
    with pytest.raises(BygError, match="--ours 'nobody': not a method"):
        analyze_study(study.path, ours="nobody")
    with pytest.raises(BygError, match="no such study database"):
        analyze_study(tmp_path / "missing.db")
    (tmp_path / "other.db").write_bytes(b"not sqlite at all" * 100)
    with pytest.raises(BygError, match="not a byg user-study database"):
        analyze_study(tmp_path / "other.db")
