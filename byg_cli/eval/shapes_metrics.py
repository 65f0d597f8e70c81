"""Scores of the shapes world, computed from images with the analytic reader (generation is the caller's job).

Text-to-image (`score_t2i`): for images generated from captions of known attributes, the accuracy of each
attribute read back (background, colour, shape type, style, shape present) and the fraction of shapes that are
crisp: the region the shape covers matches a clean render of its read-back attributes with IoU >= 0.8.

Editing (`score_edit`, `summarize_edits`): for a source image, an edit and the editor's output,
- success: the attribute the instruction names reads back as asked (add: a shape with the requested type, colour
  and style; remove: no shape);
- preservation: every attribute the instruction does not name reads back unchanged, the shape's centre moved at
  most `centre_tol` px, and for edits that keep the shape (colour, background, style) its region overlaps the
  source's with IoU >= `keep_iou`; a shape replacement must keep the size within `size_tol` px; add and remove
  must keep the background;
- pixel agreement: the fraction of pixels outside the edited region whose colour stayed within `pixel_tol`.
Aggregated per edit type, and averaged over colour / background / shape / style edits. The "identity" type is a
diagnostic, outside that average: the source with an instruction that asks for what it already is; success: every
attribute reads back as the source's; preservation: that, and centre and shape region kept as above (the editor
copies its source).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
from scipy import ndimage

from byg_cli.data.shapes import Attributes, silhouette_mask
from byg_cli.data.shapes_edits import CORE_EDIT_TYPES
from byg_cli.data.shapes_reader import Reading, clean_render_iou, mask_iou, read, to_uint8_image
from byg_cli.outputs import writing
from byg_cli.visual import save_grid

T2I_ATTRIBUTES = ("background", "color", "shape", "style")
EDIT_TYPE_ORDER = ("color", "background", "shape", "style", "add", "remove", "identity")
_NAMED = {
    "color": {"color"},
    "background": {"background"},
    "shape": {"shape"},
    "style": {"style"},
    "add": {"shape", "color", "style"},
    "remove": {"shape", "color", "style"},
    "identity": set(),
}
_KEEPS_SHAPE = ("color", "background", "style", "identity")


# ------------------------------------------------------------------------------------------------ text-to-image


def score_t2i(images: Sequence[Any], requested: Sequence[Attributes], crisp_iou: float = 0.8) -> dict[str, Any]:
    """Read every generated image back and compare it with the attributes its caption asked for.

    `images`: uint8 (H, W, 3) arrays or float (3, H, W) tensors in [-1, 1]. Attribute accuracies over shape,
    colour and style count only the images that asked for a shape; "crisp" is the fraction of those whose shape
    region has IoU >= `crisp_iou` with a clean render of its read-back attributes (a missing shape fails).
    """
    if len(images) != len(requested):
        raise ValueError(f"{len(images)} images but {len(requested)} requested attributes")
    hits: Counter = Counter()
    totals: Counter = Counter()
    samples = []
    for img, want in zip(images, requested):
        reading = read(img)
        got = reading.attributes
        iou = clean_render_iou(reading) if got.has_shape else 0.0
        ok = {"background": got.background == want.background, "present": got.has_shape == want.has_shape}
        if want.has_shape:
            ok.update({k: getattr(got, k) == getattr(want, k) for k in ("color", "shape", "style")})
            ok["crisp"] = got.has_shape and iou >= crisp_iou
        ok["all"] = all(ok.values())
        for k, v in ok.items():
            totals[k] += 1
            hits[k] += bool(v)
        samples.append({"requested": want.to_json(), "read": got.to_json(), "iou": iou, "correct": ok})
    accuracy = {k: hits[k] / totals[k] for k in (*T2I_ATTRIBUTES, "present", "crisp", "all") if totals[k]}
    return {"n": len(images), "crisp_iou": crisp_iou, "accuracy": accuracy, "by_request": by_request(samples),
            "samples": samples}


BREAKDOWN = ("shape", "style")  # the requested attributes the report splits the shape-asking samples by
BREAKDOWN_SCORES = ("color", "shape", "style", "crisp", "all")


def by_request(samples: Sequence[dict]) -> dict[str, dict[str, dict[str, float]]]:
    """Accuracy of the samples that asked for a shape, split by what they asked for: {"style": {"outlined":
    {"n": 258, "shape": 0.58, "crisp": 0.09, ...}}, "shape": {...}} (which kind of shape the base fails on)."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for attribute in BREAKDOWN:
        groups: dict[str, list[dict]] = {}
        for s in samples:
            value = s["requested"].get(attribute)
            if value is not None:
                groups.setdefault(value, []).append(s["correct"])
        out[attribute] = {value: {"n": len(rows), **{k: sum(bool(r[k]) for r in rows) / len(rows)
                                                   for k in BREAKDOWN_SCORES}}
                          for value, rows in sorted(groups.items())}
    return out


