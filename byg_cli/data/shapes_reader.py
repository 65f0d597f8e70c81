"""The analytic attribute reader of the shapes world: pixels -> `Attributes`, with no learned part.

Steps (all geometry, all on one image):

1. background = the majority palette colour of the one-pixel border (sampled shapes never touch it);
2. foreground = pixels whose nearest palette colour is not the background; the largest 8-connected blob is the
   shape, smaller blobs are noise; too small a blob means an empty canvas;
3. colour = the palette colour c for which the blob's pixels lie closest to the segment background -> c (a
   blurred edge is a mix of the two), never the background itself; then the mask is refined: a pixel belongs to the
   shape when it lies more than half-way from the background colour to the shape colour (the 50 % line of blurred
   edges), lightly smoothed against pixel noise, and the largest blob is kept again;
4. hull = the convex hull of the mask (all shapes are convex, so an outline's hull is the filled shape, and a
   clean render's hull is exactly its own silhouette);
5. shape type = the shape whose clean silhouette, fitted to the hull's bounding box, overlaps the hull best
   (intersection over union); centre and size = the bounding box's centre and longer side;
6. style = filled when the mask covers at least `FILLED_COVERAGE` of the hull (a 2 px outline covers at most
   ~0.8 of it, a filled shape all of it).

`Reading.region` (the mask with holes filled) is what IoU checks compare: unlike the hull it keeps a ragged
blob's dents, so `clean_render_iou` tells a crisp shape from a blob.

It is exact on clean renders and degrades gracefully with noise and blur (see tests/test_shapes_reader.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage
from scipy.spatial import ConvexHull, QhullError

from byg_cli.data.shapes import (
    COLORS,
    DEFAULT_IMAGE_SIZE,
    PALETTE,
    SHAPES,
    Attributes,
    filled_mask,
    shape_mask,
    silhouette_mask,
)

_PALETTE_RGB = np.array([PALETTE[c] for c in COLORS], dtype=np.float64)  # (K, 3)
FILLED_COVERAGE = 0.9
MIN_SHAPE_AREA_FRAC = 24 / (32 * 32)  # the smallest sampled shape covers >= 80 px at 32 px
_EIGHT = np.ones((3, 3), dtype=bool)
# 3x3 Gaussian (sigma 0.5): averages pixel noise yet keeps every pixel of a hard-edged render on its side of 0.5
_SMOOTH = np.exp(-np.add.outer(np.arange(-1, 2) ** 2, np.arange(-1, 2) ** 2) / (2 * 0.5**2))
_SMOOTH /= _SMOOTH.sum()


@dataclass
class Reading:
    """What the reader saw: the attributes plus the masks and the evidence behind them."""

    attributes: Attributes
    mask: np.ndarray  # (H, W) bool: pixels of the shape's colour (the outline only, for an outlined shape)
    region: np.ndarray  # (H, W) bool: `mask` with its holes filled (one-pixel gaps bridged): what the shape covers
    hull: np.ndarray  # (H, W) bool: convex hull of `mask`, from which type, centre, size and style are read
    shape_scores: dict[str, float]  # IoU of the hull with each shape's clean silhouette
    coverage: float  # |mask| / |hull|; ~1 filled, lower outlined
    color_distance: float  # RGB distance from the median of the shape's purer pixels to its palette colour

    def to_json(self) -> dict[str, Any]:
        return {
            "attributes": self.attributes.to_json(),
            "shape_scores": self.shape_scores,
            "coverage": self.coverage,
            "color_distance": self.color_distance,
        }


def to_uint8_image(pixels: Any) -> np.ndarray:
    """(H, W, 3) uint8 from uint8 (H, W, 3) / (3, H, W), or a float array / torch tensor in [-1, 1] of either layout."""
    if hasattr(pixels, "detach"):  # a torch tensor; imported lazily so the reader needs no torch
        pixels = pixels.detach().float().cpu().numpy()
    arr = np.asarray(pixels)
    if arr.ndim != 3:
        raise ValueError(f"expected one image with 3 dimensions, got shape {arr.shape}")
    if arr.shape[0] == 3 and arr.shape[-1] != 3:
        arr = arr.transpose(1, 2, 0)
    if arr.shape[-1] != 3:
        raise ValueError(f"expected 3 colour channels, got shape {arr.shape}")
    if arr.dtype == np.uint8:
        return arr
    return np.clip(np.rint((arr.astype(np.float64) + 1.0) * 127.5), 0, 255).astype(np.uint8)


def nearest_palette(rgb: np.ndarray) -> np.ndarray:
    """Index into `COLORS` of the nearest palette colour for each RGB triple (..., 3)."""
    d = ((rgb[..., None, :].astype(np.float64) - _PALETTE_RGB) ** 2).sum(-1)
    return d.argmin(-1)


def _mixing(pixels: np.ndarray, bg_index: int) -> tuple[np.ndarray, np.ndarray]:
    """For every palette colour c: each pixel's mixing weight t in [0, 1] on the line background -> c, and the
    squared distance of the pixel from that line. Shapes (K, N)."""
    bg = _PALETTE_RGB[bg_index]
    axes = _PALETTE_RGB - bg  # (K, 3)
    norms = np.maximum((axes**2).sum(-1), 1e-9)  # (K,)
    rel = pixels - bg  # (N, 3)
    t = np.clip((axes @ rel.T) / norms[:, None], 0.0, 1.0)  # (K, N)
    resid = ((rel[None, :, :] - t[..., None] * axes[:, None, :]) ** 2).sum(-1)
    return t, resid


def _unmix_color(pixels: np.ndarray, bg_index: int) -> int:
    _, resid = _mixing(pixels, bg_index)
    cost = resid.sum(axis=1)
    cost[bg_index] = np.inf
    return int(cost.argmin())


def _purest(pixels: np.ndarray, bg_index: int, color_index: int) -> np.ndarray:
    """The pixels at least half-way to the shape colour (all of them if none is)."""
    t, _ = _mixing(pixels, bg_index)
    keep = t[color_index] >= 0.5
    return keep if keep.any() else np.ones(len(pixels), dtype=bool)


def _largest_blob(mask: np.ndarray) -> np.ndarray:
    labels, n = ndimage.label(mask, structure=_EIGHT)
    if n <= 1:
        return mask.copy()
    sizes = np.bincount(labels.ravel())[1:]
    return labels == (1 + int(sizes.argmax()))


def convex_hull_mask(mask: np.ndarray) -> np.ndarray:
    """Pixels whose centre lies in the convex hull of the centres of `mask`'s pixels (the mask itself if degenerate)."""
    ys, xs = np.nonzero(mask)
    if len(xs) < 3:
        return mask.copy()
    pts = np.stack([xs, ys], axis=1).astype(np.float64)
    try:
        hull = ConvexHull(pts)
    except QhullError:  # all on one line
        return mask.copy()
    h, w = mask.shape
    gy, gx = np.mgrid[0:h, 0:w]
    grid = np.stack([gx.ravel(), gy.ravel(), np.ones(h * w)], axis=1)
    inside = (grid @ hull.equations.T <= 1e-9).all(axis=1)
    return inside.reshape(h, w) | mask


