"""`byg eval styles`: the long-tail style benchmark of the paper's section 5.1.2, judged with VIEScore.

Six styles, both directions. Photorealistic -> style edits every image of a folder of photoreal sources
(such as ImgEdit's) into each style; style -> photorealistic edits stylized sources, found in
`<stylized>/<style>/*` (one sub-folder per style), back to a photo. The published set (335 images, 487
instructions) is not available, so the instructions come from the templates below unless a manifest gives
them.

Outputs: `<out>/<method>/<direction>/<style>/<id>.png`; judgements `<out>/<method>/viescore/<judge>/styles.jsonl`;
report `<out>/reports/styles-<judge>.{json,md,png}`. Per direction: Semantic (SC), Quality (PQ), and Overall as
the paper's Table 2 computes it (the geometric mean of the mean SC and mean PQ), plus the mean per-item O.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import PIL.Image
from rich.console import Console

from byg_cli.errors import BygError
from byg_cli.eval import report
from byg_cli.eval.edit_bench import (
    ImageEditor, JudgeCase, JudgeOptions, PendingEdit, generate, judge, open_editor, open_scorer, open_store,
    read_judgements, report_unreadable, resize_for_model, safe_name, summarize,
)
from byg_cli.eval.progress import eval_progress
from byg_cli.eval.vie_protocol import LEGACY_PROTOCOL, comparable, protocol_lines, read_protocol
from byg_cli.eval.viescore import VieScorer
from byg_cli.text_files import read_text

# folder name -> how instructions name the style
STYLES: dict[str, str] = {
    "gta_v": "GTA V",
    "minecraft": "Minecraft",
    "american_comic": "American comic",
    "low_poly": "low-poly 3D",
    "voxel": "voxel",
    "lego": "Lego",
}
TO_STYLE = "to_style"
TO_PHOTO = "to_photo"
DIRECTIONS = {TO_PHOTO: "Style → Photorealistic", TO_STYLE: "Photorealistic → Style"}
TO_STYLE_TEMPLATE = "Turn this photo into a {style} style image"
TO_PHOTO_TEMPLATE = "Turn this {style} style image into a photorealistic photo"
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp"}


@dataclass(frozen=True)
class StyleCase:
    id: str
    direction: str
    style: str
    instruction: str
    source: Path

    @property
    def key(self) -> str:
        return f"{self.direction}/{self.style}/{self.id}"


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def cases_from_folders(photo: Path | None, stylized: Path | None, styles: list[str]) -> list[StyleCase]:
    unknown = [s for s in styles if s not in STYLES]
    if unknown:
        raise BygError(f"unknown style(s) {unknown}; known: {list(STYLES)}")
    cases: list[StyleCase] = []
    if photo is not None:
        if not photo.is_dir():
            raise BygError(f"--photo {photo}: not a folder")
        sources = _images(photo)
        if not sources:
            raise BygError(f"--photo {photo}: no images in it")
        for style in styles:
            cases += [StyleCase(p.stem, TO_STYLE, style, TO_STYLE_TEMPLATE.format(style=STYLES[style]), p)
                      for p in sources]
    if stylized is not None:
        if not stylized.is_dir():
            raise BygError(f"--stylized {stylized}: not a folder")
        found = [s for s in styles if (stylized / s).is_dir()]
        if not found:
            raise BygError(f"--stylized {stylized}: expected one sub-folder per style, named from {list(STYLES)}")
        for style in found:
            cases += [StyleCase(p.stem, TO_PHOTO, style, TO_PHOTO_TEMPLATE.format(style=STYLES[style]), p)
                      for p in _images(stylized / style)]
    if not cases:
        raise BygError("styles benchmark: give --photo and/or --stylized (or --manifest)")
    return cases


def cases_from_manifest(path: Path) -> list[StyleCase]:
    """JSONL, one edit a line: {"id", "direction": "to_style"|"to_photo", "style", "source", "instruction"};
    `source` is relative to the manifest's folder unless absolute."""
    cases = []
    for lineno, line in enumerate(read_text(path).splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as err:
            raise BygError(f"{where}: not JSON ({err})") from err
        for name in ("id", "direction", "style", "source", "instruction"):
            if not isinstance(rec.get(name), str) or not rec[name]:
                raise BygError(f"{where}: field {name!r} must be a non-empty string")
        if rec["direction"] not in DIRECTIONS:
            raise BygError(f"{where}: field 'direction' must be one of {list(DIRECTIONS)}")
        source = Path(rec["source"])
        source = source if source.is_absolute() else path.parent / source
        if not source.exists():
            raise BygError(f"{where}: source image {source} does not exist")
        cases.append(StyleCase(rec["id"], rec["direction"], rec["style"], rec["instruction"], source))
    if not cases:
        raise BygError(f"{path}: no edits in the manifest")
    return cases


def eval_styles(*, out: Path, method: str, judge_opts: JudgeOptions, photo: Path | None = None,
                stylized: Path | None = None, manifest: Path | None = None, styles: list[str] | None = None,
                run: Path | None = None, checkpoint: str = "latest", **kwargs) -> dict:
    """`byg eval styles`: build the edit list, open the editor and judge, run."""
    if run is None and judge_opts.spec is None:
        raise BygError("nothing to do: give --run to generate edits and/or --judge to score them")
    cases = cases_from_manifest(manifest) if manifest else cases_from_folders(photo, stylized, styles or list(STYLES))
    scorer = open_scorer(judge_opts)  # a bad --prompts folder is reported before the editor is opened
    editor = open_editor(run, checkpoint) if run is not None else None
    return run_styles(cases, out, method, editor, scorer, judge_name=judge_opts.name, **kwargs)


def _load(path: Path) -> PIL.Image.Image:
    with PIL.Image.open(path) as im:
        return im.convert("RGB")


def run_styles(cases: list[StyleCase], out: Path, method: str, editor: ImageEditor | None,
               scorer: VieScorer | None, *, steps: int = 20, seed: int = 0, edit_batch_size: int = 1,
               judge_batch_size: int = 8, retry_failed: bool = False, judge_name: str | None = None,
               console: Console | None = None) -> dict:
    console = console or Console(stderr=True)
    keys = [c.key for c in cases]
    if len(set(keys)) != len(keys):
        dup = sorted({k for k in keys if keys.count(k) > 1})[:3]
        raise BygError(f"styles benchmark: duplicate edit ids {dup} (ids must be unique per direction and style)")
    judge_cases = [JudgeCase(c.key, f"{c.direction}/{c.style}", c.instruction, c.source,
                             out / method / c.direction / c.style / f"{c.id}.png",
                             {"direction": c.direction, "style": c.style}) for c in cases]

    def pending() -> Iterator[PendingEdit]:
        for case, jc in zip(cases, judge_cases):
            yield PendingEdit(case.instruction, jc.edited, lambda p=case.source: resize_for_model(_load(p)),
                              source=str(case.source))

    written = 0
    unreadable: list[str] = []
    unedited: list[str] = []
    judge_name = judge_name or (safe_name(scorer.store_name) if scorer else None)
    store = out / method / "viescore" / judge_name / "styles.jsonl" if judge_name else None
    if scorer is not None:
        open_store(store, scorer)
    with eval_progress(console) as progress:
        if editor is not None:
            task = progress.add_task("styles: edit", total=len(cases))
            written = generate(pending(), editor, batch_size=edit_batch_size, steps=steps, seed=seed,
                               on_done=lambda n: progress.advance(task, n), on_unreadable=unedited.append)
        if scorer is not None:
            jtask = progress.add_task("styles: judge", total=len(cases))
            judge(judge_cases, scorer, store, batch_size=judge_batch_size, retry_failed=retry_failed,
                  on_done=lambda n: progress.advance(jtask, n), on_unreadable=unreadable.append)
    report_unreadable(unedited, console, done="edited")
    report_unreadable(unreadable, console)
    result = {"benchmark": "long-tail styles", "method": method, "items": len(cases), "generated_now": written,
              "missing_outputs": sum(1 for c in judge_cases if not c.edited.exists()), "unreadable": unreadable,
              "unreadable_sources": unedited,
              "judge": judge_name}
    if judge_name is not None:
        result.update(styles_report(out, judge_cases, judge_name, console))
    return result


def _direction_summary(cases: list[JudgeCase], judgements: dict, empty_is_nan: bool = False) -> dict:
    styles_present = [s for s in STYLES if any(c.tags["style"] == s for c in cases)]
    by_style = summarize([JudgeCase(c.key, c.tags["style"], c.instruction, c.source, c.edited, c.tags)
                          for c in cases], judgements, styles_present, empty_is_nan=empty_is_nan)
    sc, pq = by_style["pooled"]["sc"]["mean"], by_style["pooled"]["pq"]["mean"]
    table2_overall = math.sqrt(sc * pq) if sc is not None and pq is not None else None
    return {"semantic": sc, "quality": pq, "overall": table2_overall,
            "mean_item_overall": by_style["pooled"]["o"]["mean"], "by_style": by_style}


def styles_report(out: Path, cases: list[JudgeCase], judge_name: str, console: Console) -> dict:
    methods = sorted(p.parent.parent.parent.name for p in out.glob(f"*/viescore/{judge_name}/styles.jsonl"))
    summaries: dict[str, dict] = {}
    protocols: dict[str, dict] = {}
    for method in methods:
        store = out / method / "viescore" / judge_name / "styles.jsonl"
        judgements = read_judgements(store)
        protocols[method] = read_protocol(store) or dict(LEGACY_PROTOCOL)
        nan = protocols[method]["protocol"] == "reference"
        mcases = [JudgeCase(c.key, c.category, c.instruction, c.source,
                            out / method / c.tags["direction"] / c.tags["style"] / c.edited.name, c.tags)
                  for c in cases]
        summaries[method] = {d: _direction_summary([c for c in mcases if c.tags["direction"] == d], judgements, nan)
                             for d in DIRECTIONS if any(c.tags["direction"] == d for c in mcases)}
    stem = out / "reports" / f"styles-{safe_name(judge_name)}"
    data = {"judge": judge_name, "styles": STYLES, "methods": summaries, "protocol": protocols,
            "comparable_with_published": bool(protocols) and all(comparable(p) for p in protocols.values()),
            "instruction_templates": {TO_STYLE: TO_STYLE_TEMPLATE, TO_PHOTO: TO_PHOTO_TEMPLATE}}
    report.write_json(stem.with_suffix(".json"), data)
    md = styles_markdown(data)
    stem.with_suffix(".md").write_text(md, encoding="utf-8")
    directions = [d for d in DIRECTIONS if any(d in s for s in summaries.values())]
    labels = [f"{DIRECTIONS[d]}: {m}" for d in directions for m in ("Semantic", "Quality", "Overall")]
    report.grouped_bars(stem.parent / f"{stem.name}.png", labels,
                        {meth: [s.get(d, {}).get(k) for d in directions for k in ("semantic", "quality", "overall")]
                         for meth, s in summaries.items()},
                        title=f"Long-tail style editing, judge {judge_name}", ylabel="VIEScore (0-10)")
    console.print(md, markup=False, highlight=False)
    return {"report": {"json": str(stem.with_suffix(".json")), "markdown": str(stem.with_suffix(".md")),
                       "plot": str(stem.parent / f"{stem.name}.png")}, "summaries": summaries}


def styles_markdown(data: dict) -> str:
    parts = [f"# Long-tail style editing, VIEScore judged by {data['judge']}", "",
             "Overall = sqrt(mean Semantic × mean Quality), as Table 2; 'mean item O' averages sqrt(SC·PQ) per item.",
             ""]
    for method, protocol in data["protocol"].items():
        parts += [f"{method}: " + " ".join(protocol_lines(protocol)), ""]
    rows = []
    for direction, title in DIRECTIONS.items():
        present = [(m, s[direction]) for m, s in data["methods"].items() if direction in s]
        if not present:
            continue
        rows.append([f"*{title}*", "", "", "", "", ""])
        for method, d in present:
            t = d["by_style"]["totals"]
            rows.append([method, report.fmt(d["semantic"]), report.fmt(d["quality"]), report.fmt(d["overall"]),
                         report.fmt(d["mean_item_overall"]), f"{t['scored']}/{t['n']} ({t['parse_failures']} failed)"])
    parts += [report.markdown_table(["Method", "Semantic", "Quality", "Overall", "mean item O", "scored"], rows), ""]
    for method, s in data["methods"].items():
        for direction, d in s.items():
            parts += [f"## {method}: {DIRECTIONS[direction]} by style", ""]
            rows = [[data["styles"].get(st, st), report.fmt(e["sc"]["mean"]), report.fmt(e["pq"]["mean"]),
                     report.fmt(e["o"]["mean"]), f"{e['scored']}/{e['n']}", str(e["parse_failures"])]
                    for st, e in d["by_style"]["categories"].items()]
            parts += [report.markdown_table(["Style", "Semantic", "Quality", "mean item O", "scored",
                                             "parse failures"], rows), ""]
    return "\n".join(parts)
