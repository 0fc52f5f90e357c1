"""The Text tab's chat, offscreen, with the real worker and the tiny chat model."""

from __future__ import annotations

from PySide6.QtCore import Qt

from studio.gallery import conversations
from studio.ui.chat_view import CHAT_MODE, CONTINUATION_MODE, MessageWidget, code_blocks


def _choose(window, qtbot, model):
    panel = window.text_panel
    window.services.settings.set("model_folders", [str(model.parent)])
    window.refresh_models()
    panel.model_picker.setCurrentIndex(panel.model_picker.findData(str(model)))
    return panel


def _send(panel, qtbot, text):
    panel.prompt.setPlainText(text)
    with qtbot.waitSignal(panel.items_saved, timeout=60000) as saved:
        qtbot.mouseClick(panel.generate_button, Qt.MouseButton.LeftButton)
    return saved.args[0][0]


def test_code_blocks_are_found_for_their_copy_buttons():
    text = "Here:\n```python\nprint('hi')\n```\nand\n```\nls -l\n```\n"
    assert code_blocks(text) == ["print('hi')", "ls -l"]


def test_chat_model_holds_conversations_base_model_continues(window, qtbot, tiny_lm, tiny_base_lm):
    panel = _choose(window, qtbot, tiny_base_lm)
    qtbot.waitUntil(lambda: panel.chat.mode_label.text() == CONTINUATION_MODE, timeout=60000)
    assert panel.output_stack.currentWidget() is not panel.chat and panel.generate_button.text() == "Generate"
    panel = _choose(window, qtbot, tiny_lm)
    qtbot.waitUntil(lambda: panel.chat.mode_label.text() == CHAT_MODE, timeout=60000)
    assert panel.output_stack.currentWidget() is panel.chat and panel.generate_button.text() == "Send"
    panel.max_tokens.setValue(12)
    panel.system.setPlainText("answer briefly")

    item = _send(panel, qtbot, "hello painter")
    chat = panel.chat
    assert conversations.is_conversation(item) and chat.conversation.id == item.id
    widgets = chat.message_widgets()
    assert [w.turn.role for w in widgets] == ["user", "assistant"]
    assert "tokens/s" in widgets[1].speed.text()
    assert chat.list.count() == 1 and panel.prompt.toPlainText() == ""
    assert chat.conversation.system == "answer briefly"

    _send(panel, qtbot, "and the sea?")
    assert len(chat.message_widgets()) == 4

    # Regenerate the first reply: an alternative beside it, shown as 2/2.
    first_reply = chat.message_widgets()[1].turn.id
    with qtbot.waitSignal(panel.items_saved, timeout=60000):
        chat.regenerate(first_reply)
    widgets = chat.message_widgets()
    assert len(widgets) == 2 and widgets[1].branch.text() == "2/2"
    chat.select_turn(first_reply)  # back to the first alternative: its branch goes on
    assert len(chat.message_widgets()) == 4 and chat.message_widgets()[1].branch.text() == "1/2"

    # Edit the first message and resend: a new branch beside it.
    chat.edit_turn(chat.message_widgets()[0].turn.id)
    assert panel.prompt.toPlainText() == "hello painter" and "Editing" in chat.editing_note.text()
    _send(panel, qtbot, "hello sculptor")
    widgets = chat.message_widgets()
    assert widgets[0].turn.content == "hello sculptor" and widgets[0].branch.text() == "2/2"

    # The saved conversation has the whole tree.
    saved = conversations.load(window.services.store, item.id)
    assert len(saved.turns) == 7

    # Delete with undo; search finds it by any message.
    chat.delete()
    assert chat.list.count() == 0 and chat.undo_button.isVisible()
    chat.undo_delete()
    assert chat.list.count() == 1 and chat.conversation.id == item.id
    chat.search.setText("sea")
    assert chat.list.count() == 1
    chat.search.setText("no such words")
    assert chat.list.count() == 0
    chat.search.setText("")

    # A new conversation starts empty and becomes a second one.
    chat.new_conversation()
    assert chat.message_widgets() == [] and panel.system.toPlainText() == ""
    _send(panel, qtbot, "a second chat")
    assert chat.list.count() == 2
    assert all(isinstance(w, MessageWidget) for w in chat.message_widgets())

    # Reopened from the gallery, the first conversation continues where it stopped.
    window.use_as_input(window.services.store.get(item.id))
    assert chat.conversation.id == item.id and window.tabs.currentWidget() is panel
    _send(panel, qtbot, "one more")
    assert len(conversations.load(window.services.store, item.id).turns) == 9


def test_stop_keeps_the_shown_reply_and_keep_saves_it_into_the_conversation(window, qtbot, tiny_lm):
    panel = _choose(window, qtbot, tiny_lm)
    qtbot.waitUntil(lambda: panel.chat.active, timeout=60000)
    panel.max_tokens.setValue(20000)  # clamped to the context; long enough to stop
    panel.prompt.setPlainText("a long story")
    panel.generate()
    chat = panel.chat
    qtbot.waitUntil(lambda: chat._streaming is not None and bool(chat._streaming.text.toPlainText()), timeout=60000)
    panel.stop()
    qtbot.waitUntil(chat._streaming.keep_button.isVisible, timeout=30000)
    shown = chat._streaming.text.toPlainText()
    assert conversations.list_conversations(window.services.store) == []
    with qtbot.waitSignal(panel.items_saved, timeout=30000):
        qtbot.mouseClick(chat._streaming.keep_button, Qt.MouseButton.LeftButton)
    saved = conversations.list_conversations(window.services.store)
    assert len(saved) == 1
    reply = chat.message_widgets()[-1].turn
    assert reply.content.startswith(shown) and reply.provenance["stopped"]
