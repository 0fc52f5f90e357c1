"""The Text tab's conversations, for chat models: the list (new, rename, search, delete with
undo) and the messages as a chat — replies rendered as Markdown with a copy button per code block,
edit a message and resend, regenerate a reply, step between alternatives (‹ 2/3 ›), continue a
reply, tokens/s per reply, and a line where the oldest turns no longer reach the model.

Streaming appends to one reply bubble (``append``: the bridge hands over one joined chunk per
frame); the conversation is laid out again only when a turn is saved, never per token.
The conversation itself is saved by the worker (``studio.gallery.conversations``) after each
turn; this view reads it back from the finished job's gallery item.
"""

from __future__ import annotations

import dataclasses
import re
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QScrollArea,
    QScrollBar,
    QSplitter,
    QTextEdit,
    QVBoxLayout,
    QWidget,
)

from studio.core.conversation import Conversation, ConversationError, Turn, title_from
from studio.core.errors import StudioError
from studio.core.provenance import new_item_id
from studio.core.requests import TextRequest
from studio.gallery import conversations
from studio.ui.widgets.streaming_text import TextStream

if TYPE_CHECKING:
    from studio.gallery.store import GalleryItem, GalleryStore

_CODE_BLOCK = re.compile(r"```[^\n]*\n(.*?)```", re.DOTALL)
CHAT_MODE = "Chat mode: conversations are kept in the gallery; edit, regenerate and branch any turn."
CONTINUATION_MODE = "Continuation mode: this is a base model (no chat template), so it continues your text."


def code_blocks(markdown: str) -> list[str]:
    return [block.rstrip("\n") for block in _CODE_BLOCK.findall(markdown)]


def _speed(turn: Turn) -> str:
    facts = turn.provenance
    parts = []
    model = facts.get("model")
    if isinstance(model, dict) and model.get("name"):
        parts.append(str(model["name"]))
    if facts.get("tokens") is not None:
        parts.append(f"{facts['tokens']} tokens")
    if facts.get("tokens_per_s"):
        parts.append(f"{float(facts['tokens_per_s']):.1f} tokens/s")
    if facts.get("seed") is not None:
        parts.append(f"seed {facts['seed']}")
    if facts.get("stopped"):
        parts.append("stopped")
    return " · ".join(parts)


class MessageWidget(QFrame):
    """One turn: who, the text (Markdown for replies), its alternatives and what can be done with it."""

    def __init__(self, view: ChatView, conversation: Conversation, turn: Turn, *, last: bool) -> None:
        super().__init__()
        self.turn = turn
        self.setObjectName("chat-user" if turn.role == "user" else "chat-assistant")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 6, 8, 6)
        header = QHBoxLayout()
        who = QLabel("You" if turn.role == "user" else "Assistant")
        who.setStyleSheet("font-weight: bold")
        header.addWidget(who)
        if turn.role == "assistant":
            self.speed = QLabel(_speed(turn))
            self.speed.setAccessibleName("reply speed")
            self.speed.setWordWrap(True)  # on a line of its own: a narrow chat wraps it, never widens the row
        header.addStretch(1)
        siblings = conversation.siblings(turn.id)
        if len(siblings) > 1:
            index = [s.id for s in siblings].index(turn.id)
            back = QPushButton("‹")
            back.setAccessibleName("previous alternative")
            back.setToolTip("Show the previous alternative of this turn")
            back.setEnabled(index > 0)
            back.clicked.connect(lambda: view.select_turn(siblings[index - 1].id))
            forward = QPushButton("›")
            forward.setAccessibleName("next alternative")
            forward.setToolTip("Show the next alternative of this turn")
            forward.setEnabled(index < len(siblings) - 1)
            forward.clicked.connect(lambda: view.select_turn(siblings[index + 1].id))
            self.branch = QLabel(f"{index + 1}/{len(siblings)}")
            self.branch.setAccessibleName("alternative")
            for widget in (back, self.branch, forward):
                widget.setFixedWidth(36)
                header.addWidget(widget)
        layout.addLayout(header)
        if turn.role == "assistant":
            layout.addWidget(self.speed)
        body = QLabel()
        body.setWordWrap(True)
        body.setTextInteractionFlags(Qt.TextInteractionFlag.TextBrowserInteraction)
        if turn.role == "assistant":
            body.setTextFormat(Qt.TextFormat.MarkdownText)
        else:
            body.setTextFormat(Qt.TextFormat.PlainText)
        body.setText(turn.content)
        body.setAccessibleName("message text")
        self.body = body
        layout.addWidget(body)
        actions = QHBoxLayout()
        if turn.role == "user":
            actions.addWidget(
                view.action(
                    "Edit",
                    "edit message",
                    "Edit this message and send it again: a new branch",
                    lambda: view.edit_turn(turn.id),
                )
            )
        else:
            actions.addWidget(
                view.action(
                    "Regenerate",
                    "regenerate",
                    "Write this reply again: a new alternative",
                    lambda: view.regenerate(turn.id),
                )
            )
            if last:
                actions.addWidget(
                    view.action(
                        "Continue", "continue reply", "Write more of this reply", lambda: view.continue_reply(turn.id)
                    )
                )
            actions.addWidget(view.action("Copy", "copy reply", "Copy this reply", lambda: view.copy(turn.content)))
            for number, block in enumerate(code_blocks(turn.content), 1):
                actions.addWidget(
                    view.action(
                        f"Copy code {number}",
                        f"copy code {number}",
                        "Copy this code block",
                        lambda _=False, text=block: view.copy(text),
                    )
                )
        actions.addStretch(1)
        layout.addLayout(actions)


