"""The shapes world's renderer: one shape of a palette colour on a plain palette background, and its captions.

Geometry is in pixel units of the image: pixel (row i, column j) covers [j, j+1) x [i, i+1) and is drawn when its
centre (j + 0.5, i + 0.5) lies inside the shape. `size` is the side of the shape's bounding box (circle diameter,
square side, triangle base and height); `cx, cy` is the bounding box's centre. Sampled attributes put the box on
whole pixels (`cx - size / 2` is an integer), so a clean render's mask has exactly that bounding box, which is what
makes the analytic reader (`shapes_reader.py`) exact. Renders are hard-edged (no anti-aliasing).

Everything is deterministic from a `numpy.random.Generator`.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, replace
from typing import Any, Optional

import numpy as np
from scipy import ndimage

# Eight colours chosen so that none lies near the RGB segment between two others (>= 113 apart; pairs >= 160
# apart): a blurred edge, a mix of shape and background colour, can then never pass for a third palette colour.
# (An orange sits on the red-yellow segment, so the palette has none.)
PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (220, 20, 20),
    "yellow": (250, 230, 0),
    "green": (0, 160, 0),
    "cyan": (0, 210, 230),
    "blue": (20, 40, 220),
    "magenta": (230, 0, 230),
    "white": (255, 255, 255),
    "black": (0, 0, 0),
}
COLORS: tuple[str, ...] = tuple(PALETTE)
SHAPES: tuple[str, ...] = ("circle", "square", "triangle")
STYLES: tuple[str, ...] = ("filled", "outlined")

DEFAULT_IMAGE_SIZE = 32
# At 32 px: shapes 14-22 px across, outlines 2 px thick; both scale with the image size.
_MIN_SIZE_FRAC = 14 / 32
_MAX_SIZE_FRAC = 22 / 32
_MARGIN_FRAC = 1 / 32  # keep one pixel of plain background all round at 32 px: the reader reads the border


@dataclass(frozen=True)
class Attributes:
    """What a shapes-world image shows. `shape is None` is an empty canvas (then color/style/geometry are None)."""

    shape: Optional[str]
    color: Optional[str]
    background: str
    style: Optional[str]
    cx: Optional[float] = None
    cy: Optional[float] = None
    size: Optional[float] = None

    def __post_init__(self) -> None:
        if self.background not in PALETTE:
            raise ValueError(f"background {self.background!r} is not a palette colour ({', '.join(COLORS)})")
        if self.shape is None:
            return
        if self.shape not in SHAPES:
            raise ValueError(f"shape {self.shape!r} is not one of {', '.join(SHAPES)}")
        if self.color not in PALETTE:
            raise ValueError(f"color {self.color!r} is not a palette colour ({', '.join(COLORS)})")
        if self.color == self.background:
            raise ValueError(f"shape colour and background are both {self.color!r}")
        if self.style not in STYLES:
            raise ValueError(f"style {self.style!r} is not one of {', '.join(STYLES)}")
        if self.cx is None or self.cy is None or self.size is None:
            raise ValueError("a shape needs cx, cy and size")

    @property
    def has_shape(self) -> bool:
        return self.shape is not None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> "Attributes":
        return cls(**{k: obj.get(k) for k in ("shape", "color", "background", "style", "cx", "cy", "size")})

    def replace(self, **changes: Any) -> "Attributes":
        return replace(self, **changes)


def size_range(image_size: int = DEFAULT_IMAGE_SIZE) -> tuple[int, int]:
    """Smallest and largest shape size (px) sampled at this image size."""
    return round(_MIN_SIZE_FRAC * image_size), round(_MAX_SIZE_FRAC * image_size)


def outline_thickness(image_size: int = DEFAULT_IMAGE_SIZE) -> int:
    return max(2, round(2 * image_size / 32))


def corner_range(size: int, image_size: int = DEFAULT_IMAGE_SIZE) -> range:
    """Where a shape's bounding box may start (px, each axis): whole pixels, a plain border all round."""
    margin = max(1, round(_MARGIN_FRAC * image_size))
    return range(margin, image_size - margin - size + 1)


def sample_geometry(rng: np.random.Generator, image_size: int = DEFAULT_IMAGE_SIZE) -> tuple[float, float, int]:
    """Random (cx, cy, size): the size uniform in `size_range`, then each corner coordinate uniform in
    `corner_range`."""
    lo, hi = size_range(image_size)
    size = int(rng.integers(lo, hi + 1))
    corners = corner_range(size, image_size)
    x0, y0 = (int(v) for v in rng.integers(corners.start, corners.stop, size=2))
    return x0 + size / 2, y0 + size / 2, size


def sample_attributes(
    rng: np.random.Generator,
    image_size: int = DEFAULT_IMAGE_SIZE,
    empty: bool = False,
    **fixed: Any,
) -> Attributes:
    """Random attributes; any attribute given in `fixed` is kept (the others avoid clashing with it)."""
    background = fixed.get("background")
    if background is None:
        choices = [c for c in COLORS if c != fixed.get("color")]
        background = choices[rng.integers(len(choices))]
    if empty:
        return Attributes(None, None, background, None)
    color = fixed.get("color")
    if color is None:
        choices = [c for c in COLORS if c != background]
        color = choices[rng.integers(len(choices))]
    shape = fixed.get("shape") or SHAPES[rng.integers(len(SHAPES))]
    style = fixed.get("style") or STYLES[rng.integers(len(STYLES))]
    cx, cy, size = sample_geometry(rng, image_size)
    return Attributes(shape, color, background, style, fixed.get("cx", cx), fixed.get("cy", cy), fixed.get("size", size))


