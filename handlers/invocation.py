"""One handler run: whom it serves, how long it took, and the single JSON log line it ends with.

The line holds counts, ids and reasons, never chat text, query strings or the event, so logs carry no tokens.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from handlers.config import ConfigurationError

HANDLED_ERRORS = (ClientError, BotoCoreError, ConfigurationError)
"""Answered with 500 and a log line instead of a traceback: AWS refused or was unreachable, or misconfiguration.
Anything else is a bug and is left to raise."""


class RefusedError(Exception):
    """Raised by a route's work to answer with a client error (a 4xx) and a reason for the log line."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def handle(event: dict[str, Any], context: object, serve: Callable[[], Mapping[str, Any] | None]) -> dict[str, int]:
    """Run one route's `serve` and answer: 200 with the fields it returns, `RefusedError`'s status, or 500 on failure.

    `serve` makes its clients and reads its configuration itself, so a misconfigured function is answered too.
    """
    invocation = Invocation(event, context)
    try:
        fields = serve() or {}
    except RefusedError as refusal:
        return invocation.finish(refusal.status, reason=refusal.reason)
    except HANDLED_ERRORS as error:
        return invocation.fail(error)
    return invocation.finish(200, **fields)


class Invocation:
    """Started at the top of `handler(event, context)`; `finish` or `fail` writes the log line and the response."""

    def __init__(self, event: dict[str, Any], context: object) -> None:
        request = event.get("requestContext") or {}
        self.route = str(request.get("routeKey", ""))
        self.connection_id = str(request.get("connectionId", ""))
        self.request_id = str(request.get("requestId", ""))
        self.lambda_request_id = str(getattr(context, "aws_request_id", ""))
        self.started = time.perf_counter()

    def finish(self, status: int, **fields: Any) -> dict[str, int]:
        """Log the run with `fields` (camelCase names) and return the response API Gateway acts on."""
        record: dict[str, Any] = {
            "level": "INFO" if status < 500 else "ERROR",
            "route": self.route,
            "connectionId": self.connection_id,
            "requestId": self.request_id,
            "lambdaRequestId": self.lambda_request_id,
            "status": status,
            **fields,
            "durationMs": round((time.perf_counter() - self.started) * 1000, 1),
        }
        # print, not logging: Logs Insights parses a bare JSON line, not a prefixed record.
        print(json.dumps(record, ensure_ascii=False, separators=(",", ":")), flush=True)
        return {"statusCode": status}

    def fail(self, error: Exception) -> dict[str, int]:
        """Log a handled failure by its error code and AWS's message, and answer 500."""
        if isinstance(error, ClientError):
            details = error.response.get("Error", {})
            return self.finish(500, error=details.get("Code", "ClientError"), detail=details.get("Message", ""))
        return self.finish(500, error=type(error).__name__, detail=str(error))
