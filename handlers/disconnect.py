"""`$disconnect`: forget the connection. Best effort on API Gateway's side, so safe to run twice or never."""

from __future__ import annotations

from typing import Any

from handlers import clients, config
from handlers.connections import ConnectionsTable
from handlers.invocation import HANDLED_ERRORS, Invocation


def handler(event: dict[str, Any], context: object) -> dict[str, int]:
    """Lambda entry point for the `$disconnect` route: 200 whether or not the row still existed."""
    invocation = Invocation(event, context)
    try:
        disconnect(event, ConnectionsTable(clients.dynamodb(), config.table_name()))
    except HANDLED_ERRORS as error:
        return invocation.fail(error)
    return invocation.finish(200)


def disconnect(event: dict[str, Any], table: ConnectionsTable) -> None:
    """Delete the connection's row (rows that expire without a disconnect are removed by TTL or on 410)."""
    table.remove(event["requestContext"]["connectionId"])
