"""A lean `@connections` client for fan-out: HTTP/1.1 keep-alive on asyncio, each request signed by botocore.

boto3 repeats per post machinery a fan-out does not need; this signs a pre-built request with `SigV4Auth`. Failures
say whether the request could have reached API Gateway: `NotSentError` is safe to repeat, `MaybeSentError` may not be.
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.httpsession import get_cert_path

T = TypeVar("T")

SERVICE = "execute-api"
"""The SigV4 service name of the callback API."""

_MAX_HEAD_BYTES = 64 * 1024
"""A response head larger than this is not API Gateway's: the connection is dropped."""


class TransportError(Exception):
    """A post that got no HTTP answer; `cause` names why (`ConnectionRefused`, `ReadTimeout`, ...)."""

    def __init__(self, cause: str) -> None:
        super().__init__(cause)
        self.cause = cause


class NotSentError(TransportError):
    """The request never left: no connection was made. Always safe to repeat."""


class MaybeSentError(TransportError):
    """The request was written but no whole answer came back: API Gateway may have delivered it."""


@dataclass(frozen=True)
class Answer:
    """An HTTP answer: its status and API Gateway's `x-amzn-ErrorType` (empty on success)."""

    status: int
    error_type: str = ""


class _Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection carrying one request at a time."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[Answer] | None = None
        self.reusable = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.waiter is None or self.waiter.done():
            return
        try:
            answer = self._parse()
        except ValueError:
            self._fail(MaybeSentError("MalformedResponse"))
            return
        if answer is not None:
            self.waiter.set_result(answer)

    def connection_lost(self, exc: Exception | None) -> None:
        self.reusable = False
        self._fail(MaybeSentError("ConnectionReset" if exc is not None or self.buffer else "ConnectionClosed"))

    def _fail(self, error: TransportError) -> None:
        self.reusable = False
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(error)
        if self.transport is not None:
            self.transport.abort()

    async def request(self, head: bytes, body: bytes, timeout: float) -> Answer:
        """Write one request and wait for its whole answer; `MaybeSentError` if none comes within `timeout`."""
        assert self.transport is not None
        if self.transport.is_closing():
            raise NotSentError("ConnectionClosed")
        self.buffer.clear()
        waiter = self.waiter = self.loop.create_future()
        self.transport.write(head + body)
        timer = self.loop.call_later(timeout, self._fail, MaybeSentError("ReadTimeout"))
        try:
            answer: Answer = await waiter
            return answer
        finally:
            timer.cancel()
            self.waiter = None

    def _parse(self) -> Answer | None:
        """The answer once the buffer holds all of it (Content-Length or chunked body), else None."""
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self.buffer) > _MAX_HEAD_BYTES:
                raise ValueError("response head too large")
            return None
        lines = bytes(self.buffer[:end]).decode("latin-1").split("\r\n")
        version, status = lines[0].split(" ", 2)[:2]
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        body_end = _body_end(self.buffer, end + 4, headers)
        if body_end is None:
            return None
        if len(self.buffer) > body_end or headers.get("connection", "").lower() == "close" or version == "HTTP/1.0":
            self.reusable = False
        return Answer(int(status), headers.get("x-amzn-errortype", "").split(":")[0])


def _body_end(buffer: bytearray, start: int, headers: dict[str, str]) -> int | None:
    """Where the body that starts at `start` ends, or None while it is incomplete."""
    if "chunked" in headers.get("transfer-encoding", "").lower():
        position = start
        while True:
            line_end = buffer.find(b"\r\n", position)
            if line_end < 0:
                return None
            size = int(bytes(buffer[position:line_end]).split(b";")[0], 16)
            if size == 0:
                trailer_end = buffer.find(b"\r\n\r\n", line_end)
                return None if trailer_end < 0 else trailer_end + 4
            position = line_end + 2 + size + 2
            if position > len(buffer):
                return None
    length = int(headers.get("content-length", "0"))
    return start + length if len(buffer) >= start + length else None


@dataclass(frozen=True)
class Timeouts:
    """Seconds to connect (TCP and TLS) and to wait for an answer."""

    connect: float = 2.0
    read: float = 5.0


