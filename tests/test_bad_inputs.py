"""Bad input, as a hostile new user types it: every case ends with exit code 2 and one line naming the file, key
or value, no traceback, and nothing written that was not there before."""

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import run_main, write_recipe

from byg_cli.cli import app

ROOT = Path(__file__).resolve().parents[1]


def tree(root: Path) -> dict:
    return {str(p.relative_to(root)): (p.stat().st_size if p.is_file() else None)
            for p in sorted(root.rglob("*"))}


@pytest.fixture(scope="module")
def world(tmp_path_factory, tiny_flux, tiny_records):
    """Files the cases point at: a trained tiny run, damaged model folders, odd images and text files."""
    root = tmp_path_factory.mktemp("bad-inputs")
    recipe = write_recipe(root / "recipe.toml", tiny_flux, tiny_records, "byg",
                          **{"train.steps": 2, "run.dir": str(root / "trained")})
    assert CliRunner().invoke(app, ["train", str(recipe)]).exit_code == 0
    (root / "afile").write_text("not a folder")
    (root / "bad-utf8.toml").write_bytes(b"[run]\ndir = \"r\xff\xfe\"\n")
    for name, damage in (("empty-weights", "empty"), ("truncated-weights", "truncate"), ("bad-config", "config")):
        folder = root / name
        shutil.copytree(tiny_flux, folder)
        weights = folder / "transformer" / "diffusion_pytorch_model.safetensors"
        if damage == "empty":
            weights.write_bytes(b"")
        elif damage == "truncate":
            weights.write_bytes(weights.read_bytes()[:1000])
        else:
            (folder / "transformer" / "config.json").write_text("{not json")
    from PIL import Image

    Image.new("RGB", (32, 32), "red").save(root / "red.png")
    (root / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    # a decompression bomb: a tiny file that claims 40,000 x 40,000 pixels
    Image.new("1", (40000, 40000)).save(root / "bomb.png", optimize=True)
    (root / "bad-utf8.jsonl").write_bytes(b'{"a": "\xff"}\n')
    (root / "bad-utf8.csv").write_bytes(b"id,caption\nv1,a c\xffat walks\n")
    (root / "model").symlink_to(tiny_flux)
    add_make_data_files(root)
    add_eval_files(root)
    add_study_files(root)
    # outputs on a full disk: the file a command writes first is the kernel's /dev/full (ENOSPC on write)
    (root / "full-eval").mkdir()
    for name in ("shapes_t2i.json", "shapes_edit.json"):
        (root / "full-eval" / name).symlink_to("/dev/full")
    return root


def add_make_data_files(root: Path) -> None:
    """An images folder, CSVs with a row that has a value too many, outputs that are not byg's."""
    from PIL import Image

    from byg_cli.data.shapes_edits import EDIT_TYPES

    (root / "images").mkdir()
    Image.new("RGB", (32, 32), "red").save(root / "images" / "a.png")
    (root / "extra-column.csv").write_text("ImageID,caption\na,a red square\nb,a blue square,surplus\n")
    (root / "captions.csv").write_text("id,caption\nv1,a cat walks\n")
    (root / "captions-extra.csv").write_text("id,caption\nv1,a cat walks,surplus\n")
    (root / "videos.prompts.jsonl").write_bytes(b'{"id": "v1", "prompt": "a c\xffat"}\n')  # -o videos.jsonl
    (root / "binary.jsonl").write_bytes(b"\x89PNG\r\n\x1a\n\x00no newline at the end")
    (root / "notes.jsonl").write_text("my notes\nno newline at the end")
    full = root / "full-shapes"  # a shapes folder to resume whose first image lands on a full disk
    (full / "images").mkdir(parents=True)
    (full / "shapes_dataset.json").write_text(json.dumps(
        {"seed": 0, "split": "train", "edit_types": list(EDIT_TYPES), "image_size": 32}))
    (full / "images" / "000000.png").symlink_to("/dev/full")


def add_eval_files(root: Path) -> None:
    """A one-item GEdit-Bench copy with its outputs, a styles photo, frame-folder videos, damaged stores."""
    from PIL import Image

    from helpers.eval_helpers import write_gedit_parquet

    red = Image.new("RGB", (40, 30), "red")
    write_gedit_parquet(root / "gedit" / "data" / "d.parquet", [dict(
        task_type="color_alter", key="k0", instruction="make it blue", instruction_language="en",
        input_image=red, input_image_raw=red, Intersection_exist=True)])
    items = root / "gedit" / "out" / "m" / "fullset" / "color_alter" / "en"
    items.mkdir(parents=True)
    red.save(items / "k0_SRCIMG.png")
    red.save(items / "k0.png")
    for store in ("gedit/out/m/viescore/j/judgements.jsonl", "styles/out/m/viescore/j/styles.jsonl"):
        (root / store).parent.mkdir(parents=True)
        (root / store).write_bytes(b'{"key": "k0", "raw": "\xff"}\n')
    (root / "styles" / "photo").mkdir(parents=True)
    red.save(root / "styles" / "photo" / "p0.png")
    prompts = root / "vie-prompts"  # VIEScore's prompt files, one of them not UTF-8
    (prompts / "prompts_0shot").mkdir(parents=True)
    for name in ("context_no_delimit.txt", "prompts_0shot/two_image_edit_rule.txt", "prompts_0shot/rule_PQ.txt"):
        (prompts / name).write_text("rules")
    (prompts / "prompts_0shot" / "tie_rule_SC.txt").write_bytes(b"<instruction> \xff")
    for method in ("src", "ours"):
        (root / "video" / method / "a").mkdir(parents=True)
        for i in range(2):
            red.save(root / "video" / method / "a" / f"{i:03d}.png")


def add_study_files(root: Path) -> None:
    from PIL import Image

    study = root / "study"
    for folder in ("sources", "a", "b"):
        (study / folder).mkdir(parents=True)
        Image.new("RGB", (8, 8), "red").save(study / folder / "x.png")
    (study / "instructions.jsonl").write_text('{"item": "x", "instruction": "make it blue", "condition": "photo"}\n')
    (study / "extra-column.csv").write_text("item,instruction,condition\nx,make it blue,photo,surplus\n")
    (study / "bad-utf8.csv").write_bytes(b"item,instruction,condition\nx,make it bl\xffue,photo\n")


def train_case(world, *sets, extra=()):
    args = ["train", world / "recipe.toml", "--set", f'run.dir="{world / "new-run"}"']
    for s in sets:
        args += ["--set", s]
    return [*args, *extra]


NO_SERVER = "http://127.0.0.1:9/v1"  # nothing listens there: every case fails before a request is sent


def images_case(w, *extra):
    return ["make-data", w / "images", "--vlm", NO_SERVER, "--vlm-model", "m", *extra]


def videos_case(w, captions, *extra):
    return ["make-data", "videos", captions, "--llm", NO_SERVER, "--vlm-model", "m", *extra]


def judge_case(w, command, *extra):
    return ["eval", command, "--out", w / command / "out", "--method", "m", "--judge", NO_SERVER,
            "--judge-model", "judge", "--judge-name", "j", *extra]


def study_case(w, instructions, out):
    study = w / "study"
    return ["user-study", "build", "--method", f"a={study / 'a'}", "--method", f"b={study / 'b'}", "--sources",
            study / "sources", "--instructions", instructions, "-o", out]


def shapes_eval_case(w, out):
    return ["eval", "shapes", "--model", w / "model", "-o", out, "--count", "1", "--steps", "1"]


def shapes_edit_case(w, out):
    return ["eval", "shapes-edit", "--run", w / "trained", "-o", out, "--per-type", "1", "--steps", "1",
            "--no-identity"]


CASES = {
    # run folders
    "run.dir is a file": lambda w: train_case(w, f'run.dir="{w / "afile"}"'),
    "run.dir under a file": lambda w: train_case(w, f'run.dir="{w / "afile" / "run"}"'),
    "run.dir empty": lambda w: train_case(w, 'run.dir=""'),
    # recipe text and values
    "recipe not UTF-8": lambda w: ["train", w / "bad-utf8.toml"],
    "data.resolution 31": lambda w: train_case(w, "data.resolution=31"),
    "data.edit_types unknown": lambda w: train_case(w, 'data.edit_types=["colour"]'),
    "data.edit_types empty": lambda w: train_case(w, "data.edit_types=[]"),
    "train.betas out of range": lambda w: train_case(w, "train.betas=[2.0, 0.5]"),
    "train.steps a bool": lambda w: train_case(w, "train.steps=true"),
    "model.lora_targets unknown": lambda w: train_case(w, 'model.lora_targets=["nonexistent"]'),
    "model.lora_targets empty": lambda w: train_case(w, "model.lora_targets=[]"),
    "model.family wan on flux": lambda w: train_case(w, 'model.family="wan"'),
    "model.source_conditioning unknown": lambda w: train_case(w, 'model.source_conditioning="sideways"'),
    "objective prior band empty": lambda w: train_case(w, "objective.prior_t_min=0.9", "objective.prior_t_max=0.2"),
    "--max-steps negative": lambda w: train_case(w, extra=("--max-steps", "-3")),
    # model folders
    "weights empty": lambda w: train_case(w, f'model.path="{w / "empty-weights"}"'),
    "weights truncated": lambda w: train_case(w, f'model.path="{w / "truncated-weights"}"'),
    "config not JSON": lambda w: train_case(w, f'model.path="{w / "bad-config"}"'),
    "--weights unknown (export)": lambda w: ["train", w / "trained" / "recipe.toml", "--export-only",
                                             "--weights", "foo"],
    # edit
    "edit: blank instruction": lambda w: ["edit", w / "red.png", "   ", "--run", w / "trained", "-o", w / "o.png"],
    "edit: empty instruction": lambda w: ["edit", w / "red.png", "", "--run", w / "trained", "-o", w / "o.png"],
    "edit: decompression bomb": lambda w: ["edit", w / "bomb.png", "make it blue", "--run", w / "trained",
                                           "-o", w / "o.png"],
    "edit: corrupt image": lambda w: ["edit", w / "corrupt.png", "make it blue", "--run", w / "trained",
                                      "-o", w / "o.png"],
    "edit: -o under a file": lambda w: ["edit", w / "red.png", "make it blue", "--run", w / "trained",
                                        "-o", w / "afile" / "o.png"],
    "edit: --weights unknown": lambda w: ["edit", w / "red.png", "make it blue", "--run", w / "trained",
                                          "--weights", "foo", "-o", w / "o.png"],
    # evaluation
    "eval shapes-edit: unknown edit type": lambda w: ["eval", "shapes-edit", "--run", w / "trained",
                                                     "--edit-type", "bogus", "-o", w / "ev"],
    # data making
    "make-data shapes: size too large": lambda w: ["make-data", "shapes", w / "shapes-out", "--size", "100000"],
    "eval shapes: -o a file": lambda w: shapes_eval_case(w, w / "afile"),
    "eval shapes: -o under a file": lambda w: shapes_eval_case(w, w / "afile" / "ev"),
    "eval shapes: -o cannot be made": lambda w: shapes_eval_case(w, "/proc/byg-eval"),
    "eval shapes: disk full": lambda w: shapes_eval_case(w, w / "full-eval"),
    "eval shapes-edit: -o a file": lambda w: shapes_edit_case(w, w / "afile"),
    "eval shapes-edit: -o under a file": lambda w: shapes_edit_case(w, w / "afile" / "ev"),
    "eval shapes-edit: disk full": lambda w: shapes_edit_case(w, w / "full-eval"),
    "eval shapes-edit: unknown checkpoint": lambda w: [*shapes_edit_case(w, w / "ev"), "--checkpoint", "step-99"],
    "eval gedit: judgements not UTF-8": lambda w: judge_case(w, "gedit", "--data", w / "gedit" / "data"),
    "eval gedit: prompt file not UTF-8": lambda w: judge_case(w, "gedit", "--data", w / "gedit" / "data",
                                                              "--prompts", w / "vie-prompts"),
    "eval styles: judgements not UTF-8": lambda w: judge_case(w, "styles", "--photo", w / "styles" / "photo",
                                                              "--style", "lego"),
    "eval styles: manifest not UTF-8": lambda w: judge_case(w, "styles", "--manifest", w / "bad-utf8.jsonl"),
    "eval video: captions not UTF-8": lambda w: ["eval", "video", "--source", w / "video" / "src", "--edited",
                                                 f"ours={w / 'video' / 'ours'}", "--captions",
                                                 w / "bad-utf8.jsonl", "--out", w / "video-out", "--device",
                                                 "cpu"],
    # data making
    "make-data shapes: -o a file": lambda w: ["make-data", "shapes", "-o", w / "afile", "--count", "1"],
    "make-data shapes: -o under a file": lambda w: ["make-data", "shapes", "-o", w / "afile" / "s", "--count", "1"],
    "make-data shapes: -o cannot be made": lambda w: ["make-data", "shapes", "-o", "/proc/byg-shapes"],
    "make-data shapes: disk full": lambda w: ["make-data", "shapes", "-o", w / "full-shapes", "--count", "1"],
    "make-data images: --timeout -1": lambda w: images_case(w, "--timeout", "-1", "-o", w / "new.jsonl"),
    "make-data images: --count -1": lambda w: images_case(w, "--count", "-1", "-o", w / "new.jsonl"),
    "make-data images: --seed -1": lambda w: images_case(w, "--seed", "-1", "-o", w / "new.jsonl"),
    "make-data images: -o under a file": lambda w: images_case(w, "-o", w / "afile" / "edits.jsonl"),
    "make-data images: output not UTF-8": lambda w: images_case(w, "-o", w / "bad-utf8.jsonl"),
    "make-data images: output is not byg's": lambda w: images_case(w, "-o", w / "binary.jsonl"),
    "make-data images: output is text, not byg's": lambda w: images_case(w, "-o", w / "notes.jsonl"),
    "make-data images: metadata extra column": lambda w: images_case(w, "--metadata", w / "extra-column.csv",
                                                                     "-o", w / "new.jsonl"),
    "make-data images: metadata not UTF-8": lambda w: images_case(w, "--metadata", w / "bad-utf8.csv",
                                                                  "-o", w / "new.jsonl"),
    "make-data videos: captions extra column": lambda w: videos_case(w, w / "captions-extra.csv",
                                                                     "-o", w / "videos.jsonl"),
    "make-data videos: captions CSV not UTF-8": lambda w: videos_case(w, w / "bad-utf8.csv", "-o", w / "v.jsonl"),
    "make-data videos: captions JSONL not UTF-8": lambda w: videos_case(w, w / "bad-utf8.jsonl",
                                                                        "-o", w / "v.jsonl"),
    "make-data videos: prompts output not UTF-8": lambda w: videos_case(w, w / "captions.csv",
                                                                        "-o", w / "videos.jsonl"),
    # the study
    "study build: instructions JSONL not UTF-8": lambda w: study_case(w, w / "bad-utf8.jsonl", w / "s.db"),
    "study build: instructions CSV not UTF-8": lambda w: study_case(w, w / "study" / "bad-utf8.csv", w / "s.db"),
    "study build: instructions extra column": lambda w: study_case(w, w / "study" / "extra-column.csv",
                                                                   w / "s.db"),
    "study build: -o a folder": lambda w: study_case(w, w / "study" / "instructions.jsonl", w / "study"),
    "study build: -o an existing file": lambda w: study_case(w, w / "study" / "instructions.jsonl", w / "afile"),
    "study build: -o under a file": lambda w: study_case(w, w / "study" / "instructions.jsonl",
                                                         w / "afile" / "s.db"),
    "study build: -o cannot be written": lambda w: study_case(w, w / "study" / "instructions.jsonl",
                                                              "/proc/byg-study.db"),
    # the study server
    "serve: port out of range": lambda w: ["user-study", "serve", w / "study.db", "--port", "99999"],
}

NEEDLES = {
    "run.dir is a file": "is a file", "run.dir under a file": "is a file", "run.dir empty": "run.dir",
    "recipe not UTF-8": "UTF-8", "data.resolution 31": "data.resolution", "data.edit_types unknown": "colour",
    "data.edit_types empty": "data.edit_types", "train.betas out of range": "train.betas",
    "train.steps a bool": "train.steps", "model.lora_targets unknown": "nonexistent",
    "model.lora_targets empty": "model.lora_targets", "model.family wan on flux": "model.family",
    "model.source_conditioning unknown": "model.source_conditioning",
    "objective prior band empty": "objective.prior_t_max",
    "--max-steps negative": "--max-steps", "weights empty": "diffusion_pytorch_model.safetensors",
    "weights truncated": "diffusion_pytorch_model.safetensors", "config not JSON": "config.json",
    "--weights unknown (export)": "--weights", "edit: blank instruction": "instruction",
    "edit: empty instruction": "instruction", "edit: decompression bomb": "bomb.png",
    "edit: corrupt image": "corrupt.png", "edit: -o under a file": "afile", "edit: --weights unknown": "--weights",
    "eval shapes-edit: unknown edit type": "bogus", "make-data shapes: size too large": "--size",
    "serve: port out of range": "--port",
    "eval shapes: -o a file": "afile: is a file", "eval shapes: -o under a file": "afile is a file",
    "eval shapes: -o cannot be made": "/proc/byg-eval: cannot create it",
    "eval shapes: disk full": "shapes_t2i.json: cannot write it (No space left on device)",
    "eval shapes-edit: -o a file": "afile: is a file", "eval shapes-edit: -o under a file": "afile is a file",
    "eval shapes-edit: disk full": "shapes_edit.json: cannot write it (No space left on device)",
    "eval shapes-edit: unknown checkpoint": "--checkpoint step-99: no such checkpoint",
    "eval gedit: judgements not UTF-8": "judgements.jsonl:1: not UTF-8",
    "eval gedit: prompt file not UTF-8": "tie_rule_SC.txt:1: not UTF-8",
    "eval styles: judgements not UTF-8": "styles.jsonl:1: not UTF-8",
    "eval styles: manifest not UTF-8": "bad-utf8.jsonl:1: not UTF-8",
    "eval video: captions not UTF-8": "bad-utf8.jsonl:1: not UTF-8",
    "make-data shapes: -o a file": "afile: is a file", "make-data shapes: -o under a file": "afile is a file",
    "make-data shapes: -o cannot be made": "/proc/byg-shapes: cannot create it",
    "make-data shapes: disk full": "000000.png: cannot write it (No space left on device)",
    "make-data images: --timeout -1": "--timeout", "make-data images: --count -1": "No such option: --count",
    "make-data images: --seed -1": "--seed", "make-data images: -o under a file": "afile is a file",
    "make-data images: output not UTF-8": "bad-utf8.jsonl:1: not UTF-8",
    "make-data images: output is not byg's": "binary.jsonl:1: not UTF-8",
    "make-data images: output is text, not byg's": "notes.jsonl: its last line is unfinished",
    "make-data images: metadata extra column": "extra-column.csv:3: this row has 3 values",
    "make-data images: metadata not UTF-8": "bad-utf8.csv:2: not UTF-8",
    "make-data videos: captions extra column": "captions-extra.csv:2: this row has 3 values",
    "make-data videos: captions CSV not UTF-8": "bad-utf8.csv:2: not UTF-8",
    "make-data videos: captions JSONL not UTF-8": "bad-utf8.jsonl:1: not UTF-8",
    "make-data videos: prompts output not UTF-8": "videos.prompts.jsonl:1: not UTF-8",
    "study build: instructions JSONL not UTF-8": "bad-utf8.jsonl:1: not UTF-8",
    "study build: instructions CSV not UTF-8": "bad-utf8.csv:2: not UTF-8",
    "study build: instructions extra column": "extra-column.csv:2: this row has 4 values",
    "study build: -o a folder": "is a folder", "study build: -o an existing file": "already exists",
    "study build: -o under a file": "afile is a file",
    "study build: -o cannot be written": "/proc/byg-study.db: cannot write the study database",
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line_and_writes_nothing(world, capsys, case):
    before = tree(world)
    try:
        code, out, err = run_main(CASES[case](world), capsys)
    finally:
        shutil.rmtree(world / "new-run", ignore_errors=True)  # a case that wrongly trained must not mask the next
    assert "Traceback" not in out + err, err
    assert code == 2, (code, out, err)
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert NEEDLES[case] in lines[0], lines[0]
    assert tree(world) == before, "something was written"


def verdict_policy(prompt, images):
    return '{"score": [7, 8], "reasoning": "ok"}'


def test_a_corrupt_output_among_judged_ones_is_counted_and_judged_once_replaced(world, capsys, tmp_path):
    """A long evaluation does not stop for one corrupt edited PNG: the others are judged, the bad file is named
    and counted as unjudged, and the next run judges it once the file is replaced."""
    from PIL import Image

    from helpers.eval_helpers import JudgeServer, write_gedit_parquet

    red = Image.new("RGB", (40, 30), "red")
    data = tmp_path / "data"
    write_gedit_parquet(data / "d.parquet", [
        dict(task_type="color_alter", key=key, instruction="make it blue", instruction_language="en",
             input_image=red, input_image_raw=red, Intersection_exist=True) for key in ("k0", "k1")])
    out = tmp_path / "out"
    items = out / "m" / "fullset" / "color_alter" / "en"
    items.mkdir(parents=True)
    for key in ("k0", "k1"):
        red.save(items / f"{key}_SRCIMG.png")
    red.save(items / "k0.png")
    shutil.copy(world / "corrupt.png", items / "k1.png")  # a baseline's output, damaged on its way here
    store = out / "m" / "viescore" / "j" / "judgements.jsonl"
    with JudgeServer(verdict_policy) as server:
        argv = ["eval", "gedit", "--data", data, "--out", out, "--method", "m", "--judge", server.url,
                "--judge-model", "judge", "--judge-name", "j"]
        code, _, err = run_main(argv, capsys)
        assert code == 0 and "Traceback" not in err, err
        assert f"not judged: {items / 'k1.png'}: cannot read the image" in " ".join(err.split())
        assert [json.loads(line)["key"] for line in store.read_text().splitlines()] == ["k0"]
        assert len(server.requests) == 2  # SC and PQ for k0 only
        report = json.loads((out / "reports" / "gedit-en-j.json").read_text())
        assert report["methods"]["m"]["fullset"]["totals"]["unjudged"] == 1

        red.save(items / "k1.png")  # the file replaced: the next run judges it, and only it
        code, _, err = run_main(argv, capsys)
        assert code == 0 and "not judged" not in err, err
    assert [json.loads(line)["key"] for line in store.read_text().splitlines()] == ["k0", "k1"]
    assert len(server.requests) == 4


def test_a_corrupt_styles_output_is_reported_not_fatal(world, capsys, tmp_path):
    from helpers.eval_helpers import JudgeServer

    out = tmp_path / "out"
    (out / "m" / "to_style" / "lego").mkdir(parents=True)
    shutil.copy(world / "corrupt.png", out / "m" / "to_style" / "lego" / "p0.png")
    with JudgeServer(verdict_policy) as server:
        code, _, err = run_main(["eval", "styles", "--photo", world / "styles" / "photo", "--style", "lego",
                                 "--out", out, "--method", "m", "--judge", server.url, "--judge-model", "judge"],
                                capsys)
    assert code == 0 and "Traceback" not in err, err
    assert "p0.png: cannot read the image" in " ".join(err.split()) and not server.requests


def test_a_torn_video_cache_file_is_computed_again(world, capsys, tmp_path):
    """`eval video` resumes from its per-video cache; a cache file torn by a kill is computed again."""
    (tmp_path / "captions.jsonl").write_text('{"id": "a", "source_caption": "red", "target_caption": "blue"}\n')
    argv = ["eval", "video", "--source", world / "video" / "src", "--edited", f"ours={world / 'video' / 'ours'}",
            "--captions", tmp_path / "captions.jsonl", "--out", tmp_path / "out", "--device", "cpu"]
    assert run_main(argv, capsys)[0] == 0
    cache = tmp_path / "out" / "per-video" / "ours" / "a.json"
    whole = json.loads(cache.read_text())
    cache.write_bytes(cache.read_bytes()[:20] + b"\xff")
    code, _, err = run_main(argv, capsys)
    assert code == 0 and "Traceback" not in err, err
    assert json.loads(cache.read_text()) == whole