def _percent(value: float) -> str:
    return f"{100 * value:.1f}%"


def t2i_markdown(summary: dict[str, Any]) -> str:
    acc = summary["accuracy"]
    cols = [k for k in (*T2I_ATTRIBUTES, "present", "crisp", "all") if k in acc]
    names = {"crisp": f"crisp (IoU≥{summary['crisp_iou']})", "all": "all correct"}
    head = "| n | " + " | ".join(names.get(c, c) for c in cols) + " |"
    sep = "|---:|" + "---:|" * len(cols)
    row = f"| {summary['n']} | " + " | ".join(_percent(acc[c]) for c in cols) + " |"
    lines = [head, sep, row]
    split = summary.get("by_request") or {}
    if any(split.values()):
        lines += ["", "By what was asked (the samples that asked for a shape):", "",
                  "| asked | n | " + " | ".join(names.get(c, c) for c in BREAKDOWN_SCORES) + " |",
                  "|---|---:|" + "---:|" * len(BREAKDOWN_SCORES)]
        for attribute, groups in split.items():
            lines += [f"| {attribute} {value} | {g['n']} | " + " | ".join(_percent(g[c]) for c in BREAKDOWN_SCORES)
                      + " |" for value, g in groups.items()]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------------------ editing


@dataclass
class EditScore:
    edit_type: str
    success: bool
    preserved: bool
    pixel_agreement: float
    # why success or preservation failed: "not_as_asked", "<attribute>_changed", "shape_lost", "moved", "iou", "size"
    failures: list[str] = field(default_factory=list)
    measured: dict[str, float] = field(default_factory=dict)  # moved_px, iou, size_change_px where checked
    phrasing_split: Optional[str] = None  # "train" / "heldout" when the instruction's wording is known
    source_style: Optional[str] = None  # "filled" / "outlined": the source's shape as asked (None: no shape)
    read_source: Optional[dict] = None
    read_output: Optional[dict] = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _edited_region(edit_type: str, src: Reading, target: Attributes, size: int) -> np.ndarray:
    """Pixels the edit may change, dilated by one pixel to forgive soft edges."""
    if edit_type == "background":
        core = ndimage.binary_erosion(src.mask)
        keep = core if core.any() else src.mask  # the shape's own pixels are what must stay
        return ~keep
    region = src.region | silhouette_mask(target, size)
    return ndimage.binary_dilation(region, iterations=1)


def pixel_agreement(source_image: Any, output_image: Any, outside: np.ndarray, pixel_tol: int = 32) -> float:
    """Fraction of the `outside` pixels whose every channel changed by at most `pixel_tol` (0-255)."""
    a = to_uint8_image(source_image).astype(np.int16)
    b = to_uint8_image(output_image).astype(np.int16)
    if not outside.any():
        return 1.0
    close = (np.abs(a - b).max(axis=-1) <= pixel_tol)[outside]
    return float(close.mean())


