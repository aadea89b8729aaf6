"""The Lambda side: worker processes with the stack's environment, warm state, timeouts, crashes, concurrency."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.sync.client import ClientConnection

from tests.emulator.conftest import FUNCTION_TIMEOUT_SECONDS, TEST_ROUTES, CloudThread, cloud_options, receive_json

LAMBDA_RUNTIME_VARIABLES = {
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_LOG_GROUP_NAME",
    "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_EXECUTION_ENV",
    "LAMBDA_TASK_ROOT",
    "_HANDLER",
    "TZ",
    "LANG",
    "PATH",
}
COERCED_LOCALE = {"LC_CTYPE"}
"""Python itself adds LC_CTYPE when the C locale is coerced to UTF-8 (PEP 538); not the emulator's doing."""


def echo(client: ClientConnection) -> dict[str, Any]:
    client.send(json.dumps({"action": "echo"}))
    return receive_json(client)


def test_a_worker_gets_exactly_the_stacks_environment_pointed_at_local_endpoints(cloud: CloudThread) -> None:
    with cloud.connect() as client:
        reply = echo(client)
    environment = reply["environment"]
    expected = LAMBDA_RUNTIME_VARIABLES | {
        "TABLE_NAME",
        "ENDPOINT_URL",
        "MAX_MESSAGE_BYTES",
        "AWS_ENDPOINT_URL_DYNAMODB",
        "AWS_ENDPOINT_URL_LAMBDA",
    }
    assert set(environment) - COERCED_LOCALE == expected, (
        f"worker environment differs: {sorted(set(environment) ^ expected)}"
    )
    local = cloud.cloud
    assert environment["ENDPOINT_URL"] == local.callback_url, "ENDPOINT_URL must be the local callback API"
    assert environment["TABLE_NAME"] == local.table.name, "TABLE_NAME must be the local table"
    assert environment["AWS_ENDPOINT_URL_DYNAMODB"] == local.table.endpoint, "boto3 must reach the local DynamoDB"
    assert environment["AWS_ENDPOINT_URL_LAMBDA"] == local.lambda_url, "boto3 must reach the local Lambda API"
    assert environment["MAX_MESSAGE_BYTES"] == str(local.options.settings.max_message_bytes), "MAX_MESSAGE_BYTES"
    assert environment["AWS_LAMBDA_FUNCTION_NAME"].startswith("echo-"), "function name is auto-named from echo"
    assert environment["_HANDLER"] == "tests.emulator.lambdas.echo", "handler setting"
    assert reply["functionName"] == environment["AWS_LAMBDA_FUNCTION_NAME"], "context.function_name"
    assert reply["memoryLimitInMb"] == local.options.settings.lambda_memory_mb, "context.memory_limit_in_mb"
    remaining = reply["remainingMs"]
    assert isinstance(remaining, int) and 0 < remaining <= FUNCTION_TIMEOUT_SECONDS * 1000, (
        "context.get_remaining_time_in_millis() counts down from the function timeout"
    )
    assert reply["appImportable"] is False, "only the zipped packages may be importable, as on Lambda"


def test_module_state_stays_warm_between_invocations(cloud: CloudThread) -> None:
    workers = cloud.cloud.options.workers_per_function
    with cloud.connect() as client:
        # More invocations than workers, so some worker must serve several (a reply can arrive before its
        # invocation returns, so consecutive messages may land on different workers).
        replies = [echo(client) for _ in range(workers + 1)]
    counts: dict[int, list[int]] = {}
    for reply in replies:
        counts.setdefault(reply["pid"], []).append(reply["invocations"])
    assert any(len(seen) > 1 for seen in counts.values()), f"no worker was reused: {counts}"
    for pid, seen in counts.items():
        assert seen == list(range(seen[0], seen[0] + len(seen))), (
            f"worker {pid} lost its module state between invocations: counts {seen}"
        )


def test_a_timed_out_or_exited_worker_is_replaced(cloud: CloudThread) -> None:
    with cloud.connect() as client:
        for action in ("hang", "exit"):
            client.send(json.dumps({"action": action}))
            assert receive_json(client)["message"] == "Internal server error", f"{action} must fail the invocation"
        assert f"Task timed out after {FUNCTION_TIMEOUT_SECONDS:.2f} seconds" in cloud.log_text(), (
            "a timeout must be logged as Lambda does"
        )
        assert "Runtime exited with error: exit status 3" in cloud.log_text(), "an exit must be logged"
        cold_starts = cloud.log_text().count("[exit-process] cold start: worker")
        # Both functions work again: each failure cost only its worker.
        client.send(json.dumps({"action": "exit"}))
        assert receive_json(client)["message"] == "Internal server error", "a fresh worker runs the handler again"
        assert cloud.log_text().count("[exit-process] cold start: worker") == cold_starts + 1, (
            "the exited worker must be replaced by a fresh one (a logged cold start)"
        )
        assert "invocations" in echo(client), "other functions are unaffected"


@pytest.fixture(scope="module")
def patient_cloud() -> Iterator[CloudThread]:
    """A generous function timeout: the first rendezvous waits for the cold starts of the other workers."""
    rendezvous = next(route for route in TEST_ROUTES if route.key == "rendezvous")
    running = CloudThread(cloud_options(routes=(rendezvous,), function_timeout_seconds=30.0))
    running.start()
    yield running
    running.stop()


def test_overlapping_invocations_run_in_parallel_workers_that_post_back(patient_cloud: CloudThread) -> None:
    group = uuid.uuid4().hex
    with patient_cloud.connect() as client:
        for _ in range(3):
            client.send(json.dumps({"action": "rendezvous", "group": group, "count": 3}))
        replies = [receive_json(client, timeout=40) for _ in range(3)]
    assert all(reply.get("met") for reply in replies), (
        f"three invocations were never in flight at once (one worker per function?): {replies}"
    )
    assert len({reply["pid"] for reply in replies}) == 3, "overlapping invocations need separate workers"


def test_a_function_that_fans_out_gets_the_broadcast_memory(cloud: CloudThread) -> None:
    with cloud.connect() as client:
        client.send(json.dumps({"action": "broadcastecho"}))
        reply = receive_json(client)
    settings = cloud.cloud.options.settings
    assert settings.broadcast_memory_mb != settings.lambda_memory_mb, "the test needs two different memory sizes"
    assert reply["memoryLimitInMb"] == settings.broadcast_memory_mb, "a fan-out function runs with broadcastMemoryMb"
    assert reply["environment"]["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == str(settings.broadcast_memory_mb), (
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE must follow broadcastMemoryMb"
    )


def test_a_worker_over_its_memory_setting_fails_like_lambda(cloud: CloudThread) -> None:
    with cloud.connect() as client:
        client.send(json.dumps({"action": "hog"}))
        assert receive_json(client)["message"] == "Internal server error", "exceeding memory fails the invocation"
    assert "Runtime.OutOfMemory" in cloud.log_text(), "the out-of-memory failure must be logged"
