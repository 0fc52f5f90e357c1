"""Adapters in the library: LoRA / LyCORIS files, textual-inversion embeddings and peft adapter
folders for causal LMs, told apart from their safetensors header only (never the weights).

Each becomes a ``ModelSpec`` of kind ``lora`` or ``embedding`` whose ``family`` is the base it fits
(``sd``, ``sdxl``, ``sd3``, ``flux`` for images; the base architecture's ``model_type`` for text) and
whose ``details`` say the rest: ``base`` (the label a person reads: "SD1.x", "SDXL"…), ``layout``
(kohya, diffusers, peft, embedding), ``network`` (LoRA, LoCon, LoHa, LoKr), ``rank``, ``width`` (the
text width the adapter was trained against: the cross-attention width of a UNet LoRA, the vector
width of an embedding, the hidden size of a text LoRA), ``token`` (embeddings), ``trigger_words``,
``preview`` and ``civitai`` (from Civitai's side files). No torch at import.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from studio.core.models import ModelSpec
from studio.engines.library.classify import read_json, slug
from studio.engines.library.safetensors_files import PICKLE_SUFFIXES, file_size, safetensors_header
from studio.engines.library.training_cards import training_details, training_lineage

LORA = "lora"
EMBEDDING = "embedding"
ADAPTER_KINDS = (LORA, EMBEDDING)
# The format adapters carry: they are applied by the engine of their base model, never run alone.
ADAPTER_FORMAT = "adapter"

PEFT_CONFIG = "adapter_config.json"
PEFT_WEIGHTS = "adapter_model.safetensors"
DIFFUSERS_LORA_NAMES = ("pytorch_lora_weights.safetensors", "pytorch_lora_weights.bin")

# Readable names of the bases, as the model manager and the errors say them.
BASE_LABELS = {"sd1": "SD1.x", "sd2": "SD2.x", "sdxl": "SDXL", "sd3": "SD3", "flux": "Flux"}
# The text width (CLIP hidden size / UNet cross-attention) of each SD generation.
_SD_WIDTHS = {768: "sd1", 1024: "sd2", 2048: "sdxl"}
_EMBEDDING_WIDTHS = {768: "sd1", 1024: "sd2"}

_KOHYA_PREFIXES = ("lora_unet_", "lora_te_", "lora_te1_", "lora_te2_", "lora_te3_", "lora_transformer_")
# LyCORIS network types by a key suffix only they use (kohya's LoRA and LoCon share lora_down/lora_up).
_LYCORIS_SUFFIXES = {".hada_w1_a": "LoHa", ".lokr_w1": "LoKr", ".lokr_w1_a": "LoKr", ".oft_blocks": "OFT"}
_LORA_DOWN = re.compile(r"(\.lora_down\.weight|\.lora_A\.weight|\.lora\.down\.weight|\.lora_A\.[^.]+\.weight)$")


def is_adapter_file(file: Path) -> bool:
    """Whether a loose ``.safetensors`` file looks like an adapter (so not a checkpoint)."""
    header = safetensors_header(file)
    return header is not None and classify_header(header) is not None


def classify_header(header: dict[str, Any]) -> dict[str, Any] | None:
    """What an adapter's header says (kind, family, facts), or None when it is not an adapter."""
    keys = [key for key in header if key != "__metadata__"]
    raw_metadata = header.get("__metadata__")
    metadata: dict[str, Any] = raw_metadata if isinstance(raw_metadata, dict) else {}
    if not keys:
        return None
    if any(key.startswith("model.diffusion_model.") for key in keys):
        return None  # a whole checkpoint
    embedding = _embedding_facts(header, keys)
    if embedding is not None:
        return embedding
    kohya = any(key.startswith(_KOHYA_PREFIXES) for key in keys)
    diffusers = any(_LORA_DOWN.search(key) for key in keys) and not kohya
    lycoris = next((name for suffix, name in _LYCORIS_SUFFIXES.items() for key in keys if key.endswith(suffix)), "")
    if not (kohya or diffusers or lycoris):
        return None
    facts: dict[str, Any] = {"kind": LORA, "layout": "kohya" if kohya or lycoris else "diffusers"}
    facts["network"] = lycoris or ("LoCon" if _has_conv_lora(header, keys) else "LoRA")
    facts["rank"] = _rank(header, keys)
    family, width = _lora_family(header, keys, metadata)
    facts["family"], facts["width"] = family, width
    facts["module_count"] = len({_module_of(key) for key in keys if not key.endswith(".alpha")})
    facts["trigger_words"] = trigger_words(metadata)
    return facts


