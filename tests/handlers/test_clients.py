"""`handlers.clients`: the lean callback client signs as boto3 does, with the session's credentials and region."""

from __future__ import annotations

import re

import boto3
import pytest
from botocore.config import Config

from handlers import broadcast, clients
from tests.handlers.callback_server import CallbackServer


def signed_headers(authorization: str) -> list[str]:
    """The `SignedHeaders=` list of a SigV4 `Authorization` header."""
    found = re.search(r"SignedHeaders=([^,]+)", authorization)
    assert found, f"not a SigV4 Authorization header: {authorization!r}"
    return found.group(1).split(";")


def test_callback_posts_are_signed_like_boto3s(aws_credentials: None, callback_server: CallbackServer) -> None:
    connection_id = "L0SM9cOF/+vHcCIhw="  # '/', '+' and '=' must be percent-encoded in the path, as boto3 does
    stock = boto3.client(
        "apigatewaymanagementapi", endpoint_url=callback_server.url, config=Config(retries={"total_max_attempts": 1})
    )
    stock.post_to_connection(ConnectionId=connection_id, Data=b"{}")
    outcome = broadcast.post(clients.callback_api(callback_server.url), connection_id, b"{}", broadcast.Retry())

    assert outcome == broadcast.DELIVERED, f"a post through the lean client must be delivered, got {outcome}"
    theirs, ours = callback_server.posts
    assert ours.path == theirs.path, f"the request path must be boto3's: {ours.path!r} against {theirs.path!r}"
    assert ours.connection_id == connection_id, f"the server must read back the same id: {ours.connection_id!r}"
    assert re.match(
        r"AWS4-HMAC-SHA256 Credential=testing/\d{8}/us-east-1/execute-api/aws4_request,", ours.authorization
    ), f"signed with the session's key for execute-api in the session's region: {ours.authorization!r}"
    assert {"host", "x-amz-date", "x-amz-security-token"} <= set(signed_headers(ours.authorization)), (
        f"host, date and session token must be signed: {ours.authorization!r}"
    )
    telemetry = {"amz-sdk-invocation-id", "amz-sdk-request"} & ours.header_names
    assert not telemetry, f"the callback client sends no SDK telemetry: {telemetry}"


def test_the_callback_client_is_made_once_per_endpoint(aws_credentials: None, callback_server: CallbackServer) -> None:
    assert clients.callback_api(callback_server.url) is clients.callback_api(callback_server.url)


def test_an_endpoint_that_is_not_http_is_refused(aws_credentials: None) -> None:
    with pytest.raises(ValueError, match="http"):
        clients.callback_api("wss://example.com/dev")
