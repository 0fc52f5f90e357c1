"""What a file *shows*, hashed: decoded pixels, decoded PCM samples, the text — not the file's bytes.

A file's sha256 covers its metadata and its C2PA signature too, so two files with the same
picture differ. The content digest is what regenerating compares and what tells "re-encoded, the
same picture" from "edited": a picture's RGB pixels with its size, a sound's 16-bit samples with
rate and channels (a new float output quantised by the very writer the gallery saves with), a
text's characters as the Markdown file stores them.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

from studio.core.outputs import GeneratedOutput

TEXT_SUFFIXES = (".md", ".txt")
LOSSLESS_AUDIO = (".flac", ".wav")


def image_digest(pixels: Any) -> str:
    """sha256 of an RGB uint8 array (height, width, 3) with its shape."""
    import numpy as np

    array = np.ascontiguousarray(np.asarray(pixels, dtype=np.uint8))
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    digest = hashlib.sha256(f"image {array.shape[0]}x{array.shape[1]}x{array.shape[2]}\n".encode())
    digest.update(array.tobytes())
    return digest.hexdigest()


def audio_digest(samples: Any, rate: int) -> str:
    """sha256 of int16 samples (frames, channels) with the rate."""
    import numpy as np

    array = np.ascontiguousarray(np.asarray(samples, dtype="<i2"))
    if array.ndim == 1:
        array = array[:, None]
    digest = hashlib.sha256(f"audio {int(rate)}Hz {array.shape[1]}ch {array.shape[0]}\n".encode())
    digest.update(array.tobytes())
    return digest.hexdigest()


def text_digest(text: str) -> str:
    """sha256 of a text as the gallery stores it (ending with one newline)."""
    return hashlib.sha256(stored_text(text).encode("utf-8")).hexdigest()


def stored_text(text: str) -> str:
    return text + ("" if text.endswith("\n") else "\n")


def quantise_audio(samples: Any, rate: int, suffix: str = ".flac") -> Any:
    """``samples`` (float, [-1, 1]) as the gallery's writer stores them: written as 16-bit FLAC (or
    WAV) in memory by soundfile and read back, so the rounding and clipping are libsndfile's own."""
    import soundfile

    container = {".flac": "FLAC", ".wav": "WAV"}[suffix]
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, int(rate), format=container, subtype="PCM_16")
    buffer.seek(0)
    data, _rate = soundfile.read(buffer, dtype="int16", always_2d=True)
    return data


def output_digest(output: GeneratedOutput) -> str:
    """The content digest of an engine's output, as it will read back from the gallery's file."""
    if output.kind == "text":
        return text_digest(str(output.data))
    if output.kind == "image":
        return image_digest(_rgb(output.data))
    if output.kind == "music":
        rate = int(output.info["sample_rate"])
        return audio_digest(quantise_audio(output.data, rate), rate)
    raise ValueError(f"no content digest for outputs of kind {output.kind!r}")


def file_digest(path: Path) -> str:
    """The content digest of a file Studio reads; "" when it cannot be decoded."""
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix in TEXT_SUFFIXES:
            return text_digest(read_text_body(path))
        if suffix in (".png", ".jpg", ".jpeg", ".webp"):
            from PIL import Image

            with Image.open(path) as image:
                return image_digest(_rgb(image))
        if suffix in (".flac", ".wav", ".ogg", ".mp3"):
            import soundfile

            data, rate = soundfile.read(str(path), dtype="int16", always_2d=True)
            return audio_digest(data, rate)
    except Exception:  # a broken or hostile file has no content to speak of
        return ""
    return ""


def read_text_body(path: Path) -> str:
    """A text output without its front matter: exactly what ``metadata.write_text`` put after it."""
    with Path(path).open(encoding="utf-8", newline="") as handle:  # a "\r" the model wrote stays one
        text = handle.read()
    if Path(path).suffix.lower() == ".md" and text.startswith("---\n"):
        end = text.find("\n---\n", 4)
        if end != -1:
            body = text[end + 5 :]
            return body[1:] if body.startswith("\n") else body
    return text


def _rgb(data: Any) -> Any:
    import numpy as np
    from PIL import Image

    if isinstance(data, Image.Image):
        return np.asarray(data.convert("RGB"))
    array = np.asarray(data)
    if array.ndim == 3 and array.shape[2] == 4:
        return np.asarray(Image.fromarray(array).convert("RGB"))
    return array
