"""The interactive chat: stdin lines go out as `sendmessage`, incoming frames print as they arrive.

Chat lines go to stdout and notices to stderr, so a pipe reading stdout gets the conversation only; at the end of
stdin the client waits briefly for answers, so `printf 'hi\n' | python -m client URL` prints the echo.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
import threading
from collections import Counter, deque
from datetime import datetime, timezone
from typing import Any, TextIO

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from client.connection import CONNECT_FAILURES, describe_failure, open_connection
from client.frames import (
    ChatMessage,
    Frame,
    GatewayError,
    History,
    Joined,
    Left,
    Members,
    Presence,
    PresenceOff,
    ServerError,
    Whisper,
    format_message,
    format_notice,
    format_problem,
    format_whisper,
    parse_frame,
)
from client.urls import redacted
from handlers.aws_facts import FRAME_LIMIT_BYTES

CONNECT_TIMEOUT_SECONDS = 10.0
LOBBY = "lobby"
SEEN_IDS = 2000
"""Message ids remembered to drop repeats (a retried post, a message also in a history answer)."""


class _Conversation:
    """Prints incoming frames, drops repeats by `id`, and counts the answers still owed for what this client sent.

    The protocol answers every frame a client sends exactly once to that client: the message's own delivery (the
    room includes the sender), `joined`, `left`, `members`, `history`, the whisper's echo, or an error frame.
    Counting them lets the client leave as soon as all answers are in. Frame types it does not know are ignored.
    """

    def __init__(self, raw: bool, out: TextIO, err: TextIO, room: str = LOBBY) -> None:
        self.raw = raw
        self.out = out
        self.err = err
        self.room = room
        """Where plain lines go: the room last joined."""
        self.own_id = ""
        """This connection's id, as the server's `joined` says; nothing else is trusted to mean "me"."""
        self.unanswered = 0
        self.expected: Counter[str] = Counter()
        self.seen: deque[str] = deque(maxlen=SEEN_IDS)
        self.awaiting: str | None = None
        """The room change the sender waits for before its next line (`settled`)."""
        self.quiet_joins: set[str] = set()
        """Rooms whose `joined` answers the automatic join at start: their history is not replayed on stdout."""
        self.not_live: set[str] = set()
        """Rooms last said to be too big for presence: a repeated `presence-off` for one of them prints nothing."""
        self.answered = asyncio.Event()
        self.answered.set()

    def sent(self, body: dict[str, Any]) -> None:
        """Record a request this client sent, to wait for its answer later."""
        self.unanswered += 1
        self.answered.clear()
        key = _answer_key(body)
        if key is not None:
            self.expected[key] += 1

    def received(self, raw: str | bytes) -> None:
        """Print one incoming frame and settle the answer it may be."""
        frame = parse_frame(raw)
        identity = frame.id if isinstance(frame, ChatMessage | Whisper) else ""
        if identity and identity in self.seen:
            return  # a repeat of a post that may have been delivered: once is enough
        if identity:
            self.seen.append(identity)
        if self.raw:
            print(raw if isinstance(raw, str) else raw.decode("utf-8", errors="replace"), file=self.out, flush=True)
        else:
            self._show(frame)
        key = _frame_key(frame)
        if key is not None and self.expected[key] > 0:
            self.expected[key] -= 1
            self._settle()
        elif isinstance(frame, ServerError | GatewayError):
            # Refused while a room change is awaited: that is the answer to it.
            if self.awaiting is not None and self.expected[self.awaiting] > 0:
                self.expected[self.awaiting] -= 1
            self._settle()

    def _show(self, frame: Frame) -> None:
        now = datetime.now(timezone.utc)
        if isinstance(frame, ChatMessage):
            print(format_message(frame, now), file=self.out, flush=True)
        elif isinstance(frame, Whisper):
            print(format_whisper(frame, now), file=self.out, flush=True)
        elif isinstance(frame, Joined | History):
            if isinstance(frame, Joined):
                self.own_id, self.room = frame.connection_id, frame.room
                self._note_liveness(frame)
                print(format_notice(frame, self.own_id), file=self.err, flush=True)
            quiet = isinstance(frame, Joined) and frame.room in self.quiet_joins
            self.quiet_joins.discard(frame.room)
            if quiet:
                return  # not marked seen either: a message in this history may still arrive live, and must show
            for message in frame.history if isinstance(frame, Joined) else frame.messages:
                if message.id not in self.seen:
                    self.seen.append(message.id)
                    print(format_message(message, now), file=self.out, flush=True)
        elif isinstance(frame, Presence | PresenceOff | Left | Members):
            if isinstance(frame, Left) and frame.room == self.room:
                self.room = LOBBY
            if isinstance(frame, PresenceOff) and frame.room in self.not_live:
                return  # the server may say it twice (docs/handlers.md); once is the news
            self._note_liveness(frame)
            print(format_notice(frame, self.own_id), file=self.err, flush=True)
        elif isinstance(frame, ServerError | GatewayError):
            print(format_problem(frame), file=self.err, flush=True)

    def _note_liveness(self, frame: Joined | Presence | PresenceOff | Left | Members) -> None:
        if isinstance(frame, PresenceOff) or (isinstance(frame, Joined | Members) and not frame.presence):
            self.not_live.add(frame.room)
        elif isinstance(frame, Joined | Members | Left):
            self.not_live.discard(frame.room)

    async def settled(self, key: str | None, timeout: float) -> None:
        """Wait until the answer `key` stands for (or an error) has come, at most `timeout` seconds."""
        deadline = asyncio.get_running_loop().time() + timeout
        self.awaiting = key
        while key is not None and self.expected[key] > 0 and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.02)
        self.awaiting = None

    def _settle(self) -> None:
        self.unanswered = max(0, self.unanswered - 1)
        if self.unanswered == 0:
            self.answered.set()


def _answer_key(body: dict[str, Any]) -> str | None:
    """What frame answers this request: `message:ROOM:TEXT`, `joined:ROOM`, `whisper:TEXT`..."""
    action, room = body.get("action"), body.get("room", LOBBY)
    if action == "sendmessage" and isinstance(body.get("message"), str):
        return f"message:{room}:{body['message']}"
    if action == "whisper" and isinstance(body.get("message"), str):
        return f"whisper:{body['message']}"
    answers = {"join": "joined", "leave": "left", "who": "members", "history": "history"}
    return f"{answers[action]}:{room}" if isinstance(action, str) and action in answers else None


def _frame_key(frame: Frame) -> str | None:
    if isinstance(frame, ChatMessage):
        return f"message:{frame.room}:{frame.text}"
    if isinstance(frame, Whisper):
        return f"whisper:{frame.text}"
    if isinstance(frame, Joined | Left | Members | History):
        kind = {Joined: "joined", Left: "left", Members: "members", History: "history"}[type(frame)]
        return f"{kind}:{frame.room}"
    return None


def request_for(line: str, room: str) -> dict[str, Any] | str:
    """The request a typed line makes (a chat line, or `/join`, `/leave`, `/who`, `/history`, `/msg NAME TEXT`),
    or a sentence saying why it makes none."""
    if not line.startswith("/"):
        body: dict[str, Any] = {"action": "sendmessage", "message": line}
        if room != LOBBY:
            body["room"] = room
        return body
    command, _, rest = line[1:].partition(" ")
    rest = rest.strip()
    if command in ("join", "leave", "who", "history"):
        target = rest or (room if command != "join" else "")
        if not target:
            return "usage: /join ROOM"
        return {"action": command, "room": target}
    if command == "msg":
        name, _, text = rest.partition(" ")
        if not name or not text.strip():
            return "usage: /msg NAME TEXT"
        return {"action": "whisper", "to": name, "message": text}
    return (
        f"unknown command /{command}; commands: /join ROOM, /leave [ROOM], /who [ROOM], /history [ROOM], /msg NAME TEXT"
    )


def _message_of(line: str) -> dict[str, Any] | None:
    """The request a raw (`--json`) line carries, if it is a JSON object."""
    try:
        body = json.loads(line)
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _read_lines(loop: asyncio.AbstractEventLoop, stdin: TextIO, lines: asyncio.Queue[str | None]) -> None:
    """Feed stdin lines into the queue from a thread (works for terminals, pipes and files); None marks the end."""
    for line in stdin:
        loop.call_soon_threadsafe(lines.put_nowait, line.rstrip("\r\n"))
    loop.call_soon_threadsafe(lines.put_nowait, None)


async def _send_lines(connection: ClientConnection, lines: asyncio.Queue[str | None], talk: _Conversation) -> None:
    while (line := await lines.get()) is not None:
        if not talk.raw and not line.strip():
            continue  # an empty Enter is not a message; --json sends it anyway for experiments
        if talk.raw:
            frame, body = line, _message_of(line) or {}
        else:
            request = request_for(line, talk.room)
            if isinstance(request, str):
                print(f"error: {request}", file=talk.err, flush=True)
                continue
            frame, body = json.dumps(request), request
        size = len(frame.encode("utf-8"))
        if not talk.raw and size > FRAME_LIMIT_BYTES:
            # API Gateway would close the connection (1009); --json still sends it, to see that happen.
            print(
                f"error: not sent: that line makes a {size}-byte frame and API Gateway closes the connection on "
                f"frames over {FRAME_LIMIT_BYTES} bytes",
                file=talk.err,
                flush=True,
            )
            continue
        talk.sent(body)
        await connection.send(frame)
        if not talk.raw:
            # Each line is its own invocation, so two could overtake each other (a message and a /leave after
            # it): wait for each answer, so lines take effect in the order they were typed.
            await talk.settled(_answer_key(body), CONNECT_TIMEOUT_SECONDS)


async def _receive(connection: ClientConnection, talk: _Conversation) -> None:
    try:
        async for frame in connection:
            talk.received(frame)
    except ConnectionClosed:
        pass  # an abnormal close ends the conversation like a normal one; chat() reports the close code


async def chat(
    url: str,
    *,
    raw: bool,
    linger_seconds: float,
    stdin: TextIO,
    out: TextIO,
    err: TextIO,
    room: str = LOBBY,
    token: str | None = None,
) -> int:
    """Chat until stdin ends or Ctrl-C (exit 0), or the server closes the connection (exit 1)."""
    try:
        connection = await open_connection(url, CONNECT_TIMEOUT_SECONDS, token)
    except CONNECT_FAILURES as error:
        print(
            f"error: could not connect to {redacted(url)}: {describe_failure(error, CONNECT_TIMEOUT_SECONDS)}",
            file=err,
            flush=True,
        )
        return 1
    print(
        f"* connected to {redacted(url)}; type a message and press Enter (Ctrl-D or Ctrl-C quits)", file=err, flush=True
    )
    loop = asyncio.get_running_loop()
    interrupted = asyncio.Event()
    # Ctrl-C sets an event instead of cancelling, so the connection still closes normally (1000).
    with contextlib.suppress(NotImplementedError, RuntimeError):  # no signal handlers on Windows or off main thread
        loop.add_signal_handler(signal.SIGINT, interrupted.set)
    talk = _Conversation(raw, out, err, room)
    lines: asyncio.Queue[str | None] = asyncio.Queue()
    threading.Thread(target=_read_lines, args=(loop, stdin, lines), daemon=True).start()
    async with connection:
        if not raw:
            # $connect cannot post to the connection it opens: this harmless join answers with its own id.
            greeting = {"action": "join", "room": room}
            talk.quiet_joins.add(room)
            talk.sent(greeting)
            await connection.send(json.dumps(greeting))
        receiving = asyncio.create_task(_receive(connection, talk))
        sending = asyncio.create_task(_send_lines(connection, lines, talk))
        quitting = asyncio.create_task(interrupted.wait())
        await asyncio.wait({receiving, sending, quitting}, return_when=asyncio.FIRST_COMPLETED)
        if not receiving.done() and not quitting.done() and sending.exception() is None:
            # stdin ended: give the server a moment to answer what we sent, then leave.
            answered = asyncio.create_task(talk.answered.wait())
            await asyncio.wait(
                {answered, quitting, receiving}, timeout=linger_seconds, return_when=asyncio.FIRST_COMPLETED
            )
            answered.cancel()
            if not answered.done() and not quitting.done() and not receiving.done():
                print(f"* no answer to {talk.unanswered} message(s) within {linger_seconds:g} s", file=err, flush=True)
        # The receiver ends, or the sender fails, only when the connection closed under them.
        closed_by_server = receiving.done() or (sending.done() and sending.exception() is not None)
        for task in (receiving, sending, quitting):
            task.cancel()
    loop.remove_signal_handler(signal.SIGINT)
    if not closed_by_server:
        print("* bye", file=err, flush=True)
        return 0
    code, why = connection.close_code, connection.close_reason
    reason = f" (code {code}{': ' + why if why else ''})" if code is not None else ""
    print(f"* connection closed by the server{reason}", file=err, flush=True)
    return 1


def run(url: str, *, raw: bool, linger_seconds: float, room: str = LOBBY, token: str | None = None) -> int:
    """Run the chat on the process's stdin and stdout; Ctrl-C quits cleanly with exit status 0."""
    try:
        return asyncio.run(
            chat(
                url,
                raw=raw,
                linger_seconds=linger_seconds,
                stdin=sys.stdin,
                out=sys.stdout,
                err=sys.stderr,
                room=room,
                token=token,
            )
        )
    except KeyboardInterrupt:  # Ctrl-C while still connecting
        print("* bye", file=sys.stderr, flush=True)
        return 0
