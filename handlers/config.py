"""The functions' configuration: every environment variable a handler reads is read here, and nowhere else.

Values are read when asked for, not at import, so a misconfigured function fails with a message naming the variable
(logged by the handler, answered with 500) instead of failing to import.
"""

from __future__ import annotations

import os

from handlers import environment

DEFAULT_MAX_MESSAGE_BYTES = 16 * 1024
"""The default of the stack setting `maxMessageBytes` (app/settings.py; a test keeps them equal)."""


class ConfigurationError(RuntimeError):
    """An environment variable the function needs is missing or malformed; the message names it."""


def table_name() -> str:
    """The connections table (`TABLE_NAME`)."""
    return _required(environment.TABLE_NAME)


def endpoint_url() -> str:
    """Base URL of the callback (`@connections`) API, stage included (`ENDPOINT_URL`)."""
    return _required(environment.ENDPOINT_URL).rstrip("/")


def max_message_bytes() -> int:
    """The largest chat message accepted, in UTF-8 bytes (`MAX_MESSAGE_BYTES`, default 16384)."""
    text = os.environ.get(environment.MAX_MESSAGE_BYTES, "").strip()
    if not text:
        return DEFAULT_MAX_MESSAGE_BYTES
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise ConfigurationError(f"{environment.MAX_MESSAGE_BYTES} must be a positive whole number, got {text!r}")
    return int(text)


def _required(name: str) -> str:
    value = os.environ.get(name, "").strip()
    if not value:
        raise ConfigurationError(f"{name} is not set; the stack (or the emulator) sets it for this function")
    return value
