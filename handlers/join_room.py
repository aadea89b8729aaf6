"""`join`: make the sender a member of a room; it gets `joined` (its own id, the members, recent history) and the
other members a presence `joined`. Joining again is harmless: another `joined`, no second presence event."""

from __future__ import annotations

from typing import Any

from handlers import broadcast, clients, config, protocol, room_frames, room_service
from handlers.history import HistoryTable
from handlers.invocation import handle
from handlers.room_service import RoomService
from handlers.rooms import JoinOutcome

RETRY = broadcast.Retry()

_REFUSALS = {
    JoinOutcome.TOO_MANY_ROOMS: "you are in {max_rooms} rooms already, the most one connection may be in; leave one",
    JoinOutcome.NAME_TAKEN: 'another connection holds the name "{name}" in "{room}"; reconnect with another name',
    JoinOutcome.GONE: "this connection is closing; reconnect",
}


def handler(event: dict[str, Any], context: object) -> dict[str, int]:
    """Lambda entry point for the `join` route."""
    return handle(
        event,
        context,
        lambda: join(
            event,
            room_service.from_environment(RETRY, config.presence_max_members()),
            HistoryTable(clients.dynamodb(), config.history_table_name()),
            config.history_limit(),
        ),
    )


def join(event: dict[str, Any], service: RoomService, history: HistoryTable, history_limit: int) -> dict[str, Any]:
    """Join, answer with `joined`, announce a new member; returns the fields for the log line."""
    try:
        room = protocol.room_request(event, protocol.JOIN)
        connection = room_service.sender(service, event)
        outcome = service.rooms.join(connection, room, service.clock())
        if outcome in _REFUSALS:
            sentence = _REFUSALS[outcome].format(max_rooms=service.rooms.max_rooms, name=connection.name, room=room)
            raise protocol.InvalidMessageError(sentence, outcome.value)
    except protocol.InvalidMessageError as problem:
        return room_service.refuse(service, event, problem, protocol.JOIN, 0)
    now = service.clock()
    members, truncated = service.rooms.members(room, now, room_frames.MEMBER_LIST_LIMIT)
    recent = history.before(room, None, history_limit, now)
    audience = service.presence_audience(room, connection)
    frame = room_frames.joined_frame(
        room,
        connection.connection_id,
        connection.sender_name,
        members=members,
        truncated=truncated,
        presence=audience.live,
        history=recent,
    )
    fields: dict[str, Any] = {"outcome": outcome.value, "reply": service.reply(connection.connection_id, frame)}
    fields["presence"] = audience.live
    if outcome is JoinOutcome.JOINED:
        fields.update(room_service.broadcast_fields(service.announce(room, "joined", connection, audience)))
    if audience.live:
        service.confirm_live(room, connection)
    return fields
