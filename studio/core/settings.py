"""User settings: declared once with default and description, stored as versioned JSON."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from studio.core.files import atomic_write_text
from studio.core.provenance import AI_TRAINING_CHOICES

log = logging.getLogger(__name__)

SETTINGS_SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Setting:
    name: str
    default: Any
    label: str
    description: str
    check: Callable[[Any], bool]
    choices: tuple[Any, ...] = ()
    internal: bool = False  # kept by the app itself (window state, last models): not in the settings dialog

    def accepts(self, value: Any) -> bool:
        if self.choices and value not in self.choices:
            return False
        try:
            return bool(self.check(value))
        except Exception:  # a checker must never break loading
            return False


def _is_bool(value: Any) -> bool:
    return isinstance(value, bool)


def _is_str(value: Any) -> bool:
    return isinstance(value, str)


def _is_path_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) and v for v in value)


def _is_defaults_map(value: Any) -> bool:
    """{model folder: {parameter: number}}: what each model starts with in its tab."""
    return isinstance(value, dict) and all(
        isinstance(k, str)
        and isinstance(v, dict)
        and all(isinstance(n, str) and isinstance(x, (int, float)) and not isinstance(x, bool) for n, x in v.items())
        for k, v in value.items()
    )


def _is_state_map(value: Any) -> bool:
    return isinstance(value, dict) and all(isinstance(k, str) for k in value)


# Other apps' model stores searched for GGUF files (studio.engines.library.gguf_files knows their folders).
APP_MODEL_SOURCES = {"lmstudio": "LM Studio", "gpt4all": "GPT4All", "jan": "Jan", "ollama": "Ollama"}


def _is_source_list(value: Any) -> bool:
    return isinstance(value, list) and all(v in APP_MODEL_SOURCES for v in value)


def _is_model_map(value: Any) -> bool:
    return isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())


# Where a Ray cluster is: ``local`` (one started on this machine), ``ray://HOST:PORT`` (Ray Client),
# or ``HOST:PORT`` (a cluster this machine is a node of).
_CLUSTER_ADDRESS = re.compile(r"local|ray://[\w.\-\[\]:]+:\d+|[\w.\-\[\]:]+:\d+")


def is_cluster_address(value: Any) -> bool:
    return isinstance(value, str) and bool(_CLUSTER_ADDRESS.fullmatch(value.strip()))


def _is_worker_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 64


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "model_folders",
        [],
        "Model folders",
        "Folders searched for models, besides the bundled ones and the Hugging Face cache.",
        _is_path_list,
    ),
    Setting(
        "last_models", {}, "Last used models", "The model each tab used last, by kind.", _is_model_map, internal=True
    ),
    Setting(
        "model_defaults",
        {},
        "Model defaults",
        "Settings each model starts with in its tab (for example 1-4 steps and guidance 0 for SDXL-Turbo).",
        _is_defaults_map,
        internal=True,  # edited in the model manager
    ),
    Setting(
        "allow_pickle_models",
        [],
        "Models allowed to load pickle weights",
        "Model folders whose .bin/.ckpt/.pt weights you chose to load. Pickle files can run any code on this "
        "computer when they are loaded: allow only models from sources you trust.",
        _is_path_list,
    ),
    Setting(
        "online",
        False,
        "Online mode",
        "Allow Studio to download models from Hugging Face when you ask. Off, Studio never opens a connection.",
        _is_bool,
    ),
    Setting(
        "device",
        "auto",
        "Device",
        "Where models run: auto picks a CUDA or Apple GPU when there is one, else the CPU.",
        _is_str,
        choices=("auto", "cuda", "mps", "cpu"),
    ),
    Setting(
        "memory_mode",
        "auto",
        "Memory mode",
        "How models use GPU memory. auto: decided from free memory when a model loads; full: keep the whole "
        "model on the GPU (fastest); low: move model parts to the GPU only while they run and decode images "
        "in tiles (slower, fits small GPUs).",
        _is_str,
        choices=("auto", "full", "low"),
    ),
    Setting(
        "compile_models",
        False,
        "Compile models (CUDA)",
        "Compile image models with torch.compile: faster steps after a first run that takes a minute or more.",
        _is_bool,
    ),
    Setting(
        "embed_prompts",
        True,
        "Embed prompts in files",
        "Write the prompt into each saved file. Off keeps prompts private; the AI-generated marking is always written.",
        _is_bool,
    ),
    Setting(
        "sign_outputs",
        True,
        "Sign outputs (C2PA)",
        "Add content credentials signed with this installation's key.",
        _is_bool,
    ),
    Setting(
        "ai_training",
        "not_stated",
        "AI training",
        "Whether your outputs may be used to train AI or be mined for data: written into each new file "
        "(C2PA training-and-data-mining assertion, XMP PLUS DataMining). not_stated says nothing; each gallery "
        "item can override it.",
        _is_str,
        choices=AI_TRAINING_CHOICES,
    ),
    Setting(
        "precision",
        "auto",
        "Precision",
        "Number format on the GPU. auto: bfloat16 where the GPU supports it, else float16; the CPU always "
        "uses float32. float32 on a GPU is slower and needs twice the memory.",
        _is_str,
        choices=("auto", "float16", "bfloat16", "float32"),
    ),
    Setting(
        "theme",
        "dark",
        "Theme",
        "Colours of the window: dark, light, or the system's choice.",
        _is_str,
        choices=("dark", "light", "system"),
    ),
    Setting(
        "model_sources_off",
        [],
        "Model sources turned off",
        "Other apps' model stores Studio does not search for GGUF models: any of lmstudio, gpt4all, jan, ollama. "
        "Their files are read in place, never copied.",
        _is_source_list,
    ),
    Setting(
        "run_on",
        "this_machine",
        "Run on",
        "Where the window's jobs run: this machine, or a Ray cluster (studio[cluster]) at the address below. "
        "Outputs are saved in this gallery either way, each naming the machine that made it. Studio connects "
        "only to that address; a local cluster's Ray processes listen on this machine's ports (docs/BATCH.md).",
        _is_str,
        choices=("this_machine", "cluster"),
    ),
    Setting(
        "cluster_address",
        "local",
        "Ray cluster address",
        "local starts a cluster on this machine (one worker per GPU, or the workers below); ray://HOST:PORT "
        "connects to a cluster's Ray Client server (through an SSH tunnel or Ray's TLS: see docs/BATCH.md).",
        is_cluster_address,
    ),
    Setting(
        "cluster_workers",
        2,
        "Workers (local cluster)",
        "How many workers a cluster on this machine starts: one per GPU, or per few CPU cores.",
        _is_worker_count,
    ),
    Setting(
        "cluster_if_lost",
        "fall_back",
        "When the cluster is gone",
        "fall back: the jobs it had not finished, and the next ones, run on this machine; stop: they fail "
        "with the reason, and the next job tries the cluster again. Nothing is ever saved twice.",
        _is_str,
        choices=("fall_back", "stop"),
    ),
    Setting("welcome_shown", False, "Welcome shown", "The first-run welcome was shown.", _is_bool, internal=True),
    Setting("window_state", {}, "Window state", "Size, splitters and the last tab.", _is_state_map, internal=True),
    Setting(
        "gallery_folder",
        "",
        "Gallery folder",
        "Where outputs are saved; empty: the gallery folder in Studio's data folder.",
        _is_str,
        internal=True,  # chosen on the settings' General page, which moves or adopts the gallery safely
    ),
    Setting(
        "gallery_move_from",
        "",
        "Gallery to move",
        "A gallery folder whose files move to the gallery folder when Studio starts next.",
        _is_str,
        internal=True,
    ),
)
_BY_NAME = {s.name: s for s in SETTINGS}


class Settings:
    """The current values; unknown or invalid stored values fall back to the default."""

    def __init__(self, path: Path | None = None, values: dict[str, Any] | None = None) -> None:
        self.path = path
        self._values: dict[str, Any] = {s.name: _copy(s.default) for s in SETTINGS}
        for name, value in (values or {}).items():
            self._set_loaded(name, value)

    @staticmethod
    def declared() -> tuple[Setting, ...]:
        return SETTINGS

    @classmethod
    def load(cls, path: Path) -> Settings:
        settings = cls(path)
        if not path.exists():
            return settings
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            log.warning("settings file %s unreadable (%s); using defaults", path, exc)
            return settings
        if not isinstance(data, dict) or not isinstance(data.get("values"), dict):
            log.warning("settings file %s has no 'values' object; using defaults", path)
            return settings
        version = data.get("schema_version")
        if version != SETTINGS_SCHEMA_VERSION:
            log.info("settings file schema %r read as version %d", version, SETTINGS_SCHEMA_VERSION)
        for name, value in data["values"].items():
            settings._set_loaded(name, value)
        return settings

    def _set_loaded(self, name: str, value: Any) -> None:
        setting = _BY_NAME.get(name)
        if setting is None:
            log.info("ignoring unknown setting %r", name)
        elif not setting.accepts(value):
            log.warning("setting %r: invalid value %r, using default %r", name, value, setting.default)
        else:
            self._values[name] = _copy(value)

    def get(self, name: str) -> Any:
        if name not in _BY_NAME:
            raise KeyError(f"unknown setting {name!r}")
        return _copy(self._values[name])

    def set(self, name: str, value: Any) -> None:
        setting = _BY_NAME.get(name)
        if setting is None:
            raise KeyError(f"unknown setting {name!r}")
        if not setting.accepts(value):
            raise ValueError(f"{setting.label}: {value!r} is not a valid value")
        self._values[name] = _copy(value)

    def to_dict(self) -> dict[str, Any]:
        return {"schema_version": SETTINGS_SCHEMA_VERSION, "values": _copy(self._values)}

    def save(self) -> None:
        """Write atomically, so a crash mid-write keeps the previous file."""
        if self.path is None:
            raise ValueError("these settings have no file")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path, json.dumps(self.to_dict(), indent=2, sort_keys=True), prefix=".settings-")


def _copy(value: Any) -> Any:
    return json.loads(json.dumps(value))
