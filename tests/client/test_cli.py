"""`python -m client` as a user runs it, against the emulator: the interactive chat and the smoke test."""

from __future__ import annotations

import io
import json
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest
from websockets.sync.client import connect
from websockets.sync.server import ServerConnection, serve
from websockets.typing import Subprotocol

from client.interactive import _Conversation
from emulator.testing import RunningEmulator, running_emulator
from handlers.aws_facts import FRAME_LIMIT_BYTES

REPOSITORY = Path(__file__).resolve().parents[2]
WAIT_SECONDS = 15.0
"""How long a test waits for the client to print something before failing with what it did print."""
MESSAGE_LINE = r"\[\d\d:\d\d:\d\d\] "


def client_command(*arguments: str) -> list[str]:
    return [sys.executable, "-m", "client", *arguments]


def run_client(*arguments: str, stdin: str = "", timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run the client to completion, as `make smoke` or a pipe would."""
    return subprocess.run(
        client_command(*arguments),
        input=stdin,
        capture_output=True,
        text=True,
        cwd=REPOSITORY,
        timeout=timeout,
        check=False,
    )


def refused_url() -> str:
    """A ws:// URL on a port nothing listens on (bound, then released, so the kernel refuses connections)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"ws://127.0.0.1:{port}/dev"


class InteractiveClient:
    """`python -m client URL ...` with stdin kept open, its output read line by line as it arrives."""

    def __init__(self, *arguments: str) -> None:
        self.process = subprocess.Popen(
            client_command(*arguments),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPOSITORY,
        )
        self.lines: dict[str, queue.Queue[str]] = {"stdout": queue.Queue(), "stderr": queue.Queue()}
        self.seen: dict[str, list[str]] = {"stdout": [], "stderr": []}
        for name, stream in (("stdout", self.process.stdout), ("stderr", self.process.stderr)):
            threading.Thread(target=self._pump, args=(stream, self.lines[name]), daemon=True).start()

    @staticmethod
    def _pump(stream: IO[str] | None, lines: queue.Queue[str]) -> None:
        assert stream is not None
        for line in stream:
            lines.put(line.rstrip("\n"))

    def wait_for(self, stream: str, pattern: str) -> str:
        """The next line on stdout or stderr matching the pattern; fails naming everything that was printed."""
        while True:
            try:
                line = self.lines[stream].get(timeout=WAIT_SECONDS)
            except queue.Empty:
                pytest.fail(f"no line matching {pattern!r} on {stream} within {WAIT_SECONDS} s; printed: {self.seen}")
            self.seen[stream].append(line)
            if re.search(pattern, line):
                return line

    def type(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def end_input(self) -> None:
        """Close stdin: Ctrl-D at a terminal, the end of a pipe."""
        assert self.process.stdin is not None
        self.process.stdin.close()

    def finish(self) -> int:
        """Wait for the exit status (the test has made it quit)."""
        try:
            return self.process.wait(timeout=WAIT_SECONDS)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the client did not exit within {WAIT_SECONDS} s; printed: {self.seen}")

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture
def interactive() -> Iterator[list[InteractiveClient]]:
    """Interactive clients a test starts; any still running afterwards are killed."""
    started: list[InteractiveClient] = []
    yield started
    for client in started:
        client.kill()


def start(started: list[InteractiveClient], *arguments: str) -> InteractiveClient:
    client = InteractiveClient(*arguments)
    started.append(client)
    client.wait_for("stderr", r"^\* connected to ")
    # Its greeting answered, so the test's next step cannot overtake the join's replay of history.
    client.wait_for("stderr", r"^\* joined #lobby as ")
    return client


# --- smoke ----------------------------------------------------------------------------------------------------------


def test_smoke_passes_against_the_emulator(emulator: RunningEmulator) -> None:
    result = run_client("smoke", emulator.ws_url, "--timeout", "10")
    assert result.returncode == 0, f"smoke failed against a healthy emulator: {result.stderr}"
    lines = result.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"smoke ok: {emulator.ws_url}: "), f"summary: {result.stdout!r}"


def test_smoke_reports_a_refused_url_and_how_long_it_waited() -> None:
    url = refused_url()
    result = run_client("smoke", url, "--timeout", "3")
    assert result.returncode == 1, f"smoke against {url} exited {result.returncode}: {result.stderr}"
    assert result.stdout == "", f"a failed smoke printed a summary: {result.stdout!r}"
    message = result.stderr.strip()
    assert re.fullmatch(
        rf"smoke FAILED: {re.escape(url)}: connect: client A could not connect: Connection refused "
        r"\(after \d+\.\d\d s; each step waits at most 3 s\)",
        message,
    ), f"unexpected failure report: {message!r}"


def test_smoke_reports_a_rejected_handshake(emulator: RunningEmulator) -> None:
    wrong_stage = re.sub(r"/[^/]+$", "/no-such-stage", emulator.ws_url)
    result = run_client("smoke", wrong_stage, "--timeout", "5")
    assert result.returncode == 1, f"smoke against a wrong stage exited {result.returncode}: {result.stderr}"
    assert "rejected the WebSocket handshake with HTTP" in result.stderr, f"no HTTP status: {result.stderr!r}"


@pytest.mark.parametrize("url", ["", "https://example.com/dev", "127.0.0.1:3001"])
def test_smoke_refuses_a_url_that_is_not_websocket(url: str) -> None:
    result = run_client("smoke", url)
    assert result.returncode == 2, f"bad URL {url!r} exited {result.returncode}"
    assert "error: the URL" in result.stderr, f"no clear complaint about {url!r}: {result.stderr!r}"


# --- interactive chat -------------------------------------------------------------------------------------------


def test_piped_lines_are_sent_and_echoed(emulator: RunningEmulator) -> None:
    result = run_client(emulator.ws_url, "--name", "piper", stdin="hello from a pipe\n\nsecond line\n")
    assert result.returncode == 0, f"piped chat exited {result.returncode}: {result.stderr}"
    # Each message is its own invocation, so the two echoes may come back in either order.
    texts = sorted(re.sub(f"^{MESSAGE_LINE}", "", line) for line in result.stdout.splitlines())
    assert texts == ["piper: hello from a pipe", "piper: second line"], (
        f"expected both messages echoed as '[HH:MM:SS] piper: text' (the blank line is not sent): {result.stdout!r}"
    )


def test_room_commands_join_chat_list_replay_whisper_and_leave(emulator: RunningEmulator) -> None:
    script = "/join ops\nhello ops\n/who\n/history\n/msg roomer psst\n/leave\n/bogus\n"
    result = run_client(emulator.ws_url, "--name", "roomer", stdin=script)
    assert result.returncode == 0, result.stderr
    lines = [re.sub(MESSAGE_LINE, "", line) for line in result.stdout.splitlines()]
    assert lines == ["#ops roomer: hello ops", "roomer -> roomer (whisper): psst"], (
        f"the room's message once (history repeats its id, so it is dropped) and the whisper: {result.stdout!r}"
    )
    notices = result.stderr
    assert "* joined #ops as roomer: roomer (you)" in notices, notices
    assert "* in #ops: roomer (you)" in notices and "* left #ops" in notices, notices
    assert "unknown command /bogus" in notices, notices


def test_room_option_starts_in_that_room(emulator: RunningEmulator) -> None:
    result = run_client(emulator.ws_url, "--name", "starter", "--room", "dev", stdin="in dev\n")
    assert result.returncode == 0, result.stderr
    assert [re.sub(MESSAGE_LINE, "", line) for line in result.stdout.splitlines()] == ["#dev starter: in dev"]
    assert "* joined #dev as starter" in result.stderr, result.stderr


def test_refused_message_is_reported_on_stderr(emulator: RunningEmulator, max_message_bytes: int) -> None:
    result = run_client(emulator.ws_url, "--name", "piper", stdin="x" * (max_message_bytes + 1) + "\n")
    assert result.returncode == 0, f"chat exited {result.returncode}: {result.stderr}"
    assert result.stdout == "", f"a refused message was printed as chat: {result.stdout[:200]!r}"
    assert re.search(r"^error from server: \S", result.stderr, re.MULTILINE), f"no error line: {result.stderr!r}"


def test_line_too_big_for_one_frame_is_not_sent(emulator: RunningEmulator) -> None:
    oversized = "y" * (FRAME_LIMIT_BYTES + 1)
    result = run_client(emulator.ws_url, "--name", "piper", stdin=f"{oversized}\nstill connected\n")
    assert result.returncode == 0, f"chat exited {result.returncode}: {result.stderr}"
    assert re.search(
        rf"^error: not sent: that line makes a \d+-byte frame .* over {FRAME_LIMIT_BYTES} bytes$",
        result.stderr,
        re.MULTILINE,
    ), f"no local refusal on stderr: {result.stderr!r}"
    assert re.fullmatch(MESSAGE_LINE + "piper: still connected\n", result.stdout), (
        f"the connection did not survive the oversized line: {result.stdout!r}"
    )


def test_json_mode_sends_raw_lines_and_prints_raw_frames(emulator: RunningEmulator) -> None:
    result = run_client(emulator.ws_url, "--json", stdin='{"action": "no-such-action"}\n')
    assert result.returncode == 0, f"--json exited {result.returncode}: {result.stderr}"
    frame = json.loads(result.stdout)
    assert frame.get("type") == "error" and "sendmessage" in frame.get("acceptedActions", []), (
        f"$default's answer was not printed raw: {result.stdout!r}"
    )


def test_two_clients_chat_and_ctrl_c_quits_cleanly(
    emulator: RunningEmulator, interactive: list[InteractiveClient]
) -> None:
    alice = start(interactive, emulator.ws_url, "--name", "alice")
    bob = start(interactive, emulator.ws_url, "--name", "bob")
    alice.type("hi bob")
    bob.wait_for("stdout", MESSAGE_LINE + "alice: hi bob$")
    # Stay connected until it arrives: the sender's name is looked up by connection, which $disconnect removes.
    with connect(f"{emulator.ws_url}?name=mallory") as prankster:
        prankster.send(json.dumps({"action": "sendmessage", "message": "<b>\x1b[2Jboo\nfake line</b>"}))
        escaped = bob.wait_for("stdout", "mallory")
    assert escaped.endswith(r"mallory: <b>\x1b[2Jboo\nfake line</b>"), f"control characters not escaped: {escaped!r}"
    bob.process.send_signal(signal.SIGINT)
    assert bob.finish() == 0, f"Ctrl-C did not exit 0; printed: {bob.seen}"
    alice.end_input()
    assert alice.finish() == 0, f"end of input did not exit 0; printed: {alice.seen}"


def test_client_exits_1_when_the_server_goes_away(interactive: list[InteractiveClient]) -> None:
    with running_emulator(extra_args=("--no-prewarm",)) as server:
        client = start(interactive, server.ws_url, "--name", "orphan")
        server.stop()
        client.wait_for("stderr", r"^\* connection closed by the server")
        assert client.finish() == 1, f"a lost connection did not exit 1; printed: {client.seen}"


@pytest.mark.parametrize(
    ("name", "complaint"),
    [
        ("x" * 33, "must be at most 32 characters"),
        ("bell\x07", "must contain printable characters only"),
        (" padded", "must not start or end with whitespace"),
    ],
)
def test_unacceptable_name_is_refused_before_connecting(name: str, complaint: str) -> None:
    result = run_client(refused_url(), "--name", name)
    assert result.returncode == 2, f"name {name!r} exited {result.returncode}: {result.stderr}"
    assert f"error: --name: a display name {complaint}" in result.stderr, f"no reason for {name!r}: {result.stderr!r}"


def test_refused_url_fails_with_a_reason() -> None:
    url = refused_url()
    result = run_client(url, "--name", "nobody")
    assert result.returncode == 1, f"chat with {url} exited {result.returncode}"
    assert f"error: could not connect to {url}?name=nobody: Connection refused" in result.stderr, result.stderr


def test_a_message_in_the_greetings_history_still_shows_when_it_arrives_live() -> None:
    """The greeting join's history is not replayed, but a message sent just after this client connected can be in
    that history and arrive live after it: it must show then (it once vanished as a "repeat")."""
    out, err = io.StringIO(), io.StringIO()
    talk = _Conversation(raw=False, out=out, err=err)
    talk.quiet_joins.add("lobby")
    message = {
        "type": "message",
        "room": "lobby",
        "id": "m1",
        "message": "hi bob",
        "from": "alice",
        "connectionId": "a",
    }
    joined = {
        "type": "joined",
        "room": "lobby",
        "connectionId": "b",
        "name": "bob",
        "members": [],
        "history": [message],
    }
    talk.received(json.dumps(joined))
    assert out.getvalue() == "", "the greeting's history was replayed"
    talk.received(json.dumps(message))
    assert out.getvalue().endswith("alice: hi bob\n"), f"the live message did not show: {out.getvalue()!r}"
    talk.received(json.dumps(message))
    assert out.getvalue().count("hi bob") == 1, "a repeat of a shown message showed twice"


def test_the_token_travels_as_a_subprotocol_never_in_the_url() -> None:
    """A query string lands in API Gateway's access logs and in proxies' logs; the subprotocol does not."""
    requested: list[tuple[str, str | None]] = []

    def record(connection: ServerConnection) -> None:
        assert connection.request is not None
        requested.append((connection.request.path, connection.request.headers.get("Sec-WebSocket-Protocol")))
        for _ in connection:
            pass

    token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ0In0.c2ln"
    with serve(record, "127.0.0.1", 0, subprotocols=[Subprotocol("websocket-chat")]) as stand_in:
        threading.Thread(target=stand_in.serve_forever, daemon=True).start()
        url = f"ws://127.0.0.1:{stand_in.socket.getsockname()[1]}/dev"
        for command in (("--name", "tess", "--wait", "0.2"), ("smoke", "--timeout", "1")):
            arguments = (*command[:1], url, *command[1:]) if command[0] == "smoke" else (url, *command)
            result = run_client(*arguments, "--token", token)
            assert token not in result.stdout + result.stderr, f"{command[0]} printed the token"
    assert len(requested) >= 2 and requested[0][0] == "/dev?name=tess", f"the chat, then the smoke test: {requested}"
    for path, offered in requested:
        assert "token" not in path, f"the token went in the URL: {path}"
        assert offered == f"websocket-chat, bearer.{token}", f"offered {offered!r}, not the chat's protocol and token"


def test_a_room_without_presence_is_said_to_be_so_and_who_is_offered() -> None:
    """A joiner told `presence: false`, or a member told `presence-off`, learns that the member list will not follow
    joins and leaves; an older server's `joined` without the field reads as live."""
    out, err = io.StringIO(), io.StringIO()
    talk = _Conversation(raw=False, out=out, err=err)
    member = {"name": "ada", "connectionId": "a"}
    joined = {"type": "joined", "room": "lobby", "connectionId": "b", "name": "bob", "members": [member], "history": []}
    talk.received(json.dumps(joined))
    assert err.getvalue() == "* joined #lobby as bob: ada\n", f"an older server's joined: {err.getvalue()!r}"
    talk.received(json.dumps({**joined, "room": "big", "presence": False, "truncated": True}))
    assert err.getvalue().splitlines()[-1] == (
        "* joined #big as bob: ada and more (joins and leaves are not shown in a room this big; /who lists the members)"
    )
    talk.received(json.dumps({"type": "presence-off", "room": "lobby", "maxMembers": 100}))
    assert err.getvalue().splitlines()[-1] == (
        "* #lobby has over 100 members: joins and leaves are not shown in a room this big; /who lists the members"
    )
    members = {"type": "members", "room": "big", "members": [member], "truncated": False}
    talk.received(json.dumps({**members, "presence": False}))
    assert err.getvalue().splitlines()[-1] == (
        "* in #big: ada (joins and leaves are not shown in a room this big; /who lists the members)"
    )
    talk.received(json.dumps({**members, "presence": True}))
    assert err.getvalue().splitlines()[-1] == "* in #big: ada", "a room back under the cap is live"
    assert out.getvalue() == "", "notices go to stderr only"


def test_presence_off_prints_once_until_the_room_is_live_again() -> None:
    """The server may send `presence-off` twice (a join told live re-tells the room); only news is printed."""
    err = io.StringIO()
    talk = _Conversation(raw=False, out=io.StringIO(), err=err)
    off = json.dumps({"type": "presence-off", "room": "ops", "maxMembers": 3})
    joined = {"type": "joined", "room": "ops", "connectionId": "b", "name": "bob", "members": [], "history": []}
    for frame in (off, json.dumps({**joined, "presence": True}), off, off):
        talk.received(frame)
    lines = err.getvalue().splitlines()
    assert [line.startswith("* #ops has over 3") for line in lines] == [True, False, True], f"printed {lines}"
    members = {"type": "members", "room": "ops", "members": [], "truncated": False}
    talk.received(json.dumps({**members, "presence": True}))
    talk.received(off)
    assert err.getvalue().splitlines()[-1].startswith("* #ops has over 3"), "a room live again is news again"
