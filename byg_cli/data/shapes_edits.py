"""Edit tuples of the shapes world in the paper's format (x, p_src, p_tgt, c, c_bar, edit_type).

Six edit types: "color" (shape colour), "background", "shape" (replace the shape type), "style" (filled <->
outlined), "add" (empty canvas -> a shape), "remove" (a shape -> empty canvas). Each type has several instruction
phrasings, each marked `split="train"` or `split="heldout"` (held-out phrasings are never sampled for training and
test whether an editor generalises over wording). Reverse instructions are ordinary, self-contained instructions
of the opposite edit (they never say "restore", "revert", "undo" or "original").

`apply_edit` gives the ground-truth target attributes (geometry unchanged), so the target image is renderable for
the supervised baseline and for evaluation; the `byg` objective never sees it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Optional, Sequence

import numpy as np

from byg_cli.data.shapes import (
    COLORS,
    DEFAULT_IMAGE_SIZE,
    SHAPES,
    Attributes,
    caption,
    sample_attributes,
    with_articles,
)

# The edits that change one attribute and keep every other: success and preservation are averaged over these.
CORE_EDIT_TYPES: tuple[str, ...] = ("color", "background", "shape", "style")
EDIT_TYPES: tuple[str, ...] = (*CORE_EDIT_TYPES, "add", "remove")
SPLITS: tuple[str, ...] = ("train", "heldout")


@dataclass(frozen=True)
class Phrasing:
    template: str
    split: str  # "train" or "heldout"


# Placeholders: {shape} {color} {background} of the source, {new_*} of the target, {style_word} for add/remove.
# Style edits have two directions, so they are keyed by the target style.
PHRASINGS: dict[str, tuple[Phrasing, ...]] = {
    "color": (
        Phrasing("make the {shape} {new_color}", "train"),
        Phrasing("change the colour of the {shape} to {new_color}", "train"),
        Phrasing("turn the {color} {shape} {new_color}", "train"),
        Phrasing("change the {shape} from {color} to {new_color}", "train"),
        Phrasing("recolor the {shape} {new_color}", "heldout"),
        Phrasing("paint the {shape} {new_color}", "heldout"),
    ),
    "background": (
        Phrasing("make the background {new_background}", "train"),
        Phrasing("change the background to {new_background}", "train"),
        Phrasing("turn the {background} background {new_background}", "train"),
        Phrasing("replace the {background} background with a {new_background} one", "train"),
        Phrasing("set the background colour to {new_background}", "heldout"),
        Phrasing("give the picture a {new_background} background", "heldout"),
    ),
    "shape": (
        Phrasing("turn the {shape} into a {new_shape}", "train"),
        Phrasing("replace the {shape} with a {new_shape}", "train"),
        Phrasing("change the {color} {shape} to a {new_shape}", "train"),
        Phrasing("make the {shape} a {new_shape}", "train"),
        Phrasing("swap the {shape} for a {new_shape}", "heldout"),
        Phrasing("reshape the {color} {shape} into a {new_shape}", "heldout"),
    ),
    "style:outlined": (
        Phrasing("make the {shape} outlined", "train"),
        Phrasing("turn the {shape} into an outline", "train"),
        Phrasing("hollow out the {color} {shape}", "train"),
        Phrasing("draw only the outline of the {shape}", "heldout"),
        Phrasing("make the {color} {shape} hollow", "heldout"),
    ),
    "style:filled": (
        Phrasing("fill in the {shape}", "train"),
        Phrasing("make the {shape} solid", "train"),
        Phrasing("fill the {shape} with {color}", "train"),
        Phrasing("colour in the outlined {shape}", "heldout"),
        Phrasing("make the {color} {shape} filled", "heldout"),
    ),
    "add": (
        Phrasing("add a {new_color} {style_word}{new_shape}", "train"),
        Phrasing("draw a {new_color} {style_word}{new_shape}", "train"),
        Phrasing("put a {new_color} {style_word}{new_shape} on the background", "train"),
        Phrasing("place a {new_color} {style_word}{new_shape} in the picture", "heldout"),
        Phrasing("insert a {new_color} {style_word}{new_shape}", "heldout"),
    ),
    "remove": (
        Phrasing("remove the {color} {shape}", "train"),
        Phrasing("delete the {shape}", "train"),
        Phrasing("erase the {color} {shape}", "train"),
        Phrasing("take away the {shape}", "heldout"),
        Phrasing("get rid of the {color} {shape}", "heldout"),
    ),
}
FORBIDDEN_REVERSE_WORDS: tuple[str, ...] = ("restore", "revert", "undo", "original")
_STYLE_WORD = {"filled": "", "outlined": "outlined "}


@dataclass(frozen=True)
class Edit:
    """What an edit asks for: its type and the new attribute values.

    color: {"color"}; background: {"background"}; shape: {"shape"}; style: {"style"};
    add: {"shape", "color", "style", "cx", "cy", "size"}; remove: {}.
    """

    edit_type: str
    values: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ShapesEdit:
    """One edit tuple: the paper's (x, p_src, p_tgt, c, c_bar, edit_type) plus the attributes behind it."""

    source: Attributes
    target: Attributes
    src_caption: str
    tgt_caption: str
    instruction: str
    reverse_instruction: str
    edit_type: str
    phrasing_split: str

    @property
    def edit(self) -> Edit:
        return edit_between(self.source, self.target, self.edit_type)


