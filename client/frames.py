"""The frames a chat server sends, parsed into types, and their one-line rendering for a terminal.

Besides the handlers' frames (docs/client.md) API Gateway sends its own on a failed integration; anything else is
kept as `UnknownFrame`.
"""

from __future__ import annotations

import json
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

GATEWAY_FAILURE_MESSAGE = "Internal server error"
"""The `message` of the frame API Gateway sends when a route's integration fails."""

# Bidirectional overrides can make a line read differently from what was sent ("Trojan Source").
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


@dataclass(frozen=True)
class ChatMessage:
    """A broadcast envelope: a chat line someone (possibly this client) sent."""

    id: str
    text: str
    sender: str
    connection_id: str
    sent_at: datetime | None
    """When the server accepted it; None when the envelope carried no readable `sentAt`."""
    room: str = "lobby"
    seq: int | None = None


@dataclass(frozen=True)
class Member:
    """One entry of a member list: the name shown and the connection id."""

    name: str
    connection_id: str


@dataclass(frozen=True)
class Joined:
    """This connection joined a room: its own id (the only one to trust), the members and recent history."""

    room: str
    connection_id: str
    name: str
    members: tuple[Member, ...]
    history: tuple[ChatMessage, ...]
    truncated: bool = False
    presence: bool = True
    """False: the room is too big for its joins and leaves to be announced (a server without the field announces)."""


@dataclass(frozen=True)
class Presence:
    """Someone else joined or left a room this connection is in."""

    room: str
    event: str
    name: str
    connection_id: str


@dataclass(frozen=True)
class PresenceOff:
    """A room this connection is in has grown past `max_members`: its joins and leaves are no longer announced."""

    room: str
    max_members: int | None


@dataclass(frozen=True)
class Left:
    """This connection left a room."""

    room: str


@dataclass(frozen=True)
class Members:
    """The answer to `who`."""

    room: str
    members: tuple[Member, ...]
    truncated: bool
    presence: bool = True
    """As in `Joined`: False when the room's joins and leaves are not announced."""


@dataclass(frozen=True)
class History:
    """The answer to `history`: stored messages, oldest first."""

    room: str
    messages: tuple[ChatMessage, ...]


@dataclass(frozen=True)
class Whisper:
    """A direct message, to this connection or echoed to it as the sender."""

    id: str
    text: str
    sender: str
    connection_id: str
    to: str
    sent_at: datetime | None


@dataclass(frozen=True)
class ServerError:
    """An `error` frame: the server refused what this client sent and says why."""

    error: str
    accepted_actions: tuple[str, ...]
    request_id: str


@dataclass(frozen=True)
class GatewayError:
    """API Gateway's own failure frame: the handler crashed or timed out."""

    request_id: str
    connection_id: str


@dataclass(frozen=True)
class UnknownFrame:
    """A frame this client does not understand, kept verbatim."""

    raw: str


Frame = (
    ChatMessage
    | Joined
    | Presence
    | PresenceOff
    | Left
    | Members
    | History
    | Whisper
    | ServerError
    | GatewayError
    | UnknownFrame
)


def parse_frame(raw: str | bytes) -> Frame:
    """Classify one frame from the server; never raises, whatever the server sent."""
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
    try:
        body = json.loads(text)
    except ValueError:
        return UnknownFrame(text)
    if not isinstance(body, dict):
        return UnknownFrame(text)
    kind = body.get("type")
    if kind == "message" and isinstance(body.get("message"), str):
        return _message(body)
    room_frame = _room_frame(kind, body)
    if room_frame is not None:
        return room_frame
    if kind == "error":
        accepted = body.get("acceptedActions")
        return ServerError(
            error=_text(body, "error") or text,
            accepted_actions=tuple(str(action) for action in accepted) if isinstance(accepted, list) else (),
            request_id=_text(body, "requestId"),
        )
    if kind is None and body.get("message") == GATEWAY_FAILURE_MESSAGE:
        return GatewayError(request_id=_text(body, "requestId"), connection_id=_text(body, "connectionId"))
    return UnknownFrame(text)


def _message(body: dict[str, Any]) -> ChatMessage:
    seq = body.get("seq")
    return ChatMessage(
        id=_text(body, "id"),
        text=body["message"],
        sender=_text(body, "from") or _text(body, "connectionId"),
        connection_id=_text(body, "connectionId"),
        sent_at=_timestamp(body.get("sentAt")),
        room=_text(body, "room") or "lobby",
        seq=seq if isinstance(seq, int) and not isinstance(seq, bool) else None,
    )


