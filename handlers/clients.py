"""AWS clients, created on first use and kept for the container's life: creating one costs milliseconds of CPU."""

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
    from mypy_boto3_lambda import LambdaClient

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
def lambda_api() -> LambdaClient:
    """The Lambda client a broadcast starts its other parts with (asynchronous invokes: one attempt each, since a
    part that cannot be handed over is posted by the caller itself)."""
    return boto3.client(
        "lambda",
        config=Config(retries={"mode": "standard", "total_max_attempts": 1}, connect_timeout=2, read_timeout=5),
    )


@functools.cache
def callback_api(endpoint_url: str) -> CallbackClient:
    """The `@connections` client for one API stage, signed with the session's credentials.

    Retries are `handlers.broadcast`'s alone, so attempts never multiply across two layers.
    """
    session = _session()
    credentials = session.get_credentials()
    if credentials is None:
        raise NoCredentialsError()
    return CallbackClient(endpoint_url, session.region_name or "us-east-1", credentials)


@functools.cache
def _session() -> boto3.session.Session:
    return boto3.session.Session()
