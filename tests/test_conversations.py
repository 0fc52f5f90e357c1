"""Conversations: the tree and its context rule, kept in the gallery through real chat jobs
(transformers and llama.cpp), branches that survive a restart and ``gallery rebuild``, exports,
damaged files and a kill during a save."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from studio.core.conversation import Conversation, ConversationError, chat_messages, fit_context
from studio.core.errors import StudioError
from studio.core.provenance import new_item_id
from studio.core.requests import TextRequest, request_from_dict
from studio.gallery import conversations
from studio.gallery.store import GalleryStore
from tests.helpers import EventLog
from tests.tiny_gguf import build_tiny_gguf


@pytest.fixture(scope="module")
def chat_gguf(tmp_path_factory) -> Path:
    return build_tiny_gguf(tmp_path_factory.mktemp("conv-gguf"), quant="f16")


@pytest.fixture(autouse=True)
def private_home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


def _turn(worker, log, prompt, model, **fields):
    job = worker.submit(TextRequest(prompt=prompt, model=str(model), max_tokens=8, temperature=1.0, **fields))
    end = log.wait_end(job, timeout=120)
    assert end.kind.value == "finished", end.error
    return end, job


# -- the tree -----------------------------------------------------------------------------


def test_tree_branches_and_paths():
    conversation = Conversation("c1", system="be kind")
    hello = conversation.add("user", "hello", None)
    first = conversation.add("assistant", "hi", hello.id)
    second = conversation.add("assistant", "hey", hello.id)  # regenerated
    assert [t.content for t in conversation.path()] == ["hello", "hey"]
    assert [t.id for t in conversation.siblings(first.id)] == [first.id, second.id]
    conversation.select(first.id)
    assert conversation.current == first.id
    edited = conversation.add("user", "hello again", None)  # an edit of the first message
    assert [t.content for t in conversation.path()] == ["hello again"]
    assert len(conversation.siblings(edited.id)) == 2
    again = Conversation.from_dict(json.loads(json.dumps(conversation.to_dict())))
    assert again.to_dict() == conversation.to_dict()
    assert "## You" in conversation.transcript_markdown() and "be kind" in conversation.transcript_text()


@pytest.mark.parametrize(
    ("mangle", "words"),
    [
        (lambda d: d.update(turns="nope"), "'turns' must be a list"),
        (lambda d: d["turns"][1].update(parent="t-missing"), "not an earlier turn"),
        (lambda d: d["turns"][0].update(role="wizard"), "role 'wizard'"),
        (lambda d: d.update(current="t-gone"), "current turn"),
        (lambda d: d.update(schema="x"), "not a Studio conversation"),
    ],
)
def test_damaged_tree_is_refused_with_the_reason(mangle, words):
    conversation = Conversation("c1")
    conversation.add("assistant", "hi", conversation.add("user", "hello", None).id)
    data = conversation.to_dict()
    mangle(data)
    with pytest.raises(ConversationError, match=words):
        Conversation.from_dict(data)


def test_context_rule_drops_the_oldest_turns_never_the_system_prompt():
    history = [("user", "a" * 10), ("assistant", "b" * 10), ("user", "c" * 10), ("assistant", "d" * 10)]
    messages = chat_messages("sys", history, "now")

    def count(kept):
        return sum(len(m["content"]) for m in kept)

    kept, dropped = fit_context(messages, count, 30)
    assert kept[0] == {"role": "system", "content": "sys"} and kept[-1]["content"] == "now"
    assert dropped == 2 and kept[1]["role"] == "user"
    assert fit_context(messages, count, 1000) == (messages, 0)
    with pytest.raises(StudioError, match="do not fit"):
        fit_context(messages, count, 5)
    with pytest.raises(StudioError, match="no room"):
        fit_context(messages, count, 0)


def test_request_round_trips_its_turns():
    request = TextRequest(prompt="p", model="m", messages=(("user", "a"), ("assistant", "b")), conversation="c")
    assert request_from_dict(json.loads(json.dumps(request.to_dict()))) == request
    with pytest.raises(Exception, match="conversation"):
        TextRequest(prompt="p", model="m", messages=(("user", "a"),))


# -- kept in the gallery --------------------------------------------------------------------


@pytest.mark.parametrize("engine", ["transformers", "gguf"])
def test_multi_turn_edit_regenerate_survive_restart_and_rebuild(paths, engine, tiny_lm, chat_gguf):
    from studio.runtime.services import open_services

    model = tiny_lm if engine == "transformers" else chat_gguf
    services = open_services(paths)
    log = EventLog(services.worker)
    cid = new_item_id()
    try:
        _end, first_job = _turn(services.worker, log, "hello", model, conversation=cid, seed=1, system="be brief")
        streamed = "".join(e.preview for e in log.of(first_job) if e.preview)
        conversation = conversations.load(services.store, cid)
        user, reply = conversation.path()
        assert reply.content == streamed  # what streamed is what was saved
        assert reply.provenance["seed"] == 1 and reply.provenance["model"]["sha256"]
        assert reply.provenance["tokens"] >= 1 and reply.provenance["parameters"]["max_tokens"] == 8
        # A second turn carries the first as messages.
        history = tuple((t.role, t.content) for t in conversation.path())
        _turn(services.worker, log, "more", model, conversation=cid, messages=history, turn_parent=reply.id, seed=2)
        # Regenerate the first reply, then edit the first message.
        _turn(services.worker, log, "hello", model, conversation=cid, reply_to=user.id, seed=3, system="be brief")
        _turn(services.worker, log, "hello, edited", model, conversation=cid, seed=4)
        conversation = conversations.load(services.store, cid)
        assert len(conversation.turns) == 7  # 3 messages, 4 replies
        assert len(conversation.siblings(user.id)) == 2  # the edit beside the original
        assert len(conversation.siblings(reply.id)) == 2  # the regenerated reply beside the first
        assert conversation.path()[0].content == "hello, edited"
        conversations.select_branch(services.store, cid, reply.id)
    finally:
        services.close()

    services = open_services(paths)  # a restart
    try:
        store = services.store
        assert store.rebuild() == 1
        reopened = conversations.load(store, cid)
        assert len(reopened.turns) == 7 and reopened.path()[1].id == reply.id
        assert [t.content for t in reopened.path()][:2] == ["hello", reply.content]
        assert len(reopened.path()) == 4  # the branch through the first reply reaches the second turn
        # It continues where it stopped.
        log = EventLog(services.worker)
        history = tuple((t.role, t.content) for t in reopened.path())
        _turn(services.worker, log, "last", model, conversation=cid, messages=history, turn_parent=reopened.current)
        assert len(conversations.load(store, cid).turns) == 9
        item = store.get(cid)
        assert item.path.suffix == ".md" and "## You" in item.path.read_text()
        assert [i.id for i in conversations.list_conversations(store, "edited")] == [cid]
    finally:
        services.close()


def test_exports_and_broken_file(services, tiny_lm, tmp_path):
    log = EventLog(services.worker)
    cid = new_item_id()
    _turn(services.worker, log, "tell me of colour", tiny_lm, conversation=cid, seed=9)
    store = services.store
    for fmt in ("md", "txt", "json"):
        target = conversations.export(store, cid, tmp_path / "out", fmt)
        text = target.read_text()
        assert "tell me of colour" in text, fmt
    assert json.loads((tmp_path / "out").glob("*.json").__next__().read_text())["id"] == cid
    with pytest.raises(StudioError, match="export as"):
        conversations.export(store, cid, tmp_path, "docx")

    shown = conversations.load(store, cid).path()
    item = store.get(cid)
    item.sidecar.write_text("{ this is not json")
    item.path.write_text("nonsense by hand\n")
    with pytest.raises(ConversationError, match="not valid JSON"):
        conversations.load(store, cid)
    # The next turn saves again from the turns the chat shows: none of them is lost.
    history = tuple((t.role, t.content) for t in shown)
    _turn(services.worker, log, "still there?", tiny_lm, conversation=cid, messages=history, turn_parent=shown[-1].id)
    repaired = conversations.load(store, cid)
    assert [t.content for t in repaired.path()][:2] == [t.content for t in shown]
    assert any("damaged" in n for n in repaired.path()[-1].provenance["notes"])
    assert list(item.sidecar.parent.glob(f".{cid}.damaged-*.json"))


def test_trash_and_undo(services, tiny_lm):
    log = EventLog(services.worker)
    cid = new_item_id()
    _turn(services.worker, log, "hello", tiny_lm, conversation=cid, seed=1)
    conversations.rename(services.store, cid, "  My   chat ")
    assert conversations.load(services.store, cid).title == "My chat"
    conversations.delete(services.store, cid)
    assert conversations.list_conversations(services.store) == []
    with pytest.raises(StudioError, match="in the trash"):
        conversations.load(services.store, cid)
    services.store.restore([cid])
    assert [i.id for i in conversations.list_conversations(services.store)] == [cid]


_KILLED_SAVE = """
import os, sys
from pathlib import Path
from studio.core.conversation import Conversation
from studio.gallery import conversations
from studio.gallery.store import GalleryStore
import studio.gallery.store as store_module

store = GalleryStore(Path(sys.argv[1]))
conversation = conversations.load(store, sys.argv[2])
conversation.add("user", "the turn being saved", conversation.current)
real = store_module.atomic_write
def dying(final, write, prefix):
    if final.suffix == ".json":  # the transcript is written; the sidecar never is
        os._exit(9)
    return real(final, write, prefix=prefix)
store_module.atomic_write = dying
conversations.save(store, conversation)
"""


def test_a_kill_during_a_save_loses_nothing_saved(tmp_path):
    store = GalleryStore(tmp_path / "gallery")
    conversation = Conversation(new_item_id())
    conversation.add("assistant", "first reply", conversation.add("user", "first", None).id)
    conversations.save(store, conversation)
    store.close()
    code = subprocess.run(
        [sys.executable, "-c", _KILLED_SAVE, str(tmp_path / "gallery"), conversation.id], check=False
    ).returncode
    assert code == 9
    store = GalleryStore(tmp_path / "gallery")
    store.rebuild()
    again = conversations.load(store, conversation.id)
    assert [t.content for t in again.path()][:2] == ["first", "first reply"]
    store.close()
