"""Opening a chat connection and explaining, in one sentence, why it could not be opened."""

from __future__ import annotations

import os

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidHandshake, InvalidStatus
from websockets.typing import Subprotocol

from handlers import subprotocol
from handlers.aws_facts import MESSAGE_LIMIT_BYTES

CONNECT_FAILURES = (OSError, TimeoutError, InvalidHandshake)
"""What `open_connection` raises when the server refuses, is unreachable or rejects the handshake."""


async def open_connection(url: str, timeout: float, token: str | None = None) -> ClientConnection:
    """Connect to a chat URL, failing with one of `CONNECT_FAILURES` after `timeout` seconds at most.

    A token travels as the subprotocol `bearer.<token>`, as the page sends it: a query string lands in access logs.
    No keepalive pings: API Gateway does not count them as traffic for its idle timeout; wscat sends none either.
    """
    offers = [Subprotocol(subprotocol.CHAT), Subprotocol(subprotocol.TOKEN_PREFIX + token)] if token else None
    return await connect(
        url, open_timeout=timeout, ping_interval=None, max_size=MESSAGE_LIMIT_BYTES, subprotocols=offers
    )


def describe_failure(error: BaseException, timeout: float) -> str:
    """Why the connection failed, for a person: the HTTP status of a rejected handshake, the socket error, or the
    time it waited."""
    if isinstance(error, InvalidStatus):
        status = error.response.status_code
        hint = {
            400: " (bad request: is the display name acceptable?)",
            401: " (no credentials: is a token needed?)",
            403: " (forbidden: wrong stage in the URL, or the token was refused)",
            404: " (not found: is the stage in the URL right?)",
        }.get(status, "")
        return f"the server rejected the WebSocket handshake with HTTP {status}{hint}"
    if isinstance(error, TimeoutError):
        return f"no WebSocket handshake within {timeout:g} s"
    if isinstance(error, OSError):
        # asyncio's message ("Connect call failed ...") hides the reason; the errno names it.
        return os.strerror(error.errno) if error.errno else str(error) or type(error).__name__
    return str(error) or type(error).__name__
