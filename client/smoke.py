"""End-to-end smoke test of a running chat: what a pipeline runs after `pulumi up`.

Two clients connect; a unique message from the first must reach both as the same broadcast; a blank message must
get an error frame; an unknown action must be answered by `$default`. Each step waits at most `timeout` seconds.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from client.connection import CONNECT_FAILURES, describe_failure, open_connection
from client.frames import ChatMessage, GatewayError, History, Joined, ServerError, Whisper, parse_frame
from client.urls import chat_url, redacted

FrameT = TypeVar("FrameT", ChatMessage, ServerError, Joined, Whisper, History)


class SmokeStepError(Exception):
    """A step of the smoke test failed; the message names the step, what went wrong and how long it waited."""

    def __init__(self, step: str, problem: str, waited: float, timeout: float) -> None:
        super().__init__(f"{step}: {problem} (after {waited:.2f} s; each step waits at most {timeout:g} s)")


@dataclass
class _Client:
    label: str
    name: str
    connection: ClientConnection


class _Run:
    def __init__(self, url: str, token: str | None, timeout: float) -> None:
        self.url = url
        self.token = token
        self.timeout = timeout
        self.step = "start"
        self.step_started = time.monotonic()

    def begin(self, step: str) -> None:
        self.step = step
        self.step_started = time.monotonic()

    def fail(self, problem: str) -> SmokeStepError:
        return SmokeStepError(self.step, problem, time.monotonic() - self.step_started, self.timeout)

    async def connect(self, label: str, name: str) -> _Client:
        url = chat_url(self.url, name=name)
        try:
            connection = await open_connection(url, self.timeout, self.token)
        except CONNECT_FAILURES as error:
            raise self.fail(f"client {label} could not connect: {describe_failure(error, self.timeout)}") from None
        return _Client(label, name, connection)

    async def send(self, client: _Client, body: dict[str, str]) -> None:
        try:
            await client.connection.send(json.dumps(body))
        except ConnectionClosed as closed:
            raise self.fail(f"client {client.label}'s connection closed before sending ({closed})") from None

    async def expect(
        self, client: _Client, kind: type[FrameT], wanted: Callable[[FrameT], bool], description: str
    ) -> FrameT:
        """The first frame of this kind on this client that `wanted` accepts; other chat traffic is skipped."""
        deadline = self.step_started + self.timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self.fail(f"client {client.label} received no {description}")
            try:
                raw = await asyncio.wait_for(client.connection.recv(), remaining)
            except TimeoutError:
                continue  # the loop reports the timeout with the step's own wording
            except ConnectionClosed as closed:
                raise self.fail(
                    f"client {client.label}'s connection closed while waiting for {description} ({closed})"
                ) from None
            frame = parse_frame(raw)
            if isinstance(frame, kind) and wanted(frame):
                return frame
            if isinstance(frame, GatewayError):
                raise self.fail(
                    f"client {client.label} got API Gateway's 'Internal server error' instead of "
                    f"{description}: the handler failed (request id {frame.request_id or 'unknown'})"
                )


async def smoke(url: str, timeout: float, token: str | None = None) -> str:
    """Run every check; the one-line summary on success, `SmokeStepError` on the first failed step."""
    run = _Run(url, token, timeout)
    started = time.monotonic()
    tag = uuid.uuid4().hex[:8]
    run.begin("connect")
    first = await run.connect("A", f"smoke-a-{tag}")
    async with first.connection:
        second = await run.connect("B", f"smoke-b-{tag}")
        async with second.connection:
            await _check_broadcast(run, first, second, f"smoke test {uuid.uuid4().hex}")
            await _check_rejected(run, first)
            await _check_default_route(run, first, f"smoke-unknown-{tag}")
            message_id, second_name = await _check_room(run, first, second, f"smoke-{tag}")
            await _check_whisper(run, first, second, second_name)
            await _check_history(run, second, f"smoke-{tag}", message_id)
    return (
        f"smoke ok: {redacted(url)}: a message reached both clients, a blank message got an error frame, "
        f"$default answered an unknown action, a room carried a message, a whisper arrived, history replayed it "
        f"({time.monotonic() - started:.2f} s)"
    )


async def _check_room(run: _Run, first: _Client, second: _Client, room: str) -> tuple[str, str]:
    """Both join a fresh room; a message to it reaches both, numbered 1. Returns its id and the second's name."""
    run.begin("room")
    names = []
    for client in (first, second):
        await run.send(client, {"action": "join", "room": room})
        joined = await run.expect(client, Joined, lambda frame: frame.room == room, f"joined frame for room {room!r}")
        names.append(joined.name)
    text = f"smoke room {uuid.uuid4().hex}"
    await run.send(first, {"action": "sendmessage", "room": room, "message": text})
    echo, delivery = await asyncio.gather(
        *(
            run.expect(client, ChatMessage, lambda frame: frame.text == text, f"message in room {room!r}")
            for client in (first, second)
        )
    )
    if echo.id != delivery.id or echo.room != room or echo.seq != 1:
        raise run.fail(f"the room's message came back wrong: room {echo.room!r}, seq {echo.seq}, ids differ or not")
    return echo.id, names[1]