def apply_edit(attrs: Attributes, edit: Edit) -> Attributes:
    """The ground-truth result of `edit` on `attrs`; the geometry (centre, size) never changes."""
    t, v = edit.edit_type, edit.values
    if t not in EDIT_TYPES:
        raise ValueError(f"unknown edit type {t!r} (expected one of {', '.join(EDIT_TYPES)})")
    if t == "add":
        if attrs.has_shape:
            raise ValueError("an add edit needs an empty canvas")
        return Attributes(v["shape"], v["color"], attrs.background, v["style"], v["cx"], v["cy"], v["size"])
    if t == "background":
        if v["background"] == attrs.background:
            raise ValueError(f"background edit to the same colour {attrs.background!r}")
        return attrs.replace(background=v["background"])  # Attributes rejects a clash with the shape colour
    if not attrs.has_shape:
        raise ValueError(f"a {t} edit needs a shape in the source")
    if t == "remove":
        return Attributes(None, None, attrs.background, None)
    key = {"color": "color", "shape": "shape", "style": "style"}[t]
    if v[key] == getattr(attrs, key):
        raise ValueError(f"{t} edit to the same value {v[key]!r}")
    return attrs.replace(**{key: v[key]})


def edit_between(source: Attributes, target: Attributes, edit_type: str) -> Edit:
    """The `Edit` of `edit_type` that turns `source` into `target`."""
    if edit_type == "add":
        t = target
        return Edit("add", dict(shape=t.shape, color=t.color, style=t.style, cx=t.cx, cy=t.cy, size=t.size))
    if edit_type == "remove":
        return Edit("remove", {})
    return Edit(edit_type, {edit_type: getattr(target, edit_type)})


def phrasings(edit_type: str, split: Optional[str] = None, target_style: Optional[str] = None) -> list[Phrasing]:
    """The phrasings of one edit type (for "style", of the direction towards `target_style`), optionally one split."""
    key = f"style:{target_style}" if edit_type == "style" else edit_type
    if key not in PHRASINGS:
        raise ValueError(f"no phrasings for edit type {edit_type!r} (style needs target_style)")
    return [p for p in PHRASINGS[key] if split is None or p.split == split]


