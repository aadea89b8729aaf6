"""`handlers.clients`: the trimmed callback client still signs its posts; the DynamoDB client keeps every hook."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from handlers import broadcast, clients
from tests.handlers.callback_server import CallbackServer

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


def signed_headers(authorization: str) -> list[str]:
    """The `SignedHeaders=` list of a SigV4 `Authorization` header."""
    found = re.search(r"SignedHeaders=([^,]+)", authorization)
    assert found, f"not a SigV4 Authorization header: {authorization!r}"
    return found.group(1).split(";")


def test_callback_posts_are_signed_without_sdk_telemetry(
    dynamodb: DynamoDBClient, callback_server: CallbackServer
) -> None:
    callback_api = clients.callback_api(callback_server.url)
    outcome = broadcast.post(callback_api, "target=", b"{}", broadcast.Retry())
    assert outcome == broadcast.DELIVERED, f"a post through the trimmed client must be delivered, got {outcome}"
    (post,) = callback_server.posts
    assert re.match(r"AWS4-HMAC-SHA256 Credential=\w+/\d{8}/us-east-1/execute-api/aws4_request,", post.authorization), (
        f"the post must be SigV4-signed for execute-api in the region: {post.authorization!r}"
    )
    signed = signed_headers(post.authorization)
    assert "host" in signed and "x-amz-date" in signed, f"host and date must be signed: {signed}"
    telemetry = {"amz-sdk-invocation-id", "amz-sdk-request"} & post.header_names
    assert not telemetry, f"the callback client must not spend CPU on botocore's retry telemetry: {telemetry}"


def test_trimming_the_callback_client_leaves_the_dynamodb_client_whole(
    dynamodb: DynamoDBClient, callback_server: CallbackServer
) -> None:
    clients.callback_api(callback_server.url)  # trimmed after the DynamoDB client exists: must not touch it
    sent: list[dict[str, Any]] = []
    dynamodb.meta.events.register(
        "before-send.dynamodb.DescribeTable", lambda request, **_: sent.append(dict(request.headers))
    )
    dynamodb.describe_table(TableName="connections-test")
    assert sent and "amz-sdk-request" in sent[0], (
        f"the DynamoDB client lost botocore's retry headers when the callback client was trimmed: {sent}"
    )
