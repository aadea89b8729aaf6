"""`$connect`: record the new connection, or refuse the handshake.

400 when the requested display name is unacceptable, 500 when the table cannot be written; the client sees that
status as the handshake's answer, and the log line says why.
"""

from __future__ import annotations

import time
from typing import Any

from handlers import clients, config, display_name, subprotocol
from handlers.connections import ConnectionsTable
from handlers.invocation import RefusedError, handle


def handler(event: dict[str, Any], context: object) -> dict[str, Any]:
    """Lambda entry point for the `$connect` route."""

    def serve() -> None:
        refusal = connect(event, ConnectionsTable(clients.dynamodb(), config.table_name()))
        if refusal is not None:
            raise RefusedError(400, refusal)

    response = handle(event, context, serve)
    # A browser that offered subprotocols (the token travels as one) drops a handshake that selects none of them.
    headers = subprotocol.answer_headers(event.get("headers")) if response["statusCode"] == 200 else {}
    return {**response, **({"headers": headers} if headers else {})}


def connect(event: dict[str, Any], table: ConnectionsTable) -> str | None:
    """Store the connection; returns why the handshake must be refused instead, or None when it was stored."""
    requested = requested_display_name(event)
    name = None
    if requested is not None:
        problem = display_name.display_name_problem(requested)
        if problem is not None:
            return problem
        name = str(requested)
    request = event["requestContext"]
    connected_at_ms = int(request.get("connectedAt") or time.time() * 1000)
    table.add(request["connectionId"], connected_at_ms, name)
    return None


def requested_display_name(event: dict[str, Any]) -> object:
    """The authorizer's `name` (a verified identity) if there is one, else `?name=`; None when neither is given.

    An empty `?name=` counts as no name: a client with an empty name field should still get in.
    """
    authorizer = event["requestContext"].get("authorizer") or {}
    name = authorizer.get("name") or (event.get("queryStringParameters") or {}).get("name")
    # Not necessarily a string: validation refuses anything else with a reason instead of guessing a spelling.
    return None if name in (None, "") else name