def _embedding_facts(header: dict[str, Any], keys: list[str]) -> dict[str, Any] | None:
    def shape(key: str) -> list[int]:
        entry = header.get(key)
        return [int(d) for d in entry.get("shape", [])] if isinstance(entry, dict) else []

    if set(keys) >= {"clip_l", "clip_g"}:  # SDXL: one set of vectors per text encoder
        vectors = shape("clip_l")[0] if shape("clip_l") else 1
        return {"kind": EMBEDDING, "family": "sdxl", "base": "SDXL", "width": 1280, "vectors": vectors}
    candidates = [k for k in keys if k == "emb_params" or k.startswith("string_to_param")]
    lora_like = keys[0].startswith(_KOHYA_PREFIXES) or "lora" in keys[0] or keys[0].endswith(".alpha")
    if not candidates and len(keys) == 1 and 1 <= len(shape(keys[0])) <= 2 and not lora_like:
        candidates = keys  # diffusers' own textual inversion: {token: vector(s)}
    if not candidates:
        return None
    dims = shape(candidates[0])
    if not dims:
        return None
    width = dims[-1]
    vectors = dims[0] if len(dims) == 2 else 1
    code = _EMBEDDING_WIDTHS.get(width, "")
    base = BASE_LABELS.get(code, f"SD (text width {width})")
    facts = {"kind": EMBEDDING, "family": "sd", "base": base, "width": width, "vectors": vectors}
    if candidates == keys and keys[0] != "emb_params" and not keys[0].startswith("string_to_param"):
        facts["stored_token"] = keys[0]
    return facts


def _module_of(key: str) -> str:
    for marker in (".lora_down", ".lora_up", ".lora_A", ".lora_B", ".lora.down", ".lora.up", ".hada_", ".lokr_"):
        if marker in key:
            return key.split(marker, maxsplit=1)[0]
    return key.rsplit(".", 1)[0]


def _rank(header: dict[str, Any], keys: list[str]) -> int:
    for key in keys:
        if _LORA_DOWN.search(key):
            entry = header[key]
            shape = entry.get("shape", []) if isinstance(entry, dict) else []
            if shape:
                return int(shape[0])
    for key in keys:
        if key.endswith(".hada_w1_b") or key.endswith(".lokr_w2_b"):
            shape = header[key].get("shape", [])
            if shape:
                return int(shape[0])
    return 0


def _has_conv_lora(header: dict[str, Any], keys: list[str]) -> bool:
    """LoCon: LoRA on the convolutions too (4-D down weights with a kernel wider than 1)."""
    for key in keys:
        if key.endswith(".lora_down.weight"):
            shape = header[key].get("shape", [])
            if len(shape) == 4 and shape[2] > 1:
                return True
    return False


def _lora_family(header: dict[str, Any], keys: list[str], metadata: dict[str, Any]) -> tuple[str, int]:
    """(family, text width) of a LoRA: from the key names first, the widths second, the metadata last."""
    joined = "\n".join(keys)
    if "single_transformer_blocks" in joined or "single_blocks" in joined or "double_blocks" in joined:
        return "flux", 0
    if "joint_blocks" in joined or ("transformer.transformer_blocks" in joined and "context_embedder" in joined):
        return "sd3", 0
    if "transformer.transformer_blocks" in joined or "lora_transformer_" in joined:
        base = str(metadata.get("modelspec.architecture", "") or metadata.get("ss_base_model_version", ""))
        return ("flux" if "flux" in base.lower() else "sd3"), 0
    width = _cross_attention_width(header, keys)
    xl = "lora_te2_" in joined or "text_encoder_2." in joined or "add_embedding" in joined or width == 2048
    base = str(metadata.get("ss_base_model_version", "") or metadata.get("modelspec.architecture", "")).lower()
    if not width and "xl" in base:
        xl = True
    if str(metadata.get("modelspec.architecture", "")).startswith("stable-diffusion-xl"):
        xl = True  # what the trainer wrote (Studio's, kohya's): the only sign for an SDXL of unusual widths
    return ("sdxl" if xl else "sd"), width


