"""The whole `byg eval gedit` flow on a small GEdit-format parquet fixture, with a deterministic editor and a
judge server on loopback: outputs in the benchmark layout, judgements, a filled table, resume."""

import json
import math
import re

import PIL.Image
import PIL.ImageOps
import pytest
from rich.console import Console
from typer.testing import CliRunner

from byg_cli.cli import app
from byg_cli.errors import BygError
from byg_cli.eval.edit_bench import target_size
from byg_cli.eval.gedit import GEditOptions, run_gedit
from byg_cli.eval.gedit_data import GROUPS, count_rows, iter_rows
from byg_cli.eval.viescore import VieScorer
from helpers.eval_helpers import InvertEditor, JudgeServer, mean_abs_diff, open_test_judge, write_gedit_parquet


def strength(i_group: int, i_item: int) -> int:
    return 2 + (i_group + 3 * i_item) % 8  # 2..9


def fixture_rows():
    rows = []
    for gi, group in enumerate(GROUPS):
        for item in range(2):
            colour = (20 * gi, 200 - 10 * gi, 60 + 40 * item)
            rows.append(dict(
                task_type=group, key=f"{group}_{item}", instruction=f"{group} edit, strength {strength(gi, item)}",
                instruction_language="en", input_image=PIL.Image.new("RGB", (40, 30), colour),
                input_image_raw=PIL.Image.new("RGB", (80, 60), colour), Intersection_exist=item == 0))
    rows.append(dict(task_type="color_alter", key="cn_0", instruction="把它变成红色", instruction_language="cn",
                     input_image=PIL.Image.new("RGB", (40, 30)), input_image_raw=PIL.Image.new("RGB", (80, 60)),
                     Intersection_exist=True))
    return rows


FAIL_KEY_INSTRUCTION = "text_change edit, strength"  # the judge answers garbage for its second item


def judge_policy(prompt, images):
    if "over-editing" in prompt:  # the SC question: [source, edited]
        assert len(images) == 2 and images[0].size == images[1].size == (40, 30)
        s = int(re.search(r"strength (\d+)", prompt).group(1))
        inverted = mean_abs_diff(PIL.ImageOps.invert(images[0]), images[1]) < 3
        if FAIL_KEY_INSTRUCTION in prompt and s == strength(list(GROUPS).index("text_change"), 1):
            return "Sorry, I cannot rate this edit."
        # messy but valid formats, cycling
        return [f'{{"score": [{s if inverted else 0}, 10], "reasoning": "ok"}}',
                f"```json\n{{'score': [{s if inverted else 0}, 10], 'reasoning': 'fine'}}\n```",
                f"Sure! score = [{s if inverted else 0}, 10]"][s % 3]
    assert len(images) == 1
    return '{"score": [8, 9], "reasoning": "natural"}'  # PQ = 8


def expected_table():
    """Per-group O and the macro average, worked out from the policy: SC = strength, PQ = 8, O = sqrt(8 s)."""
    per_group = {}
    for gi, group in enumerate(GROUPS):
        items = [0] if group == "text_change" else [0, 1]  # item 1 of text_change fails to parse
        per_group[group] = sum(math.sqrt(8 * strength(gi, i)) for i in items) / len(items)
    return per_group, sum(per_group.values()) / len(per_group)


@pytest.fixture
def gedit_data(tmp_path):
    return write_gedit_parquet(tmp_path / "gedit" / "data" / "train-00000-of-00001.parquet", fixture_rows()).parent.parent


def test_reader_keeps_the_language_and_columns(gedit_data):
    rows = list(iter_rows(gedit_data, "en"))
    assert len(rows) == 22 == count_rows(gedit_data, "en") and count_rows(gedit_data, "cn") == 1
    assert rows[0].task_type == "background_change" and rows[0].intersection and not rows[1].intersection
    assert rows[0].image("input_image_raw").size == (80, 60)


