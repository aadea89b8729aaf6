"""`who`: a member asks who is in a room; it gets `members` (capped, with `truncated` saying so, and `presence`
saying whether the room's joins and leaves are announced)."""

from __future__ import annotations

from typing import Any

from handlers import broadcast, config, protocol, room_frames, room_service
from handlers.invocation import handle
from handlers.room_service import RoomService

RETRY = broadcast.Retry()


def handler(event: dict[str, Any], context: object) -> dict[str, int]:
    """Lambda entry point for the `who` route."""
    return handle(
        event, context, lambda: who(event, room_service.from_environment(RETRY, config.presence_max_members()))
    )


def who(event: dict[str, Any], service: RoomService) -> dict[str, Any]:
    """Answer with the room's members; returns the fields for the log line."""
    try:
        room = protocol.room_request(event, protocol.WHO)
        connection = room_service.sender(service, event)
        room_service.require_member(connection, room)
    except protocol.InvalidMessageError as problem:
        return room_service.refuse(service, event, problem, protocol.WHO, 0)
    members, truncated = service.rooms.members(room, service.clock(), room_frames.MEMBER_LIST_LIMIT)
    # A marker still there means members were told presence is off and no leave has cleared it yet: not live.
    live = service.presence_audience(room, connection).live and not service.rooms.presence_off_marked(room)
    frame = room_frames.members_frame(room, members, truncated, live)
    fields: dict[str, Any] = {"members": len(members), "presence": live}
    fields["reply"] = service.reply(connection.connection_id, frame)
    if live and service.rooms.presence_off_marked(room):
        # A crossing since the check: its presence-off may have overtaken this answer, so it comes again, after it.
        service.reply(connection.connection_id, room_frames.presence_off_frame(room, service.presence_max_members))
    return fields
