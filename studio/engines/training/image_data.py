"""The pictures an image LoRA learns from: reading and refusing them, near duplicates, and the shapes
training gives them. Pillow and numpy only (no torch): the data summary runs this before any model loads.

Sizes: **aspect-ratio buckets**, not a centre crop. Cropping every picture to a square cuts the top
and bottom off portraits and the sides off landscapes, and the model learns those cut compositions
(heads without chins); a bucket keeps the whole picture. Each image goes to the bucket whose shape is
nearest its own (every bucket holds about the training resolution's area, its sides multiples of what
the UNet can halve), is scaled to cover it and centre-cropped by the few pixels of difference — never
squashed. A batch takes images of one bucket only. This is what kohya's scripts and OneTrainer do; on
SDXL the crop and the original size also reach the model as its added time ids.

A picture is read once for the summary: the header for its size (with the EXIF orientation), and one
reduced decode (JPEG's DCT scaling makes it cheap) for its difference hash, which also proves the
file is not cut short. The hash is kept by path, size and modification time, so the near-duplicate
search after ``inspect`` decodes nothing again.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from studio.core.training import TrainingFile
from studio.engines.training.base import InspectedFile, UnreadableData

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp"})
# Below this many pixels on the shorter side a picture holds too little to learn from: at SD's
# 512 px it would be enlarged eightfold, and the LoRA would learn the blur.
MIN_SIDE = 64
# Difference hash of 8 × 8 gradients: 64 bits. Two pictures whose hashes differ in at most this many
# bits look alike (the same shot resized, recompressed, slightly retouched); unrelated pictures
# differ in ~32 bits.
HASH_SIDE = 8
NEAR_DUPLICATE_BITS = 6
# Buckets: shapes from 1:2 to 2:1 around the training area.
MAX_ASPECT = 2.0

_FORMAT_NAMES = {"PNG": "PNG", "JPEG": "JPEG", "WEBP": "WebP", "MPO": "JPEG"}
_OTHER_KINDS = {
    ".txt": "a text file",
    ".md": "a text file",
    ".json": "a JSON file",
    ".mid": "a MIDI file",
    ".midi": "a MIDI file",
    ".abc": "an ABC tune",
    ".wav": "an audio file",
    ".flac": "an audio file",
    ".mp3": "an audio file",
    ".ogg": "an audio file",
    ".pdf": "a PDF",
    ".safetensors": "model weights",
}
_ORIENTATION = 0x0112
_hashes: dict[tuple[str, int, int], int] = {}


def _file_key(path: Path) -> tuple[str, int, int]:
    stat = path.stat()
    return (str(path.resolve()), stat.st_size, stat.st_mtime_ns)


def _kind_of(path: Path) -> str:
    """What a file that is no picture seems to be, by its suffix, else by its first bytes."""
    what = _OTHER_KINDS.get(path.suffix.lower())
    if what is not None and path.suffix.lower() not in IMAGE_SUFFIXES:
        return what
    try:
        head = path.read_bytes()[:512]
    except OSError:
        return "an unreadable file"
    if not head:
        return "an empty file"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return f"a {path.suffix or 'suffix-less'} file"
    return "a text file"


def _not_an_image(path: Path) -> str:
    return f"{_kind_of(path)}, not an image: an image set takes PNG, JPEG or WebP pictures"


def inspect_image(path: Path) -> InspectedFile:
    """Size (as displayed, after the EXIF orientation) of a picture that can be learned from;
    ``UnreadableData`` saying why otherwise: not an image, cut short, damaged, too small."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise UnreadableData(_not_an_image(path))
    try:
        with Image.open(path) as opened:
            opened.verify()  # PNG: every chunk's checksum, to the end of the file
        with Image.open(path) as opened:
            kind = _FORMAT_NAMES.get(str(opened.format), "")
            width, height = opened.size
            if opened.getexif().get(_ORIENTATION) in (5, 6, 7, 8):  # turned a quarter: sides swap
                width, height = height, width
    except UnidentifiedImageError as exc:
        what = _kind_of(path)
        if what == "a text file":
            raise UnreadableData(f"a text file named {path.name}, not an image") from exc
        raise UnreadableData(
            f"not a picture Pillow can read (damaged, or another kind of file named {path.suffix})"
        ) from exc
    except Image.DecompressionBombError as exc:
        raise UnreadableData(f"too many pixels to read safely ({exc})") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise UnreadableData(f"damaged or cut short: {exc}") from exc
    if not kind:
        raise UnreadableData(f"a {opened.format} picture named {path.suffix}: save it as PNG, JPEG or WebP")
    if min(width, height) < MIN_SIDE:
        raise UnreadableData(
            f"too small to learn from: {width}×{height}; Studio trains on pictures at least {MIN_SIDE} px "
            "on their shorter side"
        )
    _hashes[_file_key(path)] = _decode_and_hash(path)
    return InspectedFile(width=width, height=height)


