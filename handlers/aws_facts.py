"""API Gateway's WebSocket facts that the handlers, the program and the emulator must match, each stated once.

Sources: AWS's WebSocket quotas table (`QUOTAS_URL`), botocore's `apigatewaymanagementapi` service model, and for
what AWS does not document, behaviour observed against AWS. tests/test_aws_facts.py states each as a literal.
Zipped with the handlers, so standard library only.
"""

from __future__ import annotations

import re

QUOTAS_URL = "https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-execution-service-websocket-limits-table.html"

FRAME_LIMIT_BYTES = 32 * 1024
"""WebSocket frame size (quotas table: 32 KB, not adjustable); a larger frame closes the connection."""

MESSAGE_LIMIT_BYTES = 128 * 1024
"""Message payload size (quotas table: 128 KB); a message over one frame arrives in several."""

CALLBACK_PAYLOAD_LIMIT_BYTES = 131_072
"""Largest `Data` of a `@connections` POST (the service model: shape `Data`, `max` 131072)."""

CLOSE_MESSAGE_TOO_BIG = 1009
"""Close code for a frame or message over its limit (quotas table, footnote on the message payload size)."""

CLOSE_GOING_AWAY = 1001
"""Close code when the service ends a connection, idle or too old (observed as `disconnectStatusCode`)."""

IDLE_TIMEOUT_SECONDS = 10 * 60
"""Idle connection timeout (quotas table: 10 minutes); traffic from either side resets it."""

MAX_CONNECTION_SECONDS = 2 * 60 * 60
"""Connection duration (quotas table: 2 hours), after which the service closes the connection."""

INTEGRATION_TIMEOUT_SECONDS = 29
"""Integration timeout (quotas table: 50 ms to 29 s): API Gateway stops waiting, whatever the function's timeout."""

CONNECTION_ID_PATTERN = re.compile(r"[A-Za-z0-9+/]{15}=")
"""Connection, request and message ids look like `L0SM9cOFvHcCIhw=`: 11 random bytes in base64 (observed)."""
