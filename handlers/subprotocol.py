"""The WebSocket subprotocols a browser offers on `$connect`, where it cannot set an `Authorization` header.

The token travels as a `bearer.<token>` entry; `$connect` selects the chat's own name, since a browser drops a
handshake that selects none of its offers, and that keeps the token out of the response.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

HEADER = "Sec-WebSocket-Protocol"

CHAT = "websocket-chat"
"""The chat's own subprotocol name, the one `$connect` selects."""

TOKEN_PREFIX = "bearer."
"""An offered subprotocol `bearer.<token>` carries the token (a JWT's characters are all valid in a protocol name)."""


def offered(headers: Mapping[str, Any] | None) -> list[str]:
    """The subprotocols a handshake offers, in order (header names matched case-insensitively)."""
    values = [value for name, value in (headers or {}).items() if str(name).lower() == HEADER.lower()]
    return [entry.strip() for value in values if isinstance(value, str) for entry in value.split(",") if entry.strip()]


def answer_headers(headers: Mapping[str, Any] | None) -> dict[str, str]:
    """The response headers `$connect` returns: the chat's protocol when the client offered it, else none."""
    return {HEADER: CHAT} if CHAT in offered(headers) else {}