def _pixel_centres(image_size: int) -> tuple[np.ndarray, np.ndarray]:
    c = np.arange(image_size, dtype=np.float64) + 0.5
    return c[None, :], c[:, None]  # x (1, W), y (H, 1)


def filled_mask(shape: str, cx: float, cy: float, size: float, image_size: int = DEFAULT_IMAGE_SIZE) -> np.ndarray:
    """Boolean (H, W) silhouette of a shape whose bounding box is `size` px wide, centred at (cx, cy)."""
    x, y = _pixel_centres(image_size)
    half = size / 2
    if shape == "circle":
        return (x - cx) ** 2 + (y - cy) ** 2 <= half**2
    if shape == "square":
        return (cx - half <= x) & (x < cx + half) & (cy - half <= y) & (y < cy + half)
    if shape == "triangle":
        # Apex up: the half-width grows by 0.5 px per px down, plus half a pixel so the apex row is drawn too.
        top = cy - half
        inside_rows = (top <= y) & (y < cy + half)
        return inside_rows & (np.abs(x - cx) <= (y - top) / 2 + 0.5)
    raise ValueError(f"unknown shape {shape!r}")


def shape_mask(attrs: Attributes, image_size: int = DEFAULT_IMAGE_SIZE) -> np.ndarray:
    """Boolean (H, W) mask of the pixels painted in the shape colour (the outline only, for outlined shapes)."""
    if not attrs.has_shape:
        return np.zeros((image_size, image_size), dtype=bool)
    filled = filled_mask(attrs.shape, attrs.cx, attrs.cy, attrs.size, image_size)
    if attrs.style == "filled":
        return filled
    # The outline is every pixel within `thickness` + 0.5 px (Euclidean, centre to centre) of the outside: a ring is
    # round and of even width all the way (a square-element erosion would make small rings look octagonal).
    distance_to_outside = ndimage.distance_transform_edt(np.pad(filled, 1))[1:-1, 1:-1]
    return filled & (distance_to_outside <= outline_thickness(image_size) + 0.5)


def silhouette_mask(attrs: Attributes, image_size: int = DEFAULT_IMAGE_SIZE) -> np.ndarray:
    """The region the shape occupies, holes included (what the reader's IoU checks compare)."""
    if not attrs.has_shape:
        return np.zeros((image_size, image_size), dtype=bool)
    return filled_mask(attrs.shape, attrs.cx, attrs.cy, attrs.size, image_size)


def render(attrs: Attributes, image_size: int = DEFAULT_IMAGE_SIZE) -> np.ndarray:
    """(H, W, 3) uint8 RGB image of `attrs`."""
    img = np.empty((image_size, image_size, 3), dtype=np.uint8)
    img[:] = PALETTE[attrs.background]
    if attrs.has_shape:
        img[shape_mask(attrs, image_size)] = PALETTE[attrs.color]
    return img


# ---------------------------------------------------------------------------------------------------- captions

_SHAPE_PHRASINGS = (
    "a {color} {style}{shape} on a {background} background",
    "{background} background with a {color} {style}{shape}",
    "a {style}{shape} in {color} on a {background} background",
    "a {color} {style}{shape} against a {background} background",
    "a {background} background showing a {color} {style}{shape}",
)
_EMPTY_PHRASINGS = (
    "a plain {background} background",
    "an empty {background} background",
    "a {background} background with nothing on it",
    "a blank {background} background",
    "just a {background} background",
)
N_PHRASINGS = len(_SHAPE_PHRASINGS)
_STYLE_WORD = {"filled": "", "outlined": "outlined "}


_A_BEFORE_VOWEL = re.compile(r"\b([Aa]) (?=[aeiou])")


def with_articles(text: str) -> str:
    """'a outlined circle' -> 'an outlined circle'."""
    return _A_BEFORE_VOWEL.sub(lambda m: m.group(1) + "n ", text)


def caption(attrs: Attributes, rng: Optional[np.random.Generator] = None, phrasing: Optional[int] = None) -> str:
    """Describe `attrs`. Filled shapes carry no style word ("a red circle"), outlined ones say "outlined".

    `phrasing` picks one of `N_PHRASINGS` sentence forms; without it a random one is drawn from `rng`, and with
    neither the first ("a red circle on a blue background") is used.
    """
    if phrasing is None:
        phrasing = int(rng.integers(N_PHRASINGS)) if rng is not None else 0
    if not 0 <= phrasing < N_PHRASINGS:
        raise ValueError(f"phrasing must be in 0..{N_PHRASINGS - 1}, got {phrasing}")
    if not attrs.has_shape:
        return with_articles(_EMPTY_PHRASINGS[phrasing].format(background=attrs.background))
    return with_articles(
        _SHAPE_PHRASINGS[phrasing].format(
            color=attrs.color, style=_STYLE_WORD[attrs.style], shape=attrs.shape, background=attrs.background
        )
    )


def caption_for_index(
    seed: int, index: int, image_size: int = DEFAULT_IMAGE_SIZE, empty_fraction: float = 0.1
) -> tuple[Attributes, str]:
    """Text-to-image sample number `index` of the stream fixed by `seed`: its attributes and a random caption."""
    rng = np.random.default_rng([seed, index])
    attrs = sample_attributes(rng, image_size, empty=bool(rng.random() < empty_fraction))
    return attrs, caption(attrs, rng)
