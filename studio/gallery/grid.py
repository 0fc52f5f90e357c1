"""A sweep's grid: the cells' images side by side with their axis values as labels, A1111's layout.

X values label the columns (above), Y values the rows (left); a Z axis gives one grid per value,
titled with it. A cell that failed or was cancelled is a grey tile saying so, so the grid still
reads. Cells of different sizes (a size axis) are centred in tiles of the largest.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

_BACKGROUND = (255, 255, 255)
_INK = (20, 20, 20)
_EMPTY = (200, 200, 200)
_GAP = 4


def _font(size: int) -> Any:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # a Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def _fit(draw: ImageDraw.ImageDraw, text: str, font: Any, width: int) -> list[str]:
    """``text`` broken into lines no wider than ``width`` (a long label wraps, never overflows)."""
    words, lines, line = text.split(), [], ""
    for word in words:
        trial = f"{line} {word}".strip()
        if line and draw.textlength(trial, font=font) > width:
            lines.append(line)
            line = word
        else:
            line = trial
    return [*lines, line] if line else lines or [""]


def compose_grid(
    cells: list[list[Path | str | None]],
    column_labels: list[str],
    row_labels: list[str],
    *,
    title: str = "",
) -> np.ndarray:
    """One grid image (RGB uint8) from ``cells[row][column]`` (an image file, or the reason it has none)."""
    images: list[list[Image.Image | str]] = []
    tile_w = tile_h = 1
    for cells_row in cells:
        loaded: list[Image.Image | str] = []
        for cell in cells_row:
            if isinstance(cell, Path) and cell.is_file():
                with Image.open(cell) as opened:
                    image = opened.convert("RGB")
                tile_w, tile_h = max(tile_w, image.width), max(tile_h, image.height)
                loaded.append(image)
            else:
                loaded.append(str(cell) if isinstance(cell, str) and cell else "no image")
        images.append(loaded)
    if tile_w == 1:
        tile_w = tile_h = 64
    rows, columns = len(images), max((len(r) for r in images), default=0)
    font_size = max(12, min(48, tile_w // 12))
    font = _font(font_size)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    line_h = font_size + 4
    column_lines = [_fit(probe, label, font, tile_w - 8) for label in column_labels]
    top = (max((len(lines) for lines in column_lines), default=0) * line_h + 8) if any(column_labels) else 0
    left = 0
    if any(row_labels):
        left = min(tile_w, max(int(probe.textlength(label, font=font)) for label in row_labels) + 16)
    row_lines = [_fit(probe, label, font, max(left - 12, 40)) for label in row_labels]
    title_h = line_h + 8 if title else 0
    width = left + columns * (tile_w + _GAP) + _GAP
    height = title_h + top + rows * (tile_h + _GAP) + _GAP
    canvas = Image.new("RGB", (width, height), _BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    if title:
        draw.text((_GAP + 4, 4), title, fill=_INK, font=font)
    for c, lines in enumerate(column_lines):
        x0 = left + _GAP + c * (tile_w + _GAP)
        for i, line in enumerate(lines):
            w = draw.textlength(line, font=font)
            draw.text((x0 + (tile_w - w) / 2, title_h + 4 + i * line_h), line, fill=_INK, font=font)
    for r, row in enumerate(images):
        y0 = title_h + top + _GAP + r * (tile_h + _GAP)
        if r < len(row_lines):
            lines = row_lines[r]
            start = y0 + (tile_h - len(lines) * line_h) / 2
            for i, line in enumerate(lines):
                draw.text((8, start + i * line_h), line, fill=_INK, font=font)
        for c, tile in enumerate(row):
            x0 = left + _GAP + c * (tile_w + _GAP)
            if isinstance(tile, Image.Image):
                canvas.paste(tile, (x0 + (tile_w - tile.width) // 2, y0 + (tile_h - tile.height) // 2))
            else:
                draw.rectangle((x0, y0, x0 + tile_w - 1, y0 + tile_h - 1), fill=_EMPTY)
                for i, line in enumerate(_fit(draw, tile, font, tile_w - 8)):
                    draw.text((x0 + 4, y0 + 4 + i * line_h), line, fill=_INK, font=font)
    return np.asarray(canvas, dtype=np.uint8).copy()
