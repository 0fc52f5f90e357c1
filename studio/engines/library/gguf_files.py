"""GGUF model files: what their header says (architecture, size, quantisation, context, chat
template), read without the weights, and where the apps people use keep them.

The ``gguf`` package's ``GGUFReader`` parses the header over a memory map, so the tensor data is
never read. It trusts the counts a file states, so the fixed header is checked first against the
file's size: a truncated download, a file that is not GGUF, or absurd counts become a reason, never
an exception or a huge allocation. Nothing here imports torch.

Sources besides the user's folders, each read in place and never copied (``APP_SOURCES``):
LM Studio (``~/.lmstudio/models``, older ``~/.cache/lm-studio/models``: publisher/repo/file.gguf),
GPT4All (``~/.local/share/nomic.ai/GPT4All``: files side by side), Jan (``~/jan/models/<id>/`` and
the newer ``~/.local/share/Jan/data/llamacpp/models/<id>/``), and Ollama (a manifest per
``name:tag`` under ``~/.ollama/models/manifests/<registry>/<namespace>/<name>/<tag>`` whose model
layer names a blob ``blobs/sha256-<digest>``; ``OLLAMA_MODELS`` moves the store).
"""

from __future__ import annotations

import json
import os
import re
import struct
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from studio.core.models import ModelSpec

GGUF_MAGIC = b"GGUF"
# Far above any real model (a 405 B model has ~1,100 tensors and ~50 keys) and small enough that
# parsing what a hostile header claims stays cheap.
MAX_TENSORS = 100_000
MAX_KEYS = 10_000
_MIN_TENSOR_INFO = 8 + 1 + 4 + 8 + 4 + 8  # name length, name, n_dims, one dim, type, offset
_MIN_KEY = 8 + 1 + 4  # key length, key, value type
SPLIT_PART = re.compile(r"-(\d{5})-of-(\d{5})\.gguf$", re.IGNORECASE)

# Architectures that are parts of other models, not text models on their own (LM Studio keeps a
# vision model's projector beside it as ``mmproj-*.gguf``).
NOT_TEXT_ARCHITECTURES = {"clip", "mmproj"}


class GGUFError(ValueError):
    """The file is not a GGUF file Studio can read; the message says what is wrong."""


@dataclass(frozen=True)
class GGUFInfo:
    """What a GGUF header says about its model."""

    architecture: str
    name: str
    parameters: int
    quantisation: str  # "Q4_K_M", "Q8_0", "F16", …
    context_length: int  # 0 when the header does not say
    chat_template: str  # "" for a base model
    tensor_count: int
    size_bytes: int
    facts: dict[str, Any] = field(default_factory=dict)  # bos/eos tokens, the size label

    @property
    def parameter_label(self) -> str:
        """1.1B, 135M: how the apps show a model's size."""
        count = self.parameters
        for unit, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
            if count >= scale:
                return f"{count / scale:.1f}".rstrip("0").rstrip(".") + unit
        return str(count)


def _check_header(path: Path) -> None:
    """Refuse what is not a complete GGUF header before the reader trusts its counts."""
    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            head = handle.read(24)
    except OSError as exc:
        raise GGUFError(f"cannot read {path.name}: {exc.strerror or exc}") from exc
    if len(head) < 4 or head[:4] != GGUF_MAGIC:
        raise GGUFError(f"{path.name} is not a GGUF file (it does not start with 'GGUF')")
    if len(head) < 24:
        raise GGUFError(f"{path.name} is truncated: its header is incomplete ({size} bytes)")
    version, tensors, keys = struct.unpack("<IQQ", head[4:24])
    if version not in (2, 3):
        if struct.unpack(">I", head[4:8])[0] in (2, 3):
            raise GGUFError(f"{path.name} is a big-endian GGUF file, which llama.cpp on this computer cannot run")
        raise GGUFError(f"{path.name} is GGUF version {version}; Studio reads versions 2 and 3")
    if tensors > MAX_TENSORS or keys > MAX_KEYS or 24 + tensors * _MIN_TENSOR_INFO + keys * _MIN_KEY > size:
        raise GGUFError(
            f"{path.name} is truncated or damaged: its header claims {tensors} tensors and {keys} metadata "
            f"keys, more than its {size} bytes can hold"
        )


def _quantisation(file_type: Any, tensor_types: Iterable[str]) -> str:
    import gguf

    if isinstance(file_type, int):
        try:
            return gguf.LlamaFileType(file_type).name.removeprefix("MOSTLY_").replace("ALL_", "")
        except ValueError:
            pass
    # No (or an unknown) file type: the type most of the weights have.
    counts: dict[str, int] = {}
    for name in tensor_types:
        counts[name] = counts.get(name, 0) + 1
    return max(counts, key=lambda k: counts[k]) if counts else ""


