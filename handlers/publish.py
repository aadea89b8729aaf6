"""`publish`: another service posts into a room without a WebSocket, by invoking this function with IAM.

Who may invoke it is decided by IAM (`lambda:InvokeFunction`), not by anything in the event; the message goes out
with `"published": true` and no `connectionId`, so no client can take it for one of its own.
"""

from __future__ import annotations

import time
from typing import Any

from handlers import broadcast, clients, config, display_name, protocol, room_service
from handlers.history import HistoryTable
from handlers.invocation import HANDLED_ERRORS, Invocation
from handlers.room_service import RoomService

RETRY = broadcast.Retry()
FIELDS = ("room", "message", "from")


def handler(event: Any, context: object) -> dict[str, Any]:
    """Lambda entry point, invoked directly (`lambda:InvokeFunction`), not through API Gateway."""
    invocation = Invocation({"requestContext": {"routeKey": "publish"}}, context)
    try:
        answer = publish(
            event,
            room_service.from_environment(RETRY),
            HistoryTable(clients.dynamodb(), config.history_table_name(), config.history_retention_days()),
            config.max_message_bytes(),
        )
    except HANDLED_ERRORS as error:
        invocation.fail(error)
        return {"ok": False, "error": "the chat backend failed; try again", "code": "internal-error"}
    status = 200 if answer["ok"] else 400
    invocation.finish(status, **{key: value for key, value in answer.items() if key not in ("ok", "error")})
    return answer


def publish(event: Any, service: RoomService, history: HistoryTable, max_message_bytes: int) -> dict[str, Any]:
    """Validate and post one published message; the answer the invoker gets."""
    try:
        room, text, sender = published_message(event, max_message_bytes)
        protocol.message_frame(text, sender, None, int(time.time() * 1000), room=room, seq=2**53)
    except protocol.InvalidMessageError as problem:
        return {"ok": False, "error": str(problem), "code": problem.code}
    fields = room_service.post_message(
        service, history, room=room, text=text, sender_name=sender, sender_id=None, sent_at_ms=int(time.time() * 1000)
    )
    return {"ok": True, "room": room, **fields}


def published_message(event: Any, max_message_bytes: int) -> tuple[str, str, str]:
    """The room, text and sender name of a valid publish event, or InvalidMessageError."""
    if not isinstance(event, dict):
        raise protocol.InvalidMessageError('the event must be a JSON object {"room", "message", "from"}', "not-object")
    unexpected = sorted(set(event) - set(FIELDS))
    if unexpected:
        raise protocol.InvalidMessageError('only "room", "message" and "from" are allowed', "unexpected-field")
    room = protocol.room_field(event)
    text = protocol.message_text(event, max_message_bytes)
    problem = display_name.display_name_problem(event.get("from"))
    if problem is not None:
        raise protocol.InvalidMessageError(f'"from": {problem}', "bad-display-name")
    return room, text, display_name.normalize(event["from"])
