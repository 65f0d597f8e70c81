"""The VIEScore prompt text for text-guided image editing ("tie"): byg's own paraphrase, or the official
templates read at run time from the user's copy of TIGER-AI-Lab/VIEScore (its text is never stored in byg).

The reference builds its two prompts from four files of `viescore/prompts_raw/`, joined with newlines:

    SC = context_no_delimit.txt + prompts_0shot/two_image_edit_rule.txt + prompts_0shot/tie_rule_SC.txt
    PQ = context_no_delimit.txt + prompts_0shot/rule_PQ.txt

with `<instruction>` in the SC text replaced by the editing instruction. `--prompts` may name the checkout, its
`viescore/` or `prompts_raw/` folder, or any folder holding the four files in that layout; a folder with only the
generated `vie_prompts.py` works too (its string constants are read with `ast`, never executed).
"""

from __future__ import annotations

import ast
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from byg_cli.errors import BygError
from byg_cli.text_files import read_text

INSTRUCTION = "<instruction>"
CONTEXT_FILE = "context_no_delimit.txt"
SC_FILES = (CONTEXT_FILE, "prompts_0shot/two_image_edit_rule.txt", "prompts_0shot/tie_rule_SC.txt")
PQ_FILES = (CONTEXT_FILE, "prompts_0shot/rule_PQ.txt")
FILES = (CONTEXT_FILE, SC_FILES[1], SC_FILES[2], PQ_FILES[1])
_ROOTS = ("", "prompts_raw", "viescore/prompts_raw")  # where the four files may sit under --prompts


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class PromptSet:
    """The SC template (with `<instruction>`) and the PQ prompt, where they came from and their hash."""

    name: str  # "byg" (our paraphrase) or "viescore" (the official files)
    sc_template: str
    pq_text: str
    source: str = ""  # the folder or file they were read from
    files: dict[str, str] = field(default_factory=dict)  # file -> sha256 of its text

    @property
    def official(self) -> bool:
        return self.name == "viescore"

    @property
    def sha256(self) -> str:
        """One hash of the two templates as sent (before the instruction is filled in)."""
        return sha256(self.sc_template + "\x00" + self.pq_text)

    def sc(self, instruction: str) -> str:
        return self.sc_template.replace(INSTRUCTION, instruction)

    def pq(self) -> str:
        return self.pq_text

    def describe(self) -> dict:
        return {"name": self.name, "sha256": self.sha256, "source": self.source, "files": dict(self.files)}


def _from_texts(texts: dict[str, str], source: str) -> PromptSet:
    if INSTRUCTION not in texts[SC_FILES[2]]:
        raise BygError(f"--prompts {source}: {SC_FILES[2]} has no {INSTRUCTION} placeholder; "
                       "is it VIEScore's text-guided editing prompt?")
    return PromptSet("viescore", "\n".join(texts[f] for f in SC_FILES), "\n".join(texts[f] for f in PQ_FILES),
                     source, {f: sha256(texts[f]) for f in FILES})


def _module_constants(path: Path) -> dict[str, str]:
    """Top-level `name = "..."` string assignments of a Python file, without running it."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (SyntaxError, ValueError, UnicodeDecodeError) as err:
        raise BygError(f"--prompts {path}: not a readable Python file ({err})") from err
    out = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    out[target.id] = node.value.value
    return out


def _variable(file: str) -> str:
    """The name VIEScore's `parse_prompt.py` gives a prompt file in `vie_prompts.py`."""
    return "_" + file.removesuffix(".txt").replace("/", "_")


def load_prompts(path: Path) -> PromptSet:
    """The official SC / PQ templates from a VIEScore checkout (or a folder of its prompt files)."""
    path = Path(path)
    if not path.exists():
        raise BygError(f"--prompts {path}: no such file or folder")
    if path.is_dir():
        for root in _ROOTS:
            base = path / root
            if all((base / f).is_file() for f in FILES):
                return _from_texts({f: read_text(base / f) for f in FILES}, str(base))
    for module in ([path] if path.is_file() else [path / "vie_prompts.py", path / "viescore" / "vie_prompts.py"]):
        if module.is_file():
            constants = _module_constants(module)
            missing = [_variable(f) for f in FILES if _variable(f) not in constants]
            if missing:
                raise BygError(f"--prompts {module}: no {', '.join(missing)} in it")
            return _from_texts({f: constants[_variable(f)] for f in FILES}, str(module))
    raise BygError(f"--prompts {path}: expected VIEScore's prompt files ({', '.join(FILES)}) in it, in "
                   "viescore/prompts_raw/ or prompts_raw/ under it, or its vie_prompts.py")
