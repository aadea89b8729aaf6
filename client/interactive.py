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
from collections import Counter
from datetime import datetime, timezone
from typing import TextIO

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from client.connection import CONNECT_FAILURES, describe_failure, open_connection
from client.frames import ChatMessage, GatewayError, ServerError, format_message, format_problem, parse_frame
from client.urls import redacted
from handlers.aws_facts import FRAME_LIMIT_BYTES

CONNECT_TIMEOUT_SECONDS = 10.0


class _Conversation:
    """Prints incoming frames and counts the answers still owed for what this client sent.

    The protocol answers every frame a client sends exactly once to that client: the broadcast of its message
    (which includes the sender) or an error frame. Counting them lets the client leave as soon as all answers are in.
    """

    def __init__(self, raw: bool, out: TextIO, err: TextIO) -> None:
        self.raw = raw
        self.out = out
        self.err = err
        self.unanswered = 0
        self.sent_texts: Counter[str] = Counter()
        self.answered = asyncio.Event()
        self.answered.set()

    def sent(self, line: str) -> None:
        """Record a frame this client sent, to wait for its answer later."""
        self.unanswered += 1
        self.answered.clear()
        text = line if not self.raw else _message_of(line)
        if text is not None:
            self.sent_texts[text] += 1

    def received(self, raw: str | bytes) -> None:
        """Print one incoming frame and settle the answer it may be."""
        frame = parse_frame(raw)
        if self.raw:
            print(raw if isinstance(raw, str) else raw.decode("utf-8", errors="replace"), file=self.out, flush=True)
        elif isinstance(frame, ChatMessage):
            print(format_message(frame, datetime.now(timezone.utc)), file=self.out, flush=True)
        else:
            print(format_problem(frame), file=self.err, flush=True)
        if isinstance(frame, ChatMessage) and self.sent_texts[frame.text] > 0:
            self.sent_texts[frame.text] -= 1
            self._settle()
        elif isinstance(frame, ServerError | GatewayError):
            self._settle()

    def _settle(self) -> None:
        self.unanswered = max(0, self.unanswered - 1)
        if self.unanswered == 0:
            self.answered.set()


def _message_of(line: str) -> str | None:
    """The chat text a raw `sendmessage` line carries, if it is one."""
    try:
        body = json.loads(line)
    except ValueError:
        return None
    if isinstance(body, dict) and body.get("action") == "sendmessage" and isinstance(body.get("message"), str):
        return str(body["message"])
    return None


def _read_lines(loop: asyncio.AbstractEventLoop, stdin: TextIO, lines: asyncio.Queue[str | None]) -> None:
    """Feed stdin lines into the queue from a thread (works for terminals, pipes and files); None marks the end."""
    for line in stdin:
        loop.call_soon_threadsafe(lines.put_nowait, line.rstrip("\r\n"))
    loop.call_soon_threadsafe(lines.put_nowait, None)


async def _send_lines(connection: ClientConnection, lines: asyncio.Queue[str | None], talk: _Conversation) -> None:
    while (line := await lines.get()) is not None:
        if not talk.raw and not line.strip():
            continue  # an empty Enter is not a message; --json sends it anyway for experiments
        frame = line if talk.raw else json.dumps({"action": "sendmessage", "message": line})
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
        talk.sent(line)
        await connection.send(frame)


async def _receive(connection: ClientConnection, talk: _Conversation) -> None:
    try:
        async for frame in connection:
            talk.received(frame)
    except ConnectionClosed:
        pass  # an abnormal close ends the conversation like a normal one; chat() reports the close code


async def chat(url: str, *, raw: bool, linger_seconds: float, stdin: TextIO, out: TextIO, err: TextIO) -> int:
    """Chat until stdin ends or Ctrl-C (exit 0), or the server closes the connection (exit 1)."""
    try:
        connection = await open_connection(url, CONNECT_TIMEOUT_SECONDS)
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
    talk = _Conversation(raw, out, err)
    lines: asyncio.Queue[str | None] = asyncio.Queue()
    threading.Thread(target=_read_lines, args=(loop, stdin, lines), daemon=True).start()
    async with connection:
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


def run(url: str, *, raw: bool, linger_seconds: float) -> int:
    """Run the chat on the process's stdin and stdout; Ctrl-C quits cleanly with exit status 0."""
    try:
        return asyncio.run(
            chat(url, raw=raw, linger_seconds=linger_seconds, stdin=sys.stdin, out=sys.stdout, err=sys.stderr)
        )
    except KeyboardInterrupt:  # Ctrl-C while still connecting
        print("* bye", file=sys.stderr, flush=True)
        return 0