def _cross_attention_width(header: dict[str, Any], keys: list[str]) -> int:
    """The text width the UNet's cross-attention takes: the input side of an ``attn2`` key LoRA."""
    for key in keys:
        if "attn2" in key and ("to_k" in key or "to_v" in key) and _LORA_DOWN.search(key):
            shape = header[key].get("shape", [])
            if len(shape) >= 2:
                return int(shape[1])
    for key in keys:  # a text-encoder-only LoRA: the encoder's hidden size
        if ("lora_te_" in key or "text_encoder." in key) and "q_proj" in key and _LORA_DOWN.search(key):
            shape = header[key].get("shape", [])
            if len(shape) >= 2:
                return int(shape[1])
    return 0


def base_label(family: str, width: int) -> str:
    if family == "sd":
        code = _SD_WIDTHS.get(width, "")
        return BASE_LABELS.get(code, f"SD (text width {width})" if width else "SD1.x/SD2.x")
    return BASE_LABELS.get(family, family)


def trigger_words(metadata: dict[str, Any]) -> list[str]:
    """Trigger words a LoRA's training left in its metadata: ``modelspec.trigger_phrase`` first,
    else the most frequent tags of kohya's ``ss_tag_frequency`` (the top five)."""
    words: list[str] = []
    phrase = metadata.get("modelspec.trigger_phrase")
    if isinstance(phrase, str) and phrase.strip():
        words += [part.strip() for part in phrase.split(",") if part.strip()]
    raw = metadata.get("ss_tag_frequency")
    if isinstance(raw, str) and raw and not words:
        try:
            frequency = json.loads(raw)
        except ValueError:
            frequency = {}
        counts: dict[str, int] = {}
        if isinstance(frequency, dict):
            for tags in frequency.values():
                if isinstance(tags, dict):
                    for tag, count in tags.items():
                        if isinstance(count, int):
                            counts[str(tag).strip()] = counts.get(str(tag).strip(), 0) + count
        words += [tag for tag, _ in sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:5] if tag]
    return words


def civitai_side_files(file: Path) -> dict[str, Any]:
    """What Civitai's helpers leave beside a file: ``NAME.civitai.info`` (JSON) and a preview image."""
    facts: dict[str, Any] = {}
    stem = file.stem if file.is_file() else file.name
    folder = file.parent if file.is_file() else file
    info = read_json(folder / f"{stem}.civitai.info") if file.is_file() else None
    if info:
        raw_model = info.get("model")
        model: dict[str, Any] = raw_model if isinstance(raw_model, dict) else {}
        facts["civitai"] = {
            key: value
            for key, value in {
                "model": model.get("name", ""),
                "version": info.get("name", ""),
                "base_model": info.get("baseModel", ""),
                "model_id": info.get("modelId"),
                "version_id": info.get("id"),
            }.items()
            if value not in ("", None)
        }
        words = info.get("trainedWords")
        if isinstance(words, list):
            facts["trained_words"] = [str(w) for w in words if str(w).strip()]
    for suffix in (".preview.png", ".png", ".preview.jpg", ".jpg", ".jpeg", ".webp"):
        candidate = folder / f"{stem}{suffix}"
        if candidate.is_file():
            facts["preview"] = str(candidate)
            break
    return facts


