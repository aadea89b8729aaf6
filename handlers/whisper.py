"""`whisper`: a direct message to every connection holding a display name, echoed to the sender.

Names are exact after NFKC: a look-alike name is another name and does not receive it.
"""

from __future__ import annotations

from typing import Any

from handlers import broadcast, config, display_name, protocol, room_frames, room_service
from handlers.aws_facts import FRAME_LIMIT_BYTES
from handlers.connections import ConnectionsTable
from handlers.invocation import handle
from handlers.room_service import RoomService

RETRY = broadcast.Retry()


def handler(event: dict[str, Any], context: object) -> dict[str, int]:
    """Lambda entry point for the `whisper` route."""
    return handle(
        event, context, lambda: whisper(event, room_service.from_environment(RETRY), config.max_message_bytes())
    )


def whisper(event: dict[str, Any], service: RoomService, max_message_bytes: int) -> dict[str, Any]:
    """Post the whisper to the name's connections and the sender; returns the fields for the log line."""
    request = event["requestContext"]
    table = ConnectionsTable(service.rooms.dynamodb, service.rooms.connections_table)
    try:
        to, text = protocol.whisper_request(event, max_message_bytes)
        to = display_name.normalize(to)
        sender = room_service.sender(service, event)
        recipients = table.named(to, service.clock())
        if not recipients:
            raise protocol.InvalidMessageError(f"nobody is connected as {protocol.quoted(to)}", "unknown-name")
        sent_at_ms = int(request.get("requestTimeEpoch") or service.clock() * 1000)
        frame = room_frames.whisper_frame(text, sender.sender_name, sender.connection_id, to, sent_at_ms)
        if len(frame) > FRAME_LIMIT_BYTES:
            raise protocol.InvalidMessageError("the whisper does not fit one frame once encoded", "frame-too-large")
    except protocol.InvalidMessageError as problem:
        return room_service.refuse(service, event, problem, protocol.WHISPER, max_message_bytes)
    audience = sorted({*recipients, sender.connection_id})
    result = broadcast.broadcast(
        [audience], frame, service.callback_api, table.remove, retry=service.retry, workers=service.workers
    )
    return {"recipients": len(recipients), **room_service.broadcast_fields(result)}
