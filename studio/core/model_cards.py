"""Model cards: fields of a README.md's YAML front matter (the licence, Studio's hint)."""

from __future__ import annotations

from pathlib import Path


def model_card_licence(path: Path) -> str:
    """The ``license:`` of a model card's front matter (README.md), or ""."""
    return model_card_field(path, "license")


def model_card_field(path: Path, name: str) -> str:
    """One ``name: value`` line of a model card's YAML front matter (README.md), or ""."""
    card = Path(path) / "README.md"
    try:
        with card.open(encoding="utf-8") as handle:
            if handle.readline().strip() != "---":
                return ""
            for _ in range(100):
                line = handle.readline(4096)
                if not line or line.strip() == "---":
                    return ""
                if line.lower().startswith(f"{name}:"):
                    return line.split(":", 1)[1].strip().strip("\"'")
    except (OSError, UnicodeDecodeError):
        return ""
    return ""