def _civitai_family(base_model: str) -> str:
    """Civitai's ``baseModel`` ("SD 1.5", "SDXL 1.0", "Pony", "Flux.1 D") as a family."""
    text = base_model.lower()
    if "flux" in text:
        return "flux"
    if "sd 3" in text or "sd3" in text:
        return "sd3"
    if "xl" in text or "pony" in text or "illustrious" in text:
        return "sdxl"
    if text.startswith("sd "):
        return "sd"
    return ""


def inspect_adapter_file(
    file: Path, *, model_id: str | None = None, source: str = "path", allow_pickle: bool = False
) -> ModelSpec:
    """Classify one adapter file (``.safetensors``, or pickle with consent); never raises."""
    file = Path(file).expanduser()
    name = file.parent.name if file.name in DIFFUSERS_LORA_NAMES else file.stem
    ident = model_id or slug(name)
    facts: dict[str, Any] = {"size_bytes": file_size(file), "file": file.name}
    facts.update(civitai_side_files(file))
    training = training_details(file.parent)  # a LoRA Studio trained: its card beside it
    if training is not None and training.get("result_kind") == LORA:
        facts["training"] = training
        name = str(training["name"])

    def spec(kind: str, family: str, runnable: bool, reason: str = "") -> ModelSpec:
        return ModelSpec(ident, name, kind, family, file, source, runnable, reason, facts, format=ADAPTER_FORMAT)

    if file.suffix in PICKLE_SUFFIXES:
        kind = EMBEDDING if file.suffix in (".pt", ".bin") and "lora" not in file.name.lower() else LORA
        facts.update(layout="pickle", base="unknown")
        if not allow_pickle:
            return spec(kind, "", False, "a pickle file (.pt/.ckpt/.bin) can run code when loaded; allow it per file")
        return spec(kind, "", True)
    header = safetensors_header(file)
    if header is None:
        return spec(LORA, "", False, f"{file.name} is damaged (truncated, or not a safetensors file)")
    found = classify_header(header)
    if found is None:
        return spec("", "", False, f"{file.name} is neither a LoRA nor an embedding")
    kind = str(found.pop("kind"))
    family = str(found.pop("family"))
    civitai_base = _civitai_family(str(facts.get("civitai", {}).get("base_model", "")))
    if not family and civitai_base:
        family = civitai_base
    facts.update(found)
    facts.setdefault("base", base_label(family, int(found.get("width") or 0)))
    if kind == EMBEDDING:
        facts["token"] = file.stem
    words = list(facts.get("trigger_words") or []) + [w for w in facts.get("trained_words", []) if w]
    facts["trigger_words"] = list(dict.fromkeys(words))
    return spec(kind, family, True)


def inspect_peft_folder(folder: Path, *, model_id: str | None = None, source: str = "path") -> ModelSpec:
    """A peft adapter folder for a causal LM: ``adapter_config.json`` + ``adapter_model.safetensors``."""
    folder = Path(folder).expanduser()
    ident = model_id or slug(folder.name)
    weights = folder / PEFT_WEIGHTS
    facts: dict[str, Any] = {"size_bytes": file_size(weights), "file": PEFT_WEIGHTS, "layout": "peft"}
    facts.update(civitai_side_files(folder))
    name = folder.name
    training = training_details(folder)  # a text LoRA Studio trained: its card beside it
    if training is not None and training.get("result_kind") == LORA:
        facts["training"] = training
        name = str(training["name"])

    def spec(family: str, runnable: bool, reason: str = "") -> ModelSpec:
        return ModelSpec(ident, name, LORA, family, folder, source, runnable, reason, facts, ADAPTER_FORMAT)

    config = read_json(folder / PEFT_CONFIG)
    if config is None:
        return spec("", False, f"{PEFT_CONFIG} is not valid JSON")
    facts.update(
        network=str(config.get("peft_type", "LORA")),
        rank=int(config.get("r") or 0),
        task=str(config.get("task_type", "")),
        base_model=str(config.get("base_model_name_or_path") or ""),
        target="text",
    )
    if not weights.is_file():
        return spec("", False, f"missing files: {PEFT_WEIGHTS}")
    header = safetensors_header(weights)
    if header is None:
        return spec("", False, f"{PEFT_WEIGHTS} is damaged (truncated, or not a safetensors file)")
    hidden = 0
    for key, entry in header.items():
        if key != "__metadata__" and "lora_A" in key and isinstance(entry, dict) and len(entry.get("shape", [])) == 2:
            if "q_proj" in key or "self_attn" in key or hidden == 0:
                hidden = int(entry["shape"][1])
                if "q_proj" in key:
                    break
    facts["width"] = hidden
    family = ""
    base_config = read_json(Path(facts["base_model"]) / "config.json") if facts["base_model"] else None
    if base_config:
        family = str(base_config.get("model_type", ""))
    facts["base"] = f"{family or 'a causal LM'} (hidden size {hidden})" if hidden else (family or "a causal LM")
    return spec(family, True)


