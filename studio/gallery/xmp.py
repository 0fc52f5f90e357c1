"""An XMP packet that marks a file as AI-generated (IPTC) and carries the Studio record.

IPTC's digital source type ``trainedAlgorithmicMedia`` is the machine-readable "made by a
generative model" marking; IPTC 2025.1 adds the system used, its version and the prompt. The
packet is written as text (no XML library builds it) and read back with a bounded regular
expression, never a general XML parser, so a hostile file cannot expand entities.
"""

from __future__ import annotations

import html
import json
import re
from typing import Any

DIGITAL_SOURCE_TYPE = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
# An edit of something not generated (a photo with a repainted region): partly AI-made.
COMPOSITE_SOURCE_TYPE = "http://cv.iptc.org/newscodes/digitalsourcetype/compositeWithTrainedAlgorithmicMedia"


def digital_source_type(record: dict[str, Any] | None) -> str:
    """IPTC's source type for an output: AI-made, or a composite when it edits a source that was not."""
    derived = (record or {}).get("derived_from")
    if isinstance(derived, dict) and derived.get("generated") is False:
        return COMPOSITE_SOURCE_TYPE
    return DIGITAL_SOURCE_TYPE


IPTC_EXT = "http://iptc.org/std/Iptc4xmpExt/2008-02-29/"
STUDIO_NS = "https://github.com/studio-app/studio/ns/provenance/1.0/"
# PLUS (the Picture Licensing Universal System) says whether data mining and AI training are allowed.
PLUS_NS = "http://ns.useplus.org/ldf/xmp/1.0/"
_DMI = "http://ns.useplus.org/ldf/vocab/DMI-"
DATA_MINING = {"allowed": _DMI + "ALLOWED", "not_allowed": _DMI + "PROHIBITED-AIMLTRAINING"}
_MAX_PACKET = 4 * 1024 * 1024


def _attr(value: Any) -> str:
    return html.escape(str(value), quote=True)


def build_xmp(
    record: dict[str, Any] | None,
    *,
    app: str,
    model_name: str = "",
    model_version: str = "",
    ai_training: str = "",
) -> bytes:
    """The packet: the source type always; the AI system, prompt and full record when ``record`` is given;
    PLUS ``DataMining`` when the training permission is stated (``allowed`` / ``not_allowed``)."""
    attributes = [f'Iptc4xmpExt:DigitalSourceType="{digital_source_type(record)}"', f'xmp:CreatorTool="{_attr(app)}"']
    if ai_training in DATA_MINING:
        attributes.append(f'plus:DataMining="{DATA_MINING[ai_training]}"')
    if model_name:
        attributes.append(f'Iptc4xmpExt:AISystemUsed="{_attr(model_name)}"')
    if model_version:
        attributes.append(f'Iptc4xmpExt:AISystemVersionUsed="{_attr(model_version)}"')
    if record is not None:
        prompt = record.get("request", {}).get("prompt", "") if isinstance(record.get("request"), dict) else ""
        if prompt:
            attributes.append(f'Iptc4xmpExt:AIPromptInformation="{_attr(prompt)}"')
        if record.get("created_at"):
            attributes.append(f'xmp:CreateDate="{_attr(record["created_at"])}"')
        attributes.append(f'studio:ItemId="{_attr(record.get("id", ""))}"')
        attributes.append(f'studio:Record="{_attr(json.dumps(record, ensure_ascii=False, sort_keys=True))}"')
    joined = "\n    ".join(attributes)
    packet = (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">\n'
        ' <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">\n'
        '  <rdf:Description rdf:about=""\n'
        f'    xmlns:Iptc4xmpExt="{IPTC_EXT}"\n'
        '    xmlns:xmp="http://ns.adobe.com/xap/1.0/"\n'
        f'    xmlns:plus="{PLUS_NS}"\n'
        f'    xmlns:studio="{STUDIO_NS}"\n'
        f"    {joined}/>\n"
        " </rdf:RDF>\n"
        "</x:xmpmeta>\n"
        '<?xpacket end="w"?>'
    )
    return packet.encode("utf-8")


# Names are bounded and must start a word: unbounded, a long run of letters made every start position
# rescan the rest (a 200 kB chunk took minutes; found by tests/test_hostile_input.py).
_ATTRIBUTE = re.compile(r'(?<![A-Za-z0-9_:])([A-Za-z0-9_]{1,64}):([A-Za-z0-9_]{1,64})="([^"]{0,4000000})"')


def read_xmp_fields(packet: bytes | str) -> dict[str, str]:
    """``prefix:Name`` → value for the attributes of an XMP packet (as ``build_xmp`` writes them)."""
    text = packet.decode("utf-8", "replace") if isinstance(packet, bytes) else str(packet)
    if len(text) > _MAX_PACKET:
        return {}
    return {f"{prefix}:{name}": html.unescape(value) for prefix, name, value in _ATTRIBUTE.findall(text)}


def record_from_xmp(packet: bytes | str) -> dict[str, Any] | None:
    raw = read_xmp_fields(packet).get("studio:Record")
    if not raw:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def ai_training_from_xmp(fields: dict[str, str]) -> str:
    """``allowed`` / ``not_allowed`` from a PLUS ``DataMining`` value, ``not_stated`` for any other."""
    value = fields.get("plus:DataMining", "")
    if value == DATA_MINING["allowed"]:
        return "allowed"
    if value.startswith(_DMI + "PROHIBITED"):
        return "not_allowed"
    return "not_stated"
