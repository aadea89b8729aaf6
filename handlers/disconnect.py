"""`$disconnect`: forget the connection and tell each of its rooms it left. Best effort on API Gateway's side, so
safe to run twice or never (rows expire through TTL, and posts that answer 410 remove them)."""

from __future__ import annotations

from typing import Any

from handlers import broadcast, config, room_service
from handlers.invocation import handle
from handlers.room_service import RoomService

RETRY = broadcast.Retry()


def handler(event: dict[str, Any], context: object) -> dict[str, int]:
    """Lambda entry point for the `$disconnect` route: 200 whether or not the row still existed."""
    return handle(
        event, context, lambda: disconnect(event, room_service.from_environment(RETRY, config.presence_max_members()))
    )


def disconnect(event: dict[str, Any], service: RoomService) -> dict[str, Any]:
    """Delete the connection's row and memberships, then post a presence `left` to every room it was in."""
    connection = service.rooms.forget(event["requestContext"]["connectionId"])
    if connection is None:
        return {"rooms": 0}
    delivered = 0
    for room in sorted(connection.rooms):
        delivered += service.announce(room, "left", connection).delivered
    return {"rooms": len(connection.rooms), "delivered": delivered}
