"""`history`: a member pages back through a room's messages; it gets `history`, oldest first, ending before
`before` (default: the newest), at most `limit` and at most what one frame holds."""

from __future__ import annotations

from typing import Any

from handlers import broadcast, clients, config, protocol, room_frames, room_service
from handlers.history import HistoryTable
from handlers.invocation import handle
from handlers.room_service import RoomService

RETRY = broadcast.Retry()


def handler(event: dict[str, Any], context: object) -> dict[str, int]:
    """Lambda entry point for the `history` route."""
    return handle(
        event,
        context,
        lambda: read_history(
            event,
            room_service.from_environment(RETRY),
            HistoryTable(clients.dynamodb(), config.history_table_name()),
            config.history_limit(),
        ),
    )


def read_history(
    event: dict[str, Any], service: RoomService, history: HistoryTable, history_limit: int
) -> dict[str, Any]:
    """Answer with a page of the room's history; returns the fields for the log line."""
    try:
        room, before, limit = protocol.history_request(event, history_limit)
        connection = room_service.sender(service, event)
        room_service.require_member(connection, room)
    except protocol.InvalidMessageError as problem:
        return room_service.refuse(service, event, problem, protocol.HISTORY, 0)
    messages = history.before(room, before, limit, service.clock())
    frame = room_frames.history_frame(room, messages)
    return {"messages": len(messages), "reply": service.reply(connection.connection_id, frame)}