async def _check_whisper(run: _Run, first: _Client, second: _Client, to: str) -> None:
    """A whisper from the first to the second client's name (as the server knows it) reaches it and echoes."""
    run.begin("whisper")
    text = f"smoke whisper {uuid.uuid4().hex}"
    await run.send(first, {"action": "whisper", "to": to, "message": text})
    await asyncio.gather(
        run.expect(second, Whisper, lambda frame: frame.text == text, f"whisper to {to!r}"),
        run.expect(first, Whisper, lambda frame: frame.text == text, "the whisper's echo"),
    )


async def _check_history(run: _Run, client: _Client, room: str, message_id: str) -> None:
    """The room's history holds the message sent to it, under the same id."""
    run.begin("history")
    await run.send(client, {"action": "history", "room": room})
    await run.expect(
        client,
        History,
        lambda frame: frame.room == room and message_id in {message.id for message in frame.messages},
        f"history of room {room!r} holding the message",
    )


async def _check_broadcast(run: _Run, sender: _Client, other: _Client, text: str) -> None:
    run.begin("broadcast")
    await run.send(sender, {"action": "sendmessage", "message": text})

    def is_broadcast(frame: ChatMessage) -> bool:
        return frame.text == text

    description = f"broadcast of the message {text!r}"
    echo, delivery = await asyncio.gather(
        run.expect(sender, ChatMessage, is_broadcast, description),
        run.expect(other, ChatMessage, is_broadcast, description),
    )
    if echo.id != delivery.id:
        raise run.fail(f"the clients received different envelopes (ids {echo.id!r} and {delivery.id!r})")
    # An authorizer's name wins over ?name=, so the name is only checked without a token.
    if run.token is None and echo.sender != sender.name:
        raise run.fail(
            f"the broadcast came from {echo.sender!r}, not the display name {sender.name!r} that client "
            f"{sender.label} connected with"
        )


async def _check_rejected(run: _Run, sender: _Client) -> None:
    run.begin("validation")
    await run.send(sender, {"action": "sendmessage", "message": "   "})
    await run.expect(sender, ServerError, lambda frame: True, "error frame for a blank message")


async def _check_default_route(run: _Run, sender: _Client, action: str) -> None:
    run.begin("$default")
    await run.send(sender, {"action": action, "message": "hello"})
    await run.expect(
        sender,
        ServerError,
        lambda frame: "sendmessage" in frame.accepted_actions,
        f"error frame naming the accepted actions for action {action!r}",
    )


def run(url: str, timeout: float, token: str | None, out: Callable[[str], None], err: Callable[[str], None]) -> int:
    """Run the smoke test, print one line, and return the exit status: 0 passed, 1 failed."""
    try:
        summary = asyncio.run(smoke(url, timeout, token))
    except SmokeStepError as failure:
        err(f"smoke FAILED: {redacted(url)}: {failure}")
        return 1
    out(summary)
    return 0
