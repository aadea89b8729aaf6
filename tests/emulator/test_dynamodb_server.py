"""The embedded moto server (`python -m emulator.dynamodb`): connections stay open between requests."""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Iterator

import pytest

from emulator.dynamodb import keep_alive_handler, start_moto, stop_moto

AUTHORIZATION = (
    "AWS4-HMAC-SHA256 Credential=emulator/20260101/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=0"
)


@pytest.fixture(scope="module")
def moto_port() -> Iterator[int]:
    process, endpoint = start_moto()
    try:
        yield int(endpoint.rsplit(":", 1)[1])
    finally:
        stop_moto(process)


def dynamodb_headers(target: str) -> dict[str, str]:
    return {
        "X-Amz-Target": f"DynamoDB_20120810.{target}",
        "Content-Type": "application/x-amz-json-1.0",
        "Authorization": AUTHORIZATION,
    }


def answer(connection: http.client.HTTPConnection, target: str, body: bytes = b"{}") -> http.client.HTTPResponse:
    connection.request("POST", "/", body=body, headers=dynamodb_headers(target))
    response = connection.getresponse()
    response.read()
    return response


def test_successive_requests_are_answered_on_one_connection(moto_port: int) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", moto_port, timeout=10)
    try:
        first = answer(connection, "ListTables")
        socket_after_first = connection.sock
        second = answer(connection, "ListTables")
        assert (first.status, second.status) == (200, 200)
        assert first.getheader("Connection") is None, "the server must not close after answering"
        assert socket_after_first is not None and connection.sock is socket_after_first, "the second reused the socket"
    finally:
        connection.close()


def test_an_error_answer_leaves_the_connection_usable(moto_port: int) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", moto_port, timeout=10)
    try:
        missing = answer(connection, "GetItem", json.dumps({"TableName": "absent", "Key": {}}).encode())
        connection.request("POST", "/", body=b"{}", headers=dynamodb_headers("ListTables"))
        listed = connection.getresponse()
        assert missing.status == 400, "moto answers a missing table with 400"
        assert listed.status == 200 and "TableNames" in json.loads(listed.read()), "the next request is read whole"
    finally:
        connection.close()


def test_a_chunked_request_is_answered_and_the_connection_closed(moto_port: int) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", moto_port, timeout=10)
    try:
        connection.request("POST", "/", body=iter([b"{", b"}"]), headers=dynamodb_headers("ListTables"))
        response = connection.getresponse()
        body = response.read()
        assert response.status == 200 and "TableNames" in json.loads(body), "a request without a length is served"
        assert response.getheader("Connection") == "close", "without a length the server cannot find the next request"
    finally:
        connection.close()


def test_an_app_that_raises_answers_500_and_closes(caplog: pytest.LogCaptureFixture) -> None:
    # Werkzeug's own path answers a failing app with a 500; the keep-alive path must not just drop the connection.
    from werkzeug.serving import make_server  # noqa: PLC0415 - moto's server stack only where a test needs it

    def failing_app(environ: dict[str, object], start_response: object) -> list[bytes]:
        raise RuntimeError("moto bug")

    server = make_server("127.0.0.1", 0, failing_app, threaded=True, request_handler=keep_alive_handler())
    threading.Thread(target=server.serve_forever, daemon=True).start()
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        response = answer(connection, "ListTables")
        assert response.status == 500, "a failing app must be answered"
        assert response.getheader("Connection") == "close", "the server says it closes after a failure"
        assert "moto failed on POST /" in caplog.text, "the failure is logged with its traceback"
    finally:
        connection.close()
        server.shutdown()
