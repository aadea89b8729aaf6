"""The stack's tables: on an embedded moto server by default, or on any DynamoDB-compatible endpoint.

moto runs in a child process (`python -m emulator.dynamodb`) so its CPU does not hold the gateway's GIL; every table
of `app.definition.TABLES` is built from its definition (keys, indexes, TTL attribute) under a Pulumi-style
auto-name.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import io
import logging
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from app.definition import Table
from emulator.config import PROJECT_ROOT, EmulatorConfigError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from werkzeug.serving import WSGIRequestHandler

THROWAWAY_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "emulator",
    "AWS_SECRET_ACCESS_KEY": "emulator",
    "AWS_SESSION_TOKEN": "emulator",
}
"""Credentials for the local endpoints: never real, so nothing local can reach an AWS account."""
STOP_GRACE_SECONDS = 5.0
REQUEST_LINE_LIMIT = 65536
"""Longest request line the moto server reads, as `http.server` allows."""
HOP_BY_HOP_HEADERS = frozenset({"connection", "content-length", "keep-alive", "transfer-encoding"})
"""Response headers the keep-alive server sets itself rather than passing on from the app."""
DYNAMODB_TARGET_PREFIX = "DynamoDB_20120810."
"""The `X-Amz-Target` of every request of DynamoDB's current API (older versions and Streams go elsewhere)."""

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


@dataclass
class LocalTable:
    """The created tables and where they live; `name` is the connections table's."""

    endpoint: str
    name: str
    region: str
    server: subprocess.Popen[str] | None
    """The embedded moto server's process, or None for an endpoint given with `--dynamodb-endpoint`."""
    names: dict[str, str] = field(default_factory=dict)
    """Every table's physical name, keyed by the environment variable that tells a function its name."""

    def client(self) -> DynamoDBClient:
        """A boto3 DynamoDB client for this endpoint, with the throwaway credentials."""
        return boto3.client(
            "dynamodb",
            endpoint_url=self.endpoint,
            region_name=self.region,
            aws_access_key_id=THROWAWAY_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=THROWAWAY_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            aws_session_token=THROWAWAY_CREDENTIALS["AWS_SESSION_TOKEN"],
            # Local endpoints answer at once or not at all: fail fast on a wrong --dynamodb-endpoint.
            config=Config(retries={"max_attempts": 2, "mode": "standard"}, connect_timeout=5),
        )

    def close(self) -> None:
        """Delete the tables from an external endpoint (they were ours), or stop the embedded server."""
        if self.server is not None:
            stop_moto(self.server)
            return
        client = self.client()
        for name in self.names.values() or [self.name]:
            client.delete_table(TableName=name)