def adapter_files(root: Path, depth: int = 6) -> list[Path]:
    """Loose adapter candidates under ``root``: ``.safetensors`` and pickle files outside model folders
    (the caller tells LoRAs from checkpoints), skipping peft folders (listed whole)."""
    if not root.is_dir() or depth < 0 or _is_model_or_peft(root):
        return []
    found: list[Path] = []
    try:
        entries = sorted(root.iterdir())
    except OSError:
        return []
    for entry in entries:
        if entry.name.startswith("."):
            continue
        if entry.is_file() and entry.suffix in (".safetensors", ".pt", ".ckpt", ".bin"):
            found.append(entry)
        elif entry.is_dir():
            found.extend(adapter_files(entry, depth - 1))
    return found


def peft_folders(root: Path, depth: int = 6) -> list[Path]:
    if not root.is_dir() or depth < 0:
        return []
    if (root / PEFT_CONFIG).is_file():
        return [root]
    if (root / "model_index.json").is_file() or (root / "config.json").is_file():
        return []
    found: list[Path] = []
    try:
        children = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError:
        return []
    for child in children:
        found.extend(peft_folders(child, depth - 1))
    return found


def _is_model_or_peft(folder: Path) -> bool:
    return any((folder / name).is_file() for name in ("model_index.json", "config.json", PEFT_CONFIG))


def discover_adapters(
    roots: Iterable[Path], used_ids: set[str], seen: set[Path], allow_pickle: set[str] | None = None
) -> list[ModelSpec]:
    """Every adapter under the user's folders. Loose pickle files are listed (to be allowed per file)
    only when their name says they are a LoRA or an embedding, never other ``.bin`` files."""
    allowed = allow_pickle or set()
    specs: list[ModelSpec] = []

    def unique(name: str) -> str:
        base = slug(name)
        ident, n = base, 2
        while ident in used_ids:
            ident, n = f"{base}-{n}", n + 1
        used_ids.add(ident)
        return ident

    for root in roots:
        for folder in peft_folders(root):
            if folder.resolve() in seen:
                continue
            seen.add(folder.resolve())
            specs.append(inspect_peft_folder(folder, model_id=unique(folder.name), source="folder"))
        for file in adapter_files(root):
            resolved = file.resolve()
            if resolved in seen:
                continue
            if file.suffix == ".safetensors":
                if not is_adapter_file(file) and safetensors_header(file) is not None:
                    continue  # a checkpoint: the checkpoint rules list it
                if safetensors_header(file) is None:
                    continue  # damaged: listed (with the reason) as a checkpoint file
            elif not _looks_like_pickle_adapter(file):
                continue
            seen.add(resolved)
            name = file.parent.name if file.name in DIFFUSERS_LORA_NAMES else file.stem
            specs.append(
                inspect_adapter_file(
                    file, model_id=unique(name), source="folder", allow_pickle=str(resolved) in allowed
                )
            )
    return specs


def _looks_like_pickle_adapter(file: Path) -> bool:
    lowered = str(file).lower()
    return file.suffix in (".pt", ".ckpt", ".bin") and any(
        word in lowered for word in ("lora", "lycoris", "locon", "embedding", "textual")
    )


