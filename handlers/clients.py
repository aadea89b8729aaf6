"""AWS clients, created on first use and then kept for the life of the container.

Creating a client costs milliseconds of CPU, so each is made once; boto3 clients are thread-safe, so the broadcast
pool shares them. Importing this module needs no AWS configuration (tests and the emulator import it freely).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import boto3
from botocore import handlers as hooks
from botocore.config import Config

if TYPE_CHECKING:
    from mypy_boto3_apigatewaymanagementapi import ApiGatewayManagementApiClient
    from mypy_boto3_dynamodb import DynamoDBClient

POOL_CONNECTIONS = 64
"""HTTP connections per client: the broadcast's thread pool size, so no post waits for a free connection."""


@functools.cache
def dynamodb() -> DynamoDBClient:
    """The DynamoDB client; botocore's standard retry mode retries throttling and 5xx with jittered backoff."""
    return boto3.client(
        "dynamodb",
        config=Config(
            retries={"mode": "standard", "total_max_attempts": 3},
            max_pool_connections=POOL_CONNECTIONS,
            connect_timeout=2,
            read_timeout=5,
        ),
    )


@functools.cache
def callback_api(endpoint_url: str) -> ApiGatewayManagementApiClient:
    """The `@connections` client for one API stage, trimmed of per-post CPU that changes nothing sent.

    botocore makes one attempt only: `handlers.broadcast` retries 429 and 5xx itself, so attempts do not multiply
    across two layers. Short timeouts keep one stuck connection from holding a pool thread near the 29 s limit.
    No parameter validation (our code builds every request), and none of the hooks that only look for members
    `PostToConnection` lacks or add SDK telemetry (docs/handlers.md: what each saves).
    """
    client = boto3.client(
        "apigatewaymanagementapi",
        endpoint_url=endpoint_url,
        config=Config(
            retries={"mode": "standard", "total_max_attempts": 1},
            max_pool_connections=POOL_CONNECTIONS,
            connect_timeout=2,
            read_timeout=5,
            parameter_validation=False,
        ),
    )
    events = client.meta.events  # this client's own copy: other clients keep every hook
    events.unregister("before-parameter-build", hooks.generate_idempotent_uuid)
    events.unregister("before-call", hooks.inject_api_version_header_if_needed)
    events.unregister("request-created", hooks.add_retry_headers)
    user_agent = getattr(client, "_user_agent_creator", None)  # private: skip the 2nd render if botocore renames it
    if user_agent is not None:
        events.unregister("request-created.apigatewaymanagementapi", user_agent.rebuild_and_replace_user_agent_handler)
    return client
