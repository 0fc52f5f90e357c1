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


def adapter_hash_fields(adapters: Any) -> list[tuple[str, Any]]:
    """``Lora hashes: "NAME: HASH, …"`` and ``TI hashes: "TOKEN: HASH, …"`` from a record's adapters,
    as A1111 writes them (the name as the prompt mentions it; A1111's 12-digit short hashes), so
    Civitai links the resources. The ``<lora:NAME:W>`` tags stay in the prompt text itself."""
    if not isinstance(adapters, list):
        return []
    loras, embeddings = [], []
    for adapter in adapters:
        if not isinstance(adapter, dict) or not adapter.get("short_hash"):
            continue
        if adapter.get("kind") == "embedding":
            embeddings.append(f"{_hash_name(adapter.get('token') or adapter.get('name'))}: {adapter['short_hash']}")
        else:
            loras.append(f"{_hash_name(adapter.get('mentioned') or adapter.get('name'))}: {adapter['short_hash']}")
    fields: list[tuple[str, Any]] = []
    if loras:
        fields.append(("Lora hashes", ", ".join(loras)))
    if embeddings:
        fields.append(("TI hashes", ", ".join(embeddings)))
    return fields


def _hash_name(name: Any) -> str:
    # A1111 drops ":" and "," from the names in these lists (``remove_symbols``), or they would split.
    return str(name or "").translate(str.maketrans("", "", ":,"))


def adapters_from_settings(settings: dict[str, str]) -> dict[str, dict[str, str]]:
    """The ``Lora hashes`` / ``TI hashes`` of parsed A1111 settings: {"lora": {name: hash}, "embedding": {…}}."""
    found: dict[str, dict[str, str]] = {"lora": {}, "embedding": {}}
    for key, kind in (("Lora hashes", "lora"), ("TI hashes", "embedding")):
        for part in str(settings.get(key, "")).split(","):
            name, _, digest = part.rpartition(":")
            if name.strip() and digest.strip():
                found[kind][name.strip()] = digest.strip()
    return found


def prompt_with_lora_tags(prompt: str, adapters: Any) -> str:
    """The prompt as A1111 would show it: a LoRA chosen outside the prompt (Studio's list, ``--lora``)
    gets its ``<lora:NAME:WEIGHT>`` tag appended, since that tag is how A1111 itself applies one."""
    if not isinstance(adapters, list):
        return prompt
    present = {match.group(1).strip().lower() for match in re.finditer(r"<(?:lora|lyco):([^:<>]+)", prompt, re.I)}
    tags = []
    for adapter in adapters:
        if not isinstance(adapter, dict) or adapter.get("kind") != "lora":
            continue
        name = str(adapter.get("name") or "")
        mentioned = str(adapter.get("mentioned") or name)
        if name and name.lower() not in present and mentioned.lower() not in present:
            tags.append(f"<lora:{name}:{float(adapter.get('weight', 1.0)):g}>")
    return f"{prompt} {' '.join(tags)}".strip() if tags else prompt
