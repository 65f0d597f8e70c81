"""Pictures people look at: labelled image grids."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

from PIL import Image, ImageDraw


def image_grid(rows: Sequence[Sequence[Image.Image]], column_titles: Optional[Sequence[str]] = None,
               scale: int = 1, pad: int = 2, title_height: int = 12) -> Image.Image:
    """Rows of equally sized images on a white sheet, optionally with a title above each column."""
    w, h = rows[0][0].size
    w, h = w * scale, h * scale
    cols = max(len(r) for r in rows)
    top = title_height if column_titles else 0
    sheet = Image.new("RGB", (cols * (w + pad) + pad, top + len(rows) * (h + pad) + pad), "white")
    draw = ImageDraw.Draw(sheet)
    if column_titles:
        for c, title in enumerate(column_titles):
            draw.text((pad + c * (w + pad), 0), title, fill="black")
    for r, row in enumerate(rows):
        for c, img in enumerate(row):
            tile = img.resize((w, h), Image.Resampling.NEAREST) if scale != 1 else img
            sheet.paste(tile, (pad + c * (w + pad), top + pad + r * (h + pad)))
    return sheet


def save_grid(path: Path, rows, column_titles=None, scale: int = 1) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image_grid(rows, column_titles, scale).save(path)
    return path