def filled_region(mask: np.ndarray) -> np.ndarray:
    """`mask` with its holes filled; a closing first bridges one-pixel gaps in an outline."""
    closed = ndimage.binary_closing(mask, structure=_EIGHT)
    return ndimage.binary_fill_holes(closed) | mask


def _bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(mask)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def mask_iou(mask_a: np.ndarray, mask_b: np.ndarray) -> float:
    """Intersection over union of two boolean masks (1.0 when both are empty)."""
    a, b = np.asarray(mask_a, bool), np.asarray(mask_b, bool)
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def read(pixels: Any) -> Reading:
    """Read one image (uint8 HxWx3, or float/tensor in [-1, 1]) back into attributes."""
    img = to_uint8_image(pixels)
    h, w, _ = img.shape
    if h != w:
        raise ValueError(f"shapes-world images are square; got {h}x{w}")
    rgb = img.astype(np.float64)
    labels = nearest_palette(rgb)

    border = np.concatenate([labels[0], labels[-1], labels[1:-1, 0], labels[1:-1, -1]])
    bg_index = int(np.bincount(border, minlength=len(COLORS)).argmax())
    background = COLORS[bg_index]
    empty = np.zeros((h, w), dtype=bool)

    def nothing(color_distance: float = 0.0) -> Reading:
        return Reading(Attributes(None, None, background, None), empty, empty, empty, {}, 0.0, color_distance)

    rough = _largest_blob(labels != bg_index)
    min_area = MIN_SHAPE_AREA_FRAC * h * w
    if rough.sum() < min_area:
        return nothing()

    # Colour: the palette colour that, mixed with the background, best explains the blob's pixels (blurred edges
    # are such mixtures); never the background's own colour.
    color_index = _unmix_color(rgb[rough], bg_index)
    color = COLORS[color_index]
    core = rgb[rough][_purest(rgb[rough], bg_index, color_index)]
    color_distance = float(np.sqrt(((np.median(core, axis=0) - _PALETTE_RGB[color_index]) ** 2).sum()))

    # Refine: position of each pixel on the line background -> shape colour, 0.5 = half-way.
    bg_rgb, fg_rgb = _PALETTE_RGB[bg_index], _PALETTE_RGB[color_index]
    axis = fg_rgb - bg_rgb
    t = ((rgb - bg_rgb) @ axis) / float(axis @ axis)
    t = ndimage.convolve(t, _SMOOTH, mode="nearest")
    mask = _largest_blob(t > 0.5)
    if mask.sum() < min_area:
        return nothing(color_distance)

    hull = convex_hull_mask(mask)
    region = filled_region(mask)
    x0, y0, x1, y1 = _bbox(hull)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    size = float(max(x1 - x0, y1 - y0))  # an elongated blob is then no close match for any clean shape
    scores = {s: mask_iou(hull, filled_mask(s, cx, cy, size, w)) for s in SHAPES}
    shape = max(scores, key=scores.get)
    coverage = float(mask.sum() / hull.sum())
    style = "filled" if coverage >= FILLED_COVERAGE else "outlined"
    attrs = Attributes(shape, color, background, style, cx, cy, size)
    return Reading(attrs, mask, region, hull, scores, coverage, color_distance)


