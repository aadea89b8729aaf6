"""`python -m client publish` against the local cloud's Lambda Invoke API: the same command a backend runs on AWS."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from websockets.sync.client import connect

from emulator.testing import RunningEmulator

REPOSITORY = Path(__file__).resolve().parents[2]


def lambda_endpoint(emulator: RunningEmulator) -> str:
    match = re.search(r"Publish .*AWS_ENDPOINT_URL=(\S+)", emulator.output_text())
    assert match, "the ready lines must say how to publish locally"
    return match[1]


def publish(endpoint: str, *arguments: str) -> subprocess.CompletedProcess[str]:
    variables = {
        **os.environ,
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
    }
    return subprocess.run(
        [sys.executable, "-m", "client", "publish", *arguments],
        capture_output=True,
        text=True,
        cwd=REPOSITORY,
        env=variables,
        timeout=60,
        check=False,
    )


def next_message(client: Any) -> dict[str, Any]:
    while True:
        frame: dict[str, Any] = json.loads(client.recv(timeout=15))
        if frame.get("type") == "message":
            return frame


def test_a_backend_publishes_into_a_room(emulator: RunningEmulator) -> None:
    endpoint = lambda_endpoint(emulator)
    with connect(f"{emulator.ws_url}?name=ops-watcher&room=ops", proxy=None, open_timeout=15) as watcher:
        result = publish(endpoint, "--function", "publish", "--room", "ops", "--from", "deploy-bot", "release 1.4")
        assert result.returncode == 0, f"publish failed: {result.stderr}"
        assert re.fullmatch(r"published to ops as seq \d+: 1 member\(s\) got it\n", result.stdout), result.stdout
        frame = next_message(watcher)
    assert (frame["from"], frame["message"], frame["room"], frame["published"]) == (
        "deploy-bot",
        "release 1.4",
        "ops",
        True,
    ), f"the watcher gets the published message: {frame}"
    assert "connectionId" not in frame, "a published message is nobody's own"


def test_a_refused_publish_says_why_and_exits_1(emulator: RunningEmulator) -> None:
    result = publish(lambda_endpoint(emulator), "--function", "publish", "--room", "no spaces", "--from", "bot", "x")
    assert result.returncode == 1 and "publish refused" in result.stderr and "bad-room" in result.stderr, result


def test_an_unknown_function_is_not_found(emulator: RunningEmulator) -> None:
    result = publish(lambda_endpoint(emulator), "--function", "nope", "--room", "ops", "--from", "bot", "x")
    assert result.returncode == 1 and "ResourceNotFoundException" in result.stderr, result.stderr


def test_a_browser_page_cannot_publish(emulator: RunningEmulator) -> None:
    client = boto3.client(
        "lambda",
        endpoint_url=lambda_endpoint(emulator),
        region_name="us-east-1",
        aws_access_key_id="a",
        aws_secret_access_key="b",
    )
    client.meta.events.register("before-sign.lambda", lambda request, **_: request.headers.__setitem__("Origin", "x"))
    with pytest.raises(ClientError) as refused:
        client.invoke(FunctionName="publish", Payload=b'{"room": "ops", "message": "x", "from": "bot"}')
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403, "a page's request is refused"


def test_publish_needs_a_function_name() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "client", "publish", "--room", "ops", "--from", "bot", "x"],
        capture_output=True,
        text=True,
        cwd=REPOSITORY,
        env={key: value for key, value in os.environ.items() if key != "CHAT_PUBLISH_FUNCTION"},
        timeout=60,
        check=False,
    )
    assert result.returncode == 2 and "--function is required" in result.stderr, result.stderr
