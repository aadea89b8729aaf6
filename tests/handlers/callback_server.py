"""A local `@connections` callback API that answers over real HTTP the way API Gateway does.

Errors carry the status, an `x-amzn-ErrorType` header and a JSON `{"message": ...}` body, so botocore raises its
typed exceptions (`GoneException` on 410) exactly as it does against AWS. Answers are scripted per connection id;
every POST is recorded with its body, the SigV4 `Authorization` header and the names of the headers it arrived with.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections import defaultdict
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from urllib.parse import unquote


@dataclass(frozen=True)
class Answer:
    """One scripted answer: an HTTP status and, for errors, API Gateway's error type."""

    status: int
    error_type: str = ""


OK = Answer(200)
GONE = Answer(410, "GoneException")
THROTTLED = Answer(429, "LimitExceededException")
SERVER_ERROR = Answer(500, "InternalServerErrorException")
FORBIDDEN = Answer(403, "ForbiddenException")


@dataclass(frozen=True)
class Post:
    """A POST the server received."""

    connection_id: str
    data: bytes
    authorization: str
    header_names: frozenset[str] = frozenset()
    """Every request header's name, lower-cased."""


class CallbackServer:
    """Serves `POST /{stage}/@connections/{id}` on 127.0.0.1 on a free port, in a background thread.

    `script(id, *answers)` sets the answers for one connection, in order; the last one repeats. Unscripted
    connections get 200. `hold_until_concurrent(n)` makes the first n posts wait for each other (up to a timeout),
    which proves posts overlap without measuring time.
    """

    def __init__(self, stage: str = "dev") -> None:
        self.stage = stage
        self.posts: list[Post] = []
        self.peak_in_flight = 0
        self._scripts: dict[str, list[Answer]] = defaultdict(list)
        self._lock = threading.Lock()
        self._in_flight = 0
        self._barrier: threading.Barrier | None = None
        self._arrivals = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._request_handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="callback-server", daemon=True
        )

    @property
    def url(self) -> str:
        """The endpoint handlers get in `ENDPOINT_URL`: `http://127.0.0.1:<port>/<stage>`."""
        return f"http://127.0.0.1:{self._server.server_address[1]}/{self.stage}"

    def script(self, connection_id: str, *answers: Answer) -> None:
        """Answer this connection's posts with `answers` in order, repeating the last."""
        with self._lock:
            self._scripts[connection_id] = list(answers)

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
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def _answer(self, connection_id: str, data: bytes, authorization: str, header_names: frozenset[str]) -> Answer:
        with self._lock:
            self.posts.append(Post(connection_id, data, authorization, header_names))
            self._in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self._in_flight)
            self._arrivals += 1
            waits = self._barrier is not None and self._arrivals <= self._barrier.parties
            script = self._scripts.get(connection_id)
            answer = (script.pop(0) if len(script) > 1 else script[0]) if script else OK
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
                answer = server._answer(connection_id, data, self.headers.get("Authorization", ""), names)
                self._send(answer, f"{answer.error_type or 'OK'} for {connection_id}")

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