class StreamingReply(QFrame):
    """The reply being written: text appended as it streams, shown as Markdown once saved."""

    def __init__(self, follow: QScrollBar | None = None) -> None:
        super().__init__()
        self.setObjectName("chat-assistant")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 6, 8, 6)
        self.header = QLabel("Assistant · writing…")
        self.keep_button = QPushButton("Keep this reply")
        self.keep_button.setAccessibleName("keep reply")
        self.keep_button.setToolTip("Save the stopped reply into the conversation")
        self.keep_button.setVisible(False)
        top = QHBoxLayout()
        top.addWidget(self.header)
        top.addStretch(1)
        top.addWidget(self.keep_button)
        layout.addLayout(top)
        self.text = QTextEdit()
        self.text.setReadOnly(True)
        self.text.setAccessibleName("streaming reply")
        self.text.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.text.setFrameShape(QFrame.Shape.NoFrame)
        self.text.setMinimumHeight(24)
        self.text.setMaximumHeight(24)
        layout.addWidget(self.text)
        self._height = 24
        # Chunks are laid out by Qt with the interpreter lock free (widgets/streaming_text.py); the
        # message list keeps its end in view while the reply grows, unless the user scrolled up.
        self.stream = TextStream(self.text, follow=follow)
        layout_of_text = self.text.document().documentLayout()
        layout_of_text.documentSizeChanged.connect(self._fit_height)  # a new line, not each chunk

    def append(self, chunk: str) -> None:
        self.stream.append(chunk)

    def _fit_height(self) -> None:
        height = int(self.text.document().size().height()) + 6
        if height != self._height:
            self._height = height
            self.text.setMinimumHeight(height)
            self.text.setMaximumHeight(height)


