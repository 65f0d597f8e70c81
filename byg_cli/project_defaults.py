"""Project defaults: the values a user sets once instead of passing a flag every time (the run to edit with,
the VLM and judge, the benchmark folders, the base model for training).

Precedence, first found wins: a command's flag, a `BYG_*` environment variable, `byg.toml` in the working
directory, `[tool.byg]` in `pyproject.toml` in the working directory, then a built-in default (only `run`, for
`byg edit`: the newest trained editing run under ./runs). Every key is declared once in KEYS; the CLI modules
ask `ProjectDefaults().value()` / `.need()` only for options the user left unset (their flags default to None).
Relative paths are relative to the working directory (where byg.toml is); `~` is expanded; an empty BYG_*
variable counts as unset.

    # byg.toml
    run = "runs/flux-byg"
    vlm = "http://127.0.0.1:8000/v1"
    judge = "http://127.0.0.1:8001/v1"
    [gedit]
    data = "~/data/GEdit-Bench"
"""

from __future__ import annotations

import difflib
import json
import os
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

from byg_cli.errors import BygError

BYG_TOML = "byg.toml"
PYPROJECT = "pyproject.toml"
NEWEST_RUN = "newest run under ./runs"


@dataclass(frozen=True)
class Key:
    name: str  # byg.toml key; a dot is a table: "gedit.data" is `[gedit] data = ...`
    flag: str
    kind: str  # "path" (a file or folder), "model" (a local folder or an http(s):// URL), "text"
    commands: tuple[str, ...]
    help: str

    @property
    def env(self) -> str:
        return "BYG_" + self.name.upper().replace(".", "_")

    @property
    def toml_hint(self) -> str:
        table, _, leaf = self.name.rpartition(".")
        return f"[{table}] {leaf} = \"...\"" if table else f"{leaf} = \"...\""


KEYS: tuple[Key, ...] = (
    Key("run", "--run", "path", ("edit", "eval gedit", "eval styles"), "the trained run folder to edit with"),
    Key("vlm", "--vlm", "model", ("make-data",), "VLM for image edit tuples: a Qwen-VL folder or a server URL"),
    Key("vlm_model", "--vlm-model", "text", ("make-data",), "model name to request from the --vlm/--llm server"),
    Key("llm", "--llm", "model", ("make-data videos",), "model (folder or URL) that sanitises video captions"),
    Key("judge", "--judge", "model", ("eval gedit", "eval styles"), "VIEScore judge: a VLM folder or a server URL"),
    Key("judge_model", "--judge-model", "text", ("eval gedit", "eval styles"), "model name on the judge server"),
    Key("gedit.data", "--data", "path", ("eval gedit",), "local GEdit-Bench copy (.arrow / .parquet files)"),
    Key("styles.photo", "--photo", "path", ("eval styles",), "folder of photorealistic sources"),
    Key("styles.stylized", "--stylized", "path", ("eval styles",), "folder of <style>/ folders of stylized sources"),
    Key("video.source", "--source", "path", ("eval video",), "folder of source videos"),
    Key("video.captions", "--captions", "path", ("eval video",), "JSONL of source/target captions per video"),
    Key("video.clip", "--clip", "path", ("eval video",), "CLIP checkpoint file or open_clip folder"),
    Key("video.dino", "--dino", "path", ("eval video",), "DINO ViT folder"),
    Key("video.raft", "--raft", "path", ("eval video",), "torchvision RAFT state_dict"),
    Key("video.aesthetic_head", "--aesthetic-head", "path", ("eval video",), "LAION aesthetic linear head"),
    Key("train.model_path", "--set model.path=...", "path", ("train",),
        "base model folder, used when the recipe's model.path folder does not exist"),
)
BY_NAME = {key.name: key for key in KEYS}
TABLES = sorted({key.name.split(".")[0] for key in KEYS if "." in key.name})