def read_gguf_info(path: Path) -> GGUFInfo:
    """The header of one GGUF file; ``GGUFError`` says what is wrong with a bad one."""
    path = Path(path)
    _check_header(path)
    import gguf

    try:
        reader = gguf.GGUFReader(path, "r")
    except Exception as exc:  # the reader meets damaged files with whatever numpy or struct raises
        raise GGUFError(f"{path.name} is truncated or damaged: {str(exc).splitlines()[0][:200]}") from exc

    def value(key: str) -> Any:
        found = reader.fields.get(key)
        if found is None:
            return None
        try:
            return found.contents()
        except Exception:  # a field of the wrong type reads as absent
            return None

    architecture = str(value("general.architecture") or "")
    if not architecture:
        raise GGUFError(f"{path.name} has no general.architecture: not a model GGUF llama.cpp can run")
    parameters = 0
    tensor_types = []
    for tensor in reader.tensors:
        parameters += int(tensor.n_elements)
        tensor_types.append(tensor.tensor_type.name)
    context = value(f"{architecture}.context_length")
    template = value("tokenizer.chat_template")
    facts = {
        key: value(source)
        for key, source in (
            ("size_label", "general.size_label"),
            ("bos_token_id", "tokenizer.ggml.bos_token_id"),
            ("eos_token_id", "tokenizer.ggml.eos_token_id"),
            ("tokenizer", "tokenizer.ggml.model"),
            ("general_type", "general.type"),
        )
        if value(source) is not None
    }
    return GGUFInfo(
        architecture=architecture,
        name=str(value("general.name") or ""),
        parameters=parameters,
        quantisation=_quantisation(value("general.file_type"), tensor_types),
        context_length=int(context) if isinstance(context, int) and context > 0 else 0,
        chat_template=template if isinstance(template, str) else "",
        tensor_count=len(reader.tensors),
        size_bytes=path.stat().st_size,
        facts=facts,
    )


_CACHE: OrderedDict[tuple[str, int, int], GGUFInfo | GGUFError] = OrderedDict()
_CACHE_LOCK = threading.Lock()


def cached_gguf_info(path: Path) -> GGUFInfo:
    """``read_gguf_info``, remembered by path, size and modification time: the catalog is asked
    for its models often, and a header with a 150,000-token vocabulary takes a moment to parse."""
    try:
        stat = path.stat()
    except OSError as exc:
        raise GGUFError(f"cannot read {path.name}: {exc.strerror or exc}") from exc
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    with _CACHE_LOCK:
        known = _CACHE.get(key)
    if known is None:
        try:
            known = read_gguf_info(path)
        except GGUFError as exc:
            known = exc
        with _CACHE_LOCK:
            _CACHE[key] = known
            while len(_CACHE) > 512:
                _CACHE.popitem(last=False)
    if isinstance(known, GGUFError):
        raise known
    return known


# -- where GGUF files are ------------------------------------------------------------------


@dataclass(frozen=True)
class AppSource:
    name: str  # the setting's word and the spec's source
    label: str  # for people
    folders: tuple[str, ...]  # relative to the home folder


APP_SOURCES: tuple[AppSource, ...] = (
    AppSource("lmstudio", "LM Studio", (".lmstudio/models", ".cache/lm-studio/models")),
    AppSource("gpt4all", "GPT4All", (".local/share/nomic.ai/GPT4All",)),
    AppSource("jan", "Jan", ("jan/models", ".local/share/Jan/data/llamacpp/models")),
    AppSource("ollama", "Ollama", (".ollama/models",)),
)
SOURCE_LABELS = {source.name: source.label for source in APP_SOURCES}


@dataclass(frozen=True)
class FoundGGUF:
    path: Path  # the file (an Ollama blob has no .gguf suffix)
    source: str  # "folder", "lmstudio", "gpt4all", "jan", "ollama"
    name: str  # what the user knows it as
    problem: str = ""  # set when the source names a file that is not there (an Ollama manifest's blob)


def gguf_files(root: Path, depth: int = 6) -> list[Path]:
    """The GGUF files under ``root``: the first part only of a split model (llama.cpp loads the rest
    from it), not a vision projector named ``mmproj``."""
    found: list[Path] = []
    if not root.is_dir():
        return found
    try:
        entries = sorted(root.iterdir())
    except OSError:
        return found
    for entry in entries:
        if entry.name.startswith("."):
            continue
        if entry.is_dir() and depth > 0:
            found += gguf_files(entry, depth - 1)
        elif entry.suffix.lower() == ".gguf" and entry.is_file():
            part = SPLIT_PART.search(entry.name)
            if part and int(part.group(1)) != 1:
                continue
            if entry.name.lower().startswith("mmproj"):
                continue
            found.append(entry)
    return found


