"""Lambda handlers for the emulator's conformance tests: they record, echo, crash, hang and exit.

They run inside the emulator's worker processes exactly as the real handlers do (task root, environment,
boto3 pointed at the local endpoints), so what they report back is what a real handler would see.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import time
from typing import Any

INVOCATIONS = 0
"""Module state that survives between invocations of a warm worker."""

RECORD_PREFIX = "event#"
"""Table items written by `record` start with this, then `routeKey#connectionId#requestId`."""


def _clients() -> tuple[Any, Any]:
    """The table and the callback client its variables name; a function given neither never imports boto3."""
    if "TABLE_NAME" not in os.environ and "ENDPOINT_URL" not in os.environ:
        return None, None
    import boto3  # noqa: PLC0415

    table = boto3.resource("dynamodb").Table(os.environ["TABLE_NAME"]) if "TABLE_NAME" in os.environ else None
    callback = (
        boto3.client("apigatewaymanagementapi", endpoint_url=os.environ["ENDPOINT_URL"])
        if "ENDPOINT_URL" in os.environ
        else None
    )
    return table, callback


# Clients are made during the init, as a real handler's warm clients would be, so the short function timeouts the
# tests use measure the handler, not boto3 loading its service models on a busy machine.
TABLE, CALLBACK = _clients()


def _table() -> Any:
    assert TABLE is not None, "this function was not given TABLE_NAME"
    return TABLE


def _reply(event: dict[str, Any], payload: dict[str, Any]) -> None:
    assert CALLBACK is not None, "this function was not given ENDPOINT_URL"
    CALLBACK.post_to_connection(ConnectionId=event["requestContext"]["connectionId"], Data=json.dumps(payload).encode())


def record(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """For `$connect`/`$disconnect`: store the event; `?status=N`, `?crash`, `?hold=S`, `?until=KEY` steer
    `$connect`."""
    request = event["requestContext"]
    _table().put_item(
        Item={
            "ConnectionId": f"{RECORD_PREFIX}{request['routeKey']}#{request['connectionId']}#{request['requestId']}",
            "Event": json.dumps(event),
        }
    )
    query = event.get("queryStringParameters") or {}
    if "crash" in query:
        raise RuntimeError("connect crashed on purpose")
    if "hold" in query:
        time.sleep(float(query["hold"]))
    if "until" in query:  # stay in $connect until the test writes this key to the table
        while "Item" not in _table().get_item(Key={"ConnectionId": query["until"]}):
            time.sleep(0.05)
    return {"statusCode": int(query.get("status", "200"))}


def echo(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Post back the event (body only when short), what the worker sees, and the warm invocation count."""
    global INVOCATIONS  # noqa: PLW0603 - the point is module state surviving between invocations
    INVOCATIONS += 1
    body = event.get("body") or ""
    print(f"echo invocation {INVOCATIONS} from {event['requestContext']['connectionId']}")
    shown = dict(event)
    if len(body) > 1000:
        del shown["body"]
    _reply(
        event,
        {
            "event": shown,
            "bodyBytes": len(body.encode("utf-8")),
            "invocations": INVOCATIONS,
            "pid": os.getpid(),
            "environment": dict(os.environ),
            "appImportable": importlib.util.find_spec("app") is not None,
            "functionName": context.function_name,
            "memoryLimitInMb": context.memory_limit_in_mb,
            "remainingMs": context.get_remaining_time_in_millis(),
        },
    )
    return {"statusCode": 200}


def rendezvous(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Wait until `count` invocations are in flight at once (a barrier in the table), then post back.

    If the emulator ran one invocation at a time the first would never see the others and reports `met: false`.
    """
    message = json.loads(event["body"])
    table = _table()
    table.put_item(Item={"ConnectionId": f"rendezvous#{message['group']}#{event['requestContext']['messageId']}"})
    deadline = time.monotonic() + 20
    met = False
    while time.monotonic() < deadline and not met:
        items = table.scan(
            FilterExpression="begins_with(ConnectionId, :prefix)",
            ExpressionAttributeValues={":prefix": f"rendezvous#{message['group']}#"},
        )["Items"]
        met = len(items) >= int(message["count"])
        time.sleep(0.05)
    _reply(event, {"met": met, "pid": os.getpid()})
    return {"statusCode": 200}


def crash(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Raise, as a buggy handler does."""
    raise RuntimeError("crashed on purpose")


def hang(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Spin forever; only the function timeout ends it."""
    while True:
        pass


def exit_process(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """End the whole worker process, as `sys.exit` in a handler does on Lambda."""
    sys.exit(3)


def unserializable(event: dict[str, Any], context: Any) -> object:
    """Return something JSON cannot encode (Lambda reports Runtime.MarshalError)."""
    return {"statusCode": 200, "body": object()}


def hog(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Touch more memory than the function's setting allows."""
    block = bytearray(int(context.memory_limit_in_mb) * 1024 * 1024 + 64 * 1024 * 1024)
    block[::4096] = b"x" * len(block[::4096])
    return {"statusCode": 200, "touched": len(block)}


def invoked(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """For Lambda's Invoke API: record the event under `invoked#<key>#<request id>`, then fail if it says so."""
    key = f"{RECORD_PREFIX}invoked#{event.get('key')}#{context.aws_request_id}"
    _table().put_item(Item={"ConnectionId": key, "Event": json.dumps(event)})
    if event.get("fail"):
        raise RuntimeError("failed on purpose")
    return {
        "event": event,
        "functionName": context.function_name,
        "lambdaEndpoint": os.environ.get("AWS_ENDPOINT_URL_LAMBDA"),
    }