@dataclass(frozen=True)
class Resolved:
    key: Key
    value: Any  # Path for "path" keys, str otherwise; None when unset
    source: str  # "flag", "env", "byg.toml", "pyproject", "default" or "unset"
    detail: str = ""  # where exactly: the variable, the file, what the default is

    def describe(self) -> str:
        return f"{self.source}: {self.detail}" if self.detail else self.source


def _typed(key: Key, raw: str) -> Union[Path, str]:
    if key.kind == "text" or raw.startswith(("http://", "https://")):
        return raw
    return os.path.expanduser(raw) if key.kind == "model" else Path(raw).expanduser()


def _flatten(tree: dict, origin: str, prefix: str = "") -> dict[str, str]:
    """Leaf keys of a byg.toml tree as dotted names, each checked against KEYS (one-line errors)."""
    flat: dict[str, str] = {}
    for name, value in tree.items():
        dotted = f"{prefix}{name}"
        if isinstance(value, dict) and not prefix and name in TABLES:
            flat.update(_flatten(value, origin, f"{name}."))
            continue
        if dotted not in BY_NAME:
            if dotted in TABLES:
                leaves = [k.name.split(".", 1)[1] for k in KEYS if k.name.startswith(dotted + ".")]
                raise BygError(f"{origin}: '{dotted}' must be a table: [{dotted}] with {', '.join(leaves)}")
            what = "table" if isinstance(value, dict) else "key"
            close = difflib.get_close_matches(dotted, list(BY_NAME) + TABLES, n=1, cutoff=0.5)
            hint = f" (did you mean '{close[0]}'?)" if close else f"; known keys: {', '.join(BY_NAME)}"
            raise BygError(f"{origin}: unknown {what} '{dotted}'{hint}")
        if not isinstance(value, str):
            shown = "a table" if isinstance(value, dict) else f"{type(value).__name__} {value!r}"
            raise BygError(f"{origin}: '{dotted}' must be a string ({BY_NAME[dotted].help}), got {shown}")
        if not value.strip():
            raise BygError(f"{origin}: '{dotted}' is empty")
        flat[dotted] = value
    return flat


def _read_toml(path: Path) -> dict:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise BygError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except tomllib.TOMLDecodeError as exc:
        raise BygError(f"{path}: not valid TOML ({exc})") from None
    except OSError as exc:
        raise BygError(f"{path}: cannot be read ({exc.strerror})") from None


class ProjectDefaults:
    """The defaults in force in one working directory and environment (files read and checked once)."""

    def __init__(self, cwd: Optional[Path] = None, environ: Optional[dict] = None):
        self.cwd = Path(cwd) if cwd is not None else Path.cwd()
        self.environ = os.environ if environ is None else environ
        self.byg_toml, self.pyproject = self.cwd / BYG_TOML, self.cwd / PYPROJECT
        self.from_byg_toml = _flatten(_read_toml(self.byg_toml), str(self.byg_toml)) if self.byg_toml.is_file() else {}
        self.from_pyproject = {}
        if self.pyproject.is_file():
            tool = _read_toml(self.pyproject).get("tool", {})
            section = tool.get("byg") if isinstance(tool, dict) else None
            if section is not None and not isinstance(section, dict):
                raise BygError(f"{self.pyproject}: [tool.byg] must be a table")
            self.from_pyproject = _flatten(section or {}, f"{self.pyproject} [tool.byg]")

    def _newest_run(self) -> Optional[Path]:
        from byg_cli.newest_run import newest_edit_run

        found = newest_edit_run(self.cwd / "runs")
        return None if found is None else found.run

    def resolve(self, name: str, given: Any = None, *, fallback: bool = False) -> Resolved:
        """The value of `name`: `given` (the flag's value, None when left out) or the first default found.
        `fallback` allows the built-in default (`run`: the newest run under ./runs)."""
        key = BY_NAME[name]
        if given is not None:
            return Resolved(key, given, "flag", key.flag)
        raw = self.environ.get(key.env)
        if raw is not None and raw.strip():
            return Resolved(key, _typed(key, raw), "env", key.env)
        for source, values, where in (("byg.toml", self.from_byg_toml, self.byg_toml),
                                      ("pyproject", self.from_pyproject, f"{self.pyproject} [tool.byg]")):
            if name in values:
                return Resolved(key, _typed(key, values[name]), source, str(where))
        if fallback and name == "run":
            found = self._newest_run()
            if found is not None:
                return Resolved(key, self._relative(found), "default", NEWEST_RUN)
        return Resolved(key, None, "unset")

    def _relative(self, path: Path) -> Path:
        try:
            return path.relative_to(self.cwd)
        except ValueError:
            return path

    def value(self, name: str, given: Any = None, *, fallback: bool = False):
        """`given` when the user passed the flag, else the project default (said on stderr), else None."""
        resolved = self.resolve(name, given, fallback=fallback)
        _say(resolved)
        return resolved.value

    def need(self, name: str, given: Any = None, what: str = "", *, fallback: bool = False):
        """As `value`, but a missing value is a one-line error naming the flag, the byg.toml key and the
        environment variable."""
        found = self.value(name, given, fallback=fallback)
        if found is None:
            key = BY_NAME[name]
            where = f"{what}: " if what else ""
            none_found = "; no trained editing run under ./runs either" if fallback and name == "run" else ""
            raise BygError(f"{where}missing {key.flag} ({key.help}): pass it, set {key.name} in {BYG_TOML} "
                           f"({key.toml_hint}) or {key.env}{none_found}")
        return found