def _name_in(file: Path, root: Path, source: str) -> str:
    relative = file.relative_to(root)
    if source == "lmstudio" and len(relative.parts) >= 3:  # publisher/repo/file.gguf
        return f"{relative.parts[0]}/{relative.parts[1]}/{file.stem}"
    if source == "jan" and file.stem == "model" and len(relative.parts) >= 2:  # <id>/model.gguf
        return relative.parts[-2]
    return file.stem


def ollama_models(store: Path) -> list[FoundGGUF]:
    """Ollama's models by their Ollama names (``llama3.2:latest``, ``user/model:tag``), each the
    blob its manifest's model layer names; a missing blob is listed with the problem."""
    manifests = store / "manifests"
    found: list[FoundGGUF] = []
    if not manifests.is_dir():
        return found
    for manifest in sorted(p for p in manifests.rglob("*") if p.is_file()):
        parts = manifest.relative_to(manifests).parts
        if len(parts) < 3 or any(part.startswith(".") for part in parts):
            continue
        host, *path, tag = parts
        if host == "registry.ollama.ai" and path[:1] == ["library"]:
            path = path[1:]
        name = "/".join(path) + f":{tag}"
        if host != "registry.ollama.ai":
            name = f"{host}/{name}"
        try:
            if manifest.stat().st_size > 1024 * 1024:
                raise ValueError("too large for a manifest")
            data = json.loads(manifest.read_text(encoding="utf-8"))
            layers = data["layers"]
            digest = next(
                str(layer["digest"])
                for layer in layers
                if isinstance(layer, dict) and layer.get("mediaType") == "application/vnd.ollama.image.model"
            )
        except (OSError, ValueError, KeyError, TypeError, StopIteration):
            continue  # not a model manifest (Ollama also keeps other kinds)
        if not re.fullmatch(r"sha256[:-][0-9a-f]{64}", digest):
            continue
        blob = store / "blobs" / digest.replace(":", "-")
        problem = "" if blob.is_file() else f"Ollama's manifest points at {blob.name}, which is not in its blobs folder"
        found.append(FoundGGUF(blob, "ollama", name, problem))
    return found


def app_gguf_models(home: Path | None = None, disabled: Iterable[str] = ()) -> list[FoundGGUF]:
    """GGUF models the apps keep under ``home``, each source unless it is turned off."""
    home = Path(home) if home is not None else Path.home()
    off = set(disabled)
    found: list[FoundGGUF] = []
    for source in APP_SOURCES:
        if source.name in off:
            continue
        if source.name == "ollama":
            store = Path(os.environ["OLLAMA_MODELS"]).expanduser() if os.environ.get("OLLAMA_MODELS") else None
            found += ollama_models(store or home / source.folders[0])
            continue
        for folder in source.folders:
            root = home / folder
            found += [FoundGGUF(f, source.name, _name_in(f, root, source.name)) for f in gguf_files(root)]
    return found


# -- classification ------------------------------------------------------------------------


def known_architectures() -> set[str]:
    """The architectures the installed ``gguf`` package names (it follows llama.cpp's list)."""
    import gguf

    return set(gguf.MODEL_ARCH_NAMES.values())


def inspect_gguf(
    path: Path, *, model_id: str | None = None, source: str = "path", name: str = "", problem: str = ""
) -> ModelSpec:
    """A GGUF file as a text model of format ``gguf``; never raises, says why in ``reason``."""
    from studio.engines.library.classify import slug
    from studio.engines.registry import GGUF

    path = Path(path).expanduser()
    name = name or path.stem
    ident = model_id or slug(name.replace("/", "--").replace(":", "-"))
    facts: dict[str, Any] = {"single_file": True}

    def spec(runnable: bool, reason: str = "", family: str = "") -> ModelSpec:
        return ModelSpec(ident, name, "text", family, path, source, runnable, reason, details=facts, format=GGUF)

    if problem:
        return spec(False, problem)
    try:
        info = cached_gguf_info(path)
    except GGUFError as exc:
        return spec(False, str(exc))
    facts.update(
        {
            "class": info.architecture,
            "size_bytes": info.size_bytes,
            "dtype": info.quantisation,
            "quantisation": info.quantisation,
            "parameters": info.parameters,
            "parameter_label": info.parameter_label,
            "context_length": info.context_length,
            "chat": bool(info.chat_template),
            "gguf_name": info.name,
        }
    )
    if info.architecture in NOT_TEXT_ARCHITECTURES or info.facts.get("general_type") == "mmproj":
        return spec(False, f"{path.name} is a vision projector ({info.architecture}), not a text model", "")
    if info.architecture not in known_architectures():
        return spec(False, f"{path.name} is a {info.architecture!r} model, an architecture llama.cpp does not know", "")
    if info.tensor_count == 0:
        return spec(False, f"{path.name} holds no weights (a vocabulary-only GGUF)", info.architecture)
    return spec(True, family=info.architecture)
