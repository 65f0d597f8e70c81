import json

from typer.testing import CliRunner

from byg_cli.cli import app
from byg_cli.data.dataset import EditDataset
from byg_cli.errors import BygError


def test_make_data_shapes_writes_a_loadable_folder(tmp_path):
    out = tmp_path / "shapes"
    result = CliRunner().invoke(app, ["make-data", "shapes", str(out), "--count", "12", "--seed", "3"])
    assert result.exit_code == 0, result.output
    assert len(EditDataset(out / "metadata.jsonl")) == 12
    settings = json.loads((out / "shapes_dataset.json").read_text())
    assert settings["seed"] == 3 and settings["split"] == "train"
    result = CliRunner().invoke(app, ["make-data", "shapes", "-o", str(tmp_path / "b"), "--count", "3",
                                      "--edit-type", "remove", "--split", "heldout"])
    assert result.exit_code == 0, result.output
    lines = (tmp_path / "b" / "metadata.jsonl").read_text().splitlines()
    assert [json.loads(x)["edit_type"] for x in lines] == ["remove"] * 3


def test_make_data_unknown_source_is_a_clear_error(tmp_path):
    result = CliRunner().invoke(app, ["make-data", "pictures", "-o", str(tmp_path)])
    assert isinstance(result.exception, BygError)
    assert "unknown SOURCE 'pictures'" in str(result.exception) and "shapes" in str(result.exception)


def test_make_data_error_is_one_line_and_exit_2(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root)}
    proc = subprocess.run([sys.executable, "-m", "byg_cli.cli", "make-data", "pictures"], cwd=tmp_path,
                          env=env, capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error: make-data: unknown SOURCE 'pictures'")
    assert "Traceback" not in proc.stderr
