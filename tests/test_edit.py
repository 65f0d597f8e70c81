"""`byg edit` with a trained run."""

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from byg_cli.cli import app
from byg_cli.edit import Editor
from byg_cli.errors import BygError


def test_byg_edit_writes_an_edited_image(tmp_path, tiny_run, tiny_records):
    src = tiny_records.parent / "images" / "0-src.png"
    out = tmp_path / "out" / "edited.png"
    result = CliRunner().invoke(app, ["edit", str(src), "make the square blue", "--run", str(tiny_run),
                                      "-o", str(out), "--steps", "3"])
    assert result.exit_code == 0, result.output
    img = Image.open(out)
    assert img.size == (32, 32) and img.mode == "RGB"


def test_editor_is_deterministic_per_seed_and_has_both_weight_sets(tiny_run, tiny_records):
    src = Image.open(tiny_records.parent / "images" / "1-src.png")
    editor = Editor.from_run(tiny_run)
    a = np.asarray(editor.edit([src], ["make the square red"], steps=3, seed=1)[0])
    b = np.asarray(editor.edit([src], ["make the square red"], steps=3, seed=1)[0])
    c = np.asarray(editor.edit([src], ["make the square red"], steps=3, seed=2)[0])
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    ema = Editor.from_run(tiny_run, weights="ema")
    assert ema.weights == "ema"
    ema.edit([src], ["make the square red"], steps=2)


def test_edit_errors_name_the_problem(tmp_path, tiny_run):
    with pytest.raises(BygError, match="not a byg run folder"):
        Editor.from_run(tmp_path)
    result = CliRunner().invoke(app, ["edit", str(tmp_path / "nope.png"), "x", "--run", str(tiny_run)])
    assert isinstance(result.exception, BygError) and "nope.png: no such file" in str(result.exception)