def resolve_adapter(ref: str, listed: Any, allow_pickle: Iterable[str] = ()) -> ModelSpec:
    """An adapter by path, else by id or name among ``listed()`` (called only when ``ref`` is no path).

    ``ModelError`` names what is missing: a file that vanished after listing, a name not in the library.
    """
    from studio.core.errors import ModelError

    candidate = Path(ref).expanduser()
    if candidate.is_dir():
        if (candidate / PEFT_CONFIG).is_file():
            return inspect_peft_folder(candidate)
        raise ModelError(f"{ref} is a folder without {PEFT_CONFIG}: not a peft adapter")
    if candidate.is_file():
        allowed = str(candidate.resolve()) in set(allow_pickle)
        return inspect_adapter_file(candidate, allow_pickle=allowed)
    for spec in listed():
        if ref in (spec.id, spec.name, spec.path.name):
            if not spec.path.exists():
                raise ModelError(f"the {spec.kind} {spec.name!r} was listed but its file {spec.path} is gone")
            return spec
    lowered = ref.lower()
    for spec in listed():
        if lowered in (spec.id.lower(), spec.name.lower()):
            return spec
    if "/" in ref or "\\" in ref or candidate.suffix in (".safetensors", *PICKLE_SUFFIXES):
        raise ModelError(f"the adapter file {ref} does not exist (moved or deleted?)")
    raise ModelError(f"LoRA or embedding {ref!r} is not in your library: add its folder with 'studio models add'")


# -- what a job uses -----------------------------------------------------------------


@dataclass(frozen=True)
class ResolvedAdapter:
    """One adapter a job applies: the library's spec, the weight, the name it was asked by, and its
    hashes — ``sha256`` of the whole file, and ``short_hash``, the one A1111 and Civitai show."""

    spec: ModelSpec
    weight: float
    mentioned: str
    sha256: str
    short_hash: str

    @property
    def kind(self) -> str:
        return self.spec.kind

    @property
    def token(self) -> str:
        return str(self.spec.details.get("token", ""))

    def to_record(self) -> dict[str, Any]:
        """The adapter as the provenance record lists it."""
        info: dict[str, Any] = {
            "kind": self.spec.kind,
            "id": self.spec.id,
            "name": self.spec.name,
            "file": self.spec.path.name,
            "sha256": self.sha256,
            "short_hash": self.short_hash,
            "base": self.spec.details.get("base", ""),
            "family": self.spec.family,
        }
        if self.spec.kind == EMBEDDING:
            info["token"] = self.token
        else:
            info["weight"] = self.weight
        if self.mentioned and self.mentioned != self.spec.name:
            info["mentioned"] = self.mentioned
        lineage = training_lineage(self.spec.details)
        if lineage is not None:  # trained in Studio: what it learned from travels with every output
            info["training"] = lineage
        return info


_HASHES: dict[tuple[str, int, int], tuple[str, str]] = {}


def adapter_hashes(file: Path) -> tuple[str, str]:
    """(sha256 of the file, sha256 of the bytes after the safetensors header), in one read.

    The second is kohya's "addnet" hash, the LoRA hash A1111 writes: ``extensions-builtin/Lora/
    network.py`` (``NetworkOnDisk.read_hash``: ``hashes.sha256(filename, "lora/" + name,
    use_addnet_hash=is_safetensors)``, shorthash = the first 12 hex digits) and ``modules/hashes.py``
    (``addnet_hash_safetensors``: skip 8 + header length bytes, sha256 of the rest). Embeddings use
    the plain file sha256 (``modules/textual_inversion/textual_inversion.py``, ``Embedding.shorthash``,
    also 12 digits). Cached by path, size and modification time, like the model fingerprints.
    """
    stat = file.stat()
    key = (str(file.resolve()), stat.st_size, stat.st_mtime_ns)
    cached = _HASHES.get(key)
    if cached is not None:
        return cached
    whole, data = hashlib.sha256(), hashlib.sha256()
    with file.open("rb") as handle:
        head = handle.read(8)
        whole.update(head)
        skip = int.from_bytes(head, "little") if file.suffix == ".safetensors" and len(head) == 8 else -1
        if skip >= 0:
            header = handle.read(skip)
            whole.update(header)
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            whole.update(chunk)
            data.update(chunk)
    digests = (whole.hexdigest(), data.hexdigest() if skip >= 0 else whole.hexdigest())
    _HASHES[key] = digests
    return digests


