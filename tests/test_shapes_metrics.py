import json

import numpy as np
import pytest
from PIL import Image

from byg_cli.visual import save_grid

from byg_cli.data.shapes import PALETTE, Attributes, caption_for_index, render
from byg_cli.data.shapes_edits import Edit, edit_for_index, evaluation_edits, identity_edits, make_edit
from byg_cli.eval.shapes_metrics import (
    edit_markdown,
    score_edit,
    score_t2i,
    summarize_edits,
    t2i_markdown,
    write_json,
    write_markdown,
)

N_EDITS = 360


def _edits():
    return [edit_for_index(123, i, split="heldout") for i in range(N_EDITS)]


def _summary(editor):
    scores = []
    for e in _edits():
        src = render(e.source)
        scores.append(score_edit(e.source, e.edit_type, e.target, src, editor(e, src)))
    return summarize_edits(scores)


def test_a_perfect_editor_scores_full_marks_on_every_edit_type():
    summary = _summary(lambda e, src: render(e.target))
    assert set(summary["per_type"]) == {"color", "background", "shape", "style", "add", "remove"}
    for t, row in summary["per_type"].items():
        assert row["success"] == 1.0 and row["preservation"] == 1.0 and row["pixel_agreement"] == 1.0, (t, row)
    assert summary["average"]["success"] == 1.0 and summary["average"]["preservation"] == 1.0


def test_the_identity_editor_succeeds_nowhere_and_preserves_everything():
    summary = _summary(lambda e, src: src)
    for t, row in summary["per_type"].items():
        assert row["success"] == 0.0 and row["preservation"] == 1.0, (t, row)
        assert row["failures"] == {"not_as_asked": row["n"]}
    assert summary["average"]["success"] == 0.0


def test_identity_checks_ask_for_the_source_and_score_a_copy_only():
    edits = evaluation_edits(seed=5, per_type=6)
    checks = identity_edits(edits)
    assert len(checks) == 24 and {e.edit_type for e in checks} == {"identity"}  # add / remove are left out
    for e, check in zip([e for e in edits if e.edit_type not in ("add", "remove")], checks):
        assert check.source == check.target == e.source and check.instruction == e.reverse_instruction
    for check in checks:
        src = render(check.source)
        copy = score_edit(check.source, "identity", check.target, src, src)
        assert copy.success and copy.preserved and copy.pixel_agreement == 1.0
        moved = render(check.source.replace(cx=check.source.cx + 4))
        s = score_edit(check.source, "identity", check.target, src, moved)
        assert s.success and not s.preserved and "moved" in s.failures  # attributes kept, geometry not
    square = Attributes("square", "red", "blue", "filled", 16.0, 16.0, 16)
    s = score_edit(square, "identity", square, render(square), render(square.replace(color="green")))
    assert not s.success and not s.preserved and "color_changed" in s.failures
    summary = summarize_edits([copy, s])
    assert summary["average"] is None and summary["per_type"]["identity"]["preservation"] == 0.5


def test_preservation_catches_moves_size_changes_and_collateral_changes():
    source = Attributes("square", "red", "blue", "filled", 16.0, 16.0, 16)
    src = render(source)
    colour = make_edit(source, Edit("color", {"color": "green"}))
    moved = render(colour.target.replace(cx=20.0))
    s = score_edit(source, "color", colour.target, src, moved)
    assert s.success and not s.preserved and "moved" in s.failures and s.pixel_agreement < 1.0
    also_bg = render(colour.target.replace(background="yellow"))
    s = score_edit(source, "color", colour.target, src, also_bg)
    assert s.success and not s.preserved and s.failures == ["background_changed"] and s.pixel_agreement < 0.1
    style_too = render(colour.target.replace(style="outlined"))
    s = score_edit(source, "color", colour.target, src, style_too)
    assert s.success and not s.preserved and "style_changed" in s.failures
    shape = make_edit(source, Edit("shape", {"shape": "circle"}))
    grown = render(shape.target.replace(size=22, cx=17.0, cy=17.0))
    s = score_edit(source, "shape", shape.target, src, grown)
    assert s.success and s.failures == ["size"]
    removed = make_edit(source, Edit("remove"))
    s = score_edit(source, "remove", removed.target, src, render(Attributes(None, None, "white", None)))
    assert s.success and s.failures == ["background_changed"]