def _decode_and_hash(path: Path) -> int:
    """The 64-bit difference hash, from one reduced decode (which fails on a truncated file)."""
    from PIL import Image, ImageOps

    try:
        with Image.open(path) as opened:
            opened.draft("L", (HASH_SIDE * 8, HASH_SIDE * 8))  # JPEG: decode at 1/2…1/8 scale
            small = ImageOps.exif_transpose(opened).convert("L")
    except (OSError, SyntaxError, ValueError) as exc:
        raise UnreadableData(f"damaged or cut short: {exc}") from exc
    return difference_hash(small)


def difference_hash(image: Any) -> int:
    """Krawetz's dHash: the picture as 9 × 8 greys; each bit says whether a pixel is brighter than
    its right neighbour. Robust to scaling, recompression and small colour changes."""
    from PIL import Image

    grey = np.asarray(image.convert("L").resize((HASH_SIDE + 1, HASH_SIDE), Image.Resampling.LANCZOS), dtype=np.int16)
    bits = (grey[:, 1:] > grey[:, :-1]).flatten()
    return int(np.packbits(bits).view(">u8")[0])


def image_hash(path: Path) -> int:
    """The difference hash of ``path`` (cached from ``inspect_image`` when the file is unchanged)."""
    path = Path(path)
    key = _file_key(path)
    found = _hashes.get(key)
    if found is None:
        found = _hashes[key] = _decode_and_hash(path)
    return found


