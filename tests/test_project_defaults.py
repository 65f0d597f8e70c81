"""Project defaults (byg.toml, [tool.byg] in pyproject.toml, BYG_* variables): precedence, `byg config`, the
newest-run fallback of `byg edit`, one-line errors, and the typical-use commands typed as a user types them, in a
project folder whose byg.toml names tiny models, a loopback VLM / judge and a small benchmark folder."""

import json
import os
import shutil
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
from conftest import run_main, write_recipe
from helpers.eval_helpers import JudgeServer, write_gedit_parquet
from helpers.makedata_support import ChatServer, make_images
from safetensors.numpy import save_file
from typer.testing import CliRunner
from helpers.wan_helpers import moving_square_clip, tiny_wan_a14b, write_video_records  # noqa: F401  (fixture)

from byg_cli.cli import app
from byg_cli.data.video import read_video
from byg_cli.newest_run import newest_edit_run
from byg_cli.project_defaults import KEYS, ProjectDefaults, train_overrides

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def no_byg_env(monkeypatch):
    for key in KEYS:
        monkeypatch.delenv(key.env, raising=False)


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


# ------------------------------------------------------------------------------------------- precedence


def test_flag_beats_env_beats_byg_toml_beats_pyproject(tmp_path):
    (tmp_path / "byg.toml").write_text('run = "from-byg-toml"\n[gedit]\ndata = "~/gedit"\n')
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n[tool.byg]\nrun = "from-pyproject"\n'
                                             'judge = "http://127.0.0.1:9/v1"\nvlm = "~/qwen"\n')
    env = {"BYG_RUN": "from-env", "BYG_JUDGE_MODEL": "judge-7b"}
    d = ProjectDefaults(tmp_path, env)
    flag = d.resolve("run", Path("from-flag"))
    assert (flag.value, flag.source, flag.detail) == (Path("from-flag"), "flag", "--run")
    assert (d.resolve("run").value, d.resolve("run").source) == (Path("from-env"), "env")
    assert d.resolve("judge_model").value == "judge-7b"
    d = ProjectDefaults(tmp_path, {})
    assert (d.resolve("run").value, d.resolve("run").source) == (Path("from-byg-toml"), "byg.toml")
    assert d.resolve("gedit.data").value == Path.home() / "gedit"  # a path key: ~ expanded, a Path
    judge = d.resolve("judge")
    assert (judge.value, judge.source) == ("http://127.0.0.1:9/v1", "pyproject")  # a URL stays a string
    assert d.resolve("vlm").value == str(Path.home() / "qwen")  # a model folder is a string too (path or URL)
    (tmp_path / "byg.toml").unlink()
    d = ProjectDefaults(tmp_path, {})
    assert (d.resolve("run").value, d.resolve("run").source) == (Path("from-pyproject"), "pyproject")
    assert d.resolve("styles.photo").source == "unset" and d.resolve("styles.photo").value is None


def test_every_key_has_a_flag_an_env_var_commands_and_help():
    names = [key.name for key in KEYS]
    assert len(names) == len(set(names))
    for key in KEYS:
        assert key.flag.startswith("--") and key.env.startswith("BYG_") and key.commands and key.help
    assert {k.name: k.env for k in KEYS}["gedit.data"] == "BYG_GEDIT_DATA"


def test_byg_config_prints_each_value_and_where_it_came_from(tmp_path, monkeypatch):
    (tmp_path / "byg.toml").write_text('run = "runs/mine"\n[gedit]\ndata = "bench/gedit"\n')
    (tmp_path / "pyproject.toml").write_text('[tool.byg]\njudge_model = "pp-judge"\nrun = "runs/ignored"\n')
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BYG_VLM", "http://127.0.0.1:8000/v1")
    result = invoke("config", "--set", "judge=http://127.0.0.1:8001/v1")
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line for line in result.output.splitlines()}
    assert rows["byg.toml:"].endswith(str(tmp_path / "byg.toml"))
    assert "runs/mine" in rows["run"] and "byg.toml:" in rows["run"]
    assert rows["run"].endswith("[edit, eval gedit, eval styles]")  # the commands that use it
    assert "bench/gedit" in rows["gedit.data"] and "byg.toml" in rows["gedit.data"]
    assert "http://127.0.0.1:8000/v1" in rows["vlm"] and "env: BYG_VLM" in rows["vlm"]
    assert "http://127.0.0.1:8001/v1" in rows["judge"] and "flag: --judge" in rows["judge"]
    assert "pp-judge" in rows["judge_model"] and "pyproject:" in rows["judge_model"]
    assert "not set" in rows["styles.photo"]