def _room_frame(kind: object, body: dict[str, Any]) -> Frame | None:
    """The frames of rooms, presence, history and whispers; None for any other type."""
    if kind == "joined":
        return Joined(
            room=_text(body, "room"),
            connection_id=_text(body, "connectionId"),
            name=_text(body, "name"),
            members=_members(body.get("members")),
            history=_messages(body.get("history")),
            truncated=body.get("truncated") is True,
            presence=body.get("presence") is not False,
        )
    if kind == "presence":
        return Presence(
            room=_text(body, "room"),
            event=_text(body, "event"),
            name=_text(body, "name"),
            connection_id=_text(body, "connectionId"),
        )
    if kind == "presence-off":
        cap = body.get("maxMembers")
        return PresenceOff(
            room=_text(body, "room"), max_members=cap if isinstance(cap, int) and not isinstance(cap, bool) else None
        )
    if kind == "left":
        return Left(room=_text(body, "room"))
    if kind == "members":
        return Members(
            room=_text(body, "room"),
            members=_members(body.get("members")),
            truncated=bool(body.get("truncated")),
            presence=body.get("presence") is not False,
        )
    if kind == "history":
        return History(room=_text(body, "room"), messages=_messages(body.get("messages")))
    if kind == "whisper" and isinstance(body.get("message"), str):
        return Whisper(
            id=_text(body, "id"),
            text=body["message"],
            sender=_text(body, "from"),
            connection_id=_text(body, "connectionId"),
            to=_text(body, "to"),
            sent_at=_timestamp(body.get("sentAt")),
        )
    return None


def _members(value: object) -> tuple[Member, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(
        Member(name=_text(entry, "name"), connection_id=_text(entry, "connectionId"))
        for entry in value
        if isinstance(entry, dict)
    )


def _messages(value: object) -> tuple[ChatMessage, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(
        _message(entry) for entry in value if isinstance(entry, dict) and isinstance(entry.get("message"), str)
    )


def _text(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    return value if isinstance(value, str) else ""


def _timestamp(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        # fromisoformat reads a trailing "Z" only from Python 3.11 on.
        moment = datetime.fromisoformat(value.removesuffix("Z") + "+00:00" if value.endswith("Z") else value)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def printable(text: str) -> str:
    """The text with control characters escaped (`\\n`, `\\x1b`), so a message cannot move the cursor, recolour
    the terminal or hide behind bidirectional overrides: the terminal's equivalent of rendering it as text."""
    return "".join(
        character.encode("unicode_escape").decode("ascii")
        if unicodedata.category(character) in ("Cc", "Zl", "Zp") or character in _BIDI_CONTROLS
        else character
        for character in text
    )


def format_message(message: ChatMessage, received_at: datetime) -> str:
    """`[HH:MM:SS] name: text` in local time (the server's `sentAt`, else when it arrived); `#room` before the name
    outside the lobby, and `(bot)` after a name that published from a backend."""
    moment = (message.sent_at or received_at).astimezone()
    room = "" if message.room == "lobby" else f"#{printable(message.room)} "
    bot = " (bot)" if not message.connection_id else ""
    return f"[{moment:%H:%M:%S}] {room}{printable(message.sender)}{bot}: {printable(message.text)}"


def format_whisper(whisper: Whisper, received_at: datetime) -> str:
    """`[HH:MM:SS] alice -> bob (whisper): text`."""
    moment = (whisper.sent_at or received_at).astimezone()
    names = f"{printable(whisper.sender)} -> {printable(whisper.to)}"
    return f"[{moment:%H:%M:%S}] {names} (whisper): {printable(whisper.text)}"


NOT_LIVE = "joins and leaves are not shown in a room this big; /who lists the members"


def format_notice(frame: Joined | Presence | PresenceOff | Left | Members, own_id: str) -> str:
    """One `* ...` line about rooms and people, for stderr."""
    if isinstance(frame, Joined):
        more = " and more" if frame.truncated else ""
        line = f"* joined #{printable(frame.room)} as {printable(frame.name)}: {_listing(frame.members, own_id)}{more}"
        return line if frame.presence else f"{line} ({NOT_LIVE})"
    if isinstance(frame, PresenceOff):
        size = "" if frame.max_members is None else f" has over {frame.max_members} members:"
        return f"* #{printable(frame.room)}{size} {NOT_LIVE}"
    if isinstance(frame, Presence):
        return f"* {printable(frame.name)} {printable(frame.event)} #{printable(frame.room)}"
    if isinstance(frame, Left):
        return f"* left #{printable(frame.room)}"
    more = " and more" if frame.truncated else ""
    line = f"* in #{printable(frame.room)}: {_listing(frame.members, own_id)}{more}"
    return line if frame.presence else f"{line} ({NOT_LIVE})"


def _listing(members: tuple[Member, ...], own_id: str) -> str:
    names = [printable(m.name) + (" (you)" if m.connection_id == own_id else "") for m in members]
    return ", ".join(names) or "nobody"


def format_problem(frame: ServerError | GatewayError | UnknownFrame) -> str:
    """One line describing an error frame or an unexpected one, for stderr."""
    if isinstance(frame, ServerError):
        return f"error from server: {printable(frame.error)}"
    if isinstance(frame, GatewayError):
        request = f", request id {frame.request_id}" if frame.request_id else ""
        return f"error from API Gateway: {GATEWAY_FAILURE_MESSAGE} (the handler failed{request})"
    return f"unexpected frame: {printable(frame.raw)}"
