"""The API Gateway side: the WebSocket endpoint, route selection, the `@connections` callback API, the chat page.

One aiohttp application on one host and port, like an API Gateway stage (docs/emulator.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qsl, unquote

from aiohttp import WSMsgType, web

from emulator import events
from emulator.config import EmulatorOptions
from emulator.config import route_selection_path as default_route_selection_path
from emulator.frames import FrameInspector, inspect_frames
from emulator.security import CALLBACK_PREFIX, RequestGuard, printable, secret_matches
from emulator.workers import FunctionPool, Invocation, Log
from handlers.aws_facts import (
    CALLBACK_PAYLOAD_LIMIT_BYTES,
    CLOSE_GOING_AWAY,
    FRAME_LIMIT_BYTES,
    INTEGRATION_TIMEOUT_SECONDS,
    MESSAGE_LIMIT_BYTES,
)

CLOSE_NORMAL = 1000
CLOSE_NO_STATUS = 1005
CLOSE_ABNORMAL = 1006
CLOSE_HANDSHAKE_TIMEOUT_SECONDS = 5.0
"""How long a server-initiated close waits for the client's close frame before dropping the socket."""
SHUTDOWN_WAIT_SECONDS = 30.0

GATEWAY = "gateway"
"""Log prefix of the gateway's own lines."""

PAGE_HEADERS = {"Content-Security-Policy": "frame-ancestors 'none'", "X-Frame-Options": "DENY"}
"""Sent with every file of the chat page."""


class Authorizer(Protocol):
    """What guards `$connect` before its function runs: `emulator.authorization` plugs in the Lambda authorizer.

    Returns the context passed on as `requestContext.authorizer`, or raises `web.HTTPUnauthorized` (no identity)
    or `web.HTTPForbidden` (denied), which refuses the handshake with that status.
    """

    def __call__(self, request: web.Request, peer: events.Peer) -> Awaitable[Mapping[str, Any] | None]: ...