# ------------------------------------------------------------------------------ the newest-run fallback


def fake_run(root: Path, name: str, objective: str, steps: dict[int, float], edit_lora: bool = True) -> Path:
    """A run folder with a recipe.toml naming the objective and checkpoints written at the given times."""
    run = root / name
    run.mkdir(parents=True)
    (run / "recipe.toml").write_text(f'[objective]\nname = "{objective}"\n')
    for step, when in steps.items():
        folder = run / "checkpoints" / f"step-{step:07d}"
        folder.mkdir(parents=True)
        key = "edit.transformer_blocks.0.attn.to_q.lora_A.weight" if edit_lora else "transformer.proj_out.weight"
        save_file({key: np.zeros((2, 2), np.float32)}, str(folder / "trainable.safetensors"))
        (folder / "state.json").write_text(json.dumps({"step": step}))
        os.utime(folder / "state.json", (when, when))
    return run


def test_newest_run_is_the_newest_checkpoint_holding_an_edit_lora(tmp_path):
    runs = tmp_path / "runs"
    assert newest_edit_run(runs) is None
    fake_run(runs, "old-byg", "byg", {10: 1000.0, 20: 2000.0})
    newer = fake_run(runs, "supervised", "supervised", {5: 3000.0})
    fake_run(runs, "t2i-base", "t2i", {500: 9000.0})  # newest of all, but a text-to-image run
    fake_run(runs, "no-lora", "byg", {1: 8000.0}, edit_lora=False)
    (runs / "not-a-run").mkdir()
    fake_run(runs / "ablations", "full", "byg", {3: 2500.0})  # two levels down counts
    found = newest_edit_run(runs)
    assert found.run == newer and found.checkpoint.name == "step-0000005"
    os.utime(runs / "ablations" / "full" / "checkpoints" / "step-0000003" / "state.json", (4000.0, 4000.0))
    assert newest_edit_run(runs).run == runs / "ablations" / "full"


def test_edit_without_a_run_uses_the_newest_run_and_says_so_first(tmp_path, monkeypatch, tiny_run, tiny_records):
    shutil.copytree(tiny_run, tmp_path / "runs" / "flux-byg")
    fake_run(tmp_path / "runs", "base-t2i", "t2i", {100: 4e9})  # newer, ignored
    shutil.copy(tiny_records.parent / "images" / "0-src.png", tmp_path / "in.png")
    monkeypatch.chdir(tmp_path)
    result = invoke("edit", "in.png", "make it blue")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == f"using --run {Path('runs/flux-byg')} (default: newest run under ./runs)"
    assert PIL.Image.open(tmp_path / "edited.png").size == (32, 32)


def test_edit_with_the_run_named_in_byg_toml(tmp_path, monkeypatch, tiny_run, tiny_records):
    (tmp_path / "byg.toml").write_text(f"run = {json.dumps(str(tiny_run))}\n")
    shutil.copy(tiny_records.parent / "images" / "1-src.png", tmp_path / "in.png")
    monkeypatch.chdir(tmp_path)
    result = invoke("edit", "in.png", "make it blue")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == f"using --run {tiny_run} (byg.toml: {tmp_path / 'byg.toml'})"
    assert (tmp_path / "edited.png").is_file()


# ------------------------------------------------------------------------------------- one-line errors