def test_missing_column_is_named(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"key": ["a"], "instruction_language": ["en"]}), tmp_path / "bad.parquet")
    with pytest.raises(BygError, match=r"bad.parquet: missing GEdit-Bench column\(s\) \['task_type'"):
        list(iter_rows(tmp_path, "en"))


def test_input_size_rule_by_hand():
    # 1024x768: w = sqrt(512^2 * 4/3) = 591.2 -> 576, h = 443.4 -> 448; 576*448 < 512^2 so w += 32
    assert target_size(1024, 768) == (608, 448)
    assert target_size(512, 512) == (512, 512)
    # 80x60 (ratio 4/3) gives the same as 1024x768
    assert target_size(80, 60) == (608, 448)


def test_whole_gedit_flow(gedit_data, tmp_path):
    out = tmp_path / "results"
    editor = InvertEditor()
    with JudgeServer(judge_policy) as server:
        scorer = VieScorer(open_test_judge(server.url))
        opts = GEditOptions(data=gedit_data, out=out, method="invert", edit_batch_size=4, judge_batch_size=5)
        result = run_gedit(opts, editor, scorer, console=Console(file=open("/dev/null", "w")))
        n_requests = len(server.requests)

        # benchmark layout: <method>/fullset/<task_type>/en/<key>.png and <key>_SRCIMG.png
        for group in GROUPS:
            for item in range(2):
                folder = out / "invert" / "fullset" / group / "en"
                edited = PIL.Image.open(folder / f"{group}_{item}.png")
                assert edited.size == (608, 448)  # model input resized by the benchmark's rule
                assert PIL.Image.open(folder / f"{group}_{item}_SRCIMG.png").size == (40, 30)
        assert not list(out.glob("invert/fullset/*/cn"))
        assert n_requests == 44  # 22 items x (SC + PQ)

        per_group, average = expected_table()
        summary = result["summaries"]["invert"]["fullset"]
        for group, value in per_group.items():
            assert summary["categories"][group]["o"]["mean"] == pytest.approx(value)
        assert summary["average"]["o"] == pytest.approx(average)
        assert summary["categories"]["text_change"]["parse_failures"] == 1
        assert summary["totals"] == {"n": 22, "scored": 21, "unjudged": 0, "parse_failures": 1, "random_filled": 0}
        inter = result["summaries"]["invert"]["intersection"]
        assert inter["totals"]["n"] == 11
        assert inter["average"]["o"] == pytest.approx(
            sum(math.sqrt(8 * strength(gi, 0)) for gi in range(11)) / 11)

        # report files: JSON, a filled markdown table like the paper's Table 3, a plot
        assert result["report"]["json"].startswith(str(out / "reports" / "gedit-en-"))
        data = json.loads(open(result["report"]["json"]).read())
        assert data["methods"]["invert"]["fullset"]["average"]["o"] == pytest.approx(average)
        md = open(result["report"]["markdown"]).read()
        assert f"| Motion change | {per_group['motion_change']:.2f} |" in md
        assert f"| **Average (mean of group means)** | **{average:.2f}** |" in md
        assert "| Text change | " in md and "parse failures" in md
        assert open(result["report"]["plot"], "rb").read(8) == b"\x89PNG\r\n\x1a\n"

        # resume: nothing regenerated, nothing re-judged
        calls = editor.calls
        again = run_gedit(opts, editor, scorer, console=Console(file=open("/dev/null", "w")))
        assert editor.calls == calls and len(server.requests) == n_requests
        assert again["summaries"]["invert"]["fullset"]["average"]["o"] == pytest.approx(average)

        # the CLI, judge-only (outputs already in the layout): --retry-failed asks again only for the failed
        # item (the judge still fails it, and it is still counted)
        cli = CliRunner().invoke(app, ["eval", "gedit", "--data", str(gedit_data), "--out", str(out), "--method",
                                       "invert", "--judge", server.url, "--judge-model", "judge", "--retry-failed"])
        assert cli.exit_code == 0, cli.output
        assert len(server.requests) == n_requests + 2
        assert "| Text change | 3.000 | 8.000 | 4.899 | 1 | 2 | 0 | 1 |" in cli.output


