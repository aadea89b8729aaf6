"""A local `@connections` callback API that answers over real HTTP the way API Gateway does, faults included.

Errors carry the status, an `x-amzn-ErrorType` header and a JSON `{"message": ...}` body, as API Gateway sends them.
Answers are scripted per connection id; every POST is recorded with its body, the SigV4 `Authorization` header and
the names of the headers it arrived with, and every 2xx answered in full is counted as a delivery. Faults: a reset
after the request or in the middle of the answer, no answer at all, connections refused (`listening=False` until
`listen()`), connect timeouts (`pause_accepting()` with a one-connection backlog), and a 429 quota (`quota()`).
"""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import struct
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from urllib.parse import unquote


@dataclass(frozen=True)
class Answer:
    """One scripted answer: an HTTP status and, for errors, API Gateway's error type."""

    status: int
    error_type: str = ""
    fault: str = ""
    """`reset` (no answer, the connection reset), `reset-mid-response` (half an answer, then reset) or `silent`
    (no answer until the client gives up)."""


OK = Answer(200)
GONE = Answer(410, "GoneException")
THROTTLED = Answer(429, "LimitExceededException")
SERVER_ERROR = Answer(500, "InternalServerErrorException")
FORBIDDEN = Answer(403, "ForbiddenException")
UNAVAILABLE = Answer(503, "ServiceUnavailableException")
RESET = Answer(0, fault="reset")
RESET_MID_RESPONSE = Answer(200, fault="reset-mid-response")
SILENT = Answer(0, fault="silent")

SILENT_SECONDS = 2.0
"""How long a `silent` answer holds the connection before closing it; clients under test time out sooner."""


@dataclass(frozen=True)
class Post:
    """A POST the server received."""

    connection_id: str
    data: bytes
    authorization: str
    header_names: frozenset[str] = frozenset()
    """Every request header's name, lower-cased."""
    path: str = ""
    """The request path as sent (percent-encoded)."""


