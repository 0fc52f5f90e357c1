"""Conversations in the gallery: one item per conversation, saved again after every turn.

The item's file is a Markdown transcript of the branch shown (front matter with the record, as
every text item has); its record holds the whole tree (``output.conversation``: every turn, every
branch, each reply's provenance — model and hash, parameters, concrete seed, tokens, timing).
Each save goes through ``GalleryStore.save`` under the conversation's own id and creation date, so
it lands on the same file: written to a temporary name and renamed (transcript, then sidecar, then
the index row). A kill during a save leaves the previous save whole — or the new transcript, whose
embedded record is newer than the sidecar beside it, and ``load`` takes the newer of the two.

A conversation file edited by hand into nonsense is reported with what is wrong; the next turn
saved into it starts again from the turns the chat still shows (its earlier turns travel in every
request), and the damaged sidecar is kept beside it as ``.<id>.damaged-<time>.json``.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import studio
from studio.core.conversation import Conversation, ConversationError
from studio.core.errors import StudioError
from studio.core.files import atomic_write_text
from studio.core.outputs import EngineResult, GeneratedOutput
from studio.core.provenance import ProvenanceRecord, utc_now_iso
from studio.core.requests import TextRequest
from studio.gallery.metadata import read_embedded_record
from studio.gallery.store import GalleryItem, GalleryStore

EXPORT_FORMATS = ("md", "txt", "json")
# Request fields a turn's provenance keeps: the conversation itself is the tree, not repeated per turn.
_NOT_PER_TURN = ("messages", "prompt", "system", "conversation", "turn_parent", "reply_to", "continue_from")
_LOCK = threading.Lock()  # the worker saves turns while the window renames: one writer at a time


def is_conversation(item: GalleryItem) -> bool:
    return isinstance(item.record.output.get("conversation"), dict)


def conversation_of(record: ProvenanceRecord) -> Conversation:
    return Conversation.from_dict(record.output.get("conversation"))


def _read_sidecar(item: GalleryItem) -> Conversation:
    try:
        data = json.loads(item.sidecar.read_text("utf-8"))
    except OSError as exc:
        raise ConversationError(f"cannot read {item.sidecar.name}: {exc.strerror or exc}") from exc
    except ValueError as exc:
        raise ConversationError(f"{item.sidecar.name} is not valid JSON ({exc})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("output"), dict):
        raise ConversationError(f"{item.sidecar.name} is not a Studio record")
    return Conversation.from_dict(data["output"].get("conversation"))


def _read_embedded(item: GalleryItem) -> Conversation:
    data = read_embedded_record(item.path)
    if not isinstance(data, dict) or not isinstance(data.get("output"), dict):
        raise ConversationError(f"{item.path.name} carries no readable record")
    return Conversation.from_dict(data["output"].get("conversation"))


def load(store: GalleryStore, conversation_id: str) -> Conversation:
    """The conversation saved as gallery item ``conversation_id``.

    ``ConversationError`` names what is wrong when neither its sidecar nor its transcript holds a
    readable conversation; ``StudioError`` when there is no such item (or it is in the trash).
    """
    item = _item(store, conversation_id)
    try:
        saved = _read_sidecar(item)
    except ConversationError as problem:
        try:
            return _read_embedded(item)
        except ConversationError:
            raise ConversationError(f"conversation {conversation_id} is damaged: {problem}") from problem
    try:
        embedded = _read_embedded(item)
    except ConversationError:
        return saved
    return embedded if (embedded.updated_at or "") > (saved.updated_at or "") else saved


def _item(store: GalleryStore, conversation_id: str) -> GalleryItem:
    item = store.get(conversation_id)
    if item is None:
        if store.get(conversation_id, include_deleted=True) is not None:
            raise StudioError(f"conversation {conversation_id} is in the trash: restore it to continue")
        raise StudioError(f"no conversation {conversation_id}: see 'studio chat list'")
    if not is_conversation(item):
        raise StudioError(f"gallery item {conversation_id} is not a conversation")
    return item


def save(
    store: GalleryStore,
    conversation: Conversation,
    *,
    model: dict[str, Any] | None = None,
    request: dict[str, Any] | None = None,
    runtime: dict[str, Any] | None = None,
    info: dict[str, Any] | None = None,
) -> GalleryItem:
    """Write ``conversation`` as its gallery item (a new one, or the same file again)."""
    previous = store.get(conversation.id)
    if previous is None and store.get(conversation.id, include_deleted=True) is not None:
        raise StudioError(f"conversation {conversation.id} is in the trash: restore it to continue")
    if previous is not None:  # what is not given stays as the last save had it
        model = model if model is not None else previous.record.model
        request = request if request is not None else previous.record.request
        runtime = runtime if runtime is not None else previous.record.runtime
    conversation.updated_at = max(utc_now_iso(), conversation.updated_at or "")
    path = conversation.path()
    last_user = next((t.content for t in reversed(path) if t.role == "user"), "")
    record = ProvenanceRecord(
        id=conversation.id,
        kind="text",
        created_at=conversation.created_at,
        app={"name": studio.APP_NAME, "version": studio.__version__},
        model=dict(model or {}),
        request={**(request or {"kind": "text"}), "prompt": last_user, "system": conversation.system},
        runtime=dict(runtime or {}),
        output={
            **{k: v for k, v in (info or {}).items() if k in ("tokens", "tokens_per_s", "seconds", "backend")},
            "conversation": conversation.to_dict(),
            "title": conversation.title,
            "turns": len(conversation.turns),
        },
        ai_training=previous.record.ai_training if previous is not None else "",
    )
    transcript = GeneratedOutput("text", conversation.transcript_markdown(), {})
    item = store.save(transcript, record)
    if previous is not None and (previous.favourite or previous.tags):
        item = store.annotate(item.id, favourite=previous.favourite, tags=list(previous.tags))
    return item


def _turn_provenance(request: TextRequest, result: EngineResult, info: dict[str, Any]) -> dict[str, Any]:
    parameters = {k: v for k, v in request.to_dict().items() if k not in _NOT_PER_TURN}
    runtime = result.runtime
    return {
        "model": dict(result.model),
        "parameters": parameters,
        "seed": request.seed,
        "tokens": info.get("tokens"),
        "prompt_tokens": info.get("prompt_tokens"),
        "seconds": info.get("seconds"),
        "tokens_per_s": info.get("tokens_per_s"),
        "first_token_ms": info.get("first_token_ms"),
        "dropped_turns": info.get("dropped_turns", 0),
        "stopped": bool(info.get("stopped")),
        "continued": bool(request.continue_from),
        "notes": list(info.get("notes", [])),
        "device": runtime.get("device", ""),
        "backend": info.get("backend") or runtime.get("backend", "transformers"),
    }


def _rebuilt_from_request(request: TextRequest) -> Conversation:
    """A conversation from the turns a request carries (the path the chat shows)."""
    conversation = Conversation(request.conversation, system=request.system)
    parent = None
    for role, content in request.messages:
        parent = conversation.add(role, content, parent).id
    return conversation


def save_exchange(store: GalleryStore, request: TextRequest, result: EngineResult) -> GalleryItem:
    """One finished reply into its conversation (the worker calls this after a chat job): the user
    message as a new turn (unless ``reply_to`` answers an existing one again) and the reply under it."""
    output = result.outputs[0]
    info = dict(output.info)
    with _LOCK:
        notes: list[str] = []
        conversation: Conversation | None = None
        if store.get(request.conversation, include_deleted=True) is not None:
            try:
                conversation = load(store, request.conversation)
            except ConversationError as exc:
                _keep_damaged(store, request.conversation)
                notes.append(f"{exc}; it was saved again from the turns shown")
        if conversation is None:
            conversation = _rebuilt_from_request(request)
            parent_id = conversation.current
            user = None
        else:
            parent_id = request.turn_parent or None
            user = conversation.turns.get(request.reply_to) if request.reply_to else None
            if request.reply_to and (user is None or user.role != "user"):
                raise StudioError(f"conversation {request.conversation} has no message {request.reply_to} to answer")
            if parent_id is not None and parent_id not in conversation.turns:
                raise StudioError(f"conversation {request.conversation} has no turn {parent_id} to follow")
        conversation.system = request.system
        if user is None:
            user = conversation.add("user", request.prompt, parent_id)
        provenance = _turn_provenance(request, result, info)
        if notes:
            provenance["notes"] = [*provenance["notes"], *notes]
        conversation.add("assistant", str(output.data), user.id, provenance)
        request_data = {k: v for k, v in request.to_dict().items() if k != "messages"}
        return save(store, conversation, model=result.model, request=request_data, runtime=result.runtime, info=info)


def _keep_damaged(store: GalleryStore, conversation_id: str) -> None:
    item = store.get(conversation_id, include_deleted=True)
    if item is None or not item.sidecar.is_file():
        return
    backup = item.sidecar.with_name(f".{conversation_id}.damaged-{int(time.time())}.json")
    try:
        backup.write_bytes(item.sidecar.read_bytes())
    except OSError:
        pass


def rename(store: GalleryStore, conversation_id: str, title: str) -> GalleryItem:
    with _LOCK:
        conversation = load(store, conversation_id)
        conversation.title = " ".join(title.split()) or conversation.title
        return save(store, conversation)


def select_branch(store: GalleryStore, conversation_id: str, turn_id: str) -> GalleryItem:
    """Remember which alternative is shown (‹ 2/3 ›), so the conversation reopens on it."""
    with _LOCK:
        conversation = load(store, conversation_id)
        conversation.select(turn_id)
        return save(store, conversation)


def list_conversations(store: GalleryStore, search: str = "", limit: int | None = None) -> list[GalleryItem]:
    """Conversations, the latest first; ``search`` matches words of their titles or any message."""
    items = [item for item in store.list(kind="text") if is_conversation(item)]
    words = search.lower().split()
    if words:
        items = [item for item in items if all(word in _searchable(item) for word in words)]
    items.sort(key=lambda item: str(item.record.output["conversation"].get("updated_at", "")), reverse=True)
    return items[:limit] if limit else items


def _searchable(item: GalleryItem) -> str:
    tree = item.record.output["conversation"]
    turns = tree.get("turns") if isinstance(tree.get("turns"), list) else []
    texts = [str(tree.get("title", "")), str(tree.get("system", ""))]
    texts += [str(t.get("content", "")) for t in turns if isinstance(t, dict)]
    return "\n".join(texts).lower()


def export(store: GalleryStore, conversation_id: str, folder: Path, fmt: str = "md") -> Path:
    """The conversation as Markdown (the branch shown, with front matter), plain text, or JSON (the
    whole tree with every turn's provenance) in ``folder``."""
    if fmt not in EXPORT_FORMATS:
        raise StudioError(f"conversations export as {', '.join(EXPORT_FORMATS)}, not {fmt!r}")
    conversation = load(store, conversation_id)
    item = _item(store, conversation_id)
    folder = Path(folder).expanduser()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StudioError(f"cannot create {folder}: {exc.strerror or exc}") from exc
    stem = _file_stem(conversation)
    target = folder / f"{stem}.{fmt}"
    if fmt == "json":
        text = json.dumps(conversation.to_dict(), indent=2, ensure_ascii=False)
    elif fmt == "txt":
        text = conversation.transcript_text()
    else:
        title = conversation.title.replace('"', "'")
        front = [
            "---",
            f'title: "{title}"',
            f"conversation: {conversation.id}",
            f"created_at: {conversation.created_at}",
            f"model: {item.record.model.get('name', '')}",
            "digital_source_type: http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia",
            "---",
            "",
        ]
        text = "\n".join(front) + conversation.transcript_markdown()
    try:
        atomic_write_text(target, text, prefix=".partial-")
    except OSError as exc:
        raise StudioError(f"cannot write {target}: {exc.strerror or exc}") from exc
    return target


def _file_stem(conversation: Conversation) -> str:
    words = "".join(c if c.isalnum() else "-" for c in conversation.title.lower()).strip("-")
    while "--" in words:
        words = words.replace("--", "-")
    return f"{conversation.created_at[:10]}_{words[:40] or 'conversation'}_{conversation.id[-6:]}"


def delete(store: GalleryStore, conversation_id: str) -> list[str]:
    """Into the gallery's trash (``store.restore`` brings it back: the chat list's undo)."""
    return store.delete([conversation_id])


__all__ = [
    "EXPORT_FORMATS",
    "conversation_of",
    "delete",
    "export",
    "is_conversation",
    "list_conversations",
    "load",
    "rename",
    "save",
    "save_exchange",
    "select_branch",
]
