"""`$default`: a message no route matched (not JSON, no `action`, or an unknown one) gets an error frame back."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from handlers import broadcast, clients, config, protocol
from handlers.invocation import handle

if TYPE_CHECKING:
    from handlers.callback_client import CallbackClient

RETRY = broadcast.Retry()


def handler(event: dict[str, Any], context: object) -> dict[str, int]:
    """Lambda entry point for the `$default` route."""
    return handle(
        event,
        context,
        lambda: reply_unroutable(event, clients.callback_api(config.endpoint_url()), config.max_message_bytes(), RETRY),
    )


def reply_unroutable(
    event: dict[str, Any],
    callback_api: CallbackClient,
    max_message_bytes: int,
    retry: broadcast.Retry,
) -> dict[str, Any]:
    """Tell the sender what was wrong and what is expected; returns the fields for the invocation's log line."""
    request = event["requestContext"]
    problem = protocol.unroutable(event)
    frame = protocol.error_frame(str(problem), request.get("requestId", ""), max_message_bytes)
    # The reason code only: the sentence may quote the client's action name.
    return {"rejected": problem.code, "reply": broadcast.post(callback_api, request["connectionId"], frame, retry)}