def start_moto() -> tuple[subprocess.Popen[str], str]:
    """Start moto in a child process on 127.0.0.1 and a free port; returns the process and its endpoint."""
    process = subprocess.Popen(
        [sys.executable, "-m", "emulator.dynamodb"],
        cwd=PROJECT_ROOT,
        text=True,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert process.stdout is not None
    port = process.stdout.readline().strip()
    if not port.isdigit():
        stop_moto(process)
        raise EmulatorConfigError(f"the embedded moto server did not start (it printed {port!r})")
    return process, f"http://127.0.0.1:{port}"


def stop_moto(process: subprocess.Popen[str]) -> None:
    """Close the server's stdin, which stops it; kill it if it lingers."""
    if process.stdin is not None:
        with contextlib.suppress(OSError):
            process.stdin.close()
    try:
        process.wait(STOP_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    if process.stdout is not None:
        process.stdout.close()


def start_table(
    tables: Mapping[str, Table], connections: str, region: str, endpoint: str | None, name_of: Callable[[str], str]
) -> LocalTable:
    """Start moto on loopback unless `endpoint` is given, then create every table there.

    `tables` is keyed by environment variable, `connections` is the connections table's variable, and `name_of`
    gives a physical name for a logical one.
    """
    server = None
    if endpoint is None:
        server, endpoint = start_moto()
    names = {variable: name_of(table.logical_name) for variable, table in tables.items()}
    local = LocalTable(endpoint=endpoint, name=names[connections], region=region, server=server, names=names)
    try:
        client = local.client()
        for variable, table in tables.items():
            client.create_table(**table.create_table_request(names[variable]))
            client.get_waiter("table_exists").wait(
                TableName=names[variable], WaiterConfig={"Delay": 1, "MaxAttempts": 30}
            )
            client.update_time_to_live(
                TableName=names[variable],
                TimeToLiveSpecification={"Enabled": True, "AttributeName": table.ttl_attribute},
            )
    except (BotoCoreError, ClientError, ValueError) as error:
        if server is not None:
            stop_moto(server)
        raise EmulatorConfigError(f"cannot create the tables at {endpoint}: {error}") from error
    except BaseException:
        if server is not None:
            stop_moto(server)
        raise
    return local


MOTO_DYNAMODB_CALLS = (
    "put_item",
    "update_item",
    "delete_item",
    "get_item",
    "query",
    "scan",
    "batch_write_item",
    "batch_get_item",
    "transact_write_items",
    "transact_get_items",
    "execute_statement",
    "batch_execute_statement",
    "execute_transaction",
)
"""The item requests of moto's DynamoDB handler that must not interleave (DynamoDB applies each one atomically)."""


def make_moto_atomic() -> Callable[[], None]:
    """Serialise moto's DynamoDB item requests, as DynamoDB's atomic writes are; returns the undo.

    The lock wraps moto's request handler, not its backend: the handler builds `ReturnValues` from the live item after
    the backend call returns, so a backend-level lock let a concurrent ADD leak into another caller's answer.
    """
    from moto.dynamodb.responses import DynamoHandler  # noqa: PLC0415 - only moto's users pay for importing it

    lock = threading.RLock()
    originals = {name: vars(DynamoHandler)[name] for name in MOTO_DYNAMODB_CALLS}

    def atomic(call: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(call)
        def serialised(*args: Any, **kwargs: Any) -> Any:
            with lock:
                return call(*args, **kwargs)

        return serialised

    for name, call in originals.items():
        setattr(DynamoHandler, name, atomic(call))

    def undo() -> None:
        for name, call in originals.items():
            setattr(DynamoHandler, name, call)

    return undo


def make_moto_faster() -> Callable[[], None]:
    """Remember what moto works out afresh on every request though it depends only on moto's code and the service
    models; returns the undo. The answers stay the same (`tests/emulator/test_dynamodb_server.py` compares them).

    Its handler lists its own methods (`inspect.getmembers`) to find the action's, and its response serializer asks
    six alias rules, for every member of every output shape (ten per attribute value), which names to look the value
    up under; for the plain dicts a DynamoDB answer is built from, those names follow from the name and the shapes.
    """
    from moto.core import responses, serialize, utils  # noqa: PLC0415 - only the child imports moto
    from moto.core.constants import MISSING  # noqa: PLC0415

    original_names = responses.method_names_from_class  # type: ignore[attr-defined]
    original_get_value = serialize.ResponseSerializer.get_value
    names_of: dict[tuple[Any, ...], tuple[str, ...]] = {}

    def get_value(serializer: Any, value: Any, key: str, shape: Any) -> Any:
        picker = serializer._value_picker
        # What `XFormedAttributePicker` does, with the names it tries remembered; any other case is left to moto.
        if type(value) is not dict or type(picker) is not serialize.XFormedAttributePicker:
            return original_get_value(serializer, value, key, shape)
        if picker.response_transformers:
            return original_get_value(serializer, value, key, shape)
        # The shapes themselves (hashed by identity) are part of the key, so a cached entry keeps its shapes alive.
        cache_key = (tuple(picker.alias_providers), key, shape, getattr(shape, "parent", None))
        names = names_of.get(cache_key)
        if names is None:
            context = serialize.AttributePickerContext(
                obj=value,
                key=key,
                shape=shape,
                operation_model=serializer.operation_model,
                service_model=serializer.operation_model.service_model,
                key_path=".".join(serializer.path),
            )
            names = names_of[cache_key] = tuple(picker.get_possible_keys(context))
        for name in names:
            found = utils.get_value(value, name, MISSING)
            if found is not MISSING:
                return found
        return None

    responses.method_names_from_class = functools.cache(original_names)  # type: ignore[attr-defined]
    serialize.ResponseSerializer.get_value = get_value  # type: ignore[method-assign, assignment]

    def undo() -> None:
        responses.method_names_from_class = original_names  # type: ignore[attr-defined]
        serialize.ResponseSerializer.get_value = original_get_value  # type: ignore[method-assign]

    return undo


def dynamodb_first(app: WSGIApp) -> WSGIApp:
    """moto's server app with DynamoDB's requests handed straight to moto's DynamoDB handler; the rest go to `app`.

    The same handler and the same answer as through `app`, without its per-request routing: moto's dispatcher matches
    every request against each service's URL patterns, then Flask routes it, about half a millisecond a call.
    """
    from flask import Response  # noqa: PLC0415 - the child alone imports moto's server stack
    from moto.core.request import Request  # noqa: PLC0415
    from moto.dynamodb.responses import DynamoHandler  # noqa: PLC0415
    from moto.moto_api import recorder  # noqa: PLC0415
    from moto.settings import DISABLE_GLOBAL_CORS  # noqa: PLC0415

    class ServerRequest(Request):
        from_wsgi_server = True  # as moto's Flask app marks its requests: the server writes the Date header

    def serve(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if not _for_dynamodb(environ):
            return app(environ, start_response)
        # What moto's Flask view (`moto.core.utils.convert_to_flask_response`) does with a request, minus the routing.
        request = ServerRequest(environ)
        recorder._record_request(request)
        try:
            result = DynamoHandler.dispatch(request, request.raw_url, dict(request.headers))
        except ClientError as error:
            result = 400, {}, error.response["Error"]["Message"]
        status, headers, content = result if len(result) == 3 else (200, {}, result)
        response = Response(response=content, status=status, headers=headers)
        if not DISABLE_GLOBAL_CORS:  # flask-cors, which moto's app is wrapped in, adds this to every answer
            response.headers["Access-Control-Allow-Origin"] = "*"
        answer: Iterable[bytes] = response(environ, start_response)
        return answer

    return serve


def _for_dynamodb(environ: Mapping[str, Any]) -> bool:
    """Whether moto's dispatcher would route this request to its DynamoDB handler (a signed DynamoDB API call)."""
    if environ.get("REQUEST_METHOD") != "POST" or environ.get("PATH_INFO") != "/":
        return False
    if not str(environ.get("HTTP_X_AMZ_TARGET", "")).startswith(DYNAMODB_TARGET_PREFIX):
        return False
    # The dispatcher picks the service from the SigV4 credential scope: key/date/region/service/aws4_request.
    words = str(environ.get("HTTP_AUTHORIZATION", "")).split(",")[0].split()
    scope = words[1].split("/") if len(words) > 1 else []
    return len(scope) == 5 and scope[3].lower() == "dynamodb"


def keep_alive_handler() -> type[WSGIRequestHandler]:
    """moto's request handler answering on the same connection: Werkzeug's closes each one after its answer.

    A function's DynamoDB calls then reuse botocore's pooled connections instead of paying a TCP handshake and a new
    server thread each. Requests without a plain `Content-Length` body (chunked, `Expect`, HEAD) take Werkzeug's own
    path, which closes the connection.
    """
    from moto.moto_server.werkzeug_app import MotoRequestHandler  # noqa: PLC0415 - only the child imports moto

    class KeepAliveHandler(MotoRequestHandler):
        disable_nagle_algorithm = True  # Werkzeug's own path writes headers and body apart: Nagle would hold the body

        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            # Werkzeug formats the access-log line (time, address, path) before its logger drops it.
            if logging.getLogger("werkzeug").isEnabledFor(logging.INFO):
                super().log_request(code, size)

        def handle_one_request(self) -> None:
            self.raw_requestline = self.rfile.readline(REQUEST_LINE_LIMIT + 1)
            if not self.raw_requestline or len(self.raw_requestline) > REQUEST_LINE_LIMIT:
                self.close_connection = True
                return
            if not self.parse_request():
                return
            length = self.headers.get("Content-Length", "")
            unframed = "Transfer-Encoding" in self.headers or "Expect" in self.headers or self.command == "HEAD"
            if not length.isdigit() or unframed:
                self.close_connection = True
                self.run_wsgi()
                return
            environ = self.make_environ()
            # The body is read whole before the app runs, so the next request starts where this one ended.
            environ["wsgi.input"] = io.BytesIO(self.rfile.read(int(length)))
            try:
                status, headers, body = _call_wsgi(self.server.app, environ)
            except Exception:  # as Werkzeug does: the client gets a 500, the server keeps serving
                logging.getLogger(__name__).exception("moto failed on %s %s", self.command, self.path)
                status, headers, body = "500 Internal Server Error", [], b""
                self.close_connection = True
            # The whole answer goes out in one write: the client reads it in one go, without waiting for the body.
            socket_file, self.wfile = self.wfile, io.BytesIO()
            try:
                self._write_answer(status, headers, body)
                answer = self.wfile.getvalue()
            finally:
                self.wfile = socket_file
            self.wfile.write(answer)
            self.wfile.flush()

        def _write_answer(self, status: str, headers: list[tuple[str, str]], body: bytes) -> None:
            code, _, reason = status.partition(" ")
            self.send_response(int(code), reason)
            for name, value in headers:
                if name.lower() not in HOP_BY_HOP_HEADERS:
                    self.send_header(name, value)
            if self.close_connection:
                self.send_header("Connection", "close")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return KeepAliveHandler


def _call_wsgi(app: Any, environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
    """Run a WSGI app on one request: its status line, headers and whole body."""
    answer: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
        answer.update(status=status, headers=headers)
        return chunks.append

    chunks: list[bytes] = []
    result = app(environ, start_response)
    try:
        chunks.extend(result)
    finally:
        if hasattr(result, "close"):
            result.close()
    return answer["status"], answer["headers"], b"".join(chunks)


def signed_request_environ(target: str, body: bytes, service: str = "dynamodb") -> dict[str, Any]:
    """The WSGI environ of a POST of `body` with this `X-Amz-Target`, signed (in form only) for `service`."""
    key = THROWAWAY_CREDENTIALS["AWS_ACCESS_KEY_ID"]
    return {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/",
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "0",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "wsgi.version": (1, 0),
        "CONTENT_LENGTH": str(len(body)),
        "CONTENT_TYPE": "application/x-amz-json-1.0",
        "HTTP_HOST": "127.0.0.1",
        "HTTP_X_AMZ_TARGET": target,
        "HTTP_AUTHORIZATION": (
            f"AWS4-HMAC-SHA256 Credential={key}/20260101/us-east-1/{service}/aws4_request, "
            "SignedHeaders=host, Signature=0"
        ),
    }


def serve_moto() -> None:
    """The child process: moto's threaded server on a free loopback port, until stdin closes."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app  # noqa: PLC0415
    from werkzeug.serving import make_server  # noqa: PLC0415

    make_moto_atomic()
    make_moto_faster()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    application = dynamodb_first(DomainDispatcherApplication(create_backend_app))
    server = make_server("127.0.0.1", 0, application, threaded=True, request_handler=keep_alive_handler())
    # moto's modules and service models live as long as the process: loaded by a first request, they are left out of
    # the collector, which would otherwise walk them all in a full collection in the middle of some request.
    _call_wsgi(application, signed_request_environ(f"{DYNAMODB_TARGET_PREFIX}ListTables", b"{}"))
    gc.freeze()
    threading.Thread(target=server.serve_forever, name="moto", daemon=True).start()
    print(server.server_address[1], flush=True)
    sys.stdin.read()
    server.shutdown()


if __name__ == "__main__":
    serve_moto()
