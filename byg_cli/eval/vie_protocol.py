"""How a store of VIEScore judgements was made, and what the reports say about it.

Next to each judgements file (`judgements.jsonl`, `styles.jsonl`) a `<name>.protocol.json` records the scorer's
`describe()`: the prompts (byg's own or VIEScore's official files, with their sha256), the parsing protocol
("byg" or "reference") and the request layout. A run that would add judgements made another way to the same
file is refused; files from before this record existed count as byg's prompts and protocol.
"""

from __future__ import annotations

import json
from pathlib import Path

from byg_cli.errors import BygError
from byg_cli.eval import report
from byg_cli.text_files import read_text

LEGACY_PROTOCOL = {"protocol": "byg", "prompts": {"name": "byg", "sha256": None}, "layout": "byg"}


def protocol_path(store: Path) -> Path:
    return store.with_suffix(".protocol.json")


def read_protocol(store: Path) -> dict | None:
    """How the judgements in `store` were made (`VieScorer.describe()`); judgements from before byg recorded
    it count as byg's prompts and protocol; None for a store that does not exist."""
    side = protocol_path(store)
    if side.exists():
        try:
            return json.loads(read_text(side))
        except json.JSONDecodeError as err:
            raise BygError(f"{side}: not valid JSON ({err.msg}); restore it, or judge into another --judge-name") \
                from None
    return dict(LEGACY_PROTOCOL) if store.exists() and store.stat().st_size else None


def _same_protocol(a: dict, b: dict) -> bool:
    """Same prompts, parsing protocol and request layout (a store from before the record: same names)."""
    same_names = a["prompts"]["name"] == b["prompts"]["name"] and a["protocol"] == b["protocol"]
    sha_a, sha_b = a["prompts"].get("sha256"), b["prompts"].get("sha256")
    if None in (sha_a, sha_b):
        return same_names
    return same_names and sha_a == sha_b and a.get("layout") == b.get("layout")


def claim_store(store: Path, protocol: dict) -> None:
    """Record how `store`'s judgements are made, and refuse to add judgements made another way."""
    existing = read_protocol(store)
    if existing is not None and not _same_protocol(existing, protocol):
        def says(p: dict) -> str:
            sha = p["prompts"].get("sha256")
            return f"{p['prompts']['name']} prompts{f' {sha[:12]}' if sha else ''}, {p['protocol']} protocol, " \
                   f"{p.get('layout')} layout"
        raise BygError(f"{store}: judged with {says(existing)}; this run uses {says(protocol)}. "
                       "Give another --judge-name (or delete the folder) to judge again.")
    if existing is None or not protocol_path(store).exists():
        report.write_json(protocol_path(store), protocol)


def comparable(protocol: dict) -> bool:
    """Official prompts, the reference's parsing and its request layout: numbers that may sit next to
    published ones (for the same judge model)."""
    return protocol["prompts"]["name"] == "viescore" and protocol["protocol"] == "reference" and \
        protocol.get("layout") == "reference"


def protocol_lines(protocol: dict) -> list[str]:
    """The report's sentences on the prompts, parsing and request layout behind a method's scores."""
    prompts, sha = protocol["prompts"], protocol["prompts"].get("sha256")
    digest = f"sha256 {sha[:12]}" if sha else "judged before byg recorded the prompts' hash"
    if prompts["name"] == "viescore":
        lines = [f"Prompts: VIEScore's official templates from {prompts.get('source')} "
                 f"({', '.join(prompts.get('files', {}))}), {digest}. Request layout: {protocol.get('layout')}"
                 + (f" (text then JPEG images, max_tokens {protocol.get('max_new_tokens')})."
                    if protocol.get("layout") == "reference" else ".")]
    else:
        lines = [f"Prompts: byg's own wording of the VIEScore questions ({digest}). These scores are NOT "
                 "comparable with published VIEScore / GEdit-Bench / style-benchmark numbers: judge scores "
                 "depend on the wording (give --prompts with a VIEScore checkout for the official text)."]
    if protocol["protocol"] == "reference":
        lines.append("Parsing: the reference's (its answer formats; after a second ask, one random integer "
                     "0..10 for an answer without JSON; an Average over a category with no score is NaN).")
    else:
        lines.append("Parsing: byg's stricter parser (unparseable answers are counted and left unscored"
                     + ("; failure handling differs from the reference's, so only runs without parse "
                        "failures match its protocol)." if prompts["name"] == "viescore" else ")."))
    return lines
