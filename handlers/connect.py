"""`$connect`: record the new connection and put it in its first room, or refuse the handshake.

The client sees the status as the handshake's answer (400 bad name or room, 409 name taken, 500 storage), and the
log line gives a reason code.
"""

from __future__ import annotations

import time
from typing import Any

from handlers import broadcast, config, display_name, protocol, room_service, subprotocol
from handlers.connections import ConnectionsTable
from handlers.invocation import RefusedError, handle
from handlers.room_service import RoomService
from handlers.rooms import JoinOutcome

RETRY = broadcast.Retry()


def handler(event: dict[str, Any], context: object) -> dict[str, Any]:
    """Lambda entry point for the `$connect` route."""
    response = handle(
        event, context, lambda: connect(event, room_service.from_environment(RETRY, config.presence_max_members()))
    )
    # A browser that offered subprotocols (the token travels as one) drops a handshake that selects none of them.
    headers = subprotocol.answer_headers(event.get("headers")) if response["statusCode"] == 200 else {}
    return {**response, **({"headers": headers} if headers else {})}


def connect(event: dict[str, Any], service: RoomService) -> dict[str, Any]:
    """Store the connection and join its room; RefusedError when the handshake must be refused instead."""
    requested = requested_display_name(event)
    name = None
    if requested is not None:
        problem = display_name.display_name_problem(requested)
        if problem is not None:
            raise RefusedError(400, "bad-display-name")
        name = display_name.normalize(str(requested))
    room = (event.get("queryStringParameters") or {}).get("room") or protocol.LOBBY
    if protocol.room_name_problem(room) is not None:
        raise RefusedError(400, "bad-room")
    request = event["requestContext"]
    verified = bool((request.get("authorizer") or {}).get("name"))
    connected_at_ms = int(request.get("connectedAt") or time.time() * 1000)
    table = ConnectionsTable(service.rooms.dynamodb, service.rooms.connections_table)
    connection = table.add(request["connectionId"], connected_at_ms, name, verified)
    outcome = service.rooms.join(connection, room, connected_at_ms / 1000)
    if outcome is not JoinOutcome.JOINED:
        table.remove(connection.connection_id)
        raise RefusedError(409 if outcome is JoinOutcome.NAME_TAKEN else 500, outcome.value)
    result = service.announce(room, "joined", connection)
    return {"room": room, **room_service.broadcast_fields(result)}


def requested_display_name(event: dict[str, Any]) -> object:
    """The authorizer's `name` (a verified identity) if there is one, else `?name=`; None when neither is given.

    An empty `?name=` counts as no name: a client with an empty name field should still get in.
    """
    authorizer = event["requestContext"].get("authorizer") or {}
    name = authorizer.get("name") or (event.get("queryStringParameters") or {}).get("name")
    # Not necessarily a string: validation refuses anything else with a reason instead of guessing a spelling.
    return None if name in (None, "") else name