ERRORS = {
    "edit, no run anywhere": ({}, ["edit", "in.png", "make it blue"],
                              ["missing --run", "set run in byg.toml", "BYG_RUN", "no trained editing run under"]),
    "eval gedit, no data": ({}, ["eval", "gedit"],
                            ["missing --data", "gedit.data", "[gedit] data =", "BYG_GEDIT_DATA"]),
    "make-data, no vlm": ({}, ["make-data", "imgs"], ["missing --vlm", "set vlm in byg.toml", "BYG_VLM"]),
    "eval video, no source": ({}, ["eval", "video", "--edited", "x"], ["missing --source", "BYG_VIDEO_SOURCE"]),
    "unknown key": ({"byg.toml": b'rn = "runs/x"\n'}, ["edit", "in.png", "x"],
                    ["byg.toml: unknown key 'rn' (did you mean 'run'?)"]),
    "unknown key in a table": ({"byg.toml": b'[gedit]\ndta = "g"\n'}, ["config"],
                               ["unknown key 'gedit.dta' (did you mean 'gedit.data'?)"]),
    "unknown table": ({"byg.toml": b'[gedt]\ndata = "g"\n'}, ["config"],
                      ["unknown table 'gedt' (did you mean 'gedit'?)"]),
    "a key that is a table": ({"byg.toml": b'gedit = "g"\n'}, ["config"],
                              ["'gedit' must be a table: [gedit] with data"]),
    "wrong type": ({"byg.toml": b"run = 3\n"}, ["config"], ["byg.toml: 'run' must be a string", "got int 3"]),
    "not UTF-8": ({"byg.toml": b'run = "r\xff"\n'}, ["config"], ["byg.toml: not UTF-8 text"]),
    "not TOML": ({"byg.toml": b'run = "r\n'}, ["config"], ["byg.toml: not valid TOML"]),
    "pyproject wrong type": ({"pyproject.toml": b"[tool.byg]\njudge = true\n"}, ["config"],
                             ["pyproject.toml [tool.byg]: 'judge' must be a string"]),
}


