"""`byg eval shapes`, `byg eval shapes-edit`, `byg eval ablations` and the recipe's [eval] step, on tiny models."""

import json

from typer.testing import CliRunner

from conftest import write_recipe

from byg_cli.cli import app


def test_eval_shapes_reports_accuracy_for_a_base(tmp_path, tiny_flux):
    out = tmp_path / "t2i"
    result = CliRunner().invoke(app, ["eval", "shapes", "--model", str(tiny_flux), "--count", "6", "--steps", "2",
                                      "-o", str(out)])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "shapes_t2i.json").read_text())
    assert summary["n"] == 6
    assert (out / "shapes_t2i.md").is_file() and (out / "shapes_t2i_grid.png").is_file()


def test_eval_shapes_edit_scores_every_edit_type(tmp_path, tiny_run):
    out = tmp_path / "edit"
    result = CliRunner().invoke(app, ["eval", "shapes-edit", "--run", str(tiny_run), "--per-type", "2",
                                      "--steps", "2", "-o", str(out)])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "shapes_edit.json").read_text())["summary"]
    assert set(summary["per_type"]) == {"color", "background", "shape", "style", "add", "remove", "identity"}
    assert all(row["n"] == 2 for row in summary["per_type"].values())
    assert "| edit type |" in result.output and "| identity | 2 |" in result.output
    assert set(summary["average"]["types"]) == {"color", "background", "shape", "style"}  # identity: outside it

    result = CliRunner().invoke(app, ["eval", "shapes-edit", "--run", str(tiny_run), "--per-type", "1",
                                      "--steps", "1", "-o", str(out), "--edit-type", "color", "--no-identity"])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "shapes_edit.json").read_text())["summary"]
    assert set(summary["per_type"]) == {"color"}


def test_eval_shapes_edit_scores_a_named_checkpoint(tmp_path, tiny_flux):
    from byg_cli.checkpoint import list_checkpoints

    recipe = shapes_recipe(tmp_path, tiny_flux, **{"train.steps": 4, "train.checkpoint_every": 2})
    assert CliRunner().invoke(app, ["train", str(recipe)]).exit_code == 0
    run = tmp_path / "run"
    first, latest = (c.name for c in list_checkpoints(run))  # an earlier one than `latest` would take
    out = tmp_path / "edit"
    result = CliRunner().invoke(app, ["eval", "shapes-edit", "--run", str(run), "--per-type", "1", "--steps", "1",
                                      "-o", str(out), "--edit-type", "color", "--no-identity", "--checkpoint", first])
    assert result.exit_code == 0, result.output
    assert json.loads((out / "shapes_edit.json").read_text())["summary"]["per_type"]["color"]["n"] == 1
    # a name that is not there: tests/test_bad_inputs.py ("eval shapes-edit: unknown checkpoint")


def shapes_recipe(tmp_path, tiny_flux, **extra):
    return write_recipe(tmp_path / "shapes.toml", tiny_flux, tmp_path / "unused.jsonl", "byg",
                        **{"data.kind": "shapes_edit", "train.steps": 3, **extra})


def test_training_ends_with_the_recipes_evaluation(tmp_path, tiny_flux):
    recipe = shapes_recipe(tmp_path, tiny_flux, **{"eval.after": "shapes-edit", "eval.per_type": 1,
                                                   "eval.steps": 2})
    result = CliRunner().invoke(app, ["train", str(recipe)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "run" / "eval" / "shapes_edit.md").is_file()
    assert (tmp_path / "run" / "eval" / "shapes_edit_grid.png").is_file()


def test_ablations_write_a_table_and_resume(tmp_path, tiny_flux):
    recipe = shapes_recipe(tmp_path, tiny_flux, **{"data.edit_types": ["color", "style"]})
    out = tmp_path / "abl"
    args = ["eval", "ablations", str(recipe), "-o", str(out), "--steps", "2", "--per-type", "1", "--eval-steps", "2",
            "--only", "full", "--only", "w_o_cycle_loss", "--only", "supervised_paired"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    table = (out / "ablations.md").read_text()
    for name in ("| full |", "| w/o cycle loss |", "| supervised (paired) |"):
        assert name in table
    assert "| copies the source (identity) |" in table.splitlines()[2]
    assert "averaged over the color, style edits" in table.splitlines()[0]
    rows = json.loads((out / "ablations.json").read_text())["rows"]
    assert [r["method"] for r in rows] == ["full", "w/o cycle loss", "supervised (paired)"]
    assert all(set(r["per_type"]) == {"color", "style", "identity"} for r in rows)  # the recipe's edit types
    assert (out / "ablations.png").is_file()
    cycle_recipe = (out / "w_o_cycle_loss" / "recipe.toml").read_text()
    assert '"no_cycle"' in cycle_recipe
    stamp = (out / "full" / "eval" / "shapes_edit.json").stat().st_mtime_ns
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0, again.output
    assert (out / "full" / "eval" / "shapes_edit.json").stat().st_mtime_ns == stamp  # read back, not redone