def test_noisy_but_right_outputs_still_count():
    rng = np.random.default_rng(0)
    scores = []
    for e in _edits()[:120]:
        out = render(e.target).astype(float) + rng.normal(0, 12, (32, 32, 3))
        scores.append(score_edit(e.source, e.edit_type, e.target, render(e.source),
                                 np.clip(out, 0, 255).astype(np.uint8)))
    summary = summarize_edits(scores)
    assert summary["average"]["success"] == 1.0 and summary["average"]["preservation"] == 1.0
    assert 0.9 < summary["average"]["pixel_agreement"] < 1.0


def test_t2i_scores_right_and_wrong_generations():
    asked = [caption_for_index(5, i)[0] for i in range(200)]
    right = score_t2i([render(a) for a in asked], asked)
    assert all(v == 1.0 for v in right["accuracy"].values()), right["accuracy"]

    def wrong(a):  # colour and background swapped, shapes kept
        return render(a.replace(color=a.background, background=a.color)) if a.has_shape else render(a)

    swapped = score_t2i([wrong(a) for a in asked], asked)
    acc = swapped["accuracy"]
    assert acc["color"] == 0.0 and acc["shape"] == 1.0 and acc["crisp"] == 1.0 and acc["background"] < 0.2
    blobs = []
    yy, xx = np.mgrid[0:32, 0:32]
    for a in asked:  # an elliptic blob of the asked colours, whatever shape was asked
        img = render(Attributes(None, None, a.background, None))
        colour = a.color or ("blue" if a.background == "red" else "red")
        img[(xx - 16) ** 2 / 1.8 + (yy - 16) ** 2 < 30] = PALETTE[colour]
        blobs.append(img)
    blob_summary = score_t2i(blobs, asked)
    blob = blob_summary["accuracy"]
    # read as the nearest clean shape (a circle) but never crisp: its region is no clean render's
    assert blob["shape"] < 0.5 and blob["crisp"] == 0.0 and blob["background"] == 1.0 and blob["color"] > 0.95
    # split by what was asked: the circles come out right, the squares and triangles never
    split = blob_summary["by_request"]["shape"]
    assert split["circle"]["shape"] > 0.9 and split["square"]["shape"] == 0.0 and split["triangle"]["shape"] == 0.0
    assert sum(g["n"] for g in split.values()) == sum(a.has_shape for a in asked)
    assert sum(g["n"] for g in blob_summary["by_request"]["style"].values()) == sum(a.has_shape for a in asked)
    assert right["by_request"]["style"]["outlined"]["crisp"] == 1.0
    assert "crisp (IoU≥0.8)" in t2i_markdown(right)
    assert f"| shape square | {split['square']['n']} | " in t2i_markdown(blob_summary)
    with pytest.raises(ValueError, match="requested"):
        score_t2i([render(asked[0])], asked)


def test_report_writers_and_grid(tmp_path):
    edits = _edits()[:6]
    scores = [score_edit(e.source, e.edit_type, e.target, render(e.source), render(e.target)) for e in edits]
    summary = summarize_edits(scores)
    path = write_json(tmp_path / "r" / "edit.json", {"summary": summary, "scores": [s.to_json() for s in scores]})
    assert json.loads(path.read_text())["summary"]["n"] == 6
    md = write_markdown(tmp_path / "r" / "edit.md", edit_markdown(summary, "perfect editor")).read_text()
    assert md.startswith("### perfect editor") and "| **average" in md and "100.0%" in md
    rows = [[render(e.source), render(e.target), render(e.target)] for e in edits]
    grid = save_grid(tmp_path / "grid.png", rows, ["source", "output", "target"], captions=[e.instruction for e in edits])
    img = np.asarray(Image.open(grid))
    assert img.shape[1] == 3 * 128 + 4 * 4 and img.shape[0] > 6 * 128
    first_tile = img[20:20 + 128, 4:4 + 128]  # below the column titles
    assert (first_tile[2, 2] == PALETTE[edits[0].source.background]).all()