def a1111_short_hash(spec: ModelSpec, sha256: str, addnet: str) -> str:
    """The 12-digit hash A1111 puts in ``Lora hashes`` (addnet hash) / ``TI hashes`` (file sha256)."""
    if spec.kind == EMBEDDING or spec.path.suffix != ".safetensors":
        return sha256[:12]
    return addnet[:12]


def model_text_width(model: ModelSpec) -> int:
    """The text width a model's denoiser reads (UNet cross-attention), 0 when unknown."""
    if model.details.get("cross_attention"):
        return int(model.details["cross_attention"])
    folder = Path(model.details.get("config") or model.path)
    config = read_json(folder / "unet" / "config.json") or {}
    value = config.get("cross_attention_dim")
    return int(value) if isinstance(value, int) else 0


def model_encoder_width(model: ModelSpec) -> int:
    folder = Path(model.details.get("config") or model.path)
    config = read_json(folder / "text_encoder" / "config.json") or {}
    value = config.get("hidden_size")
    return int(value) if isinstance(value, int) else 0


def model_base_label(model: ModelSpec) -> str:
    if model.family == "sd":
        label = base_label("sd", model_text_width(model))
        return "SD 1.5" if label == "SD1.x" else label
    return BASE_LABELS.get(model.family, model.family or "an unknown family")


def check_fits(adapter: ModelSpec, model: ModelSpec) -> None:
    """Refuse an adapter made for another family than the model's, naming both."""
    from studio.core.errors import ModelError

    what = "embedding" if adapter.kind == EMBEDDING else "LoRA"
    if not adapter.runnable:
        raise ModelError(f"cannot use the {what} {adapter.name!r}: {adapter.reason}")
    if adapter.details.get("target") == "text":
        raise ModelError(f"{adapter.name!r} is a LoRA for a text model; {model.name} makes images")
    label = str(adapter.details.get("base") or adapter.family or "an unknown family")
    if adapter.family and model.family and adapter.family != model.family:
        raise ModelError(
            f"the {what} {adapter.name!r} is for {label}; the model {model.name} is {model_base_label(model)}"
        )
    width = int(adapter.details.get("width") or 0)
    if adapter.kind == EMBEDDING and adapter.family == "sd":
        have = model_encoder_width(model)
        if width and have and width != have:
            raise ModelError(
                f"the embedding {adapter.name!r} has vectors {width} wide ({label}); the text encoder of "
                f"{model.name} takes {have} ({model_base_label(model)})"
            )
    elif adapter.kind == LORA and adapter.family == "sd":
        have = model_text_width(model)
        if width and have and width != have:
            raise ModelError(
                f"the LoRA {adapter.name!r} is for {label}; the model {model.name} is {model_base_label(model)}"
            )


def resolved_adapter(spec: ModelSpec, weight: float, mentioned: str) -> ResolvedAdapter:
    from studio.core.errors import ModelError

    file = spec.path / PEFT_WEIGHTS if spec.path.is_dir() else spec.path
    try:
        sha256, addnet = adapter_hashes(file)
    except OSError as exc:
        raise ModelError(f"the adapter {spec.name!r} cannot be read ({file}): {exc.strerror or exc}") from exc
    return ResolvedAdapter(spec, float(weight), mentioned, sha256, a1111_short_hash(spec, sha256, addnet))