def test_cli_reports_bad_data_path(tmp_path):
    result = CliRunner().invoke(app, ["eval", "gedit", "--data", str(tmp_path / "nope"), "--method", "m",
                                      "--judge", "http://127.0.0.1:9/v1"])
    assert isinstance(result.exception, BygError) and "no such file or folder" in str(result.exception)
    result = CliRunner().invoke(app, ["eval", "gedit", "--data", str(tmp_path), "--method", "m"])
    assert isinstance(result.exception, BygError) and "nothing to do" in str(result.exception)


def test_arrow_stream_files_and_images_by_path(tmp_path):
    """The published copy is arrow (IPC stream, as `datasets` writes it); an Image feature may hold a path."""
    import pyarrow as pa

    from helpers.eval_helpers import IMAGE_STRUCT, png_bytes

    (tmp_path / "imgs").mkdir()
    PIL.Image.new("RGB", (64, 64), "green").save(tmp_path / "imgs" / "raw.png")
    table = pa.table({
        "task_type": ["tone_transfer", "tone_transfer"], "key": ["k1", "k2"],
        "instruction": ["make it warm", "make it cold"], "instruction_language": ["en", "cn"],
        "input_image": pa.array([{"bytes": png_bytes(PIL.Image.new("RGB", (32, 32), "red")), "path": None}] * 2,
                                IMAGE_STRUCT),
        "input_image_raw": pa.array([{"bytes": None, "path": "imgs/raw.png"}] * 2, IMAGE_STRUCT),
        "Intersection_exist": [False, True],
    })
    with pa.OSFile(str(tmp_path / "data-00000-of-00001.arrow"), "wb") as sink:
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
    (row,) = list(iter_rows(tmp_path, "en"))
    assert (row.key, row.intersection) == ("k1", False) and count_rows(tmp_path, "en") == 1
    assert row.image("input_image_raw").getpixel((0, 0)) == (0, 128, 0)
    assert row.image("input_image").size == (32, 32)


def test_cli_gedit_with_a_trained_tiny_run(gedit_data, tiny_run, tmp_path):
    """`byg eval gedit --run RUN --judge URL`: the tiny FLUX run edits the fixture, the loopback judge scores it,
    and the report has every category."""
    def policy(prompt, images):
        if "over-editing" in prompt:
            assert len(images) == 2 and images[0].size == images[1].size == (40, 30)
            s = int(re.search(r"strength (\d+)", prompt).group(1))
            return f'{{"score": [{s}, 9], "reasoning": "r"}}'
        return '{"score": [8, 9], "reasoning": "r"}'

    out = tmp_path / "results"
    with JudgeServer(policy) as server:
        result = CliRunner().invoke(app, [
            "eval", "gedit", "--data", str(gedit_data), "--run", str(tiny_run), "--judge", server.url,
            "--judge-model", "judge", "--out", str(out), "--max-per-group", "1", "--steps", "2",
            "--edit-batch-size", "4"])
        assert result.exit_code == 0, result.output
        assert len(server.requests) == 22  # 11 groups x 1 item x (SC + PQ)
    method = tiny_run.resolve().name
    for group in GROUPS:
        folder = out / method / "fullset" / group / "en"
        assert (folder / f"{group}_0.png").exists() and (folder / f"{group}_0_SRCIMG.png").exists()
        assert not (folder / f"{group}_1.png").exists()  # --max-per-group 1
    data = json.loads(next((out / "reports").glob("gedit-en-*.json")).read_text())
    fullset = data["methods"][method]["fullset"]
    assert fullset["totals"] == {"n": 11, "scored": 11, "unjudged": 0, "parse_failures": 0, "random_filled": 0}
    expected = {g: math.sqrt(8 * strength(gi, 0)) for gi, g in enumerate(GROUPS)}
    assert {g: e["o"]["mean"] for g, e in fullset["categories"].items()} == pytest.approx(expected)
    assert fullset["average"]["o"] == pytest.approx(sum(expected.values()) / 11)
    assert "| Human edit |" in result.output
