"""API Gateway's per-frame and per-message quotas, enforced on the raw bytes a client sends.

aiohttp limits whole messages only, so a `FrameInspector` between the socket and aiohttp's parser reads each frame
header as it arrives, forwards frames within the quotas untouched and drops one that breaks them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from handlers.aws_facts import CLOSE_MESSAGE_TOO_BIG

OPCODE_CONTINUATION = 0x0
OPCODE_TEXT = 0x1
OPCODE_BINARY = 0x2
FIRST_CONTROL_OPCODE = 0x8

CLOSE_UNSUPPORTED_DATA = 1003

Violation = Callable[[int, str], None]
"""Called once with the close code and reason when a client breaks a quota."""


class FrameInspector:
    """Parses client frame headers incrementally and filters out frames that break API Gateway's quotas."""

    def __init__(
        self, frame_limit: int, message_limit: int, on_violation: Violation, on_frame: Callable[[], None]
    ) -> None:
        self._frame_limit = frame_limit
        self._message_limit = message_limit
        self._on_violation = on_violation
        self._on_frame = on_frame
        self._header = bytearray()
        self._payload_left = 0
        self._forwarding = True
        self._message_bytes = 0
        self._message_is_binary = False
        self.violated = False

    def feed(self, data: bytes) -> bytes:
        """Take bytes from the socket; return the bytes the WebSocket parser may see."""
        forwarded = bytearray()
        view = memoryview(data)
        while view:
            if self._payload_left:
                take = min(self._payload_left, len(view))
                if self._forwarding:
                    forwarded += view[:take]
                self._payload_left -= take
                view = view[take:]
                continue
            wanted = 2 if len(self._header) < 2 else self._header_length()
            take = min(wanted - len(self._header), len(view))
            self._header += view[:take]
            view = view[take:]
            if len(self._header) >= 2 and len(self._header) == self._header_length():
                self._start_frame(forwarded)
        return bytes(forwarded)

    def _header_length(self) -> int:
        """Bytes in the current frame's header; needs its first two bytes."""
        length_flag = self._header[1] & 0x7F
        extended = 2 if length_flag == 126 else 8 if length_flag == 127 else 0
        mask = 4 if self._header[1] & 0x80 else 0
        return 2 + extended + mask

    def _start_frame(self, forwarded: bytearray) -> None:
        header = bytes(self._header)
        self._header.clear()
        fin = bool(header[0] & 0x80)
        opcode = header[0] & 0x0F
        length_flag = header[1] & 0x7F
        if length_flag == 126:
            length = int.from_bytes(header[2:4], "big")
        elif length_flag == 127:
            length = int.from_bytes(header[2:10], "big")
        else:
            length = length_flag
        self._payload_left = length
        self._on_frame()
        self._forwarding = self._allowed(fin, opcode, length)
        if self._forwarding:
            forwarded += header

    def _allowed(self, fin: bool, opcode: int, length: int) -> bool:
        if opcode >= FIRST_CONTROL_OPCODE:
            return True
        if self.violated:
            return False
        if opcode in (OPCODE_TEXT, OPCODE_BINARY):
            self._message_bytes = 0
            self._message_is_binary = opcode == OPCODE_BINARY
        self._message_bytes += length
        if self._message_is_binary:
            return self._violate(CLOSE_UNSUPPORTED_DATA, "Binary frames are not supported")
        if length > self._frame_limit:
            return self._violate(CLOSE_MESSAGE_TOO_BIG, f"Frame size exceeds {self._frame_limit} bytes")
        if self._message_bytes > self._message_limit:
            return self._violate(CLOSE_MESSAGE_TOO_BIG, f"Message size exceeds {self._message_limit} bytes")
        if fin:
            self._message_bytes = 0
        return True

    def _violate(self, code: int, reason: str) -> bool:
        self.violated = True
        self._on_violation(code, reason)
        return False


class InspectingProtocol(asyncio.Protocol):
    """Sits between a transport and aiohttp's protocol, passing received bytes through a `FrameInspector`."""

    def __init__(self, inner: asyncio.BaseProtocol, inspector: FrameInspector) -> None:
        self._inner = inner
        self._inspector = inspector

    def data_received(self, data: bytes) -> None:
        """Forward what the inspector lets through."""
        forwarded = self._inspector.feed(data)
        if forwarded:
            self._inner.data_received(forwarded)  # type: ignore[attr-defined]

    def eof_received(self) -> bool | None:
        """Forward the end of the stream."""
        return self._inner.eof_received()  # type: ignore[attr-defined, no-any-return]

    def connection_lost(self, exc: Exception | None) -> None:
        """Forward the loss of the connection."""
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        """Forward flow control."""
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        """Forward flow control."""
        self._inner.resume_writing()


def inspect_frames(transport: Any, inspector: FrameInspector) -> None:
    """Route every byte the transport receives from now on through `inspector`."""
    transport.set_protocol(InspectingProtocol(transport.get_protocol(), inspector))
