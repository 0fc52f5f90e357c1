"""Files from outside — verified, or dropped on the gallery — cannot crash, hang or write outside the
data folder, however they are broken. Hypothesis builds the cases: 10,000 across these tests
(STUDIO_LONG_TESTS=1 runs five times as many)."""

import io
import json
import os
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, PngImagePlugin

from studio.core.errors import StudioError
from studio.gallery.store import GalleryStore
from studio.gallery.verify import verify_file

SCALE = 5 if os.environ.get("STUDIO_LONG_TESTS") else 1
_FAST = settings(
    max_examples=int(os.environ.get("STUDIO_FUZZ_EXAMPLES", 2500 * SCALE)),
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
_MAGIC = {
    ".png": b"\x89PNG\r\n\x1a\n",
    ".jpg": b"\xff\xd8\xff\xe0",
    ".webp": b"RIFF\x00\x00\x00\x00WEBPVP8 ",
    ".flac": b"fLaC",
    ".wav": b"RIFF\x24\x00\x00\x00WAVEfmt ",
    ".mp3": b"ID3\x04\x00\x00",
    ".ogg": b"OggS\x00\x02",
    ".md": b"---\nstudio_provenance: ",
}
_WORK = Path(tempfile.mkdtemp(prefix="studio-fuzz-"))
_STORE = GalleryStore(_WORK / "data" / "gallery")
_OUTSIDE = _WORK / "outside"
_OUTSIDE.mkdir()


def _json_values():
    scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=40)
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
        max_leaves=12,
    )


def _files_outside() -> set[str]:
    """Everything in the work folder but the gallery (which imports may fill)."""
    found = {str(p) for p in _WORK.iterdir() if p.name != "data"}
    return found | {str(p) for p in _OUTSIDE.rglob("*")} | {str(p) for p in (_WORK / "data").iterdir()}


def _check(path: Path) -> None:
    before = _files_outside()
    report = verify_file(path)  # must return a report, never raise
    assert isinstance(report.ok, bool)
    try:
        item = _STORE.import_file(path)
    except StudioError:
        item = None
    if item is not None:
        assert _STORE.root in item.path.parents  # imported only inside the gallery
    assert _files_outside() <= before | {str(path), str(path.with_suffix(".json"))}


@_FAST
@given(suffix=st.sampled_from(sorted(_MAGIC)), body=st.binary(max_size=2048))
def test_random_bytes_behind_a_real_magic_number(suffix, body):
    path = _OUTSIDE / f"random{suffix}"
    path.write_bytes(_MAGIC[suffix] + body)
    _check(path)


@_FAST
@given(
    chunks=st.dictionaries(
        st.sampled_from(
            [
                "parameters",
                "studio_provenance",
                "XML:com.adobe.xmp",
                "prompt",
                "workflow",
                "invokeai_metadata",
                "Comment",
            ]
        ),
        st.one_of(st.text(max_size=300), _json_values().map(json.dumps), st.just("x" * 200_000)),
        max_size=4,
    )
)
def test_pngs_with_hostile_text_chunks(chunks):
    info = PngImagePlugin.PngInfo()
    for key, value in chunks.items():
        info.add_itxt(key, value)
    path = _OUTSIDE / "chunks.png"
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buffer, format="PNG", pnginfo=info)
    path.write_bytes(buffer.getvalue())
    _check(path)


@_FAST
@given(
    sidecar=_json_values(),
    record_id=st.sampled_from(["../../escape", "01ARZ3NDEKTSV4RRFFQ69G5FAV", "", "a/b", "..", "NUL"]),
)
def test_sidecars_with_wrong_types_and_hostile_ids(sidecar, record_id):
    path = _OUTSIDE / "with-sidecar.md"
    path.write_text("---\ndigital_source_type: x\n---\n\nhello\n")
    data = sidecar if not isinstance(sidecar, dict) else {**sidecar, "schema": "studio.provenance/1", "id": record_id}
    if isinstance(data, dict):
        data.update(kind="text", created_at="2026-01-01T00:00:00Z", output={"file": "../../etc/passwd", "sha256": "0"})
    path.with_suffix(".json").write_text(json.dumps(data))
    _check(path)


@_FAST
@given(text=st.text(max_size=2000), xmp=st.text(max_size=500))
def test_markdown_front_matter_and_xmp_fragments(text, xmp):
    path = _OUTSIDE / "front.md"
    path.write_text(f"---\nstudio_provenance: {text}\n---\n{xmp}", encoding="utf-8")
    _check(path)
    from studio.gallery.xmp import read_xmp_fields, record_from_xmp

    assert isinstance(read_xmp_fields(xmp), dict)
    record_from_xmp(f'<x studio:Record="{xmp}"/>')
