"""The embedded moto server (`python -m emulator.dynamodb`): connections kept open, DynamoDB calls unrouted."""

from __future__ import annotations

import contextlib
import http.client
import json
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest

from emulator.dynamodb import (
    _call_wsgi,
    dynamodb_first,
    keep_alive_handler,
    make_moto_faster,
    signed_request_environ,
    start_moto,
    stop_moto,
)

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


def table_requests(table: str) -> list[tuple[str, dict[str, object]]]:
    """The kinds of call a message makes on `table`, with failures: a condition, a cancelled transaction, bad input."""
    key = {"pk": {"S": "room#lobby"}, "sk": {"S": "member#alice"}}
    item = {**key, "name": {"S": "alice"}, "seq": {"N": "1"}}
    condition = {"ConditionExpression": "attribute_not_exists(pk)"}
    rich_key = {"pk": {"S": "room#lobby"}, "sk": {"S": "history#1"}}
    rich = {
        **rich_key,
        "nested": {"M": {"list": {"L": [{"N": "1.5"}, {"BOOL": True}, {"NULL": True}, {"B": "AAEC"}]}}},
        "names": {"SS": ["alice", "bob"]},
        "numbers": {"NS": ["1", "2"]},
    }
    return [
        ("PutItem", {"TableName": table, "Item": item, **condition}),
        ("PutItem", {"TableName": table, "Item": item, **condition, "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}),
        (
            "UpdateItem",
            {
                "TableName": table,
                "Key": key,
                "UpdateExpression": "ADD #seq :one",
                "ExpressionAttributeNames": {"#seq": "seq"},
                "ExpressionAttributeValues": {":one": {"N": "1"}},
                "ReturnValues": "UPDATED_NEW",
            },
        ),
        ("GetItem", {"TableName": table, "Key": key, "ConsistentRead": True}),
        ("PutItem", {"TableName": table, "Item": rich, "ReturnConsumedCapacity": "TOTAL"}),
        ("GetItem", {"TableName": table, "Key": rich_key, "ReturnConsumedCapacity": "INDEXES"}),
        (
            "Query",
            {
                "TableName": table,
                "KeyConditionExpression": "pk = :pk AND begins_with(sk, :member)",
                "ExpressionAttributeValues": {":pk": {"S": "room#lobby"}, ":member": {"S": "member#"}},
                "Limit": 1,
            },
        ),
        (
            "TransactWriteItems",
            {"TransactItems": [{"Put": {"TableName": table, "Item": item, **condition}}]},
        ),
        ("UpdateItem", {"TableName": table, "Key": key, "UpdateExpression": "SET = broken"}),
        ("DeleteItem", {"TableName": table, "Key": key, "ReturnValues": "ALL_OLD"}),
        ("GetItem", {"TableName": f"{table}-absent", "Key": key}),
        ("DescribeTimeToLive", {"TableName": table}),
    ]


def comparable(answer: tuple[str, list[tuple[str, str]], bytes], table: str) -> tuple[object, ...]:
    """An answer without what differs on every request (its id) and with the table's name taken out."""
    status, headers, body = answer
    kept = [(name, value) for name, value in headers if name.lower() not in ("x-amzn-requestid", "x-amz-crc32")]
    return status, kept, body.replace(table.encode(), b"TABLE")


class CountingApp:
    """A WSGI app that counts the requests passed on to it."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app
        self.calls = 0

    def __call__(self, environ: dict[str, object], start_response: Callable[..., object]) -> Iterable[bytes]:
        self.calls += 1
        return self.app(environ, start_response)


def answers_through(app: Callable[..., Iterable[bytes]], moto_app: CountingApp, table: str) -> tuple[list[object], int]:
    """`table_requests` answered by `app` on a new table, and how many of them reached `moto_app`'s routing."""
    keys = [{"AttributeName": name, "KeyType": kind} for name, kind in (("pk", "HASH"), ("sk", "RANGE"))]
    create = {
        "TableName": table,
        "KeySchema": keys,
        "AttributeDefinitions": [{"AttributeName": key["AttributeName"], "AttributeType": "S"} for key in keys],
        "BillingMode": "PAY_PER_REQUEST",
    }
    _call_wsgi(moto_app, signed_request_environ("DynamoDB_20120810.CreateTable", json.dumps(create).encode()))
    calls_before = moto_app.calls
    answers: list[object] = [
        comparable(
            _call_wsgi(app, signed_request_environ(f"DynamoDB_20120810.{target}", json.dumps(body).encode())), table
        )
        for target, body in table_requests(table)
    ]
    return answers, moto_app.calls - calls_before


def test_dynamodb_requests_skip_moto_routing_and_are_answered_exactly_as_through_it() -> None:
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app  # noqa: PLC0415

    moto_app = CountingApp(DomainDispatcherApplication(create_backend_app))
    direct = dynamodb_first(moto_app)
    answers: dict[str, list[Any]] = {}
    for name, app in (("routed", moto_app), ("direct", direct)):
        # The direct side also runs with the embedded server's caches, the routed side with moto as it comes.
        with contextlib.ExitStack() as patches:
            if name == "direct":
                patches.callback(make_moto_faster())
            answers[name], passed_on = answers_through(app, moto_app, f"equivalence-{name}-{uuid.uuid4().hex[:8]}")
    assert passed_on == 0, "the direct path must not pass DynamoDB requests through moto's routing"
    statuses = [answer[0] for answer in answers["routed"]]
    assert "200 OK" in statuses and "400 BAD REQUEST" in statuses, "the requests cover successes and failures"
    for routed, direct_answer in zip(answers["routed"], answers["direct"], strict=True):
        assert direct_answer == routed, "the direct path must answer exactly as moto's routed app"


def test_requests_for_other_services_and_apis_take_moto_routing() -> None:
    seen = CountingApp(lambda environ, start_response: [b""])
    app = dynamodb_first(seen)
    app(signed_request_environ("AmazonSSM.GetParameter", b"{}", service="ssm"), lambda *_: None)
    app(signed_request_environ("DynamoDBStreams_20120810.ListStreams", b"{}"), lambda *_: None)
    app(signed_request_environ("DynamoDB_20120810.ListTables", b"{}", service="ssm"), lambda *_: None)
    assert seen.calls == 3, "only a signed call of DynamoDB's current API skips moto's routing"