def score_edit(
    source: Attributes,
    edit_type: str,
    target: Attributes,
    source_image: Any,
    output_image: Any,
    centre_tol: float = 2.0,
    keep_iou: float = 0.7,
    size_tol: float = 2.0,
    pixel_tol: int = 32,
    phrasing_split: Optional[str] = None,
) -> EditScore:
    """Score one edit: `source`/`target` are the asked-for attributes before/after, the images are pixels."""
    if edit_type not in _NAMED:
        raise ValueError(f"unknown edit type {edit_type!r}")
    src_reading, out_reading = read(source_image), read(output_image)
    out = out_reading.attributes
    size = out_reading.mask.shape[0]
    if edit_type == "remove":
        success = not out.has_shape
    elif edit_type == "add":
        success = out.has_shape and (out.shape, out.color, out.style) == (target.shape, target.color, target.style)
    elif edit_type == "identity":
        success = all(getattr(out, k) == getattr(target, k) for k in ("has_shape", *T2I_ATTRIBUTES))
    else:
        success = getattr(out, edit_type) == getattr(target, edit_type)

    broken: list[str] = []  # preservation failures
    measured: dict[str, float] = {}
    for name in ("background", "color", "shape", "style"):
        if name not in _NAMED[edit_type] and getattr(out, name) != getattr(source, name):
            broken.append(f"{name}_changed")
    if source.has_shape and edit_type not in ("add", "remove"):
        if not out.has_shape:
            broken.append("shape_lost")
        else:
            measured["moved_px"] = float(np.hypot(out.cx - source.cx, out.cy - source.cy))
            if measured["moved_px"] > centre_tol:
                broken.append("moved")
            if edit_type in _KEEPS_SHAPE:
                measured["iou"] = mask_iou(out_reading.region, src_reading.region)
                if measured["iou"] < keep_iou:
                    broken.append("iou")
            else:
                measured["size_change_px"] = float(abs(out.size - source.size))
                if measured["size_change_px"] > size_tol:
                    broken.append("size")

    outside = ~_edited_region(edit_type, src_reading, target, size)
    return EditScore(
        edit_type=edit_type,
        success=bool(success),
        preserved=not broken,
        pixel_agreement=pixel_agreement(source_image, output_image, outside, pixel_tol),
        failures=([] if success else ["not_as_asked"]) + broken,
        measured=measured,
        phrasing_split=phrasing_split,
        source_style=source.style if source.has_shape else None,
        read_source=src_reading.attributes.to_json(),
        read_output=out.to_json(),
    )


def summarize_edits(scores: Sequence[EditScore]) -> dict[str, Any]:
    """Per edit type: n, success, preservation, pixel agreement and the commonest failures; "average": the same
    averaged over the colour / background / shape / style types present; "per_split": that average for the
    instructions of each phrasing split ("train", "heldout") where the scores know it; "per_source_style": that
    average over the edits of filled and of outlined sources."""
    per_type: dict[str, dict[str, Any]] = {}
    for t in EDIT_TYPE_ORDER:
        group = [s for s in scores if s.edit_type == t]
        if not group:
            continue
        per_type[t] = {
            "n": len(group),
            "success": float(np.mean([s.success for s in group])),
            "preservation": float(np.mean([s.preserved for s in group])),
            "pixel_agreement": float(np.mean([s.pixel_agreement for s in group])),
            "failures": dict(Counter(f for s in group for f in s.failures).most_common()),
        }
    splits = sorted({s.phrasing_split for s in scores if s.phrasing_split})
    per_split = {sp: _core_average([s for s in scores if s.phrasing_split == sp]) for sp in splits}
    styles = sorted({s.source_style for s in scores if s.source_style})
    per_source_style = {st: _core_average([s for s in scores if s.source_style == st]) for st in styles}
    return {"n": len(scores), "per_type": per_type, "average": _core_average(scores), "per_split": per_split,
            "per_source_style": per_source_style}


def _core_average(scores: Sequence[EditScore]) -> Optional[dict[str, Any]]:
    """Success / preservation / pixel agreement averaged over the colour, background, shape and style types
    present (each type weighs the same, whatever its count)."""
    types = [t for t in CORE_EDIT_TYPES if any(s.edit_type == t for s in scores)]
    if not types:
        return None
    out: dict[str, Any] = {}
    for key, attr in (("success", "success"), ("preservation", "preserved"), ("pixel_agreement", "pixel_agreement")):
        out[key] = float(np.mean([np.mean([getattr(s, attr) for s in scores if s.edit_type == t]) for t in types]))
    out["types"] = types
    return out


def edit_markdown(summary: dict[str, Any], title: Optional[str] = None) -> str:
    lines = [f"### {title}", ""] if title else []
    lines += ["| edit type | n | success | preservation | pixel agreement |", "|---|---:|---:|---:|---:|"]
    for t, row in summary["per_type"].items():
        lines.append(f"| {t} | {row['n']} | {100 * row['success']:.1f}% | {100 * row['preservation']:.1f}% "
                     f"| {100 * row['pixel_agreement']:.1f}% |")
    rows = [("average", summary.get("average"))]
    rows += [(f"average, {sp} phrasings", avg) for sp, avg in (summary.get("per_split") or {}).items()]
    rows += [(f"average, {st} sources", avg) for st, avg in (summary.get("per_source_style") or {}).items()]
    for label, avg in rows:
        if avg:
            lines.append(f"| **{label} ({', '.join(avg['types'])})** | | **{100 * avg['success']:.1f}%** | "
                         f"**{100 * avg['preservation']:.1f}%** | **{100 * avg['pixel_agreement']:.1f}%** |")
    return "\n".join(lines) + "\n"


