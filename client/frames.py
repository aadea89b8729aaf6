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


Frame = ChatMessage | ServerError | GatewayError | UnknownFrame


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
        return ChatMessage(
            id=_text(body, "id"),
            text=body["message"],
            sender=_text(body, "from") or _text(body, "connectionId"),
            connection_id=_text(body, "connectionId"),
            sent_at=_timestamp(body.get("sentAt")),
        )
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
    """`[HH:MM:SS] name: text` in local time (the server's `sentAt`, else when it arrived)."""
    moment = (message.sent_at or received_at).astimezone()
    return f"[{moment:%H:%M:%S}] {printable(message.sender)}: {printable(message.text)}"


def format_problem(frame: ServerError | GatewayError | UnknownFrame) -> str:
    """One line describing an error frame or an unexpected one, for stderr."""
    if isinstance(frame, ServerError):
        return f"error from server: {printable(frame.error)}"
    if isinstance(frame, GatewayError):
        request = f", request id {frame.request_id}" if frame.request_id else ""
        return f"error from API Gateway: {GATEWAY_FAILURE_MESSAGE} (the handler failed{request})"
    return f"unexpected frame: {printable(frame.raw)}"
