"""`leave`: the sender stops being a member of a room; it gets `left`, the other members a presence `left`."""

from __future__ import annotations

from typing import Any

from handlers import broadcast, config, protocol, room_frames, room_service
from handlers.invocation import handle
from handlers.room_service import RoomService

RETRY = broadcast.Retry()


def handler(event: dict[str, Any], context: object) -> dict[str, int]:
    """Lambda entry point for the `leave` route."""
    return handle(
        event, context, lambda: leave(event, room_service.from_environment(RETRY, config.presence_max_members()))
    )


def leave(event: dict[str, Any], service: RoomService) -> dict[str, Any]:
    """Leave, answer with `left` and announce it; returns the fields for the log line."""
    try:
        room = protocol.room_request(event, protocol.LEAVE)
        connection = room_service.sender(service, event)
        # False also when a concurrent leave won: either way the sender is not a member now.
        if not service.rooms.leave(connection, room):
            raise room_service.not_member(room)
    except protocol.InvalidMessageError as problem:
        return room_service.refuse(service, event, problem, protocol.LEAVE, 0)
    reply = service.reply(connection.connection_id, room_frames.left_frame(room))
    return {"reply": reply, **room_service.broadcast_fields(service.announce(room, "left", connection))}
