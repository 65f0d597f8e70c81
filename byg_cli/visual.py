"""Pictures people look at: grids of image rows, optionally with column titles and a caption under each row."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any, Optional, Sequence

from PIL import Image, ImageDraw, ImageFont

_SHEET = (190, 190, 190)  # mid grey, so white and black tiles both stand out


def _as_pil(img: Any) -> Image.Image:
    if isinstance(img, Image.Image):
        return img.convert("RGB")
    from byg_cli.data.shapes_reader import to_uint8_image

    return Image.fromarray(to_uint8_image(img))


def save_grid(
    path: Path,
    rows: Sequence[Sequence[Any]],
    column_titles: Optional[Sequence[str]] = None,
    scale: int = 4,
    captions: Optional[Sequence[str]] = None,
    pad: int = 4,
) -> Path:
    """A PNG of image rows (e.g. source | output | target), each row optionally captioned underneath.

    Images: PIL images, uint8 (H, W, 3) arrays or float (3, H, W) tensors in [-1, 1]; enlarged `scale` times
    with nearest-neighbour so single pixels stay visible.
    """
    if not rows:
        raise ValueError("save_grid needs at least one row")
    if captions is not None and len(captions) != len(rows):
        raise ValueError(f"{len(rows)} rows but {len(captions)} captions")
    tiles = [[_as_pil(img) for img in row] for row in rows]
    w, h = tiles[0][0].width * scale, tiles[0][0].height * scale
    cols = max(len(r) for r in tiles)
    width = cols * (w + pad) + pad
    font = ImageFont.load_default()
    char_w = max(1, int(font.getlength("x")))
    line_h = 12
    wrapped = [textwrap.wrap(c, max(8, (width - 2 * pad) // char_w)) or [""] for c in captions] if captions else None
    top = line_h + pad if column_titles else 0
    row_heights = [h + pad + (len(wrapped[i]) * line_h + pad if wrapped else 0) for i in range(len(tiles))]
    sheet = Image.new("RGB", (width, top + sum(row_heights) + pad), _SHEET)
    draw = ImageDraw.Draw(sheet)
    if column_titles:
        for c, title in enumerate(column_titles):
            draw.text((pad + c * (w + pad), pad // 2), title, fill="black", font=font)
    y = top + pad
    for r, row in enumerate(tiles):
        for c, tile in enumerate(row):
            sheet.paste(tile.resize((w, h), Image.Resampling.NEAREST), (pad + c * (w + pad), y))
        if wrapped:
            for k, line in enumerate(wrapped[r]):
                draw.text((pad, y + h + pad // 2 + k * line_h), line, fill="black", font=font)
        y += row_heights[r]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    return path
