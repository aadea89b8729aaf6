"""AWS clients, created on first use and then kept for the life of the container.

Creating a client costs milliseconds of CPU, so each is made once; boto3 clients are thread-safe, so the broadcast
pool shares them. Importing this module needs no AWS configuration (tests and the emulator import it freely).

The callback client is trimmed for the broadcast, whose speed is the CPU botocore spends per post (Lambda gives a
256 MB function about 0.14 vCPU): no client-side parameter validation (our code builds every request) and none of
the per-request hooks that do nothing for `PostToConnection` or only add SDK telemetry. Signing, the typed errors
(`GoneException`...) and the timeouts are untouched. docs/handlers.md has the measurements.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import boto3
from botocore import handlers as botocore_handlers
from botocore.config import Config

if TYPE_CHECKING:
    from mypy_boto3_apigatewaymanagementapi import ApiGatewayManagementApiClient
    from mypy_boto3_dynamodb import DynamoDBClient

POOL_CONNECTIONS = 64
"""HTTP connections per client: the broadcast's thread pool size, so no post waits for a free connection."""

_IDLE_CALLBACK_HOOKS = (
    # PostToConnection has no idempotency token and is not an endpoint-discovery operation: both hooks only look.
    ("before-parameter-build", botocore_handlers.generate_idempotent_uuid),
    ("before-call", botocore_handlers.inject_api_version_header_if_needed),
    # amz-sdk-invocation-id and amz-sdk-request are SDK telemetry, added after signing; API Gateway ignores them.
    ("request-created", botocore_handlers.add_retry_headers),
)
"""botocore's default hooks that cost CPU on every post and change nothing API Gateway acts on."""


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
    """The `@connections` client for one API stage.

    botocore makes one attempt only: `handlers.broadcast` retries 429 and 5xx itself, so attempts do not multiply
    across two layers. Short timeouts keep one stuck connection from holding a pool thread near the 29 s limit.
    """
    client = boto3.client(
        "apigatewaymanagementapi",
        endpoint_url=endpoint_url,
        config=Config(
            retries={"mode": "standard", "total_max_attempts": 1},
            max_pool_connections=POOL_CONNECTIONS,
            connect_timeout=2,
            read_timeout=5,
            parameter_validation=False,  # our code passes a str id and bytes; validating costs CPU on every post
        ),
    )
    events = client.meta.events  # the client's own copy: other clients keep every hook
    for event, hook in _IDLE_CALLBACK_HOOKS:
        events.unregister(event, hook)
    # botocore renders the User-Agent twice per request, the second time only to add feature telemetry.
    user_agent = getattr(client, "_user_agent_creator", None)
    if user_agent is not None:
        events.unregister("request-created.apigatewaymanagementapi", user_agent.rebuild_and_replace_user_agent_handler)
    return client
