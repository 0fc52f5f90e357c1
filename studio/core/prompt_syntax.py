"""A1111's prompt syntax, read the way A1111 reads it, because imported prompts and prompts copied
from Civitai are written in it.

- ``<lora:NAME:WEIGHT>`` (also ``<lyco:…>``; ``<lora:NAME:TE:UNET>`` takes the first weight): a LoRA
  by its file stem; the tag is taken out of the text the model sees (A1111 does the same).
- attention: ``(words)`` × 1.1, ``[words]`` ÷ 1.1, ``(words:1.3)`` an explicit weight, nesting
  multiplies; ``\\(`` ``\\)`` ``\\[`` ``\\]`` are literal brackets; ``BREAK`` starts a new 75-token chunk.

Plain Python: the engine turns the weighted pieces into weighted text embeddings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# A1111's multipliers for one level of ( ) and [ ].
ROUND_MULTIPLIER = 1.1
SQUARE_MULTIPLIER = 1 / 1.1
BREAK = "BREAK"

_LORA_TAG = re.compile(r"<(lora|lyco):([^:<>]+)(?::([^:<>]*))?(?::([^<>]*))?>", re.IGNORECASE)
_TOKENS = re.compile(
    r"""
    \\[()\[\]\\]        # an escaped bracket or backslash
    | \\                # a lone backslash
    | \(                # open round
    | \[                # open square
    | :\s*([+-]?[.\d]+)\s*\)   # ":1.2)" closes a round bracket with a weight
    | \)                # close round
    | \]                # close square
    | [^\\()\[\]:]+     # plain text
    | :                 # a colon that is not a weight
    """,
    re.VERBOSE,
)
_BREAK = re.compile(r"\s*\bBREAK\b\s*")
_WEIGHTING = re.compile(r"(?<!\\)[()\[\]]|\bBREAK\b")


@dataclass(frozen=True)
class LoraTag:
    """One ``<lora:…>`` in a prompt: the name as written and its weight."""

    name: str
    weight: float
    text: str  # the tag as written, e.g. "<lora:inkwash:0.8>"


def lora_tags(prompt: str) -> list[LoraTag]:
    """Every ``<lora:NAME:WEIGHT>`` / ``<lyco:…>`` in ``prompt``, in order. A weight that is not a
    number raises ``ValueError`` naming the tag."""
    found = []
    for match in _LORA_TAG.finditer(prompt):
        name = match.group(2).strip()
        raw = (match.group(3) or "").strip()
        try:
            weight = float(raw) if raw else 1.0
        except ValueError:
            raise ValueError(f"{match.group(0)}: the weight {raw!r} is not a number") from None
        found.append(LoraTag(name, weight, match.group(0)))
    return found


def without_lora_tags(prompt: str) -> str:
    """``prompt`` as the model sees it: the ``<lora:…>`` tags taken out, spacing tidied."""
    stripped = _LORA_TAG.sub("", prompt)
    stripped = re.sub(r"[ \t]{2,}", " ", stripped)
    stripped = re.sub(r"\s+,", ",", stripped)
    return re.sub(r"(,\s*){2,}", ", ", stripped).strip(" ,\n")


def has_weighting(text: str) -> bool:
    """Whether ``text`` uses attention brackets or ``BREAK`` (escaped brackets do not count)."""
    return bool(_WEIGHTING.search(text))


def parse_attention(text: str) -> list[tuple[str, float]]:
    """``text`` as (piece, weight) pairs; ``(BREAK, -1)`` marks a chunk break.

    Unclosed brackets apply to the end of the text (as in A1111); neighbouring pieces of the same
    weight are joined.
    """
    pieces: list[list[object]] = []
    round_open: list[int] = []
    square_open: list[int] = []

    def multiply(start: int, factor: float) -> None:
        for piece in pieces[start:]:
            piece[1] = float(piece[1]) * factor  # type: ignore[arg-type]

    for match in _TOKENS.finditer(text):
        token, weight = match.group(0), match.group(1)
        if token.startswith("\\") and len(token) == 2:
            pieces.append([token[1], 1.0])
        elif token == "(":
            round_open.append(len(pieces))
        elif token == "[":
            square_open.append(len(pieces))
        elif weight is not None and round_open:
            multiply(round_open.pop(), float(weight))
        elif token == ")" and round_open:
            multiply(round_open.pop(), ROUND_MULTIPLIER)
        elif token == "]" and square_open:
            multiply(square_open.pop(), SQUARE_MULTIPLIER)
        else:
            parts = _BREAK.split(token)
            for index, part in enumerate(parts):
                if index > 0:
                    pieces.append([BREAK, -1.0])
                if part:
                    pieces.append([part, 1.0])
    for start in round_open:
        multiply(start, ROUND_MULTIPLIER)
    for start in square_open:
        multiply(start, SQUARE_MULTIPLIER)
    joined: list[tuple[str, float]] = []
    for piece_text, piece_weight in pieces:
        text_part, weight_value = str(piece_text), float(piece_weight)  # type: ignore[arg-type]
        if joined and joined[-1][1] == weight_value and weight_value != -1.0:
            joined[-1] = (joined[-1][0] + text_part, weight_value)
        else:
            joined.append((text_part, weight_value))
    return joined or [("", 1.0)]


def plain_text(text: str) -> str:
    """``text`` with the attention syntax taken out (for pipelines that cannot weight words)."""
    return " ".join(piece for piece, weight in parse_attention(text) if weight != -1.0).strip()
