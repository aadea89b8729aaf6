"""Make one DynamoDB operation fail below botocore's retry layer, so its standard retry mode reacts as against AWS.

Both faults hook `before-send`, where moto answers too. `answer_error` replaces the answer but moto still applies
the operation behind it, so use it on reads or where only the outcome is asserted. `unreachable` raises before
moto runs (like a dropped connection), so the table is untouched. Each returns a list that counts the attempts.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from botocore.awsrequest import AWSResponse
from botocore.exceptions import EndpointConnectionError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


class _Body:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.data


def answer_error(client: DynamoDBClient, operation: str, status: int, code: str) -> list[str]:
    """From now on, `operation` gets HTTP `status` with DynamoDB's error `code`."""
    attempts: list[str] = []
    body = json.dumps({"__type": f"com.amazonaws.dynamodb.v20120810#{code}", "message": f"injected {code}"}).encode()

    def answer(request: Any, **_: Any) -> Any:  # an AWSResponse; the stubs expect hooks to return None
        attempts.append(operation)
        headers: Any = {"x-amzn-RequestId": "injected", "Content-Type": "application/x-amz-json-1.0"}
        return AWSResponse(request.url, status, headers, _Body(body))

    # register_first: botocore uses the first answer, and moto's handler is registered too.
    client.meta.events.register_first(f"before-send.dynamodb.{operation}", answer)
    return attempts


def unreachable(client: DynamoDBClient, operation: str) -> list[str]:
    """From now on, `operation` fails to connect, before moto sees it."""
    attempts: list[str] = []

    def refuse(request: Any, **_: Any) -> None:
        attempts.append(operation)
        raise EndpointConnectionError(endpoint_url=request.url)

    client.meta.events.register_first(f"before-send.dynamodb.{operation}", refuse)
    return attempts
