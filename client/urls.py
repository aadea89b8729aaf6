"""WebSocket URLs for the chat: checked before connecting, with the display name and first room as query parameters."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit


class BadUrlError(ValueError):
    """The URL cannot be a chat endpoint; the message says what is wrong and what was given."""


def chat_url(url: str, name: str | None = None, room: str | None = None) -> str:
    """`url` with `?name=` and `?room=` added (replacing any already there), after checking it is ws:// or wss://.

    `$connect` reads the display name from `name` and the first room from `room`; a token travels apart
    (`open_connection`).
    """
    stripped = url.strip()
    if not stripped:
        raise BadUrlError("the URL is empty (did `pulumi stack output wssUrl` print nothing?)")
    parts = urlsplit(stripped)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise BadUrlError(f"the URL must look like ws://HOST/STAGE or wss://HOST/STAGE, got {url!r}")
    extra = {key: value for key, value in (("name", name), ("room", room)) if value}
    query = [(key, value) for key, value in parse_qsl(parts.query, keep_blank_values=True) if key not in extra]
    query.extend(extra.items())
    return urlunsplit(parts._replace(query=urlencode(query)))


def redacted(url: str) -> str:
    """The URL with any token hidden, for messages that may end up in CI logs."""
    parts = urlsplit(url)
    query = [(key, "***" if key == "token" else value) for key, value in parse_qsl(parts.query, keep_blank_values=True)]
    return urlunsplit(parts._replace(query=urlencode(query, safe="*")))
