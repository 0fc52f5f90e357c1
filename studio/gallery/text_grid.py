"""A text sweep's "grid": a Markdown table of its cells' texts under their axis values.

Text has no picture to tile, so the grid of a text sweep is a text item: X values head the
columns, Y values the rows, each cell holds what that job wrote (newlines as ``<br>``, pipes
escaped, so the table stays one table in any Markdown reader); a cell that failed or was
cancelled says why. A Z axis gives one table per value, titled with it. The cells' ids are in
the item's record (``output.grid.cells``), as for an image grid.
"""

from __future__ import annotations

# A table cell longer than this is cut (with an ellipsis): the whole text is the cell's own item.
MAX_CELL_CHARS = 600


def _cell(text: str) -> str:
    flat = text.strip()
    if len(flat) > MAX_CELL_CHARS:
        flat = flat[: MAX_CELL_CHARS - 1].rstrip() + "…"
    flat = flat.replace("\\", "\\\\").replace("|", "\\|")
    return "<br>".join(line.strip() for line in flat.splitlines()) or "(empty)"


def compose_text_grid(
    texts: list[list[str]], x_labels: list[str], y_labels: list[str], *, title: str = "", prompt: str = ""
) -> str:
    """``texts[row][column]`` (a cell's text, or why it has none, in italics) as a Markdown table."""
    lines = [f"## {title}" if title else "## Sweep", ""]
    if prompt:
        lines += [f"Prompt: {_cell(prompt)}", ""]
    corner = "" if not y_labels else " "
    lines.append("| " + " | ".join([corner, *x_labels] if y_labels else x_labels) + " |")
    lines.append("|" + "---|" * (len(x_labels) + (1 if y_labels else 0)))
    for row, cells in enumerate(texts):
        values = [_cell(text) for text in cells]
        if y_labels:
            values = [f"**{y_labels[row]}**", *values]
        lines.append("| " + " | ".join(values) + " |")
    return "\n".join(lines) + "\n"