class CallbackServer:
    """Serves `POST /{stage}/@connections/{id}` on 127.0.0.1 on a free port, in a background thread.

    `script(id, *answers)` sets the answers for one connection, in order; the last one repeats. Unscripted
    connections get 200. `hold_until_concurrent(n)` makes the first n posts wait for each other (up to a timeout),
    which proves posts overlap without measuring time.
    """

    def __init__(
        self, stage: str = "dev", *, listening: bool = True, backlog: int = 128, tls: ssl.SSLContext | None = None
    ) -> None:
        self.stage = stage
        self.posts: list[Post] = []
        self.deliveries: Counter[str] = Counter()
        """2xx answers written in full, per connection id."""
        self.answered: Counter[int] = Counter()
        """Answers written, by status."""
        self.peak_in_flight = 0
        self._scripts: dict[str, list[Answer]] = defaultdict(list)
        self._lock = threading.Lock()
        self._in_flight = 0
        self._barrier: threading.Barrier | None = None
        self._arrivals = 0
        self._quota: tuple[float, float] | None = None
        self._tokens = 0.0
        self._refilled = time.monotonic()
        self._accepting = threading.Event()
        self._accepting.set()
        self._server = _Server(("127.0.0.1", 0), self._request_handler(), backlog, self._accepting)
        self._server.daemon_threads = True
        self._scheme = "http"
        if tls is not None:  # HTTPS: the handshake runs as each connection is accepted
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
            self._scheme = "https"
        self._listening = listening
        if listening:
            self._server.server_activate()
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="callback-server", daemon=True
        )

    @property
    def url(self) -> str:
        """The endpoint handlers get in `ENDPOINT_URL`: `http(s)://127.0.0.1:<port>/<stage>`."""
        return f"{self._scheme}://127.0.0.1:{self._server.server_address[1]}/{self.stage}"

    def script(self, connection_id: str, *answers: Answer) -> None:
        """Answer this connection's posts with `answers` in order, repeating the last."""
        with self._lock:
            self._scripts[connection_id] = list(answers)

    @property
    def connections_opened(self) -> int:
        """TCP connections accepted so far."""
        return self._server.connections_opened

    def listen(self) -> None:
        """Start listening: until then connections are refused."""
        if not self._listening:
            self._listening = True
            self._server.server_activate()
            self._thread.start()

    def close_idle_connections(self) -> None:
        """Close every connection accepted so far, as a server does with keep-alive connections left idle."""
        for connection in self._server.accepted:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        self._server.accepted.clear()

    def pause_accepting(self) -> None:
        """Stop accepting connections: the backlog fills and further connects time out."""
        self._accepting.clear()

    def resume_accepting(self) -> None:
        """Accept connections again."""
        self._accepting.set()

    def quota(self, per_second: float, burst: float) -> None:
        """Answer 429 to posts beyond a token bucket of `per_second` and `burst`, as the account throttle does."""
        with self._lock:
            self._quota = (per_second, burst)
            self._tokens, self._refilled = burst, time.monotonic()

    def hold_until_concurrent(self, posts: int, timeout_seconds: float = 10.0) -> None:
        """Make the first `posts` posts wait until that many are in flight together (or the timeout passes)."""
        self._barrier = threading.Barrier(posts, timeout=timeout_seconds)

    def received(self, connection_id: str) -> list[bytes]:
        """The bodies posted to one connection, in arrival order."""
        with self._lock:
            return [post.data for post in self.posts if post.connection_id == connection_id]

    def frames(self, connection_id: str) -> list[dict[str, object]]:
        """The frames posted to one connection, parsed as JSON."""
        return [json.loads(data) for data in self.received(connection_id)]

    def __enter__(self) -> CallbackServer:
        if self._listening:
            self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._accepting.set()
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def _throttled(self) -> bool:
        """Take a token from the quota (caller holds the lock); True when there is none."""
        if self._quota is None:
            return False
        per_second, burst = self._quota
        now = time.monotonic()
        self._tokens = min(burst, self._tokens + (now - self._refilled) * per_second)
        self._refilled = now
        if self._tokens < 1:
            return True
        self._tokens -= 1
        return False

    def _answer(
        self, connection_id: str, data: bytes, authorization: str, header_names: frozenset[str], path: str
    ) -> Answer:
        with self._lock:
            self.posts.append(Post(connection_id, data, authorization, header_names, path))
            self._in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self._in_flight)
            self._arrivals += 1
            waits = self._barrier is not None and self._arrivals <= self._barrier.parties
            script = self._scripts.get(connection_id)
            answer = (script.pop(0) if len(script) > 1 else script[0]) if script else OK
            if self._throttled():
                answer = THROTTLED
        if waits and self._barrier is not None:
            # A broken barrier means the posts did not overlap; peak_in_flight shows it and the test fails on that.
            with contextlib.suppress(threading.BrokenBarrierError):
                self._barrier.wait()
        with self._lock:
            self._in_flight -= 1
        return answer

    def _request_handler(self) -> type[BaseHTTPRequestHandler]:
        server = self
        prefix = f"/{self.stage}/@connections/"

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as botocore's connection pool expects

            def do_POST(self) -> None:
                data = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if not self.path.startswith(prefix):
                    self._send(Answer(404, "NotFoundException"), "No such path")
                    return
                connection_id = unquote(self.path[len(prefix) :])
                names = frozenset(name.lower() for name in self.headers)
                answer = server._answer(connection_id, data, self.headers.get("Authorization", ""), names, self.path)
                if answer.fault:
                    self._fault(answer)
                    return
                with server._lock:  # counted before writing: the client may finish before this thread runs again
                    server.answered[answer.status] += 1
                    if answer.status < 300:
                        server.deliveries[connection_id] += 1
                self._send(answer, f"{answer.error_type or 'OK'} for {connection_id}")

            def _fault(self, answer: Answer) -> None:
                if answer.fault == "silent":
                    time.sleep(SILENT_SECONDS)
                elif answer.fault == "reset-mid-response":
                    self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 40\r\n\r\n{")
                    self.wfile.flush()
                # SO_LINGER 0: close with RST, as a crashed peer or a middlebox does.
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.close_connection = True

            def _send(self, answer: Answer, message: str) -> None:
                body = json.dumps({"message": message}).encode() if answer.error_type else b""
                self.send_response(answer.status)
                if answer.error_type:
                    self.send_header("x-amzn-ErrorType", answer.error_type)
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                """Silent: pytest shows failures, not access logs."""

        return Handler


class _Server(ThreadingHTTPServer):
    """A threading HTTP server with a chosen backlog whose accepting can be paused."""

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        backlog: int,
        accepting: threading.Event,
    ) -> None:
        self.request_queue_size = backlog
        self._accepting = accepting
        self.connections_opened = 0
        self.accepted: list[socket.socket] = []
        super().__init__(address, handler, bind_and_activate=False)
        self.server_bind()

    def get_request(self) -> tuple[socket.socket, tuple[str, int]]:
        self._accepting.wait()
        request, address = self.socket.accept()
        self.connections_opened += 1
        self.accepted.append(request)
        return request, address
