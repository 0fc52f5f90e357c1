"""The A1111 ``parameters`` text that other image tools read (PNG Info, Civitai)."""

from __future__ import annotations

import json
import re
from typing import Any

_NEEDS_QUOTES = re.compile(r"[,:\n]")


def _quote(value: str) -> str:
    return json.dumps(value) if _NEEDS_QUOTES.search(value) else value


def format_parameters(prompt: str, negative: str, fields: list[tuple[str, Any]]) -> str:
    """Prompt, optional ``Negative prompt:`` line, then ``Key: value`` pairs in the given order.

    Keys with an empty value are left out; a value holding ``,``, ``:`` or a newline is
    JSON-quoted, as A1111's ``create_infotext`` does.
    """
    lines = [prompt]
    if negative:
        lines.append(f"Negative prompt: {negative}")
    pairs = [f"{key}: {_quote(str(value))}" for key, value in fields if value not in (None, "")]
    lines.append(", ".join(pairs))
    return "\n".join(lines)


# Keys are bounded (A1111's are short) so a long line without a colon cannot make the scan quadratic.
_PAIR = re.compile(r'\s*([\w ]{1,64}):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')


def parse_parameters(text: str) -> dict[str, Any]:
    """Parse an A1111 ``parameters`` text into prompt, negative prompt and the settings."""
    lines = text.strip().split("\n")
    settings_line = ""
    if len(lines) > 1 and _PAIR.match(lines[-1]) and "Steps:" in lines[-1]:
        settings_line = lines.pop()
    prompt_lines: list[str] = []
    negative_lines: list[str] = []
    target = prompt_lines
    for line in lines:
        if line.startswith("Negative prompt:"):
            target = negative_lines
            target.append(line[len("Negative prompt:") :].strip())
        else:
            target.append(line)
    result: dict[str, Any] = {"prompt": "\n".join(prompt_lines).strip(), "negative": "\n".join(negative_lines).strip()}
    settings: dict[str, str] = {}
    for key, raw in _PAIR.findall(settings_line):
        value = raw.strip()
        if len(value) > 1 and value.startswith('"') and value.endswith('"'):
            try:
                value = json.loads(value)
            except ValueError:
                pass
        settings[key.strip()] = value
    result["settings"] = settings
    return result
