"""`byg eval gedit`: GEdit-Bench (English subset) generated with an editor and judged with VIEScore.

Layout (as the benchmark's own scripts): `<out>/<method>/fullset/<task_type>/<lang>/<key>.png` for the edit
and `<key>_SRCIMG.png` for the source the judge compares against. Judgements go to
`<out>/<method>/viescore/<judge>/judgements.jsonl`; reports to `<out>/reports/`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from rich.console import Console

from byg_cli.errors import BygError
from byg_cli.eval import report
from byg_cli.eval.edit_bench import (
    ImageEditor, JudgeCase, JudgeOptions, PendingEdit, generate, judge, open_editor, open_scorer, open_store,
    read_judgements, report_unreadable, resize_for_model, safe_name, save_png, summarize,
)
from byg_cli.eval.gedit_data import GROUPS, count_rows, data_files, iter_rows
from byg_cli.eval.progress import eval_progress
from byg_cli.eval.vie_protocol import LEGACY_PROTOCOL, comparable, protocol_lines, read_protocol
from byg_cli.eval.viescore import VieScorer


@dataclass
class GEditOptions:
    data: Path
    out: Path
    method: str
    language: str = "en"
    steps: int = 20
    seed: int = 0
    edit_batch_size: int = 1
    judge_batch_size: int = 8
    max_per_group: int | None = None
    retry_failed: bool = False
    judge_name: str | None = None


def eval_gedit(opts: GEditOptions, judge_opts: JudgeOptions, run: Path | None = None,
               checkpoint: str = "latest") -> dict:
    """`byg eval gedit`: open the editor (if a run is given) and the judge (if given), then run."""
    if run is None and judge_opts.spec is None:
        raise BygError("nothing to do: give --run to generate edits and/or --judge to score them")
    data_files(opts.data)  # a bad data path (or --prompts folder) is reported before any model is opened
    scorer = open_scorer(judge_opts)
    editor = open_editor(run, checkpoint) if run is not None else None
    opts.judge_name = opts.judge_name or judge_opts.name
    return run_gedit(opts, editor, scorer)


def _item_dir(out: Path, method: str, task_type: str, language: str) -> Path:
    return out / method / "fullset" / task_type / language


def _store(out: Path, method: str, judge_name: str) -> Path:
    return out / method / "viescore" / judge_name / "judgements.jsonl"


def run_gedit(opts: GEditOptions, editor: ImageEditor | None, scorer: VieScorer | None,
              console: Console | None = None) -> dict:
    """Generate the missing edits (when an editor is given), judge the unjudged ones (when a judge is given),
    and write the report over every method under `out` judged by the same judge."""
    console = console or Console(stderr=True)
    total = count_rows(opts.data, opts.language)
    if total == 0:
        raise BygError(f"{opts.data}: no rows with instruction_language={opts.language!r}")
    cases: list[JudgeCase] = []
    seen: set[str] = set()
    per_group: dict[str, int] = {}

    def pending() -> Iterator[PendingEdit]:
        for row in iter_rows(opts.data, opts.language):
            if row.key in seen:
                raise BygError(f"{row.where}: duplicate key {row.key!r}")
            seen.add(row.key)
            if opts.max_per_group is not None and per_group.get(row.task_type, 0) >= opts.max_per_group:
                continue
            per_group[row.task_type] = per_group.get(row.task_type, 0) + 1
            folder = _item_dir(opts.out, opts.method, row.task_type, opts.language)
            source, edited = folder / f"{row.key}_SRCIMG.png", folder / f"{row.key}.png"
            if not source.exists():
                save_png(row.image("input_image"), source)
            cases.append(JudgeCase(row.key, row.task_type, row.instruction, source, edited,
                                   {"intersection": row.intersection, "language": row.language}))
            yield PendingEdit(row.instruction, edited, lambda row=row: resize_for_model(row.image("input_image_raw")))

    judge_name = opts.judge_name or (safe_name(scorer.store_name) if scorer else None)
    if scorer is not None:
        open_store(_store(opts.out, opts.method, judge_name), scorer)
    with eval_progress(console) as progress:
        task = progress.add_task("GEdit-Bench: edit" if editor else "GEdit-Bench: read", total=total)
        advance = lambda n: progress.advance(task, n)  # noqa: E731
        if editor is not None:
            written = generate(pending(), editor, batch_size=opts.edit_batch_size, steps=opts.steps,
                               seed=opts.seed, on_done=advance)
        else:
            written = 0
            for _ in pending():
                advance(1)
        progress.update(task, total=len(cases), completed=len(cases))
        unreadable: list[str] = []
        if scorer is not None:
            jtask = progress.add_task("GEdit-Bench: judge", total=len(cases))
            judge(cases, scorer, _store(opts.out, opts.method, judge_name), batch_size=opts.judge_batch_size,
                  retry_failed=opts.retry_failed, on_done=lambda n: progress.advance(jtask, n),
                  on_unreadable=unreadable.append)
    report_unreadable(unreadable, console)
    missing_outputs = sum(1 for c in cases if not c.edited.exists())
    result = {"benchmark": "GEdit-Bench", "language": opts.language, "method": opts.method,
              "generated_now": written, "items": len(cases), "missing_outputs": missing_outputs,
              "unreadable": unreadable, "judge": judge_name}
    if judge_name is None:
        console.print(f"GEdit-Bench: {written} edits written, {missing_outputs} missing; no judge given, no scores.")
        return result
    result.update(gedit_report(opts.out, cases, judge_name, opts.language, console))
    return result


def _method_cases(cases: list[JudgeCase], out: Path, method: str, language: str) -> list[JudgeCase]:
    return [JudgeCase(c.key, c.category, c.instruction, c.source,
                      _item_dir(out, method, c.category, language) / f"{c.key}.png", c.tags) for c in cases]


def gedit_report(out: Path, cases: list[JudgeCase], judge_name: str, language: str, console: Console) -> dict:
    methods = sorted(p.parent.parent.parent.name for p in out.glob(f"*/viescore/{judge_name}/judgements.jsonl"))
    groups = [g for g in GROUPS if any(c.category == g for c in cases)]
    groups += sorted({c.category for c in cases} - set(groups))
    summaries: dict[str, dict] = {}
    protocols: dict[str, dict] = {}
    for method in methods:
        judgements = read_judgements(_store(out, method, judge_name))
        protocols[method] = read_protocol(_store(out, method, judge_name)) or dict(LEGACY_PROTOCOL)
        mcases = _method_cases(cases, out, method, language)
        inter = [c for c in mcases if c.tags.get("intersection")]
        if protocols[method]["protocol"] == "reference":  # the reference averages all 11 groups, NaN if one is empty
            full_groups = inter_groups = groups + [g for g in GROUPS if g not in groups]
        else:
            full_groups, inter_groups = groups, [g for g in groups if any(c.category == g for c in inter)]
        nan = protocols[method]["protocol"] == "reference"
        summaries[method] = {"fullset": summarize(mcases, judgements, full_groups, empty_is_nan=nan),
                             "intersection": summarize(inter, judgements, inter_groups, empty_is_nan=nan)}
    stem = out / "reports" / f"gedit-{language}-{safe_name(judge_name)}"
    data = {"judge": judge_name, "language": language, "groups": groups, "methods": summaries,
            "missing_groups": [g for g in GROUPS if g not in groups], "protocol": protocols,
            "comparable_with_published": bool(protocols) and all(comparable(p) for p in protocols.values())}
    report.write_json(stem.with_suffix(".json"), data)
    markdown = gedit_markdown(data)
    stem.with_suffix(".md").write_text(markdown, encoding="utf-8")
    labels = [GROUPS.get(g, g) for g in groups]
    report.grouped_bars(stem.parent / f"{stem.name}-overall.png", labels + ["Average"],
                        {m: [s["fullset"]["categories"][g]["o"]["mean"] for g in groups] +
                         [s["fullset"]["average"]["o"]] for m, s in summaries.items()},
                        title=f"GEdit-Bench ({language}) overall score by category, judge {judge_name}",
                        ylabel="VIEScore O", horizontal=True)
    console.print(markdown, markup=False, highlight=False)
    return {"report": {"json": str(stem.with_suffix(".json")), "markdown": str(stem.with_suffix(".md")),
                       "plot": str(stem.parent / f"{stem.name}-overall.png")}, "summaries": summaries}


def gedit_markdown(data: dict) -> str:
    methods, groups = list(data["methods"]), data["groups"]
    parts = [f"# GEdit-Bench ({data['language']}), VIEScore judged by {data['judge']}", ""]
    parts += _protocol_markdown(data["protocol"])
    parts += ["## Overall score (O) by edit type", ""]
    rows = [[GROUPS.get(g, g)] + [report.fmt(data["methods"][m]["fullset"]["categories"][g]["o"]["mean"])
                                  for m in methods] for g in groups]
    rows.append(["Average (mean of group means)"] + [report.fmt(data["methods"][m]["fullset"]["average"]["o"])
                                                     for m in methods])
    parts += [report.markdown_table(["Edit Type"] + methods, rows, bold_rows=[len(rows) - 1]), ""]
    for method in methods:
        for subset in ("fullset", "intersection"):
            summ = data["methods"][method][subset]
            parts += [f"## {method}: {subset}", ""]
            rows = []
            for g, e in summ["categories"].items():
                rows.append([GROUPS.get(g, g), report.fmt(e["sc"]["mean"], 3), report.fmt(e["pq"]["mean"], 3),
                             report.fmt(e["o"]["mean"], 3), str(e["scored"]), str(e["n"]),
                             str(e["unjudged"]), str(e["parse_failures"])])
            t = summ["totals"]
            rows.append(["Average"] + [report.fmt(summ["average"][m], 3) for m in ("sc", "pq", "o")] +
                        [str(t["scored"]), str(t["n"]), str(t["unjudged"]), str(t["parse_failures"])])
            parts += [report.markdown_table(["Group", "SC", "PQ", "O", "scored", "items", "unjudged",
                                             "parse failures"], rows, bold_rows=[len(rows) - 1]), ""]
            if t["random_filled"]:
                parts += [f"{t['random_filled']} item(s) scored with random sub-scores after a parse failure "
                          "(the random fallback).", ""]
            if summ["average"]["o"] is None and summ["empty_categories"]:
                parts += ["Average: NaN, as the reference computes it: no scored item in "
                          f"{', '.join(GROUPS.get(g, g) for g in summ['empty_categories'])}.", ""]
    if data["missing_groups"]:
        parts += [f"Groups absent from the data: {', '.join(data['missing_groups'])}.", ""]
    return "\n".join(parts)


def _protocol_markdown(protocols: dict[str, dict]) -> list[str]:
    """One paragraph when every method was judged the same way, else one per method."""
    distinct = {json.dumps(p, sort_keys=True) for p in protocols.values()}
    if len(distinct) <= 1:
        return [" ".join(protocol_lines(next(iter(protocols.values())))), ""] if protocols else []
    return [line for m, p in protocols.items() for line in (f"{m}: " + " ".join(protocol_lines(p)), "")]
