"""AWS clients, created on first use and then kept for the life of the container.

Creating a client costs milliseconds of CPU, so each is made once and kept, with its connections, for the next
invocation. Importing this module needs no AWS configuration (tests and the emulator import it freely).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import boto3
import boto3.session
from botocore.config import Config
from botocore.exceptions import NoCredentialsError

from handlers.callback_client import CallbackClient

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

POOL_CONNECTIONS = 64
"""HTTP connections of the DynamoDB client: the threads that may call it at once (Scan pages, removals)."""


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
def callback_api(endpoint_url: str) -> CallbackClient:
    """The `@connections` client for one API stage: lean keep-alive HTTP, signed with the session's credentials.

    Its timeouts (2 s to connect, 5 s to answer) keep one stuck connection from holding a post near the 29 s limit;
    retries are `handlers.broadcast`'s alone, so attempts never multiply across two layers.
    """
    session = _session()
    credentials = session.get_credentials()
    if credentials is None:
        raise NoCredentialsError()
    return CallbackClient(endpoint_url, session.region_name or "us-east-1", credentials)


@functools.cache
def _session() -> boto3.session.Session:
    return boto3.session.Session()
