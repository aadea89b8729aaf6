"""The frames of rooms, presence, history and whispers, as the handlers send them (schemas in `schemas/`).

Every frame fits one WebSocket frame: member lists are capped and a history holds the newest messages that fit.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any

from handlers.aws_facts import FRAME_LIMIT_BYTES
from handlers.protocol import timestamp
from handlers.rooms import Member

MEMBER_LIST_LIMIT = 100
"""Members listed in `joined` and `members`; a bigger room's list says `"truncated": true`."""


def whisper_frame(text: str, sender_name: str, sender_id: str, to: str, sent_at_ms: int) -> bytes:
    """A direct message, to every connection holding the name `to` and echoed to the sender."""
    return encode(
        {
            "type": "whisper",
            "id": uuid.uuid4().hex,
            "from": sender_name,
            "connectionId": sender_id,
            "to": to,
            "message": text,
            "sentAt": timestamp(sent_at_ms),
        }
    )


def presence_frame(room: str, event: str, name: str, connection_id: str) -> bytes:
    """Someone joined or left the room (`event` is `joined` or `left`), for the other members."""
    return encode({"type": "presence", "room": room, "event": event, "name": name, "connectionId": connection_id})


def presence_off_frame(room: str, max_members: int) -> bytes:
    """To the members of a room that has just grown past `max_members`: its joins and leaves are no longer announced."""
    return encode({"type": "presence-off", "room": room, "maxMembers": max_members})


def left_frame(room: str) -> bytes:
    """To the leaver: it is no longer a member."""
    return encode({"type": "left", "room": room})


def members_frame(room: str, members: Sequence[Member], truncated: bool, presence: bool) -> bytes:
    """The answer to `who`; `presence` as in `joined_frame`, so a client learns when its room is live again."""
    frame = {"type": "members", "room": room, "members": member_list(members), "truncated": truncated}
    return encode({**frame, "presence": presence})


def joined_frame(
    room: str,
    connection_id: str,
    name: str,
    *,
    members: Sequence[Member],
    truncated: bool,
    presence: bool,
    history: Sequence[bytes],
) -> bytes:
    """To the joiner: its own id and name (the only "this is me" a client may trust), the members, recent history.

    `presence` false says the room is too big for its joins and leaves to be announced: the list will not follow them.
    """
    head = {
        "type": "joined",
        "room": room,
        "connectionId": connection_id,
        "name": name,
        "members": member_list(members),
        "truncated": truncated,
        "presence": presence,
    }
    return _with_messages(head, "history", history)


def history_frame(room: str, messages: Sequence[bytes]) -> bytes:
    """The answer to `history`: stored envelopes, oldest first."""
    return _with_messages({"type": "history", "room": room}, "messages", messages)


def member_list(members: Sequence[Member]) -> list[dict[str, str]]:
    """Members as frames list them: the name shown (the id when there is none) and the connection id."""
    return [{"name": member.name or member.connection_id, "connectionId": member.connection_id} for member in members]


def encode(frame: dict[str, Any]) -> bytes:
    """Compact UTF-8 JSON (`\\u` escapes would grow non-ASCII text up to 3x)."""
    return json.dumps(frame, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _with_messages(head: dict[str, Any], key: str, messages: Sequence[bytes]) -> bytes:
    """`head` plus `key: [messages...]`, keeping the newest messages that fit one frame (stored bytes spliced in)."""
    opening = encode(head)[:-1] + f',"{key}":['.encode()
    budget = FRAME_LIMIT_BYTES - len(opening) - len(b"]}")
    kept: list[bytes] = []
    for message in reversed(messages):
        cost = len(message) + (1 if kept else 0)
        if cost > budget:
            break
        kept.append(message)
        budget -= cost
    return opening + b",".join(reversed(kept)) + b"]}"
