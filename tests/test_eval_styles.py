"""The long-tail style benchmark: edits from folders (both directions), judged on loopback, Table 2 summary."""

import json
import math

import PIL.Image
import pytest
from rich.console import Console

from byg_cli.errors import BygError
from byg_cli.eval.styles import STYLES, TO_PHOTO, TO_STYLE, cases_from_folders, cases_from_manifest, run_styles
from byg_cli.eval.viescore import VieScorer
from helpers.eval_helpers import InvertEditor, JudgeServer, open_test_judge

QUIET = Console(file=open("/dev/null", "w"))


def policy(prompt, images):
    if "over-editing" in prompt:
        sc = 6 if "into a photorealistic photo" in prompt else 3
        return f'{{"score": [{sc}, 9], "reasoning": "x"}}'
    return "Final answer: [8, 10]"  # PQ 8, a bare list


@pytest.fixture
def folders(tmp_path):
    photo = tmp_path / "photo"
    photo.mkdir()
    for i in range(2):
        PIL.Image.new("RGB", (48, 32), (40 * i, 90, 200)).save(photo / f"p{i}.jpg")
    for style in ("lego", "voxel"):
        (tmp_path / "stylized" / style).mkdir(parents=True)
        PIL.Image.new("RGB", (32, 32), "orange").save(tmp_path / "stylized" / style / "s0.png")
    return tmp_path


def test_cases_from_folders(folders):
    cases = cases_from_folders(folders / "photo", folders / "stylized", list(STYLES))
    to_style = [c for c in cases if c.direction == TO_STYLE]
    assert len(to_style) == 2 * 6 and len([c for c in cases if c.direction == TO_PHOTO]) == 2
    assert any(c.instruction == "Turn this photo into a GTA V style image" for c in to_style)
    with pytest.raises(BygError, match="unknown style"):
        cases_from_folders(folders / "photo", None, ["anime"])


def test_manifest_errors_name_the_line(tmp_path):
    (tmp_path / "m.jsonl").write_text('{"id": "a", "direction": "sideways", "style": "lego", "source": "x.png", '
                                      '"instruction": "do"}\n')
    with pytest.raises(BygError, match=r"m.jsonl:1: field 'direction'"):
        cases_from_manifest(tmp_path / "m.jsonl")


def test_styles_flow_and_table2_overall(folders, tmp_path):
    cases = cases_from_folders(folders / "photo", folders / "stylized", ["lego", "voxel"])
    out = tmp_path / "out"
    with JudgeServer(policy) as server:
        result = run_styles(cases, out, "invert", InvertEditor(), VieScorer(open_test_judge(server.url)),
                            console=QUIET)
        assert len(server.requests) == 2 * len(cases)
    assert (out / "invert" / TO_STYLE / "lego" / "p1.png").exists()
    assert (out / "invert" / TO_PHOTO / "voxel" / "s0.png").exists()
    s = result["summaries"]["invert"]
    assert s[TO_STYLE]["semantic"] == 3 and s[TO_STYLE]["quality"] == 8
    assert s[TO_STYLE]["overall"] == pytest.approx(math.sqrt(24))
    assert s[TO_PHOTO]["overall"] == pytest.approx(math.sqrt(48))
    data = json.loads(open(result["report"]["json"]).read())
    assert data["methods"]["invert"][TO_STYLE]["by_style"]["categories"]["lego"]["scored"] == 2
    md = open(result["report"]["markdown"]).read()
    assert "| invert | 3.00 | 8.00 | 4.90 | 4.90 | 4/4 (0 failed) |" in md


def styles_cli(folders, tiny_run, server, out):
    """`byg eval styles` to lego and back, editing with the tiny run, judged by the loopback server."""
    from typer.testing import CliRunner

    from byg_cli.cli import app

    return CliRunner().invoke(app, [
        "eval", "styles", "--photo", str(folders / "photo"), "--stylized", str(folders / "stylized"),
        "--style", "lego", "--run", str(tiny_run), "--method", "tiny", "--judge", server.url,
        "--judge-model", "judge", "--out", str(out), "--steps", "2"])


def test_cli_styles_with_a_trained_tiny_run(folders, tiny_run, tmp_path):
    out = tmp_path / "out"
    with JudgeServer(policy) as server:
        result = styles_cli(folders, tiny_run, server, out)
        assert result.exit_code == 0, result.output
        assert len(server.requests) == 2 * 3  # 2 photos -> lego, 1 lego -> photo
    assert (out / "tiny" / TO_STYLE / "lego" / "p0.png").exists() and (out / "tiny" / TO_PHOTO / "lego" / "s0.png").exists()
    data = json.loads(next((out / "reports").glob("styles-*.json")).read_text())
    assert data["methods"]["tiny"][TO_PHOTO]["overall"] == pytest.approx(math.sqrt(6 * 8))
    assert "Photorealistic → Style" in result.output


def test_cli_styles_passes_over_a_source_it_cannot_read(folders, tiny_run, tmp_path):
    """A broken photo in the user's folder is named in one line and left out; every other edit is made and judged."""
    (folders / "photo" / "p1.jpg").write_bytes(b"not a jpeg")
    out = tmp_path / "out"
    with JudgeServer(policy) as server:
        result = styles_cli(folders, tiny_run, server, out)
        assert result.exit_code == 0, result.output
        assert len(server.requests) == 2 * 2  # p0 -> lego and lego -> photo; p1 neither edited nor judged
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.startswith("not edited:")]
    assert len(lines) == 1 and "p1.jpg: cannot read the image" in lines[0]
    assert (out / "tiny" / TO_STYLE / "lego" / "p0.png").exists()
    assert not (out / "tiny" / TO_STYLE / "lego" / "p1.png").exists()
    assert (out / "tiny" / TO_PHOTO / "lego" / "s0.png").exists()