def instruction(
    source: Attributes,
    target: Attributes,
    edit_type: str,
    rng: Optional[np.random.Generator] = None,
    split: str = "train",
    index: Optional[int] = None,
) -> str:
    """A natural instruction that turns `source` into `target` (a random phrasing of `split`, or number `index`)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    options = phrasings(edit_type, split, target_style=target.style if edit_type == "style" else None)
    if index is None:
        index = int(rng.integers(len(options))) if rng is not None else 0
    shown = target if edit_type == "add" else source
    return with_articles(options[index].template.format(
        shape=source.shape,
        color=source.color,
        background=source.background,
        new_shape=target.shape,
        new_color=target.color,
        new_background=target.background,
        style_word=_STYLE_WORD.get(shown.style, ""),
    ))


_REVERSE_TYPE = {"add": "remove", "remove": "add"}


def make_edit(
    source: Attributes,
    edit: Edit,
    rng: Optional[np.random.Generator] = None,
    split: str = "train",
) -> ShapesEdit:
    """The full tuple for `edit` applied to `source`: captions, instruction and reverse instruction."""
    target = apply_edit(source, edit)
    reverse_type = _REVERSE_TYPE.get(edit.edit_type, edit.edit_type)
    return ShapesEdit(
        source=source,
        target=target,
        src_caption=caption(source, rng),
        tgt_caption=caption(target, rng),
        instruction=instruction(source, target, edit.edit_type, rng, split),
        reverse_instruction=instruction(target, source, reverse_type, rng, split),
        edit_type=edit.edit_type,
        phrasing_split=split,
    )


def _other(rng: np.random.Generator, options: Sequence[str], *avoid: Optional[str]) -> str:
    choices = [o for o in options if o not in avoid]
    return choices[int(rng.integers(len(choices)))]


def check_edit_types(types: Optional[Iterable[str]], flag: str = "--edit-type") -> None:
    """Refuse, in one line naming the flag, edit types the shapes world does not have."""
    import difflib

    from byg_cli.errors import BygError

    for name in types or ():
        if name not in EDIT_TYPES:
            close = difflib.get_close_matches(name, EDIT_TYPES, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise BygError(f"{flag} {name}: not a shapes-world edit type{hint}; choose from {', '.join(EDIT_TYPES)}")


def sample_edit(
    rng: np.random.Generator,
    edit_types: Optional[Iterable[str]] = None,
    split: str = "train",
    image_size: int = DEFAULT_IMAGE_SIZE,
) -> ShapesEdit:
    """A random edit tuple: random source, random edit of one of `edit_types` (default all six), phrasings of `split`."""
    types = tuple(edit_types) if edit_types else EDIT_TYPES
    unknown = [t for t in types if t not in EDIT_TYPES]
    if unknown:
        raise ValueError(f"unknown edit type(s) {unknown} (expected some of {', '.join(EDIT_TYPES)})")
    edit_type = types[int(rng.integers(len(types)))]
    source = sample_attributes(rng, image_size, empty=edit_type == "add")
    if edit_type == "color":
        edit = Edit("color", {"color": _other(rng, COLORS, source.color, source.background)})
    elif edit_type == "background":
        edit = Edit("background", {"background": _other(rng, COLORS, source.color, source.background)})
    elif edit_type == "shape":
        edit = Edit("shape", {"shape": _other(rng, SHAPES, source.shape)})
    elif edit_type == "style":
        edit = Edit("style", {"style": "outlined" if source.style == "filled" else "filled"})
    elif edit_type == "add":
        shown = sample_attributes(rng, image_size, background=source.background)
        edit = edit_between(source, shown, "add")
    else:
        edit = Edit("remove", {})
    return make_edit(source, edit, rng, split)


def edit_for_index(
    seed: int,
    index: int,
    edit_types: Optional[Iterable[str]] = None,
    split: str = "train",
    image_size: int = DEFAULT_IMAGE_SIZE,
) -> ShapesEdit:
    """Edit number `index` of the stream fixed by `seed`: the same for the dataset writer and the on-the-fly stream,
    whatever order or chunk the items are made in."""
    return sample_edit(np.random.default_rng([seed, index]), edit_types, split, image_size)


def evaluation_edits(
    seed: int,
    per_type: int,
    edit_types: Optional[Iterable[str]] = None,
    splits: Sequence[str] = ("train", "heldout"),
    image_size: int = DEFAULT_IMAGE_SIZE,
) -> list[ShapesEdit]:
    """A balanced evaluation set: `per_type` edits of each type, phrasings taken from `splits` in turn (so half
    use wordings never seen in training by default). Use a seed the training stream does not use."""
    types = tuple(edit_types) if edit_types else EDIT_TYPES
    out = []
    for t_index, edit_type in enumerate(types):
        for k in range(per_type):
            rng = np.random.default_rng([seed, t_index, k])
            out.append(sample_edit(rng, (edit_type,), splits[k % len(splits)], image_size))
    return out


def identity_edits(edits: Iterable[ShapesEdit]) -> list[ShapesEdit]:
    """The identity check of each colour / background / shape / style edit: its source with its reverse
    instruction, which asks for what the source already is ("make the circle blue" of a blue circle), so the
    right output is the source itself (the condition of the paper's identity loss). Add and remove are left out:
    their reverse instructions would add a second shape or remove the one there is."""
    return [ShapesEdit(source=e.source, target=e.source, src_caption=e.src_caption, tgt_caption=e.src_caption,
                       instruction=e.reverse_instruction, reverse_instruction=e.reverse_instruction,
                       edit_type="identity", phrasing_split=e.phrasing_split)
            for e in edits if e.edit_type in CORE_EDIT_TYPES]


def edit_tuple(edit: ShapesEdit) -> dict[str, Any]:
    """The record fields of `edit` (everything but the image): the paper's tuple plus attributes."""
    return {
        "src_caption": edit.src_caption,
        "instruction": edit.instruction,
        "tgt_caption": edit.tgt_caption,
        "reverse_instruction": edit.reverse_instruction,
        "edit_type": edit.edit_type,
        "src_attributes": edit.source.to_json(),
        "tgt_attributes": edit.target.to_json(),
        "phrasing_split": edit.phrasing_split,
    }


def shapes_corpus() -> list[str]:
    """Lines that together use every word the shapes world can say (captions of every kind, train and held-out
    instructions of every edit type), enumerated rather than sampled: a complete corpus for a word-level
    tokenizer of the tiny base model."""
    from byg_cli.data.shapes import N_PHRASINGS, STYLES

    lines = []
    for k in range(max(len(COLORS), len(SHAPES))):
        color, background = COLORS[k % len(COLORS)], COLORS[(k + 1) % len(COLORS)]
        for style in STYLES:
            attrs = Attributes(SHAPES[k % len(SHAPES)], color, background, style, 16.0, 16.0, 16)
            lines += [caption(attrs, phrasing=p) for p in range(N_PHRASINGS)]
            lines += [caption(attrs.replace(shape=None, color=None, style=None), phrasing=p) for p in range(N_PHRASINGS)]
            values = dict(
                shape=SHAPES[k % len(SHAPES)], new_shape=SHAPES[(k + 1) % len(SHAPES)],
                color=color, new_color=COLORS[(k + 2) % len(COLORS)],
                background=background, new_background=COLORS[(k + 3) % len(COLORS)],
                style_word=_STYLE_WORD[style],
            )
            lines += [with_articles(p.template.format(**values)) for group in PHRASINGS.values() for p in group]
    return sorted(set(lines))