class CallbackClient:
    """Posts to `@connections/{id}` of one stage over pooled connections, on an event loop of its own.

    The loop outlives each `run`, so a warm container's connections (and TLS sessions) serve the next invocation.
    """

    def __init__(
        self, endpoint_url: str, region: str, credentials: Credentials, timeouts: Timeouts = Timeouts()
    ) -> None:
        parts = urlsplit(endpoint_url.rstrip("/"))
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"the callback endpoint must be an http(s) URL, got {endpoint_url!r}")
        self.base_url = f"{parts.scheme}://{parts.netloc}{parts.path}/@connections/"
        self.path = f"{parts.path}/@connections/"
        self.host_header = parts.netloc
        self.address = (parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))
        self.tls = parts.scheme == "https"
        self.region = region
        self.credentials = credentials
        self.timeouts = timeouts
        self._idle: list[_Connection] = []
        self._ssl_context: ssl.SSLContext | None = None
        self._loop = asyncio.new_event_loop()

    def run(self, work: Coroutine[Any, Any, T]) -> T:
        """Run `work` (which posts through this client) to completion on the client's loop."""
        return self._run_to_completion(work)

    def _run_to_completion(self, work: Coroutine[Any, Any, T]) -> T:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return self._loop.run_until_complete(work)
        # The caller's thread already runs a loop (a test harness): ours gets a thread of its own.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="callback-loop") as thread:
            return thread.submit(self._loop.run_until_complete, work).result()

    def signer(self) -> SigV4Auth:
        """botocore's SigV4 signer over the credentials as they are now (refreshed ones included)."""
        return SigV4Auth(self.credentials.get_frozen_credentials(), SERVICE, self.region)

    async def post(self, signer: SigV4Auth, connection_id: str, data: bytes) -> Answer:
        """POST `data` to one connection; the answer, or `NotSentError` / `MaybeSentError`."""
        connection = self._idle.pop() if self._idle else await self._open()
        quoted = quote(connection_id, safe="")
        request = AWSRequest(method="POST", url=self.base_url + quoted, data=data)
        signer.add_auth(request)
        head = (
            f"POST {self.path}{quoted} HTTP/1.1\r\nHost: {self.host_header}\r\nContent-Length: {len(data)}\r\n"
            + "".join(f"{name}: {value}\r\n" for name, value in request.headers.items())
            + "\r\n"
        ).encode("latin-1")
        try:
            answer = await connection.request(head, data, self.timeouts.read)
        except NotSentError:
            # The server closed this pooled connection while idle: nothing was written, so open another.
            connection = await self._open()
            answer = await connection.request(head, data, self.timeouts.read)
        if connection.reusable:
            self._idle.append(connection)
        return answer

    async def _open(self) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.timeouts.connect):
                _, connection = await loop.create_connection(
                    lambda: _Connection(loop),
                    *self.address,
                    ssl=self._context() if self.tls else None,
                    server_hostname=self.address[0] if self.tls else None,
                )
        except TimeoutError:
            raise NotSentError("ConnectTimeout") from None
        except ConnectionRefusedError:
            raise NotSentError("ConnectionRefused") from None
        except socket.gaierror:
            raise NotSentError("NameResolution") from None
        except ssl.SSLError as error:
            raise NotSentError(f"TLS:{error.reason or type(error).__name__}") from None
        except OSError as error:
            raise NotSentError(type(error).__name__) from None
        if connection.transport is not None:  # Nagle would hold each small request back for the previous ACK
            connection.transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return connection

    def _context(self) -> ssl.SSLContext:
        if self._ssl_context is None:
            # Certificate and host name checked, against the CA bundle botocore itself would use.
            cafile = os.environ.get("AWS_CA_BUNDLE") or get_cert_path(True)
            self._ssl_context = ssl.create_default_context(cafile=cafile)
        return self._ssl_context

    def close(self) -> None:
        """Close the pooled connections and the loop; the client cannot be used afterwards."""
        for connection in self._idle:
            if connection.transport is not None:
                connection.transport.abort()
        self._idle.clear()
        self._run_to_completion(asyncio.sleep(0))  # let the aborted transports finish closing
        self._loop.close()
