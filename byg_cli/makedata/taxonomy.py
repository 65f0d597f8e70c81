"""The edit taxonomy of appendix D.1: ten edit types, each described with an eye on centrality (a prominent
object or the whole background) and distinctness (a change one sees at a glance), plus the fixed list of
artistic styles offered for style edits."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EditType:
    key: str  # the value written to a record's edit_type
    title: str
    description: str
    priority: float  # the fixed sampling priority; remove and replace are slightly over-sampled


EDIT_TYPES: tuple[EditType, ...] = (
    EditType(
        "color_change", "color change",
        "Change the color of one prominent, central object (or of a large region such as a wall or the sky). "
        "Pick a new color clearly different from the current one so the change is obvious at a glance.",
        1.0,
    ),
    EditType(
        "texture_change", "texture/material change",
        "Change the material or surface texture of one prominent object (wood to marble, cotton to leather, "
        "smooth to knitted). The object keeps its shape; the new material must be easy to see.",
        1.0,
    ),
    EditType(
        "shape_adjustment", "shape adjustment",
        "Change the shape or proportions of one prominent object (round to square, short to tall, straight to "
        "curved) while it stays the same kind of object. The change must be clearly visible.",
        1.0,
    ),
    EditType(
        "add", "add",
        "Add one new, clearly visible object to the scene in a natural place, large enough to be noticed, "
        "fitting the scene's lighting and perspective.",
        1.0,
    ),
    EditType(
        "remove", "remove",
        "Remove one prominent, clearly visible object from the scene; the area it covered is filled with a "
        "plausible continuation of the surroundings. Do not pick a tiny or background detail.",
        1.3,
    ),
    EditType(
        "replace", "replace",
        "Replace one prominent, central object with a different kind of object of similar size in the same "
        "place (a dog with a cat, a mug with a vase). The new object must be obviously different.",
        1.3,
    ),
    EditType(
        "background_change", "background change",
        "Replace the entire background with a clearly different setting (a beach, a forest, a city street, a "
        "snowy field) while the main subjects stay exactly as they are.",
        1.0,
    ),
    EditType(
        "style_change", "style change",
        "Render the whole image in a different artistic style chosen from the style list, keeping the content "
        "and layout. The new style must be unmistakable.",
        1.0,
    ),
    EditType(
        "action_change", "action/pose change",
        "Change the action or pose of a prominent person or animal (standing to sitting, walking to running, "
        "arms down to arms raised). Only for images with a clearly visible person or animal.",
        1.0,
    ),
    EditType(
        "text_manipulation", "text manipulation",
        "Change, add or replace clearly legible text in the image (a sign, a label, a title) with different "
        "words. Only for images where text is a prominent element or a natural place for text exists.",
        1.0,
    ),
)

EDIT_TYPES_BY_KEY: dict[str, EditType] = {t.key: t for t in EDIT_TYPES}

# The styles a style edit may pick from (appendix D.1 names watercolor, oil painting, anime, ukiyo-e, charcoal).
ARTISTIC_STYLES: tuple[str, ...] = (
    "watercolor", "oil painting", "anime", "ukiyo-e", "charcoal drawing", "pencil sketch", "pixel art",
    "pop art", "impressionist painting", "cubist painting", "stained glass", "comic book", "low-poly 3D render",
    "claymation", "mosaic",
)

PHOTOREALISTIC = "photorealistic"


def normalise_edit_type(value: str) -> str | None:
    """Map what a VLM writes ("Color change", "texture/material change", "style-change", "remove") to a key."""
    text = value.strip().lower().replace("-", " ").replace("_", " ").replace("/", " ")
    words = " ".join(text.split())
    for t in EDIT_TYPES:
        forms = {t.key.replace("_", " "), " ".join(t.title.replace("/", " ").split())}
        if words in forms:
            return t.key
    aliases = {"color": "color_change", "colour change": "color_change", "colour": "color_change",
               "texture": "texture_change", "material change": "texture_change", "material": "texture_change",
               "shape": "shape_adjustment", "shape change": "shape_adjustment", "background": "background_change",
               "style": "style_change", "action": "action_change", "pose change": "action_change",
               "pose": "action_change", "text": "text_manipulation", "text change": "text_manipulation",
               "addition": "add", "removal": "remove", "replacement": "replace"}
    return aliases.get(words)


def target_shares() -> dict[str, float]:
    """The share each edit type should reach when usage balancing is on: its priority, normalised to sum 1."""
    total = sum(t.priority for t in EDIT_TYPES)
    return {t.key: t.priority / total for t in EDIT_TYPES}