def test_edit_and_t2i_reports_write_all_three_files(tmp_path):
    from byg_cli.eval.shapes_metrics import write_edit_report, write_t2i_report

    edits = _edits()[:30]
    sources = [render(e.source) for e in edits]
    outputs = [render(e.target) if k % 2 else sources[k] for k, e in enumerate(edits)]
    summary = write_edit_report(tmp_path, edits, sources, outputs, name="half")
    assert 0.3 < summary["average"]["success"] < 0.7 and summary["average"]["preservation"] == 1.0
    saved = json.loads((tmp_path / "half.json").read_text())
    assert len(saved["samples"]) == 30 and saved["samples"][1]["success"] is True
    assert "| color |" in (tmp_path / "half.md").read_text()
    grid = Image.open(tmp_path / "half_grid.png")
    assert grid.width == 3 * 128 + 16 and grid.height > 16 * 128

    asked = [caption_for_index(8, i) for i in range(12)]
    t2i = write_t2i_report(tmp_path, [render(a) for a, _ in asked], [a for a, _ in asked], [c for _, c in asked])
    assert t2i["accuracy"]["all"] == 1.0
    assert (tmp_path / "shapes_t2i.md").is_file() and Image.open(tmp_path / "shapes_t2i_grid.png").width == 8 * 96 + 36


def test_evaluation_set_is_balanced_and_reports_heldout_phrasings_apart(tmp_path):
    from collections import Counter

    from byg_cli.data.shapes_edits import evaluation_edits
    from byg_cli.eval.shapes_metrics import write_edit_report

    edits = evaluation_edits(seed=77, per_type=10)
    assert Counter(e.edit_type for e in edits) == {t: 10 for t in ("color", "background", "shape", "style", "add", "remove")}
    assert Counter(e.phrasing_split for e in edits) == {"train": 30, "heldout": 30}
    assert evaluation_edits(seed=77, per_type=10) == edits
    sources = [render(e.source) for e in edits]
    # an editor that only understands the training wordings
    outputs = [render(e.target) if e.phrasing_split == "train" else src for e, src in zip(edits, sources)]
    summary = write_edit_report(tmp_path, edits, sources, outputs)
    assert summary["per_split"]["train"]["success"] == 1.0 and summary["per_split"]["heldout"]["success"] == 0.0
    assert summary["average"]["success"] == 0.5
    assert "average, heldout phrasings" in (tmp_path / "shapes_edit.md").read_text()


def test_edit_report_splits_by_the_sources_style(tmp_path):
    """An editor that edits filled sources and copies outlined ones: the split says which half it fails."""
    from byg_cli.data.shapes_edits import evaluation_edits
    from byg_cli.eval.shapes_metrics import write_edit_report

    edits = evaluation_edits(seed=78, per_type=12)
    sources = [render(e.source) for e in edits]
    outputs = [render(e.target) if e.source.has_shape and e.source.style == "filled" else src
               for e, src in zip(edits, sources)]
    summary = write_edit_report(tmp_path, edits, sources, outputs)
    split = summary["per_source_style"]
    assert set(split) == {"filled", "outlined"}
    assert split["filled"]["success"] == 1.0 and split["filled"]["preservation"] == 1.0
    assert split["outlined"]["success"] == 0.0 and split["outlined"]["preservation"] == 1.0
    assert 0.0 < summary["average"]["success"] < 1.0
    assert "average, outlined sources" in (tmp_path / "shapes_edit.md").read_text()
