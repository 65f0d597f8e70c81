"""`byg make-data` as a command group: the subcommands images, videos and shapes, each with its own options and
--help; the plain form `byg make-data FOLDER ...` meaning `images`; an option given to the wrong subcommand
refused in one line naming the subcommand it belongs to."""

import json

import pytest
from conftest import run_main
from helpers.makedata_support import ChatServer, make_images
from typer.testing import CliRunner

from byg_cli.cli import app
from byg_cli.data.dataset import EditDataset
from byg_cli.project_defaults import KEYS

IMAGES_ONLY = ["--vlm", "--metadata", "--limit", "--k", "--p-style", "--max-new-tokens"]
VIDEOS_ONLY = ["--llm", "--t2v", "--clips", "--frames", "--height", "--width", "--fps", "--steps", "--guidance",
               "--guidance-2", "--negative-prompt", "--t2v-batch", "--keep-list", "--clip", "--clip-threshold"]
SHAPES_ONLY = ["--split", "--edit-type", "--size"]
BACKEND = ["--vlm-model", "--batch-size", "--concurrency", "--timeout", "--retries"]  # images and videos


@pytest.fixture(autouse=True)
def no_byg_env(monkeypatch, tmp_path):
    for key in KEYS:
        monkeypatch.delenv(key.env, raising=False)
    monkeypatch.chdir(tmp_path)  # no byg.toml of the checkout's


def help_of(*args) -> str:
    result = CliRunner().invoke(app, [*args, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return result.output


def options_in(text: str, names) -> set:
    return {name for name in names if f" {name} " in text}


def test_group_help_lists_the_subcommands_and_the_plain_form():
    text = help_of("make-data")
    for name in ("images", "videos", "shapes"):
        assert f" {name} " in text
    assert "byg make-data FOLDER" in text and "means `byg make-data images FOLDER" in text
    assert not options_in(text, IMAGES_ONLY + VIDEOS_ONLY + SHAPES_ONLY + BACKEND)
    code = CliRunner().invoke(app, ["make-data"]).exit_code  # alone: the help, as `byg eval` alone
    assert code != 0


@pytest.mark.parametrize("command, own, foreign", [
    ("images", IMAGES_ONLY + BACKEND + ["--out", "--seed"], VIDEOS_ONLY + SHAPES_ONLY + ["--count"]),
    ("videos", VIDEOS_ONLY + BACKEND + ["--out", "--seed", "--count"], SHAPES_ONLY + IMAGES_ONLY),
    ("shapes", SHAPES_ONLY + ["--out", "--seed", "--count"], IMAGES_ONLY + VIDEOS_ONLY + BACKEND),
])
def test_each_subcommand_shows_only_its_own_options(command, own, foreign):
    text = help_of("make-data", command)
    assert options_in(text, own) == set(own), set(own) - options_in(text, own)
    assert not options_in(text, foreign)


def test_plain_help_is_the_images_help():
    assert help_of("make-data", "openimages/") == help_of("make-data", "images")


@pytest.mark.parametrize("argv, needles", [
    (["make-data", "imgs", "--frames", "81"], ["No such option: --frames", "`byg make-data videos`",
                                               "make-data images --help"]),
    (["make-data", "images", "imgs", "--split", "heldout"], ["No such option: --split", "`byg make-data shapes`"]),
    (["make-data", "imgs", "--count", "3"], ["--count", "`byg make-data videos` and `byg make-data shapes`",
                                             "use --limit N"]),
    (["make-data", "videos", "c.csv", "--k", "3"], ["No such option: --k", "`byg make-data images`",
                                                    "make-data videos --help"]),
    (["make-data", "shapes", "out", "--vlm", "http://127.0.0.1:9"], ["No such option: --vlm",
                                                                     "`byg make-data images`"]),
    (["make-data", "shapes", "out", "--timeout", "3"], ["No such option: --timeout",
                                                        "`byg make-data images` and `byg make-data videos`"]),
    (["make-data", "vidoes", "c.csv"], ["unknown SOURCE 'vidoes'", "did you mean `byg make-data videos`?"]),
    (["make-data", "--seed", "3", "shapes"], ["unknown SOURCE 'shapes'", "put the subcommand first"]),
    (["make-data", "imgs", "extra", "--vlm", "http://127.0.0.1:9"],
     ["extra: unexpected second argument for an images folder"]),
    (["make-data", "images", "imgs", "extra", "more"], ["unexpected extra argument", "(more)"]),
])
def test_an_option_of_another_subcommand_is_a_one_line_error(tmp_path, capsys, argv, needles):
    (tmp_path / "imgs").mkdir()
    code, out, err = run_main(argv, capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    for needle in needles:
        assert needle in err, err
    assert "Traceback" not in err and sorted(p.name for p in tmp_path.iterdir()) == ["imgs"]  # nothing written


def test_plain_form_and_images_subcommand_make_the_same_records(tmp_path):
    make_images(tmp_path / "openimages", 4)
    with ChatServer() as server:
        for form, out in ((["openimages/"], "plain.jsonl"), (["images", "openimages/"], "sub.jsonl"),
                          (["--seed", "1", "openimages/"], "first.jsonl")):  # options first: still images
            seed = [] if "--seed" in form else ["--seed", "1"]
            args = ["make-data", *form, "--vlm", server.url, "-o", out, "--k", "2", *seed]
            result = CliRunner().invoke(app, args)
            assert result.exit_code == 0, result.output
        assert server.posts == 12
    rows = {name: (tmp_path / name).read_text() for name in ("plain.jsonl", "sub.jsonl", "first.jsonl")}
    assert len(rows["plain.jsonl"].splitlines()) == 4
    assert rows["plain.jsonl"] == rows["sub.jsonl"] == rows["first.jsonl"]
    assert all(len(json.loads(x)["allowed_types"]) == 2 for x in rows["sub.jsonl"].splitlines())


def test_images_alone_still_means_a_folder_named_images(tmp_path, capsys):
    """`byg make-data images` named the folder ./images before there were subcommands, and still does."""
    code, _, err = run_main(["make-data", "images"], capsys)
    assert code == 2 and "make-data images: give the images folder" in err, err
    make_images(tmp_path / "images", 2)
    with ChatServer() as server:
        result = CliRunner().invoke(app, ["make-data", "images", "--vlm", server.url])
        assert result.exit_code == 0, result.output
        assert server.posts == 2
    assert len((tmp_path / "edits.jsonl").read_text().splitlines()) == 2


def test_shapes_subcommand_folder_argument_or_out(tmp_path):
    result = CliRunner().invoke(app, ["make-data", "shapes", "--count", "2"])  # default folder
    assert result.exit_code == 0, result.output
    assert len(EditDataset(tmp_path / "data" / "shapes" / "metadata.jsonl")) == 2
    result = CliRunner().invoke(app, ["make-data", "shapes", "a", "-o", "a", "--count", "1", "--size", "16"])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(app, ["make-data", "shapes", "a", "-o", "b"])
    assert result.exit_code != 0 and "output folder given twice" in str(result.exception)