def near_duplicate_groups(paths: Sequence[str]) -> list[tuple[str, ...]]:
    """Groups of pictures whose difference hashes differ in at most ``NEAR_DUPLICATE_BITS`` bits
    (a pair chains into a group), in the order given; pictures that cannot be hashed are skipped."""
    hashed: list[tuple[str, int]] = []
    for path in paths:
        try:
            hashed.append((path, image_hash(Path(path))))
        except (UnreadableData, OSError):
            continue
    if len(hashed) < 2:
        return []
    values = np.array([h for _, h in hashed], dtype=np.uint64)
    parent = list(range(len(hashed)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(len(values) - 1):  # one vectorised row per picture: 10,000 pictures in about a second
        distances = np.bitwise_count(values[i + 1 :] ^ values[i])
        for j in np.nonzero(distances <= NEAR_DUPLICATE_BITS)[0]:
            a, b = root(i), root(i + 1 + int(j))
            if a != b:
                parent[max(a, b)] = min(a, b)
    groups: dict[int, list[str]] = {}
    for index, (path, _) in enumerate(hashed):
        groups.setdefault(root(index), []).append(path)
    return [tuple(group) for group in groups.values() if len(group) > 1]


# -- shapes --------------------------------------------------------------------------------------


def bucket_sizes(resolution: int, step: int) -> list[tuple[int, int]]:
    """The (width, height) buckets for a training resolution: sides multiples of ``step``, area at
    most ``resolution``², shapes from 1:``MAX_ASPECT`` to ``MAX_ASPECT``:1, the square always among them."""
    area = resolution * resolution
    sizes = {(resolution, resolution)}
    width = step
    while width <= resolution * MAX_ASPECT:
        height = (area // width) // step * step
        if height >= step and max(width, height) / min(width, height) <= MAX_ASPECT:
            sizes.add((width, height))
        width += step
    return sorted(sizes, key=lambda size: size[0] / size[1])


def nearest_bucket(width: int, height: int, buckets: Sequence[tuple[int, int]]) -> tuple[int, int]:
    """The bucket whose shape is nearest the picture's (by the log of the aspect ratio; the squarer on a tie)."""
    shape = math.log(width / height)
    return min(buckets, key=lambda b: (abs(math.log(b[0] / b[1]) - shape), abs(math.log(b[0] / b[1]))))


def fit_to_bucket(image: Any, bucket: tuple[int, int]) -> tuple[Any, tuple[int, int]]:
    """The picture scaled to cover ``bucket`` and centre-cropped to it; and the crop's (top, left)
    in the scaled picture (SDXL's ``crop_coords_top_left``)."""
    from PIL import Image

    width, height = image.size
    target_w, target_h = bucket
    scale = max(target_w / width, target_h / height)
    scaled_w, scaled_h = max(target_w, round(width * scale)), max(target_h, round(height * scale))
    if (scaled_w, scaled_h) != (width, height):
        image = image.resize((scaled_w, scaled_h), Image.Resampling.LANCZOS)
    left, top = (scaled_w - target_w) // 2, (scaled_h - target_h) // 2
    return image.crop((left, top, left + target_w, top + target_h)), (top, left)


def read_rgb(path: Path) -> Any:
    """The picture upright (EXIF orientation) and in RGB; transparency laid on white, not on the
    black that usually lies under transparent pixels."""
    from PIL import Image, ImageOps

    with Image.open(path) as opened:
        image = ImageOps.exif_transpose(opened)
        image.load()
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(canvas, rgba)
    return image.convert("RGB")


def bucket_counts(files: Iterable[TrainingFile], resolution: int, step: int) -> Counter[tuple[int, int]]:
    buckets = bucket_sizes(resolution, step)
    return Counter(nearest_bucket(f.width, f.height, buckets) for f in files if f.width and f.height)


def enlarged_count(files: Iterable[TrainingFile], resolution: int, step: int) -> int:
    """How many pictures are smaller than their bucket, so enlarged for training."""
    buckets = bucket_sizes(resolution, step)
    count = 0
    for f in files:
        if f.width and f.height:
            w, h = nearest_bucket(f.width, f.height, buckets)
            count += max(w / f.width, h / f.height) > 1.0
    return count


def bucket_note(files: Sequence[TrainingFile], resolution: int, step: int) -> str:
    counts = bucket_counts(files, resolution, step)
    if not counts:
        return ""
    images = sum(counts.values())
    sizes = ", ".join(f"{w}×{h} ({n})" for (w, h), n in sorted(counts.items(), key=lambda item: -item[1]))
    buckets = "1 aspect bucket" if len(counts) == 1 else f"{len(counts)} aspect buckets"
    return f"{images} image{'s' if images != 1 else ''} in {buckets} at {resolution} px: {sizes}"


# -- what the summary says -------------------------------------------------------------------------


def _shape(width: int, height: int) -> str:
    ratio = width / height
    return "square" if 0.9 <= ratio <= 1.1 else ("landscape" if ratio > 1 else "portrait")


def data_notes(files: Sequence[TrainingFile]) -> list[str]:
    """What training does with these pictures' sizes and captions, in sentences."""
    images = [f for f in files if f.width and f.height]
    notes: list[str] = []
    if images:
        shapes = Counter(_shape(f.width, f.height) for f in images)
        areas = [f.width * f.height for f in images]
        sizes = sorted({(f.width, f.height) for f in images}, key=lambda size: (size[0] * size[1], size))
        if len(sizes) <= 3:
            span = " and ".join(f"{w}×{h}" for w, h in sizes)
        else:
            span = f"from {sizes[0][0]}×{sizes[0][1]} to {sizes[-1][0]}×{sizes[-1][1]}"
        kinds = ", ".join(f"{n} {shape}" for shape, n in shapes.most_common())
        if len(shapes) > 1 or max(areas) > 4 * min(areas):
            notes.append(
                f"sizes {span} ({kinds}): trained in aspect-ratio buckets — each image scaled to the training area "
                "in the bucket nearest its shape and centre-cropped by a few pixels, never squashed or cut to a square"
            )
        else:
            notes.append(
                f"{'the image is' if len(images) == 1 else f'all {len(images)} images are'} {kinds.split(' ', 1)[1]} "
                f"({span}): each is scaled to the training resolution and centre-cropped by a few pixels"
            )
    missing = [f for f in files if not f.caption.strip()]
    if missing:
        count = len(missing)
        notes.append(f"{count} image{'s have' if count != 1 else ' has'} no caption: trained on the trigger word alone")
    elif files:
        sources = Counter(f.caption_source or "given" for f in files)
        where = ", ".join(f"{n} from {_SOURCE_NAMES.get(s, s)}" for s, n in sources.most_common())
        notes.append(f"every image has a caption ({where}); the trigger word goes before each")
    return notes


_SOURCE_NAMES = {
    "editor": "the caption editor",
    "gallery": "the gallery prompt",
    "txt": ".txt files",
    "filename": "file names",
}
