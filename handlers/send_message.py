"""`sendmessage`: validate the sender's message, then broadcast it to every live connection, the sender included.

An invalid message gets an error frame back to the sender alone and nothing is broadcast.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from handlers import broadcast, clients, config, protocol
from handlers.connections import ConnectionsTable
from handlers.invocation import handle

if TYPE_CHECKING:
    from handlers.callback_client import CallbackClient

RETRY = broadcast.Retry()


def handler(event: dict[str, Any], context: object) -> dict[str, int]:
    """Lambda entry point for the `sendmessage` route."""
    return handle(
        event,
        context,
        lambda: send_message(
            event,
            ConnectionsTable(clients.dynamodb(), config.table_name()),
            clients.callback_api(config.endpoint_url()),
            config.max_message_bytes(),
            retry=RETRY,
        ),
    )


def send_message(
    event: dict[str, Any],
    table: ConnectionsTable,
    callback_api: CallbackClient,
    max_message_bytes: int,
    *,
    retry: broadcast.Retry,
    workers: int = broadcast.WORKERS,
) -> dict[str, Any]:
    """Broadcast the message, or reply with an error frame; returns the fields for the invocation's log line."""
    request = event["requestContext"]
    sender = request["connectionId"]
    try:
        text = protocol.chat_message(event, max_message_bytes)
        sender_name = table.display_name(sender) or sender
        sent_at_ms = int(request.get("requestTimeEpoch") or time.time() * 1000)
        frame = protocol.message_frame(text, sender_name, sender, sent_at_ms)
    except protocol.InvalidMessageError as problem:
        reply = protocol.error_frame(
            str(problem), request.get("requestId", ""), max_message_bytes, protocol.SEND_MESSAGE
        )
        outcome = broadcast.post(callback_api, sender, reply, retry)
        return {"rejected": str(problem), "reply": outcome, "delivered": 0, "staleRemoved": 0, "failed": 0}
    result = broadcast.broadcast(
        table.live_connection_ids(time.time()), frame, callback_api, table.remove, retry=retry, workers=workers
    )
    return {
        "delivered": result.delivered,
        "staleRemoved": result.stale_removed,
        "failed": result.failed,
        "errors": dict(result.errors),
    }