@dataclass
class Connection:
    """One client connection and its lifecycle."""

    peer: events.Peer
    state: str = "connecting"
    """`connecting` until `$connect` accepts and the upgrade completes, then `open`, then `closed`."""
    ws: web.WebSocketResponse | None = None
    authorizer: Mapping[str, Any] | None = None
    last_active_ms: int = 0
    last_active: float = field(default_factory=time.monotonic)
    opened: float = field(default_factory=time.monotonic)
    server_close: tuple[int, str] | None = None
    """Code and reason when the gateway closed the connection; a client close is read from its close frame."""
    client_close: tuple[int, str] | None = None
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    finished: asyncio.Event = field(default_factory=asyncio.Event)

    def touch(self) -> None:
        """Record traffic, which resets the idle timeout."""
        self.last_active = time.monotonic()
        self.last_active_ms = events.now_ms()

    def spawn(self, coroutine: Awaitable[None]) -> None:
        """Run `coroutine` alongside the connection, keeping a reference until it ends."""
        task = asyncio.ensure_future(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def close(self, code: int, reason: str) -> None:
        """Close from the gateway's side with `code` (the first reason given wins)."""
        if self.server_close is None and self.client_close is None:
            self.server_close = (code, reason)
        if self.ws is not None and not self.ws.closed:
            await self.ws.close(code=code, message=reason.encode("utf-8"))


def handshake_headers(request: web.Request, fallback_port: int) -> list[tuple[str, str]]:
    """The handshake's headers as sent, plus the ones API Gateway adds (`$connect` and the authorizer see these)."""
    headers = [(name.decode("latin-1"), value.decode("latin-1")) for name, value in request.raw_headers]
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    port = str(sockname[1]) if sockname else str(fallback_port)
    headers += [
        ("X-Amzn-Trace-Id", events.trace_id(events.now_ms())),
        ("X-Forwarded-For", request.remote or "127.0.0.1"),
        ("X-Forwarded-Port", port),
        ("X-Forwarded-Proto", "http"),
    ]
    return headers


def error_response(status: int, error_type: str, message: str) -> web.Response:
    """An API Gateway error: JSON `{"message": ...}` and the `x-amzn-ErrorType` header botocore maps to exceptions."""
    return web.json_response({"message": message}, status=status, headers={"x-amzn-ErrorType": error_type})


class Gateway:
    """Serves one stage: WebSocket connections, their routes' functions and the callback API."""

    def __init__(
        self,
        options: EmulatorOptions,
        api: events.Api,
        pools: Mapping[str, FunctionPool],
        log: Log,
        authorizer: Authorizer | None = None,
        *,
        callback_secret: str,
    ) -> None:
        self._options = options
        self._callback_secret = callback_secret
        self._guard = RequestGuard(options.host, options.allowed_hosts, options.allowed_origins)
        self._api = api
        self._pools = dict(pools)
        self._log = log
        self._authorizer = authorizer
        self._selection_path = default_route_selection_path()
        self._connections: dict[str, Connection] = {}
        self._background: set[asyncio.Task[Invocation]] = set()
        self._random = random.Random()
        self._stopping = False

    def replace_pools(self, pools: Mapping[str, FunctionPool]) -> None:
        """Route to these pools from now on (a reload's new version); open connections are not touched."""
        self._pools = dict(pools)

    def application(self) -> web.Application:
        """The aiohttp application; every path goes through one dispatcher that reads the raw, encoded path."""
        app = web.Application(client_max_size=2 * MESSAGE_LIMIT_BYTES)
        app.router.add_route("*", "/{path:.*}", self._dispatch)
        return app

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        # Split the raw path so an encoded `/` inside a connection id stays inside it.
        segments = [unquote(segment) for segment in request.rel_url.raw_path.split("/")[1:]]
        stage = self._options.stage
        host = request.headers.get("Host")
        if not self._guard.host_allowed(host):
            self._log(GATEWAY, f"refused a request for host {host!r}: not a name of this machine (see --allow-host)")
            return error_response(403, "ForbiddenException", "Forbidden")
        if segments[:1] == [CALLBACK_PREFIX]:
            # Only the workers and the terminal know the run's secret: no chat client can post, read or drop.
            if len(segments) != 5 or not secret_matches(segments[1], self._callback_secret):
                return error_response(403, "ForbiddenException", "Forbidden")
            if segments[2] != stage or segments[3] != "@connections":
                return error_response(403, "ForbiddenException", "Forbidden")
            return await self._callback(request, segments[4])
        if "@connections" in segments:
            return error_response(403, "ForbiddenException", "Forbidden")
        if segments == [stage]:
            return await self._websocket(request)
        if request.method == "GET":
            return self._static(segments)
        return error_response(403, "ForbiddenException", "Forbidden")

    # --- WebSocket -------------------------------------------------------------------------------------------

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        if request.method != "GET" or not web.WebSocketResponse().can_prepare(request).ok:
            return web.json_response({"message": "Upgrade Required"}, status=426, headers={"Upgrade": "websocket"})
        if self._stopping:
            return error_response(503, "ServiceUnavailableException", "The emulator is shutting down")
        origin = request.headers.get("Origin")
        if not self._guard.origin_allowed(origin, request.headers.get("Host")):
            self._log(GATEWAY, f"refused a handshake from a page at {origin!r}, not ours (see --allow-origin)")
            return error_response(403, "ForbiddenException", "Forbidden")
        started = events.now_ms()
        peer = events.Peer(
            connection_id=events.new_id(),
            connected_at_ms=started,
            source_ip=request.remote or "127.0.0.1",
            user_agent=request.headers.get("User-Agent", ""),
        )
        connection = Connection(peer=peer, last_active_ms=started)
        self._connections[peer.connection_id] = connection
        try:
            return await self._serve(request, connection)
        finally:
            del self._connections[peer.connection_id]
            connection.finished.set()

    async def _serve(self, request: web.Request, connection: Connection) -> web.StreamResponse:
        peer = connection.peer
        if self._authorizer is not None:
            try:
                connection.authorizer = await self._authorizer(request, peer)
            except web.HTTPException as refusal:
                self._log(GATEWAY, f"refused {peer.connection_id}: authorizer answered {refusal.status}")
                raise
        request_id = events.new_id()
        event = events.connect_event(
            self._api,
            peer,
            request_id=request_id,
            headers=handshake_headers(request, self._options.port),
            query=list(parse_qsl(request.rel_url.raw_query_string, keep_blank_values=True)),
            authorizer=connection.authorizer,
        )
        outcome = await self._invoke("$connect", event, peer.connection_id)
        status, protocol = self._handshake_answer(outcome)
        if not 200 <= status < 300:
            self._log(GATEWAY, f"refused {peer.connection_id}: $connect answered {status}")
            body = outcome.result.get("body") if outcome and outcome.ok and isinstance(outcome.result, dict) else None
            return web.Response(status=status, text=body if isinstance(body, str) else None)

        ws = web.WebSocketResponse(
            protocols=(protocol,) if protocol else (),
            compress=False,
            autoping=True,
            max_msg_size=MESSAGE_LIMIT_BYTES + 1,
            timeout=CLOSE_HANDSHAKE_TIMEOUT_SECONDS,
        )
        connection.ws = ws
        inspector = FrameInspector(
            FRAME_LIMIT_BYTES,
            MESSAGE_LIMIT_BYTES,
            on_violation=lambda code, reason: connection.spawn(connection.close(code, reason)),
            on_frame=connection.touch,
        )
        try:
            inspect_frames(request.transport, inspector)
            await ws.prepare(request)
        except (OSError, RuntimeError):
            # $connect accepted (and may have stored the connection), so $disconnect still runs.
            connection.client_close = (CLOSE_ABNORMAL, "")
            await self._disconnect(connection)
            return ws
        connection.state = "open"
        self._log(GATEWAY, f"connected {peer.connection_id} from {peer.source_ip}")
        if self._stopping:
            connection.spawn(connection.close(CLOSE_GOING_AWAY, "Going away"))
        watchdog = asyncio.ensure_future(self._watch(connection))
        try:
            await self._receive(connection, ws)
        finally:
            watchdog.cancel()
            connection.state = "closed"
            await self._disconnect(connection)
        return ws

    @staticmethod
    def _handshake_answer(outcome: Invocation | None) -> tuple[int, str | None]:
        """The handshake status from `$connect`'s result (502 when it failed or returned no status code)."""
        if outcome is None:
            return 200, None
        if not outcome.ok or not isinstance(outcome.result, dict):
            return 502, None
        try:
            status = int(outcome.result["statusCode"])
        except (KeyError, TypeError, ValueError):
            return 502, None
        if not 100 <= status <= 599:
            return 502, None
        headers = outcome.result.get("headers") or {}
        protocol = (
            next((str(value) for name, value in headers.items() if str(name).lower() == "sec-websocket-protocol"), None)
            if isinstance(headers, dict)
            else None
        )
        return status, protocol

    async def _receive(self, connection: Connection, ws: web.WebSocketResponse) -> None:
        while True:
            message = await ws.receive()
            if message.type is WSMsgType.TEXT:
                connection.spawn(self._on_message(connection, message.data))
            elif message.type is WSMsgType.BINARY:
                await connection.close(1003, "Binary frames are not supported")
            elif message.type is WSMsgType.CLOSE:
                code = message.data or CLOSE_NO_STATUS
                connection.client_close = (int(code), str(message.extra or ""))
                return
            elif message.type in (WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                return

    async def _watch(self, connection: Connection) -> None:
        """Close the connection with 1001 when it idles too long or reaches the maximum duration."""
        options = self._options
        while True:
            idle_deadline = connection.last_active + options.idle_timeout_seconds
            duration_deadline = connection.opened + options.max_duration_seconds
            now = time.monotonic()
            if now >= min(idle_deadline, duration_deadline):
                # Both may have passed (a slow `$connect`): the one that came first names the close.
                idle = idle_deadline < duration_deadline
                await connection.close(CLOSE_GOING_AWAY, "Idle timeout" if idle else "Connection duration exceeded")
                return
            await asyncio.sleep(min(idle_deadline, duration_deadline) - now)

    async def _on_message(self, connection: Connection, body: str) -> None:
        peer = connection.peer
        request_id = events.new_id()
        route_key = select_route(body, self._selection_path, self._pools.keys())
        if route_key is None:
            await self._send_frame(
                connection, {"message": "Forbidden", "connectionId": peer.connection_id, "requestId": request_id}
            )
            return
        event = events.message_event(
            self._api,
            peer,
            route_key=route_key,
            request_id=request_id,
            message_id=events.new_id(),
            body=body,
            authorizer=connection.authorizer,
        )
        outcome = await self._invoke(route_key, event, peer.connection_id)
        if outcome is not None and not outcome.ok:
            await self._send_frame(
                connection,
                {"message": "Internal server error", "connectionId": peer.connection_id, "requestId": request_id},
            )

    async def _send_frame(self, connection: Connection, frame: Mapping[str, Any]) -> None:
        if connection.state == "open" and connection.ws is not None and not connection.ws.closed:
            with contextlib.suppress(ConnectionResetError):
                await connection.ws.send_str(json.dumps(frame))
                connection.touch()

    async def _disconnect(self, connection: Connection) -> None:
        """Run `$disconnect` once for a connection that `$connect` accepted."""
        peer = connection.peer
        code, reason = connection.server_close or connection.client_close or (CLOSE_ABNORMAL, "")
        self._log(GATEWAY, f"disconnected {peer.connection_id}: {code} {printable(reason)}".rstrip())
        event = events.disconnect_event(
            self._api,
            peer,
            request_id=events.new_id(),
            status_code=code,
            reason=reason,
            authorizer=connection.authorizer,
        )
        await self._invoke("$disconnect", event, peer.connection_id)

    async def _invoke(self, route_key: str, event: Mapping[str, Any], connection_id: str) -> Invocation | None:
        """Invoke the route's function; API Gateway stops waiting after 29 s even if the function runs on."""
        pool = self._pools.get(route_key)
        if pool is None:
            return None
        task = asyncio.ensure_future(pool.invoke(event))
        done, _ = await asyncio.wait({task}, timeout=INTEGRATION_TIMEOUT_SECONDS)
        if done:
            try:
                outcome = task.result()
            except Exception as error:
                # Whatever failed on the Lambda side, the gateway answers like API Gateway and carries on.
                outcome = Invocation(ok=False, error_type="Emulator.InvokeError", error_message=repr(error))
        else:
            self._background.add(task)
            task.add_done_callback(self._background.discard)
            outcome = Invocation(
                ok=False,
                error_type="IntegrationTimeout",
                error_message=f"API Gateway gave up after {INTEGRATION_TIMEOUT_SECONDS:.0f} s",
                duration_ms=INTEGRATION_TIMEOUT_SECONDS * 1000,
            )
        self._log(route_key, f"{connection_id} -> {pool.spec.name} {describe(outcome)} in {outcome.duration_ms:.1f} ms")
        return outcome

    # --- Callback API ----------------------------------------------------------------------------------------

    async def _callback(self, request: web.Request, connection_id: str) -> web.StreamResponse:
        options = self._options
        if options.callback_delay_seconds:
            await asyncio.sleep(options.callback_delay_seconds)
        if options.callback_throttle_fraction and self._random.random() < options.callback_throttle_fraction:
            return error_response(429, "LimitExceededException", "Rate exceeded")
        handlers: dict[str, Callable[[web.Request, str], Awaitable[web.StreamResponse]]] = {
            "POST": self._post,
            "GET": self._get,
            "DELETE": self._delete,
        }
        handler = handlers.get(request.method)
        if handler is None:
            return error_response(403, "ForbiddenException", "Forbidden")
        return await handler(request, connection_id)

    def _open_connection(self, connection_id: str) -> Connection | None:
        connection = self._connections.get(connection_id)
        if connection is None or connection.state != "open" or connection.ws is None or connection.ws.closed:
            return None
        return connection

    async def _post(self, request: web.Request, connection_id: str) -> web.StreamResponse:
        if (request.content_length or 0) > CALLBACK_PAYLOAD_LIMIT_BYTES:
            return error_response(413, "PayloadTooLargeException", "Request entity too large")
        try:
            data = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return error_response(413, "PayloadTooLargeException", "Request entity too large")
        if len(data) > CALLBACK_PAYLOAD_LIMIT_BYTES:
            return error_response(413, "PayloadTooLargeException", "Request entity too large")
        connection = self._open_connection(connection_id)
        if connection is None or connection.ws is None:
            return error_response(410, "GoneException", "Gone")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        try:
            if text is None:
                await connection.ws.send_bytes(data)
            else:
                await connection.ws.send_str(text)
        except ConnectionResetError:
            return error_response(410, "GoneException", "Gone")
        connection.touch()
        return web.Response(status=200)

    async def _get(self, request: web.Request, connection_id: str) -> web.StreamResponse:
        connection = self._open_connection(connection_id)
        if connection is None:
            return error_response(410, "GoneException", "Gone")
        peer = connection.peer
        return web.json_response(
            {
                "connectedAt": events.iso_time(peer.connected_at_ms),
                "identity": {"sourceIp": peer.source_ip, "userAgent": peer.user_agent},
                "lastActiveAt": events.iso_time(connection.last_active_ms),
            }
        )

    async def _delete(self, request: web.Request, connection_id: str) -> web.StreamResponse:
        connection = self._open_connection(connection_id)
        if connection is None:
            return error_response(410, "GoneException", "Gone")
        connection.spawn(connection.close(CLOSE_NORMAL, ""))
        return web.Response(status=204)

    # --- Chat page ---------------------------------------------------------------------------------------------

    def _static(self, segments: list[str]) -> web.StreamResponse:
        """`/` is `web/index.html`; `/name` and `/static/name` are files of `web/`, never outside it."""
        root = self._options.web_root
        if root is None or not root.is_dir():
            raise web.HTTPNotFound(text="No chat page here: the web/ directory does not exist yet.\n")
        parts = [part for part in segments if part]
        if parts[:1] == ["static"]:
            parts = parts[1:]
        relative = Path(*parts) if parts else Path("index.html")
        base = root.resolve()
        target = (base / relative).resolve()
        if not target.is_relative_to(base) or not target.is_file():
            raise web.HTTPNotFound(text=f"Not found: /{'/'.join(parts)}\n")
        # No other site may frame the page (clickjacking the token field); <meta> cannot say this.
        return web.FileResponse(target, headers=PAGE_HEADERS)

    # --- Shutdown ----------------------------------------------------------------------------------------------

    async def close_all(self) -> None:
        """Refuse new connections, close every client with 1001 and wait for each `$disconnect` to run."""
        self._stopping = True
        connections = list(self._connections.values())
        await asyncio.gather(
            *(
                connection.close(CLOSE_GOING_AWAY, "Going away")
                for connection in connections
                if connection.state == "open"
            ),
            return_exceptions=True,
        )
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(SHUTDOWN_WAIT_SECONDS):
                for connection in connections:
                    await connection.finished.wait()


def select_route(body: str, path: Sequence[str], route_keys: Collection[str]) -> str | None:
    """The route for a message: the value at the selection path (stringified) if a route has that key, else
    `$default`, else None (no route: the client gets an error frame and nothing runs)."""
    value: Any
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):
        # Not JSON to API Gateway either (even nested past the parser's depth): it goes to `$default`.
        value = None
    for part in path:
        value = value.get(part) if isinstance(value, dict) else None
    if value is not None:
        selected = value if isinstance(value, str) else json.dumps(value)
        # `$connect`, `$disconnect` and `$default` are never chosen by a message's own action.
        if selected in route_keys and not selected.startswith("$"):
            return selected
    return "$default" if "$default" in route_keys else None


def describe(outcome: Invocation) -> str:
    """`200`, `ok` or `failed (Type: message)` for the invocation log line."""
    if not outcome.ok:
        return f"failed ({outcome.error_type}: {outcome.error_message})"
    if isinstance(outcome.result, dict) and "statusCode" in outcome.result:
        return f"status {outcome.result['statusCode']}"
    return "ok"
