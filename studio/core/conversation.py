"""A conversation with a chat model as a tree of turns: every edit of a user message and every
regenerated reply is a branch beside the one it replaces, and the conversation shows one path
through the tree (``current``: the last turn of that path).

Plain data (saved in the gallery by ``studio.gallery.conversations``), the context rule (which
earlier turns still fit the model's context — the oldest go first, never the system prompt nor the
message being answered) and the transcripts (Markdown, plain text).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from studio.core.errors import StudioError
from studio.core.provenance import utc_now_iso

CONVERSATION_SCHEMA = "studio.conversation/1"
ROLES = ("user", "assistant")
MAX_TURNS = 100_000


class ConversationError(StudioError):
    """A conversation file that is not one (edited by hand, damaged): the message says where."""


def new_turn_id() -> str:
    return "t" + secrets.token_hex(6)


@dataclass
class Turn:
    id: str
    role: str  # "user" or "assistant"
    content: str
    parent: str | None
    created_at: str
    # An assistant turn's provenance: model (+ sha256), parameters, concrete seed, tokens, timing,
    # and how many earlier turns the context rule left out (``dropped_turns``).
    provenance: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.id,
            "role": self.role,
            "content": self.content,
            "parent": self.parent,
            "created_at": self.created_at,
        }
        if self.provenance:
            data["provenance"] = self.provenance
        return data


@dataclass
class Conversation:
    id: str
    title: str = ""
    system: str = ""
    created_at: str = field(default_factory=utc_now_iso)
    updated_at: str = ""
    turns: dict[str, Turn] = field(default_factory=dict)  # in the order they were made
    current: str | None = None  # the last turn of the path shown

    # -- the tree ------------------------------------------------------------------------

    def children(self, turn_id: str | None) -> list[Turn]:
        return [t for t in self.turns.values() if t.parent == turn_id]

    def siblings(self, turn_id: str) -> list[Turn]:
        """The turn and its alternatives (same parent), oldest first: the ‹ 2/3 › of the chat."""
        return self.children(self.turns[turn_id].parent)

    def path(self, leaf: str | None = None) -> list[Turn]:
        """The turns from the first to ``leaf`` (default: the current one)."""
        turns: list[Turn] = []
        node = leaf if leaf is not None else self.current
        while node is not None:
            turn = self.turns[node]
            turns.append(turn)
            node = turn.parent
        return turns[::-1]

    def latest_leaf(self, turn_id: str) -> str:
        """The end of the branch below ``turn_id``, always taking the newest reply or edit."""
        node = turn_id
        while True:
            below = self.children(node)
            if not below:
                return node
            node = below[-1].id

    def select(self, turn_id: str) -> None:
        """Show the branch through ``turn_id`` (stepping between alternatives)."""
        if turn_id not in self.turns:
            raise ConversationError(f"conversation {self.id} has no turn {turn_id}")
        self.current = self.latest_leaf(turn_id)

    def add(self, role: str, content: str, parent: str | None, provenance: dict[str, Any] | None = None) -> Turn:
        if role not in ROLES:
            raise ConversationError(f"a turn is said by the user or the assistant, not {role!r}")
        if parent is not None and parent not in self.turns:
            raise ConversationError(f"conversation {self.id} has no turn {parent} to answer")
        turn = Turn(new_turn_id(), role, content, parent, utc_now_iso(), dict(provenance or {}))
        while turn.id in self.turns:
            turn.id = new_turn_id()
        self.turns[turn.id] = turn
        self.current = turn.id
        self.updated_at = turn.created_at
        if not self.title and role == "user":
            self.title = title_from(content)
        return turn

    def history_before(self, turn_id: str | None) -> list[Turn]:
        """The turns on the path up to and including ``turn_id`` (what a message after it follows)."""
        return self.path(turn_id) if turn_id is not None else []

    # -- saved form ----------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": CONVERSATION_SCHEMA,
            "id": self.id,
            "title": self.title,
            "system": self.system,
            "created_at": self.created_at,
            "updated_at": self.updated_at or self.created_at,
            "current": self.current,
            "turns": [turn.to_dict() for turn in self.turns.values()],
        }

    @classmethod
    def from_dict(cls, data: Any) -> Conversation:
        """Read a saved conversation; ``ConversationError`` says what is wrong with a damaged one."""
        if not isinstance(data, dict):
            raise ConversationError("a conversation must be a JSON object")
        schema = data.get("schema")
        if not isinstance(schema, str) or not schema.startswith("studio.conversation/"):
            raise ConversationError(f"not a Studio conversation (schema {schema!r})")
        ident = data.get("id")
        if not isinstance(ident, str) or not ident:
            raise ConversationError("the conversation has no id")
        for key in ("title", "system", "created_at", "updated_at"):
            if not isinstance(data.get(key, ""), str):
                raise ConversationError(f"the conversation's {key!r} must be text")
        raw_turns = data.get("turns")
        if not isinstance(raw_turns, list):
            raise ConversationError("the conversation's 'turns' must be a list")
        if len(raw_turns) > MAX_TURNS:
            raise ConversationError(f"the conversation has {len(raw_turns)} turns, more than {MAX_TURNS}")
        conversation = cls(
            ident,
            title=data.get("title", ""),
            system=data.get("system", ""),
            created_at=data.get("created_at") or utc_now_iso(),
            updated_at=data.get("updated_at", ""),
        )
        for number, raw in enumerate(raw_turns, 1):
            where = f"turn {number}"
            if not isinstance(raw, dict):
                raise ConversationError(f"{where} is not an object")
            turn_id, role, content, parent = raw.get("id"), raw.get("role"), raw.get("content"), raw.get("parent")
            if not isinstance(turn_id, str) or not turn_id or turn_id in conversation.turns:
                raise ConversationError(f"{where} has a missing or repeated id")
            if role not in ROLES:
                raise ConversationError(f"{where} has the role {role!r}; a turn is 'user' or 'assistant'")
            if not isinstance(content, str):
                raise ConversationError(f"{where}'s content must be text")
            # A parent always comes before its children: this also rules out cycles.
            if parent is not None and parent not in conversation.turns:
                raise ConversationError(f"{where} answers {parent!r}, which is not an earlier turn")
            provenance = raw.get("provenance", {})
            if not isinstance(provenance, dict):
                raise ConversationError(f"{where}'s provenance must be an object")
            created = raw.get("created_at")
            conversation.turns[turn_id] = Turn(
                turn_id, role, content, parent, created if isinstance(created, str) else "", provenance
            )
        current = data.get("current")
        if current is not None and current not in conversation.turns:
            raise ConversationError(f"the conversation's current turn {current!r} is not one of its turns")
        conversation.current = current
        return conversation

    # -- transcripts ---------------------------------------------------------------------

    def transcript_markdown(self) -> str:
        """The current branch as Markdown: a heading per speaker, replies as written."""
        lines = [f"# {self.title or 'Conversation'}", ""]
        if self.system.strip():
            lines += ["**System**", "", self.system.strip(), ""]
        for turn in self.path():
            lines += [f"## {'You' if turn.role == 'user' else _speaker(turn)}", "", turn.content.rstrip(), ""]
        return "\n".join(lines)

    def transcript_text(self) -> str:
        lines = [self.title or "Conversation", ""]
        if self.system.strip():
            lines += [f"System: {self.system.strip()}", ""]
        for turn in self.path():
            lines += [f"{'You' if turn.role == 'user' else _speaker(turn)}:", turn.content.rstrip(), ""]
        return "\n".join(lines)


def _speaker(turn: Turn) -> str:
    model = turn.provenance.get("model")
    name = model.get("name") if isinstance(model, dict) else None
    return f"Assistant ({name})" if name else "Assistant"


def title_from(text: str, length: int = 60) -> str:
    line = " ".join(text.split())
    return line if len(line) <= length else line[: length - 1].rstrip() + "…"


# -- what goes to the model ------------------------------------------------------------------


def chat_messages(system: str, history: Sequence[Sequence[str]], prompt: str) -> list[dict[str, str]]:
    """The messages a chat template renders: the system prompt (when there is one), the earlier
    turns (role, content), then the message being answered."""
    messages = [{"role": "system", "content": system}] if system.strip() else []
    messages += [{"role": str(role), "content": str(content)} for role, content in history]
    messages.append({"role": "user", "content": prompt})
    return messages


def fit_context(
    messages: list[dict[str, str]], count_tokens: Callable[[list[dict[str, str]]], int], budget: int
) -> tuple[list[dict[str, str]], int]:
    """The context rule: leave out the oldest turns until the rendered messages take at most
    ``budget`` tokens. The system prompt and the last message always stay; a user message and the
    reply to it go together. Returns (kept messages, how many were left out); ``StudioError`` when
    even the system prompt and the last message do not fit."""
    if budget <= 0:
        raise StudioError("the model's context has no room for the prompt: lower max tokens")
    head = messages[:1] if messages and messages[0]["role"] == "system" else []
    body = messages[len(head) :]
    dropped = 0
    while True:
        kept = head + body
        if count_tokens(kept) <= budget:
            return kept, dropped
        if len(body) <= 1:
            raise StudioError(
                "the system prompt and the message do not fit in the model's context: shorten them or lower max tokens"
            )
        # Drop the oldest turn; an assistant reply left at the front would answer nothing.
        cut = 1
        while cut < len(body) - 1 and body[cut]["role"] == "assistant":
            cut += 1
        body = body[cut:]
        dropped += cut
