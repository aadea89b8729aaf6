"""Lambda's Invoke API on the local cloud, through boto3's own `lambda` client, as a function's code would call it."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config

from tests.emulator.conftest import CloudThread, wait_for

LambdaClient = Any
"""boto3's `lambda` client (its type stubs are not installed here)."""


@pytest.fixture
def lambda_client(cloud: CloudThread) -> LambdaClient:
    client: LambdaClient = boto3.client(
        "lambda",
        endpoint_url=cloud.cloud.lambda_url,
        region_name=cloud.cloud.options.region,
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(retries={"total_max_attempts": 1}),
    )
    return client


@pytest.fixture
def quick_retries(cloud: CloudThread) -> Iterator[None]:
    api = cloud.cloud.lambda_api
    assert api is not None
    delays, api.retry_delays = api.retry_delays, (0.05, 0.05)
    yield
    api.retry_delays = delays


def physical_name(cloud: CloudThread) -> str:
    return cloud.cloud.pools["invoked"].function_name


def stored(cloud: CloudThread, key: str) -> list[dict[str, Any]]:
    return cloud.recorded_all(f"invoked#{key}#")


def test_a_synchronous_invoke_returns_the_result_and_the_function_can_find_this_api(
    cloud: CloudThread, lambda_client: LambdaClient
) -> None:
    name = physical_name(cloud)
    for function in (name, "invoked", f"arn:aws:lambda:us-east-1:123456789012:function:{name}"):
        response = lambda_client.invoke(FunctionName=function, Payload=json.dumps({"key": "sync", "n": 1}).encode())
        result = json.loads(response["Payload"].read())
        assert response["StatusCode"] == 200 and "FunctionError" not in response, f"{function}: {response}"
        assert result["event"] == {"key": "sync", "n": 1}, f"{function}: the function must get the payload"
        assert result["functionName"] == name, "the function runs under its physical name"
        assert result["lambdaEndpoint"] == cloud.cloud.lambda_url, "a function's boto3 lambda client must come here"


def test_an_asynchronous_invoke_answers_202_and_runs(cloud: CloudThread, lambda_client: LambdaClient) -> None:
    response = lambda_client.invoke(
        FunctionName=physical_name(cloud), InvocationType="Event", Payload=json.dumps({"key": "async"}).encode()
    )
    assert response["StatusCode"] == 202, f"Event invocations are accepted at once: {response}"
    (event,) = wait_for(lambda: stored(cloud, "async"), 10, "the Event invocation never ran")
    assert event == {"key": "async"}


def test_a_failed_synchronous_invoke_is_reported_as_lambda_does(
    cloud: CloudThread, lambda_client: LambdaClient
) -> None:
    response = lambda_client.invoke(FunctionName="invoked", Payload=json.dumps({"key": "x", "fail": True}).encode())
    assert (response["StatusCode"], response.get("FunctionError")) == (200, "Unhandled"), f"{response}"
    error = json.loads(response["Payload"].read())
    assert error["errorType"] == "RuntimeError" and "on purpose" in error["errorMessage"], error


def test_a_failed_asynchronous_invoke_is_retried_twice(
    cloud: CloudThread, lambda_client: LambdaClient, quick_retries: None
) -> None:
    lambda_client.invoke(
        FunctionName="invoked", InvocationType="Event", Payload=json.dumps({"key": "retried", "fail": True}).encode()
    )
    attempts = wait_for(lambda: len(stored(cloud, "retried")) >= 3 and stored(cloud, "retried"), 10, "no retries")
    assert len(attempts) == 3, f"one attempt and two retries, as Lambda's asynchronous invocation: {len(attempts)}"


@pytest.mark.parametrize(
    ("function", "kind", "payload", "error"),
    [
        ("no-such-function", "RequestResponse", b"{}", "ResourceNotFoundException"),
        ("invoked", "RequestResponse", b"not json", "InvalidRequestContentException"),
        ("invoked", "Event", b'{"key": "' + b"x" * (1024 * 1024) + b'"}', "RequestEntityTooLargeException"),
    ],
    ids=["unknown-function", "not-json", "too-large-for-event"],
)
def test_bad_invocations_get_lambdas_errors(
    lambda_client: LambdaClient, function: str, kind: str, payload: bytes, error: str
) -> None:
    with pytest.raises(lambda_client.exceptions.ClientError) as raised:
        lambda_client.invoke(FunctionName=function, InvocationType=kind, Payload=payload)
    assert raised.value.response["Error"]["Code"] == error, raised.value.response


def test_a_dry_run_runs_nothing(cloud: CloudThread, lambda_client: LambdaClient) -> None:
    response = lambda_client.invoke(
        FunctionName="invoked", InvocationType="DryRun", Payload=json.dumps({"key": "dry"}).encode()
    )
    assert response["StatusCode"] == 204 and stored(cloud, "dry") == [], f"{response}"


@pytest.mark.parametrize(
    "headers", [{"Origin": "https://evil.example"}, {"Host": "rebound.example"}], ids=["origin", "rebound-host"]
)
def test_a_browser_page_cannot_invoke(cloud: CloudThread, headers: dict[str, str]) -> None:
    request = urllib.request.Request(
        f"{cloud.cloud.lambda_url}/2015-03-31/functions/invoked/invocations",
        data=json.dumps({"key": "browser"}).encode(),
        headers=headers,
        method="POST",
    )
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(request, timeout=10)
    assert raised.value.code == 403 and stored(cloud, "browser") == [], "nothing runs for a page's request"