def _say(resolved: Resolved) -> None:
    if resolved.source not in ("flag", "unset"):
        print(f"using {resolved.key.flag} {resolved.value} ({resolved.describe()})", file=sys.stderr, flush=True)


def train_overrides(recipe: Path, overrides: list[str], defaults: ProjectDefaults) -> list[str]:
    """`byg train`'s --set list, plus model.path from train.model_path when the recipe's own model.path folder
    does not exist (a recipe that names an existing model keeps it; --set model.path wins over both)."""
    if any(text.split("=", 1)[0].strip() == "model.path" for text in overrides):
        return overrides
    resolved = defaults.resolve("train.model_path")
    if resolved.value is None:
        return overrides
    try:
        model = tomllib.loads(Path(recipe).read_text(encoding="utf-8")).get("model", {})
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return overrides  # load_recipe reports the broken recipe
    if not isinstance(model, dict) or model.get("create") is not None:
        return overrides
    own = model.get("path")
    if isinstance(own, str) and Path(own).expanduser().is_dir():
        return overrides
    print(f"using model.path {resolved.value} ({resolved.describe()}; the recipe's {own!r} does not exist)",
          file=sys.stderr, flush=True)
    return [*overrides, f"model.path={json.dumps(str(resolved.value))}"]


def report(defaults: ProjectDefaults, flags: Optional[dict[str, str]] = None) -> list[str]:
    """`byg config`: one line per key with its value in force and where it came from."""
    flags = flags or {}
    files = [f"{BYG_TOML}: {defaults.byg_toml if defaults.byg_toml.is_file() else 'none in ' + str(defaults.cwd)}"]
    files.append(f"{PYPROJECT} [tool.byg]: " + (str(defaults.pyproject) if defaults.from_pyproject else "none"))
    rows = []
    for key in KEYS:
        given = _typed(key, flags[key.name]) if key.name in flags else None
        resolved = defaults.resolve(key.name, given, fallback=key.name == "run")
        shown = "-" if resolved.value is None else str(resolved.value)
        source = "not set" if resolved.source == "unset" else resolved.describe()
        if resolved.source == "default":
            source += ", byg edit only"
        rows.append((key.name, shown, source, ", ".join(key.commands)))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = [f"{a:<{widths[0]}}  {b:<{widths[1]}}  {c:<{widths[2]}}  [{d}]".rstrip() for a, b, c, d in rows]
    return [*files, "flags > BYG_* environment > byg.toml > pyproject.toml [tool.byg] > default", *lines]
