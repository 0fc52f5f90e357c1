"""Training on the artist's own work: the request, the data summary and the data digest.

Plain data, shared by the worker (``studio.runtime.training``), the trainers
(``studio.engines.training``), the command line (``studio train``) and the Train tab. A training run
is a job like any other on the worker, but it makes a model in the library rather than a gallery
item, so its request is not one of ``studio.core.requests.REQUEST_TYPES``.

Events of a training job (``JobEvent``):

- ``started``: ``info`` = ``{"kind": "train", "medium", "name", "base", "method"}``;
- ``data_summary``: ``result`` = the run's ``DataSummary``, once its files are read and hashed (before
  the data checks: a run refused for too little data still shows what it found);
- ``progress``: ``step``/``total`` and ``info`` = ``{"phase", "loss", "learning_rate", "elapsed_s",
  "eta_s", "epoch", "recent"}`` — ``phase`` is one of ``PHASES``; ``loss`` is the mean over the
  step's batch; ``recent`` the last ``RECENT_POINTS`` (step, loss) pairs, because the window's
  bridge keeps only the latest progress event per frame and the loss curve needs every step;
- ``preview``: a sample from the fixed prompts, ``preview`` = ``TrainingSample.to_event()``;
- ``finished``: ``result`` = ``TrainedModel.to_dict()``;
- ``cancelled`` / ``error``: ``info["checkpoint"]`` names the last checkpoint kept (Resume continues
  from it) when there is one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from dataclasses import dataclass, field
from typing import Any, ClassVar

from studio.core.errors import InvalidRequest
from studio.core.requests import check_limits, limit

TRAIN_MEDIA = ("text", "image", "music")
METHODS = ("lora", "full")
RECENT_POINTS = 32
PHASES = ("reading", "estimating", "training", "checkpoint", "sampling", "saving")
TRAINING_SCHEMA = "studio.training/1"
# The file a trained model or adapter carries beside its weights: ``TrainingCard.to_dict()``. The
# library reads it into ``ModelSpec.details["training"]``; the worker copies its lineage
# (``TrainingCard.lineage``) into every record made with the model.
TRAINING_FILE = "studio_training.json"

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}$")


@dataclass(frozen=True)
class TrainRequest:
    """One training run, as the Train tab or ``studio train`` asks for it.

    ``data``: folders, files or gallery item ids (``gallery:<id>``), in any mix; also
    ``gallery:favourites`` (the favourites of the run's medium) and ``gallery:search:<words>`` (the
    items of the run's medium a gallery search for ``<words>`` finds). Folders are read recursively,
    hidden files skipped; a gallery melody's MIDI file is read when its audio is not. ``captions``: the
    caption editor's text by file path (or by ``gallery:<id>``), winning over the gallery prompt and a
    ``.txt`` beside the file. The least a run takes (``studio.runtime.training.MINIMUM``): 4 images,
    2,000 characters of text, 200 notes of tunes.

    ``base``: a model reference as ``--model`` takes it ("" = the default base of the medium:
    the current model of that kind; the starter for text and music). ``method``: "" = the base's
    default (``lora`` for diffusers and transformers models, ``full`` for the small starters).
    Zero in ``steps``, ``learning_rate``, ``resolution``, ``seq_len`` and ``alpha`` means "the
    trainer's default for this base" — the trainer fills them in its ``TrainingPlan``.
    """

    kind: ClassVar[str] = "train"
    medium: str
    data: tuple[str, ...]
    name: str
    base: str = ""
    method: str = ""
    steps: int = field(default=0, metadata=limit(0, 100_000, label="Steps", hint=" (0: the default for the base)"))
    epochs: int = field(default=0, metadata=limit(0, 1000, label="Epochs", hint=" (0: steps decide)"))
    rank: int = field(default=16, metadata=limit(1, 256, label="Rank"))
    alpha: float = field(default=0.0, metadata=limit(0.0, 1024.0, step=1.0, label="Alpha", hint=" (0: the rank)"))
    learning_rate: float = field(
        default=0.0, metadata=limit(0.0, 1.0, step=1e-5, label="Learning rate", hint=" (0: the default)")
    )
    batch_size: int = field(default=1, metadata=limit(1, 64, label="Batch size"))
    resolution: int = field(
        default=0, metadata=limit(0, 2048, step=64, label="Resolution", unit="px", hint=" (0: the base's native size)")
    )
    seq_len: int = field(
        default=0, metadata=limit(0, 8192, step=64, label="Sequence length", unit="tokens", hint=" (0: the default)")
    )
    trigger: str = ""
    rights: str = ""
    captions: tuple[tuple[str, str], ...] = ()
    seed: int = field(default=0, metadata=limit(0, 2**32 - 1, label="Seed"))
    sample_every: int = field(
        default=0, metadata=limit(0, 100_000, label="Sample every", unit="steps", hint=" (0: four times a run)")
    )
    sample_prompts: tuple[str, ...] = ()
    checkpoint_every: int = field(
        default=0, metadata=limit(0, 100_000, label="Checkpoint every", unit="steps", hint=" (0: the default)")
    )
    gradient_checkpointing: bool = False
    resume: bool = False
    # Time the first few steps, report the estimate and stop: nothing is installed.
    estimate_only: bool = False
    # Train a real-size image model on a CPU even so (hours): without it such a run stops after
    # the estimate from its first steps (``studio.engines.training.image_lora``, the CPU rule).
    allow_cpu: bool = False

    def __post_init__(self) -> None:
        if self.medium not in TRAIN_MEDIA:
            raise InvalidRequest("medium", f"medium must be one of {', '.join(TRAIN_MEDIA)}, got {self.medium!r}")
        if self.method not in ("", *METHODS):
            raise InvalidRequest("method", f"method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if not isinstance(self.data, tuple) or not self.data or not all(isinstance(d, str) and d for d in self.data):
            raise InvalidRequest("data", "choose what to learn from: a folder, files or gallery items")
        if not isinstance(self.name, str) or not _NAME.match(self.name.strip()):
            raise InvalidRequest(
                "name", "name the result: letters, digits, spaces, '.', '_' or '-', at most 64 characters"
            )
        if self.trigger and (len(self.trigger) > 64 or any(ch in self.trigger for ch in "<>:()[]\n")):
            raise InvalidRequest("trigger", "a trigger word is one short word or phrase, without < > : ( ) [ ]")
        if len(self.rights) > 2000:
            raise InvalidRequest("rights", "the rights statement is at most 2,000 characters")
        check_limits(self)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["data"] = list(self.data)
        data["captions"] = [list(pair) for pair in self.captions]
        data["sample_prompts"] = list(self.sample_prompts)
        return {"kind": self.kind, "schema": TRAINING_SCHEMA, **data}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainRequest:
        if not isinstance(data, dict):
            raise InvalidRequest("request", "a training request must be a JSON object")
        names = {f.name for f in dataclasses.fields(cls) if f.init}
        values = {k: v for k, v in data.items() if k in names}
        for key in ("data", "sample_prompts"):
            if isinstance(values.get(key), list):
                values[key] = tuple(values[key])
        if isinstance(values.get("captions"), list):
            values["captions"] = tuple(tuple(pair) for pair in values["captions"])
        try:
            return cls(**values)
        except TypeError as exc:
            raise InvalidRequest("request", f"incomplete training request: {exc}") from exc


@dataclass(frozen=True)
class TrainingFile:
    """One file the run learns from: its sha256 (part of the data digest) and what was read of it."""

    path: str
    sha256: str
    size_bytes: int
    medium: str
    caption: str = ""  # images: the caption used; "" when none
    caption_source: str = ""  # "editor", "gallery", "txt", "filename" or ""
    width: int = 0
    height: int = 0
    units: int = 0  # texts: characters; tunes: notes
    gallery_id: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainingFile:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass(frozen=True)
class DataSummary:
    """What the artist sees before training, and what the trained model's card keeps.

    ``unreadable``: (path, why) for each file left out; ``duplicates``: groups of paths with the
    same sha256 (only the first of each group is trained on); ``near_duplicates``: groups that look
    alike (images: perceptual hash distance; texts: shingle overlap); ``caption_words``: the most
    frequent caption (or text) words with their counts; ``notes``: sentences about what the trainer
    will do (bucketing or cropping of wildly different sizes, missing captions…)."""

    medium: str
    files: tuple[TrainingFile, ...]
    unreadable: tuple[tuple[str, str], ...] = ()
    duplicates: tuple[tuple[str, ...], ...] = ()
    near_duplicates: tuple[tuple[str, ...], ...] = ()
    caption_words: tuple[tuple[str, int], ...] = ()
    notes: tuple[str, ...] = ()
    rights: str = ""

    @property
    def total_bytes(self) -> int:
        return sum(f.size_bytes for f in self.files)

    @property
    def digest(self) -> str:
        return data_digest(f.sha256 for f in self.files)

    def to_dict(self) -> dict[str, Any]:
        return {
            "medium": self.medium,
            "count": len(self.files),
            "total_bytes": self.total_bytes,
            "data_digest": self.digest,
            "files": [f.to_dict() for f in self.files],
            "unreadable": [list(pair) for pair in self.unreadable],
            "duplicates": [list(group) for group in self.duplicates],
            "near_duplicates": [list(group) for group in self.near_duplicates],
            "caption_words": [list(pair) for pair in self.caption_words],
            "notes": list(self.notes),
            "rights": self.rights,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DataSummary:
        return cls(
            medium=str(data.get("medium", "")),
            files=tuple(TrainingFile.from_dict(f) for f in data.get("files", [])),
            unreadable=tuple((str(p), str(w)) for p, w in data.get("unreadable", [])),
            duplicates=tuple(tuple(g) for g in data.get("duplicates", [])),
            near_duplicates=tuple(tuple(g) for g in data.get("near_duplicates", [])),
            caption_words=tuple((str(w), int(n)) for w, n in data.get("caption_words", [])),
            notes=tuple(data.get("notes", [])),
            rights=str(data.get("rights", "")),
        )


def data_digest(sha256s: Any) -> str:
    """One hash over a training set: sha256 of the sorted, distinct file hashes, one per line.

    Independent of file names and order, so the same files give the same digest anywhere; a file
    added, removed or changed gives another."""
    lines = sorted({str(h).lower() for h in sha256s})
    return hashlib.sha256("".join(f"{h}\n" for h in lines).encode("ascii")).hexdigest()


@dataclass(frozen=True)
class TrainingSample:
    """A sample from a fixed prompt during a run: ``data`` is a ``str`` (text), an RGB uint8 array
    (image) or ``(audio float32 array, sample_rate)`` (music)."""

    step: int
    prompt: str
    medium: str
    data: Any

    def to_event(self) -> dict[str, Any]:
        return {"step": self.step, "prompt": self.prompt, "medium": self.medium, "data": self.data}


@dataclass(frozen=True)
class TrainingCard:
    """What a trained model or adapter says of itself (``TRAINING_FILE`` beside its weights; the
    model card's Markdown is written from it)."""

    name: str
    medium: str
    method: str  # "lora" or "full"
    result_kind: str  # "lora" (an adapter) or the medium (a full model)
    base: dict[str, Any]  # {"id", "name", "sha256", "format", "family"}
    settings: dict[str, Any]  # the plan the trainer ran: steps, rank, alpha, lr, resolution, seq_len, batch, seed
    steps: int
    final_loss: float
    best_loss: float
    duration_s: float
    device: str
    data: DataSummary
    created_at: str
    app_version: str
    curve: tuple[tuple[int, float], ...] = ()  # (step, loss), thinned to at most 500 points

    @property
    def lineage(self) -> dict[str, Any]:
        """What every output made with this model records (``model.training`` or an adapter's
        ``training``) and its C2PA ingredient carries."""
        return {
            "name": self.name,
            "trained_by": "user",
            "method": self.method,
            "base_sha256": str(self.base.get("sha256", "")),
            "data_digest": self.data.digest,
            "files": len(self.data.files),
            "rights": self.data.rights,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": TRAINING_SCHEMA,
            "name": self.name,
            "medium": self.medium,
            "method": self.method,
            "result_kind": self.result_kind,
            "base": dict(self.base),
            "settings": dict(self.settings),
            "steps": self.steps,
            "final_loss": self.final_loss,
            "best_loss": self.best_loss,
            "duration_s": self.duration_s,
            "device": self.device,
            "created_at": self.created_at,
            "app_version": self.app_version,
            "data_digest": self.data.digest,
            "data": self.data.to_dict(),
            "curve": [list(point) for point in self.curve],
            "lineage": self.lineage,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainingCard:
        if data.get("schema") != TRAINING_SCHEMA:
            raise ValueError(f"not a Studio training file (schema {data.get('schema')!r})")
        return cls(
            name=str(data["name"]),
            medium=str(data["medium"]),
            method=str(data["method"]),
            result_kind=str(data["result_kind"]),
            base=dict(data.get("base", {})),
            settings=dict(data.get("settings", {})),
            steps=int(data.get("steps", 0)),
            final_loss=float(data.get("final_loss", 0.0)),
            best_loss=float(data.get("best_loss", 0.0)),
            duration_s=float(data.get("duration_s", 0.0)),
            device=str(data.get("device", "")),
            data=DataSummary.from_dict(data.get("data", {})),
            created_at=str(data.get("created_at", "")),
            app_version=str(data.get("app_version", "")),
            curve=tuple((int(s), float(v)) for s, v in data.get("curve", [])),
        )


@dataclass(frozen=True)
class TrainedModel:
    """What a finished run hands back (``finished`` event's ``result``; ``studio train --json``)."""

    model: str  # the library id, usable as --model (full) or --lora (adapters)
    kind: str  # "lora" or the medium
    path: str
    data_digest: str
    files: int
    final_loss: float
    best_loss: float
    steps: int
    duration_s: float

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
