"""`handlers.invocation.handle`: the one try/except/finish every route handler runs its work through."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from handlers.config import ConfigurationError
from handlers.invocation import RefusedError, handle
from tests.handlers.conftest import FakeLambdaContext, load_event, log_lines


def run(serve: Any, capsys: pytest.CaptureFixture[str], context: FakeLambdaContext) -> tuple[dict[str, int], Any]:
    response = handle(load_event("sendmessage"), context, serve)
    (line,) = log_lines(capsys.readouterr().out)
    return response, line


def test_work_done_is_200_with_its_fields_logged(
    capsys: pytest.CaptureFixture[str], lambda_context: FakeLambdaContext
) -> None:
    response, line = run(lambda: {"delivered": 3}, capsys, lambda_context)
    assert response == {"statusCode": 200}, "work that returns is a 200"
    assert (line["status"], line["delivered"], line["level"]) == (200, 3, "INFO"), f"log line: {line}"
    assert line["route"] == "sendmessage" and "durationMs" in line, f"the line names the route and duration: {line}"


def test_work_without_fields_is_200(capsys: pytest.CaptureFixture[str], lambda_context: FakeLambdaContext) -> None:
    response, line = run(lambda: None, capsys, lambda_context)
    assert response == {"statusCode": 200} and line["status"] == 200, f"log line: {line}"


def test_a_refusal_answers_its_status_with_the_reason(
    capsys: pytest.CaptureFixture[str], lambda_context: FakeLambdaContext
) -> None:
    def serve() -> None:
        raise RefusedError(400, "bad name")

    response, line = run(serve, capsys, lambda_context)
    assert response == {"statusCode": 400}, "a refusal's status is the answer"
    assert (line["status"], line["reason"], line["level"]) == (400, "bad name", "INFO"), f"log line: {line}"


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (
            ClientError({"Error": {"Code": "ResourceNotFoundException", "Message": "no table"}}, "PutItem"),
            "ResourceNotFoundException",
        ),
        (ConfigurationError("TABLE_NAME is not set"), "ConfigurationError"),
    ],
    ids=["aws", "configuration"],
)
def test_handled_failures_are_500_naming_the_error(
    capsys: pytest.CaptureFixture[str], lambda_context: FakeLambdaContext, error: Exception, code: str
) -> None:
    def serve() -> None:
        raise error

    response, line = run(serve, capsys, lambda_context)
    assert response == {"statusCode": 500}, f"{code} must be answered with 500"
    assert (line["status"], line["error"], line["level"]) == (500, code, "ERROR"), f"log line: {line}"


def test_a_bug_is_left_to_raise(lambda_context: FakeLambdaContext) -> None:
    def serve() -> None:
        raise KeyError("requestContext")

    with pytest.raises(KeyError):
        handle(load_event("sendmessage"), lambda_context, serve)
