"""The instruction sent with each image (appendix D.1): the allowed edit types with their descriptions, the
style list, the rules that make a tuple usable by the unpaired objective, and the JSON answer format."""

from __future__ import annotations

from dataclasses import dataclass

from byg_cli.makedata.taxonomy import ARTISTIC_STYLES, EDIT_TYPES_BY_KEY, PHOTOREALISTIC

SYSTEM_PROMPT = (
    "You design image edits for training an instruction-based image editor. You look at one image and answer "
    "with exactly one JSON object and nothing else."
)

FIELDS_SPEC = """Answer with exactly one JSON object with these five string fields:
{
  "edit_type": one of the allowed edit types above (its key),
  "src_caption": a detailed caption of the image exactly as it is,
  "instruction": the edit instruction to apply to the image,
  "tgt_caption": a detailed caption of the image after the edit,
  "reverse_instruction": the instruction that turns the edited image back into this image
}"""

RULES = """Rules:
- Choose exactly one edit type, and only from the allowed edit types.
- The edit must affect a prominent object or the entire background, and must be clearly visible.
- src_caption describes the image as observed; if the image is not a photograph (a drawing, painting, render,
  cartoon...), name its style in src_caption.
- tgt_caption describes only the final edited image, as if it had always been that way. Do not use temporal
  language ("now", "changed to", "has been", "after the edit", "no longer") and do not use negative phrasing
  ("without X", "no X", "missing X", "removed"); describe what is there.
- reverse_instruction must be self-contained: it directly states the transformation to apply to the edited
  image (e.g. "Change the car color to red"). Never refer to an earlier or original state: do not use
  "restore", "revert", "undo", "original", "previous", "back to" or "again".
- Output the JSON object only, with no explanation and no markdown."""


@dataclass(frozen=True)
class ImageContext:
    """What the metadata knows about an image."""

    caption: str | None = None
    labels: tuple[str, ...] = ()
    photorealistic: bool | None = None


def build_prompt(allowed: list[str], context: ImageContext, *, force_photorealistic: bool = False) -> str:
    parts = []
    if force_photorealistic:
        parts.append(
            "This image is not photorealistic. The edit must be a style change (edit_type \"style_change\") "
            f"that turns the whole image into a {PHOTOREALISTIC} photograph of the same content. src_caption must "
            "name the image's current style; reverse_instruction turns the photograph into that style."
        )
    lines = ["Allowed edit types (choose exactly one):"]
    for key in allowed:
        t = EDIT_TYPES_BY_KEY[key]
        lines.append(f'- "{key}" ({t.title}): {t.description}')
    parts.append("\n".join(lines))
    if "style_change" in allowed and not force_photorealistic:
        parts.append("For a style change, pick the target style from: " + ", ".join(ARTISTIC_STYLES) + ".")
    known = []
    if context.caption:
        known.append(f"Caption: {context.caption}")
    if context.labels:
        known.append("Labels: " + ", ".join(context.labels))
    if context.photorealistic is False:
        known.append("The image is not photorealistic.")
    if known:
        parts.append("Known about this image (may be incomplete):\n" + "\n".join(known))
    parts.append(RULES)
    parts.append(FIELDS_SPEC)
    return "\n\n".join(parts)