def read_attributes(pixels: Any) -> Attributes:
    """Just the attributes of `read(pixels)`."""
    return read(pixels).attributes


def rerender_masks(attrs: Attributes, image_size: int = DEFAULT_IMAGE_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """(mask, silhouette) of a clean render of (read-back) attributes, for IoU against what was read."""
    return shape_mask(attrs, image_size), silhouette_mask(attrs, image_size)


def clean_render_iou(reading: Reading) -> float:
    """IoU of the region the shape covers with the silhouette of a clean render of its read-back attributes.

    Uses the holes-filled region, not the convex hull, so a ragged or dented blob scores low; 1.0 for an empty
    canvas read as empty.
    """
    attrs = reading.attributes
    if not attrs.has_shape:
        return 1.0
    return mask_iou(reading.region, silhouette_mask(attrs, reading.region.shape[0]))


def attributes_match(a: Attributes, b: Attributes, centre_tol: float = 0.5, size_tol: float = 0.5) -> bool:
    """Same categorical attributes, centres within `centre_tol` px and sizes within `size_tol` px."""
    if (a.shape, a.color, a.background, a.style) != (b.shape, b.color, b.background, b.style):
        return False
    if not a.has_shape:
        return True
    return (
        abs(a.cx - b.cx) <= centre_tol and abs(a.cy - b.cy) <= centre_tol and abs(a.size - b.size) <= size_tol
    )