def resolve_image_adapters(catalog: Any, model: ModelSpec, request: Any) -> list[ResolvedAdapter]:
    """The LoRAs and embeddings an image job applies, checked against its model before anything loads:
    ``request.loras``, the ``<lora:…>`` tags of the prompt, ``request.embeddings``, and the library's
    embeddings whose token the prompt or negative prompt uses (as A1111 does)."""
    from studio.core.errors import InvalidRequest, ModelError
    from studio.core.prompt_syntax import lora_tags
    from studio.core.requests import check_adapter_weight

    try:
        tags = lora_tags(request.prompt)
    except ValueError as exc:
        raise InvalidRequest("prompt", str(exc)) from exc
    wanted = [(ref, float(weight), ref) for ref, weight in request.loras]
    for tag in tags:
        check_adapter_weight("prompt", tag.weight, tag.text)
        wanted.append((tag.name, tag.weight, tag.name))
    listed_cache: list[ModelSpec] | None = None

    def listed() -> list[ModelSpec]:
        nonlocal listed_cache
        if listed_cache is None:
            listed_cache = catalog.adapters() if hasattr(catalog, "adapters") else []
        return listed_cache

    resolved: list[ResolvedAdapter] = []
    seen: set[Path] = set()
    for ref, weight, mentioned in wanted:
        spec = resolve_adapter(ref, listed, getattr(catalog, "allow_pickle", ()))
        if spec.kind != LORA:
            raise ModelError(f"{ref!r} is {'an embedding' if spec.kind == EMBEDDING else 'not a LoRA'}; "
                             "use it as an embedding (its token in the prompt)")  # fmt: skip
        check_fits(spec, model)
        if spec.path.resolve() in seen:
            continue  # the same LoRA named twice (in the list and the prompt): the first weight holds
        seen.add(spec.path.resolve())
        resolved.append(resolved_adapter(spec, weight, mentioned))
    embeddings = [resolve_adapter(ref, listed, getattr(catalog, "allow_pickle", ())) for ref in request.embeddings]
    words = set(re.findall(r"[\w.-]+", f"{request.prompt} {request.negative}"))
    if words and hasattr(catalog, "adapters"):
        embeddings += [
            spec for spec in listed() if spec.kind == EMBEDDING and spec.details.get("token") in words and spec.runnable
            and (not spec.family or spec.family == model.family)
        ]  # fmt: skip
    for spec in embeddings:
        if spec.kind != EMBEDDING:
            raise ModelError(f"{spec.name!r} is a LoRA, not an embedding; add it as a LoRA")
        check_fits(spec, model)
        if spec.path.resolve() in seen:
            continue
        seen.add(spec.path.resolve())
        resolved.append(resolved_adapter(spec, 1.0, spec.name))
    return resolved


def resolve_text_lora(catalog: Any, model: ModelSpec, request: Any) -> ResolvedAdapter | None:
    """The peft LoRA a text job applies (``request.lora``), checked against its model's hidden size."""
    from studio.core.errors import ModelError

    if not request.lora:
        return None
    listed = catalog.adapters if hasattr(catalog, "adapters") else list
    spec = resolve_adapter(request.lora, listed)
    if not spec.runnable:
        raise ModelError(f"cannot use the LoRA {spec.name!r}: {spec.reason}")
    if spec.details.get("layout") != "peft":
        raise ModelError(f"{spec.name!r} is an image {spec.kind} ({spec.details.get('base', '')}); "
                         f"{model.name} writes text")  # fmt: skip
    config = read_json(model.path / "config.json") or {}
    hidden = config.get("hidden_size")
    width = int(spec.details.get("width") or 0)
    if isinstance(hidden, int) and width and hidden != width:
        raise ModelError(
            f"the LoRA {spec.name!r} is for a model of hidden size {width} ({spec.details.get('base', '')}); "
            f"{model.name} has {hidden}"
        )
    return resolved_adapter(spec, request.lora_weight, request.lora)


def resolve_job_adapters(catalog: Any, model: ModelSpec, request: Any) -> list[ResolvedAdapter]:
    """The adapters of any job (none for music), resolved and checked before its model loads."""
    if request.kind == "image":
        return resolve_image_adapters(catalog, model, request)
    if request.kind == "text":
        lora = resolve_text_lora(catalog, model, request)
        return [lora] if lora is not None else []
    return []