class ChatView(QWidget):
    """Conversations for the Text tab (``TextPanel`` shows it instead of its output for chat models)."""

    def __init__(self, panel: Any, store: GalleryStore) -> None:
        super().__init__()
        self.panel = panel
        self.store = store
        self.active = False
        self.conversation: Conversation | None = None
        self._edit_of: str | None = None  # the user turn an edit replaces (a new branch beside it)
        self._streaming: StreamingReply | None = None
        self._deleted: list[str] = []
        self.mode_label = QLabel("")
        self.mode_label.setAccessibleName("text mode")
        self.mode_label.setWordWrap(True)
        self._build()

    # -- layout -------------------------------------------------------------------------

    def action(self, text: str, name: str, tip: str, slot: Any) -> QPushButton:
        widget = QPushButton(text)
        widget.setAccessibleName(name)
        widget.setToolTip(tip)
        widget.clicked.connect(slot)
        return widget

    def _build(self) -> None:
        self.search = QLineEdit()
        self.search.setPlaceholderText("Search conversations…")
        self.search.setAccessibleName("search conversations")
        self.search.setToolTip("Show the conversations whose title or messages have these words")
        self.search.textChanged.connect(lambda _: self.refresh_list())
        self.list = QListWidget()
        self.list.setAccessibleName("conversations")
        self.list.setToolTip("Your conversations, the latest first; click one to open it")
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.list.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.list.itemClicked.connect(lambda entry: self.open(str(entry.data(Qt.ItemDataRole.UserRole))))
        self.new_button = self.action("New", "new conversation", "Start a new conversation", self.new_conversation)
        self.rename_button = self.action("Rename", "rename conversation", "Rename this conversation", self.rename)
        self.delete_button = self.action("Delete", "delete conversation", "Move it to the trash", self.delete)
        self.undo_button = self.action("Undo delete", "undo delete", "Bring the conversation back", self.undo_delete)
        self.undo_button.setVisible(False)
        list_buttons = QHBoxLayout()
        for widget in (self.new_button, self.rename_button, self.delete_button):
            list_buttons.addWidget(widget)
        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.addWidget(self.search)
        left_layout.addWidget(self.list, 1)
        left_layout.addLayout(list_buttons)
        left_layout.addWidget(self.undo_button)

        self.title = QLabel("New conversation")
        self.title.setAccessibleName("conversation title")
        self.title.setStyleSheet("font-weight: bold")
        self.editing_note = QLabel("")
        self.editing_note.setAccessibleName("editing note")
        self.editing_note.setWordWrap(True)
        self.messages = QWidget()
        self.messages_layout = QVBoxLayout(self.messages)
        self.messages_layout.addStretch(1)
        self.scroll_area = QScrollArea()
        self.scroll_area.setWidgetResizable(True)
        self.scroll_area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.scroll_area.setWidget(self.messages)
        self.scroll_area.setAccessibleName("messages")
        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(0, 0, 0, 0)
        right_layout.addWidget(self.title)
        right_layout.addWidget(self.scroll_area, 1)
        right_layout.addWidget(self.editing_note)

        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(left)
        splitter.addWidget(right)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([180, 520])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(splitter)

    # -- mode ---------------------------------------------------------------------------

    @staticmethod
    def is_conversation(item: GalleryItem) -> bool:
        return conversations.is_conversation(item)

    def set_mode(self, chat: bool) -> None:
        self.active = chat
        self.mode_label.setText(CHAT_MODE if chat else CONTINUATION_MODE)
        if chat:
            self.refresh_list()

    # -- the list -----------------------------------------------------------------------

    def refresh_list(self) -> None:
        try:
            items = conversations.list_conversations(self.store, self.search.text())
        except StudioError as exc:
            self.editing_note.setText(str(exc))
            return
        self.list.clear()
        for item in items:
            tree = item.record.output["conversation"]
            entry = QListWidgetItem(str(tree.get("title") or "Conversation"))
            entry.setData(Qt.ItemDataRole.UserRole, item.id)
            entry.setToolTip(f"{len(tree.get('turns', []))} turns · {str(tree.get('updated_at', ''))[:16]}")
            self.list.addItem(entry)
            if self.conversation is not None and item.id == self.conversation.id:
                entry.setSelected(True)

    def new_conversation(self) -> None:
        if self.panel.busy():
            return
        self.conversation = None
        self._edit_of = None
        self.editing_note.setText("")
        self.title.setText("New conversation")
        self.panel.system.setPlainText("")
        self.show_branch()

    def open(self, conversation_id: str) -> None:
        if self.panel.busy():
            self.editing_note.setText("Wait for the reply to finish (or stop it) before switching conversations.")
            return
        try:
            self.conversation = conversations.load(self.store, conversation_id)
        except (StudioError, ConversationError) as exc:
            self.editing_note.setText(f"Cannot open this conversation: {exc}")
            return
        self._edit_of = None
        self.editing_note.setText("")
        self.panel.system.setPlainText(self.conversation.system)
        self.show_branch()

    def rename(self) -> None:
        if self.conversation is None or self.conversation.id not in self._saved_ids():
            return
        title, ok = QInputDialog.getText(self, "Rename conversation", "Title", text=self.conversation.title)
        if ok and title.strip():
            try:
                item = conversations.rename(self.store, self.conversation.id, title)
            except StudioError as exc:
                self.editing_note.setText(str(exc))
                return
            self._take(item)

    def delete(self) -> None:
        if self.conversation is None or self.panel.busy():
            return
        deleted = conversations.delete(self.store, self.conversation.id)
        if deleted:
            self._deleted = deleted
            self.undo_button.setText(f"Undo delete of “{title_from(self.conversation.title, 24)}”")
            self.undo_button.setVisible(True)
        self.new_conversation()
        self.refresh_list()

    def undo_delete(self) -> None:
        restored = self.store.restore(self._deleted)
        self._deleted = []
        self.undo_button.setVisible(False)
        self.refresh_list()
        if restored:
            self.open(restored[0])

    def _saved_ids(self) -> set[str]:
        return {str(self.list.item(i).data(Qt.ItemDataRole.UserRole)) for i in range(self.list.count())}

    # -- the messages -------------------------------------------------------------------

    def show_branch(self) -> None:
        """Lay out the branch shown (after a turn is saved, a branch is chosen or a conversation opens)."""
        while self.messages_layout.count() > 1:
            taken = self.messages_layout.takeAt(0)
            child = taken.widget() if taken is not None else None
            if child is not None:
                child.deleteLater()
        self._streaming = None
        conversation = self.conversation
        if conversation is None:
            self.title.setText("New conversation")
            return
        self.title.setText(conversation.title or "Conversation")
        path = conversation.path()
        cut = self._context_cut(path)
        for index, turn in enumerate(path):
            if cut and index == cut:
                marker = QLabel(f"── the {cut} turns above were left out of the model's context for the last reply ──")
                marker.setAccessibleName("context cut")
                marker.setAlignment(Qt.AlignmentFlag.AlignCenter)
                self.messages_layout.insertWidget(self.messages_layout.count() - 1, marker)
            widget = MessageWidget(self, conversation, turn, last=index == len(path) - 1)
            self.messages_layout.insertWidget(self.messages_layout.count() - 1, widget)
        QTimer.singleShot(0, self._scroll_to_end)

    @staticmethod
    def _context_cut(path: list[Turn]) -> int:
        last_reply = next((t for t in reversed(path) if t.role == "assistant"), None)
        dropped = last_reply.provenance.get("dropped_turns", 0) if last_reply is not None else 0
        return int(dropped) if isinstance(dropped, int) and 0 < dropped < len(path) else 0

    def _scroll_to_end(self) -> None:
        bar = self.scroll_area.verticalScrollBar()
        bar.setValue(bar.maximum())

    def message_widgets(self) -> list[MessageWidget]:
        found = []
        for i in range(self.messages_layout.count()):
            entry = self.messages_layout.itemAt(i)
            widget = entry.widget() if entry is not None else None
            if isinstance(widget, MessageWidget):
                found.append(widget)
        return found

    def select_turn(self, turn_id: str) -> None:
        if self.conversation is None or self.panel.busy():
            return
        self.conversation.select(turn_id)
        try:  # remembered, so the conversation reopens on this alternative
            self._take(conversations.select_branch(self.store, self.conversation.id, turn_id))
        except StudioError:
            self.show_branch()

    def copy(self, text: str) -> None:
        QGuiApplication.clipboard().setText(text)

    # -- turns --------------------------------------------------------------------------

    def prepare(self, request: TextRequest) -> TextRequest:
        """A request typed in the prompt box as the next message (or as the edit being made)."""
        conversation = self.conversation
        if conversation is None:
            return dataclasses.replace(request, conversation=new_item_id())
        if self._edit_of is not None:
            parent = conversation.turns[self._edit_of].parent
        else:
            parent = conversation.current
        return dataclasses.replace(request, **self._history(parent))

    def _history(self, parent: str | None) -> dict[str, Any]:
        assert self.conversation is not None
        path = self.conversation.history_before(parent)
        return {
            "conversation": self.conversation.id,
            "messages": tuple((t.role, t.content) for t in path),
            "turn_parent": parent or "",
        }

    def edit_turn(self, turn_id: str) -> None:
        if self.conversation is None or self.panel.busy():
            return
        self._edit_of = turn_id
        self.panel.prompt.setPlainText(self.conversation.turns[turn_id].content)
        self.panel.prompt.setFocus()
        self.editing_note.setText("Editing a message: Send makes a new branch beside it (New cancels).")

    def regenerate(self, reply_id: str, continue_from: str = "") -> None:
        if self.conversation is None or self.panel.busy():
            return
        user = self.conversation.turns[self.conversation.turns[reply_id].parent or ""]
        try:
            request = self.panel.build_request(continue_from, prompt=user.content)
        except StudioError as exc:
            self.editing_note.setText(str(exc))
            return
        request = dataclasses.replace(request, **self._history(user.parent), reply_to=user.id)
        self.panel.submit_request(request)

    def continue_reply(self, reply_id: str) -> None:
        if self.conversation is not None:
            self.regenerate(reply_id, continue_from=self.conversation.turns[reply_id].content)

    def started(self, request: TextRequest) -> None:
        """A chat job was submitted: show the message (unless it answers one again) and the reply to come."""
        if self.conversation is not None and not request.reply_to:
            # Show the branch up to the turn the new message follows, then the message.
            self.conversation.current = request.turn_parent or None
            self.show_branch()
        elif self.conversation is not None and request.reply_to:
            self.conversation.current = request.reply_to
            self.show_branch()
        if not request.reply_to:
            bubble = QLabel(request.prompt)
            bubble.setWordWrap(True)
            bubble.setObjectName("chat-user")
            bubble.setAccessibleName("message being sent")
            self.messages_layout.insertWidget(self.messages_layout.count() - 1, bubble)
        self._streaming = StreamingReply(follow=self.scroll_area.verticalScrollBar())
        if request.continue_from:
            self._streaming.append(request.continue_from)
        self.messages_layout.insertWidget(self.messages_layout.count() - 1, self._streaming)
        self.editing_note.setText("")
        QTimer.singleShot(0, self._scroll_to_end)

    def append(self, chunk: str) -> bool:
        if self._streaming is None:
            return False
        self._streaming.append(chunk)
        return True

    def stream_ended(self) -> None:
        """The reply's job ended: its last chunks are shown and it can be selected."""
        if self._streaming is not None:
            self._streaming.stream.end()

    def stopped(self, kept: bool) -> None:
        """Stopped: the text so far stays shown; Keep saves it into the conversation."""
        if self._streaming is not None:
            self._streaming.header.setText("Assistant · stopped, not saved" if kept else "Assistant · stopped")
            self._streaming.keep_button.setVisible(kept)
            if kept:
                self._streaming.keep_button.clicked.connect(self.panel.keep_stopped)

    def failed(self, message: str) -> None:
        """The reply failed: the branch as saved comes back, the message stays in the prompt box."""
        if self.conversation is not None:
            try:
                self.conversation = conversations.load(self.store, self.conversation.id)
            except StudioError:
                pass  # never saved yet (the first message failed), or damaged: what is shown stays
        self.show_branch()
        self.editing_note.setText(f"Not sent: {message}")

    def saved(self, items: list[GalleryItem]) -> bool:
        """A finished (or kept) turn: read the conversation back from its gallery item."""
        for item in items:
            if conversations.is_conversation(item):
                self._take(item)
                self._edit_of = None
                self.panel.prompt.clear()
                return True
        return False

    def _take(self, item: GalleryItem) -> None:
        try:
            self.conversation = conversations.conversation_of(item.record)
        except ConversationError as exc:
            self.editing_note.setText(str(exc))
            return
        self.show_branch()
        self.refresh_list()
