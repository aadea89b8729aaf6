"""`$disconnect`: forget the connection. Best effort on API Gateway's side, so safe to run twice or never."""

from __future__ import annotations

from typing import Any

from handlers import clients, config
from handlers.connections import ConnectionsTable
from handlers.invocation import handle


def handler(event: dict[str, Any], context: object) -> dict[str, int]:
    """Lambda entry point for the `$disconnect` route: 200 whether or not the row still existed."""
    return handle(event, context, lambda: disconnect(event, ConnectionsTable(clients.dynamodb(), config.table_name())))


def disconnect(event: dict[str, Any], table: ConnectionsTable) -> None:
    """Delete the connection's row (rows that expire without a disconnect are removed by TTL or on 410)."""
    table.remove(event["requestContext"]["connectionId"])
