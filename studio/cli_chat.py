"""The command line's conversations: ``studio gen text PROMPT --chat [ID]`` and ``studio chat
list|show|export`` (``studio.cli`` calls in here)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

from studio.core.errors import StudioError
from studio.core.provenance import new_item_id

NEW = "new"


def add_chat_option(text: argparse.ArgumentParser) -> None:
    text.add_argument(
        "--chat",
        nargs="?",
        const=NEW,
        default="",
        metavar="CONVERSATION_ID",
        help="chat: start a conversation (or continue the one given); its id is printed (JSON: 'conversation')",
    )


def add_chat_commands(commands: Any, sub: Callable[[Any, str, str], argparse.ArgumentParser]) -> None:
    chat = commands.add_parser("chat", help="list, show or export conversations")
    actions = chat.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = sub(actions, "list", "conversations, the latest first")
    listing.add_argument("--search", default="", metavar="Q", help="words in a title or any message")
    show = sub(actions, "show", "a conversation's branch shown (JSON: the whole tree)")
    show.add_argument("id", metavar="ID")
    export = sub(actions, "export", "write a conversation to a file")
    export.add_argument("id", metavar="ID")
    export.add_argument("--to", required=True, metavar="FOLDER")
    export.add_argument("--format", default="md", choices=("md", "txt", "json"))


def conversation_fields(args: argparse.Namespace, services: Any) -> dict[str, Any]:
    """The request fields of ``--chat``: a new conversation's id, or the one given with its turns."""
    chosen = getattr(args, "chat", "")
    if not chosen:
        return {}
    if chosen == NEW:
        return {"conversation": new_item_id()}
    from studio.gallery import conversations

    conversation = conversations.load(services.store, chosen)
    path = conversation.path()
    fields: dict[str, Any] = {
        "conversation": conversation.id,
        "messages": tuple((turn.role, turn.content) for turn in path),
        "turn_parent": conversation.current or "",
    }
    if not args.system and conversation.system:
        fields["system"] = conversation.system
    return fields


def run_chat_command(args: argparse.Namespace, services: Any) -> int:
    from studio.gallery import conversations

    store = services.store
    if args.action == "list":
        items = conversations.list_conversations(store, args.search)
        if args.json:
            for item in items:
                tree = item.record.output["conversation"]
                data = {k: tree.get(k) for k in ("id", "title", "created_at", "updated_at")}
                print(json.dumps({**data, "turns": len(tree.get("turns", [])), "path": str(item.path)}))
            return 0
        rows = [
            [
                item.id,
                str(item.record.output["conversation"].get("updated_at", ""))[:16].replace("T", " "),
                str(item.record.output.get("turns", "")),
                str(item.record.output.get("title", "")),
            ]
            for item in items
        ]
        headers = ["id", "updated", "turns", "title"]
        widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(3)]
        for row in [headers, *rows]:
            print("  ".join(cell.ljust(width) for cell, width in zip(row[:3], widths, strict=True)) + "  " + row[3])
        return 0
    if args.action == "show":
        conversation = conversations.load(store, args.id)
        if args.json:
            print(json.dumps(conversation.to_dict(), ensure_ascii=False))
        else:
            print(conversation.transcript_text())
        return 0
    if args.action == "export":
        target = conversations.export(store, args.id, args.to, args.format)
        print(json.dumps({"id": args.id, "file": str(target)}) if args.json else target)
        return 0
    raise StudioError(f"unknown chat action {args.action}")


def finished_chat_json(item: Any) -> dict[str, Any]:
    """What ``gen text --chat --json`` adds: the conversation's id and the reply."""
    tree = item.record.output.get("conversation")
    if not isinstance(tree, dict):
        return {}
    turns = {t["id"]: t for t in tree.get("turns", []) if isinstance(t, dict) and "id" in t}
    current = turns.get(tree.get("current"), {})
    return {"conversation": tree.get("id"), "turn": current.get("id"), "reply": current.get("content", "")}
