"""Packaging: the extras of pyproject.toml against the code, without installing anything. A plain `pip install byg`
must import every byg_cli module (the optional packages are imported inside the functions that need them), and a
command whose extra is missing stops with one line naming the extra."""

import ast
import importlib.util
import re
import sys
import tomllib
from pathlib import Path

import pytest

from conftest import run_main

from byg_cli import extras

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

# Import name -> distribution name, where they differ by more than '-' / '_' / case.
DISTRIBUTION = {"PIL": "pillow", "yaml": "pyyaml", "open_clip": "open-clip-torch"}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement(spec: str) -> tuple[str, set[str]]:
    """'byg[eval,study]' -> ('byg', {'eval', 'study'}); 'torch==2.14.1' -> ('torch', set())."""
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[([^\]]*)\])?", spec)
    assert match, spec
    return canonical(match[1]), {e.strip() for e in (match[2] or "").split(",") if e.strip()}


CORE = {requirement(r)[0] for r in PYPROJECT["dependencies"]}
OPTIONAL = {extra: [requirement(r) for r in reqs] for extra, reqs in PYPROJECT["optional-dependencies"].items()}


def distribution(module: str) -> str:
    return canonical(DISTRIBUTION.get(module, module))


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _run_at_import(body: list[ast.stmt]):
    """The statements Python runs when it imports the module: not function bodies nor `if TYPE_CHECKING:`."""
    for node in body:
        yield node
        if isinstance(node, ast.If):
            if not _is_type_checking(node.test):
                yield from _run_at_import(node.body)
            yield from _run_at_import(node.orelse)
        elif isinstance(node, ast.Try):
            for block in (node.body, *(h.body for h in node.handlers), node.orelse, node.finalbody):
                yield from _run_at_import(block)
        elif isinstance(node, (ast.With, ast.ClassDef)):
            yield from _run_at_import(node.body)


def module_level_imports(source: str) -> set[str]:
    """Top-level names of the third-party packages a module imports when it is imported."""
    names = set()
    for node in _run_at_import(ast.parse(source).body):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return {n for n in names if n not in sys.stdlib_module_names and n != "byg_cli"}


def test_the_scan_sees_what_runs_at_import_only():
    source = """
from __future__ import annotations
import os, numpy as np
from typing import TYPE_CHECKING
from byg_cli.errors import BygError
from . import sibling
import matplotlib.pyplot as plt
if TYPE_CHECKING:
    import pyarrow as pa
else:
    import scipy
try:
    import av
except ImportError:
    from PIL import Image
class Reader:
    import imageio
def read():
    import open_clip
"""
    assert module_level_imports(source) == {"numpy", "matplotlib", "scipy", "av", "PIL", "imageio"}


def test_every_module_level_import_in_byg_cli_is_a_core_dependency():
    found = {}
    for path in sorted((ROOT / "byg_cli").rglob("*.py")):
        for module in module_level_imports(path.read_text(encoding="utf-8")):
            found.setdefault(distribution(module), []).append(str(path.relative_to(ROOT)))
    assert found, "the scan found no imports at all"
    not_core = {dist: paths for dist, paths in found.items() if dist not in CORE}
    assert not not_core, (f"imported at module level but not a core dependency (import it inside the function "
                          f"that needs it, through byg_cli.extras.require): {not_core}")


def test_extras_are_disjoint_from_core():
    for extra, reqs in OPTIONAL.items():
        assert not {name for name, _ in reqs} & CORE, f"[{extra}] repeats a core dependency"


def test_dev_names_the_other_extras_and_repeats_no_core_dependency():
    dev = OPTIONAL["dev"]
    named = set().union(*(sub for name, sub in dev if name == "byg"))
    assert named == set(OPTIONAL) - {"dev"}, named
    others = {name for extra, reqs in OPTIONAL.items() if extra != "dev" for name, _ in reqs}
    assert not {name for name, _ in dev} & (CORE | others), "dev repeats what core or another extra installs"
    assert "pytest" in {name for name, _ in dev}


def test_extras_py_names_the_packages_of_each_extra():
    """byg_cli/extras.py (what a command checks) and pyproject.toml (what pip installs) list the same packages."""
    assert set(extras.EXTRAS) == set(OPTIONAL) - {"dev"}
    for extra, modules in extras.EXTRAS.items():
        assert {distribution(m) for m in modules} == {name for name, _ in OPTIONAL[extra]}, extra


def test_a_command_without_its_extra_is_one_line(capsys, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a, **k: None if name == "pyarrow" else real(name, *a, **k))
    code, out, _ = run_main(["eval", "gedit", "--help"], capsys)
    assert code == 0 and "GEdit-Bench" in out
    code, _, err = run_main(["eval", "gedit"], capsys)
    assert code == 2
    assert err == "error: byg eval gedit needs the 'eval' extra: pip install 'byg[eval]'\n"


def test_require_names_the_extra_but_lets_a_broken_install_raise(tmp_path, monkeypatch):
    with pytest.raises(extras.MissingExtra) as err:
        extras.require("byg_test_no_such_package", "eval", "CLIP metrics")
    assert str(err.value) == "CLIP metrics needs the 'eval' extra: pip install 'byg[eval]'"
    (tmp_path / "byg_test_broken").mkdir()
    (tmp_path / "byg_test_broken" / "__init__.py").write_text("import byg_test_no_such_dependency\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError, match="byg_test_no_such_dependency"):
        extras.require("byg_test_broken", "eval", "CLIP metrics")
    assert extras.require("json", "eval", "anything").dumps([]) == "[]"


def test_check_names_every_missing_extra(monkeypatch):
    monkeypatch.setattr(extras, "EXTRAS", {"eval": ("json",), "video": ("byg_test_no_such_package",),
                                           "study": ("byg_test_no_such_package",)})
    extras.check("byg eval video", "eval")
    with pytest.raises(extras.MissingExtra) as err:
        extras.check("byg make-data videos --clip", "eval", "video", "study")
    assert str(err.value) == ("byg make-data videos --clip needs the 'video' and 'study' extras: "
                              "pip install 'byg[video,study]'")