def _write_text(path: Path, text: str) -> Path:
    """A report file, its folder made; a failed write (a full disk) is one line naming it."""
    path = Path(path)
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return path


def write_json(path: Path, obj: Any) -> Path:
    return _write_text(path, json.dumps(obj, indent=2) + "\n")


def write_markdown(path: Path, text: str) -> Path:
    return _write_text(path, text)


def write_grid(path: Path, *args: Any, **kwargs: Any) -> Path:
    """`save_grid`, a failed write being one line naming the file."""
    with writing(path):
        return save_grid(path, *args, **kwargs)


# ---------------------------------------------------------------------------------------------------------- grid


# ------------------------------------------------------------------------------------------------------ reports


def write_t2i_report(
    out_dir: Path,
    images: Sequence[Any],
    requested: Sequence[Attributes],
    captions: Sequence[str],
    name: str = "shapes_t2i",
    grid_count: int = 32,
    grid_columns: int = 8,
) -> dict[str, Any]:
    """Score generated images and write `<name>.json` (summary and per-sample readings), `<name>.md` and
    `<name>_grid.png` (the first `grid_count` samples, captioned with what was asked) into `out_dir`."""
    summary = score_t2i(images, requested)
    out_dir = Path(out_dir)
    write_json(out_dir / f"{name}.json", summary)
    write_markdown(out_dir / f"{name}.md", t2i_markdown(summary))
    shown = list(range(min(grid_count, len(images))))
    if shown:
        rows = [shown[i:i + grid_columns] for i in range(0, len(shown), grid_columns)]
        texts = [" | ".join(captions[k] for k in row) for row in rows]
        write_grid(out_dir / f"{name}_grid.png", [[images[k] for k in row] for row in rows], captions=texts, scale=3)
    return summary


def write_edit_report(
    out_dir: Path,
    edits: Sequence[Any],
    source_images: Sequence[Any],
    output_images: Sequence[Any],
    name: str = "shapes_edit",
    grid_count: int = 16,
    **score_options: Any,
) -> dict[str, Any]:
    """Score edited outputs of `edits` (`ShapesEdit`s, or anything with source, target, edit_type, instruction)
    and write `<name>.json`, `<name>.md` and `<name>_grid.png` (source | output | rendered target rows, captioned
    with the instruction and the verdict) into `out_dir`. Returns the summary."""
    from byg_cli.data.shapes import render

    if not len(edits) == len(source_images) == len(output_images):
        raise ValueError(f"{len(edits)} edits, {len(source_images)} sources, {len(output_images)} outputs")
    scores = [
        score_edit(e.source, e.edit_type, e.target, src, out, phrasing_split=getattr(e, "phrasing_split", None),
                   **score_options)
        for e, src, out in zip(edits, source_images, output_images)
    ]
    summary = summarize_edits(scores)
    out_dir = Path(out_dir)
    per_sample = [{"instruction": e.instruction, **s.to_json()} for e, s in zip(edits, scores)]
    write_json(out_dir / f"{name}.json", {"summary": summary, "samples": per_sample})
    write_markdown(out_dir / f"{name}.md", edit_markdown(summary))
    picked = _spread_over_types(edits, grid_count)
    if picked:
        size = to_uint8_image(source_images[picked[0]]).shape[0]
        rows = [[source_images[k], output_images[k], render(edits[k].target, size)] for k in picked]
        texts = [f"{edits[k].instruction}  [{_verdict(scores[k])}]" for k in picked]
        write_grid(out_dir / f"{name}_grid.png", rows, ["source", "output", "target"], captions=texts)
    return summary


def _verdict(score: EditScore) -> str:
    done = "done" if score.success else "not done"
    kept = "kept" if score.preserved else "broke " + ",".join(f for f in score.failures if f != "not_as_asked")
    return f"{done}, {kept}"


def _spread_over_types(edits: Sequence[Any], count: int) -> list[int]:
    """Up to `count` indices, taking edit types in turn so every type shows up in the grid."""
    queues: dict[str, list[int]] = {}
    for k, e in enumerate(edits):
        queues.setdefault(e.edit_type, []).append(k)
    picked: list[int] = []
    while len(picked) < count and any(queues.values()):
        for q in queues.values():
            if q and len(picked) < count:
                picked.append(q.pop(0))
    return picked