@pytest.mark.parametrize("case", list(ERRORS))
def test_missing_and_bad_defaults_are_one_line_errors(tmp_path, monkeypatch, capsys, case):
    files, argv, needles = ERRORS[case]
    for name, text in files.items():
        (tmp_path / name).write_bytes(text)
    (tmp_path / "imgs").mkdir()
    monkeypatch.chdir(tmp_path)
    code, out, err = run_main(argv, capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    for needle in needles:
        assert needle in err, err


# ------------------------------------------------------------------ byg train: train.model_path


def test_train_model_path_stands_in_only_for_a_missing_recipe_model(tmp_path, tiny_flux, tiny_records, monkeypatch):
    recipe = write_recipe(tmp_path / "r.toml", tmp_path / "no-such-model", tiny_records, "byg",
                          **{"train.steps": 1, "train.checkpoint_every": 1, "run.dir": str(tmp_path / "run")})
    (tmp_path / "byg.toml").write_text(f"[train]\nmodel_path = {json.dumps(str(tiny_flux))}\n")
    d = ProjectDefaults(tmp_path, {})
    assert train_overrides(recipe, [], d) == [f"model.path={json.dumps(str(tiny_flux))}"]
    assert train_overrides(recipe, ["model.path='elsewhere'"], d) == ["model.path='elsewhere'"]  # --set wins
    own = write_recipe(tmp_path / "own.toml", tiny_flux, tiny_records)
    assert train_overrides(own, [], ProjectDefaults(tmp_path, {"BYG_TRAIN_MODEL_PATH": "/x"})) == []  # it exists
    monkeypatch.chdir(tmp_path)
    result = invoke("train", recipe)
    assert result.exit_code == 0, result.output
    assert "using model.path" in result.output and "does not exist" in result.output
    assert f'path = "{tiny_flux}"' in (tmp_path / "run" / "recipe.toml").read_text()


# --------------------------------------------------- the typical-use commands, typed as a user types them


def test_make_data_openimages_as_typed(tmp_path, monkeypatch):
    make_images(tmp_path / "openimages", 3)
    monkeypatch.chdir(tmp_path)
    with ChatServer() as server:
        (tmp_path / "byg.toml").write_text(f'vlm = "{server.url}"\n')
        result = invoke("make-data", "openimages/")
        assert result.exit_code == 0, result.output
        assert server.posts == 3
    records = [json.loads(line) for line in (tmp_path / "edits.jsonl").read_text().splitlines()]
    assert len(records) == 3 and all(r["instruction"] == "Change the car color to blue." for r in records)
    assert f"using --vlm {server.url} (byg.toml" in result.output


def test_eval_gedit_as_typed(tmp_path, monkeypatch, tiny_run):
    rows = [dict(task_type=group, key=f"{group}_0", instruction=f"{group}, please", instruction_language="en",
                 input_image=PIL.Image.new("RGB", (40, 30), colour), input_image_raw=PIL.Image.new("RGB", (80, 60)),
                 Intersection_exist=True)
            for group, colour in (("color_alter", "red"), ("background_change", "blue"))]
    write_gedit_parquet(tmp_path / "bench" / "gedit" / "data" / "train-00000-of-00001.parquet", rows)
    monkeypatch.chdir(tmp_path)
    with JudgeServer(lambda prompt, images: '{"score": [8, 9], "reasoning": "r"}') as judge:
        (tmp_path / "byg.toml").write_text(f'run = {json.dumps(str(tiny_run))}\njudge = "{judge.url}"\n'
                                           '[gedit]\ndata = "bench/gedit"\n')
        result = invoke("eval", "gedit")
        assert result.exit_code == 0, result.output
        assert len(judge.requests) == 4  # 2 items x (SC + PQ)
    method = tiny_run.resolve().name
    assert (tmp_path / "eval" / "gedit" / method / "fullset" / "color_alter" / "en" / "color_alter_0.png").is_file()
    report = json.loads(next((tmp_path / "eval" / "gedit" / "reports").glob("gedit-en-*.json")).read_text())
    assert report["methods"][method]["fullset"]["totals"]["scored"] == 2
    assert report["methods"][method]["fullset"]["categories"]["color_alter"]["o"]["mean"] == pytest.approx(8.0)


def test_eval_with_method_but_no_run_flag_judges_only(tmp_path, monkeypatch):
    """--method without --run means judging outputs already there: a run in byg.toml is not taken then."""
    (tmp_path / "byg.toml").write_text('run = "runs/not-a-run"\n[gedit]\ndata = "g"\n')
    (tmp_path / "g").mkdir()
    monkeypatch.chdir(tmp_path)
    result = invoke("eval", "gedit", "--method", "kontext")
    assert "nothing to do" in str(result.exception) and "--run" not in result.output
    result = invoke("eval", "gedit")
    assert f"using --run {Path('runs/not-a-run')} (byg.toml" in result.output


@pytest.fixture(scope="module")
def wan_project(tmp_path_factory, tiny_wan_a14b):
    """A project folder whose byg.toml names a tiny Wan folder, trained with the shipped recipes/wan_video.toml:
    its model.path does not exist here, so train.model_path stands in; its data.path (data/videos/metadata.jsonl)
    is where the records are; --set shrinks the sizes and steps to a CPU test."""
    root = tmp_path_factory.mktemp("wan-project")
    write_video_records(root / "data" / "videos", count=2, frames=5, fps=8.0)
    (root / "byg.toml").write_text(f"[train]\nmodel_path = {json.dumps(str(tiny_wan_a14b))}\n")
    small = ["model.dtype='float32'", "model.lora_rank=4", "model.lora_alpha=4", "model.max_sequence_length=16",
             "model.gradient_checkpointing=false", "data.height=32", "data.width=32", "data.frames=5",
             "objective.rollout_steps=2", "objective.identity_warmup_steps=1", "train.steps=2", "train.batch_size=2",
             "train.mixed_precision='no'", "train.checkpoint_every=2", "inference.steps=2", "inference.height=32",
             "inference.width=32", "inference.frames=5"]
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        result = invoke("train", ROOT / "recipes" / "wan_video.toml", *[x for s in small for x in ("--set", s)])
    assert result.exit_code == 0, result.output
    assert "using model.path" in result.output
    return root


def test_train_the_wan_recipe_with_the_model_from_byg_toml_then_edit_a_video_as_typed(wan_project, monkeypatch):
    run = wan_project / "runs" / "wan_video"
    assert (run / "checkpoints" / "step-0000002").is_dir()
    assert "tiny-wan-a14b" in (run / "recipe.toml").read_text()  # the model named in byg.toml
    moving_square_clip(wan_project / "in.mp4", 7, 8.0)
    monkeypatch.chdir(wan_project)
    result = invoke("edit", "in.mp4", "make it photorealistic")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == f"using --run {Path('runs/wan_video')} (default: newest run under ./runs)"
    edited = read_video(wan_project / "edited.mp4")
    assert edited.count == 7 and edited.frames.shape[1:] == (32, 32, 3)
