"""The functions' configuration: every environment variable a handler reads is read here, and nowhere else.

Read when asked for, not at import, so a misconfigured function answers 500 naming the variable instead of failing.
"""

from __future__ import annotations

import os

from handlers import environment

DEFAULT_MAX_MESSAGE_BYTES = 16 * 1024
"""The default of the stack setting `maxMessageBytes` (app/settings.py; a test keeps them equal)."""
DEFAULT_BROADCAST_MAX_POSTS_PER_SECOND = 9000
"""The default of `broadcastMaxPostsPerSecond`: below API Gateway's account quota, leaving room for inbound traffic."""
RUNTIME_FUNCTION_NAME = "AWS_LAMBDA_FUNCTION_NAME"
"""Set by Lambda's runtime (and the emulator), not by the stack: the function's own name."""
DEFAULT_BROADCAST_SHARD_SIZE = 5000
"""The default of `broadcastShardSize`."""
DEFAULT_MESSAGE_RATE_PER_SECOND = 5.0
"""The default of `messageRatePerSecond`."""
DEFAULT_MESSAGE_BURST = 10
"""The default of `messageBurst`."""
DEFAULT_MAX_ROOMS = 20
"""The default of `maxRoomsPerConnection`."""
DEFAULT_HISTORY_LIMIT = 50
"""The default of `historyLimit`."""
DEFAULT_HISTORY_RETENTION_DAYS = 7
"""The default of `historyRetentionDays`."""
DEFAULT_PRESENCE_MAX_MEMBERS = 100
"""The default of `presenceMaxMembers`."""


class ConfigurationError(RuntimeError):
    """An environment variable the function needs is missing or malformed; the message names it."""


def table_name() -> str:
    """The connections table (`TABLE_NAME`)."""
    return _required(environment.TABLE_NAME)


def rooms_table_name() -> str:
    """The rooms table (`ROOMS_TABLE_NAME`)."""
    return _required(environment.ROOMS_TABLE_NAME)


def history_table_name() -> str:
    """The history table (`HISTORY_TABLE_NAME`)."""
    return _required(environment.HISTORY_TABLE_NAME)


def max_rooms() -> int:
    """Rooms one connection may be in (`MAX_ROOMS`, default 20)."""
    return _positive_int(environment.MAX_ROOMS, DEFAULT_MAX_ROOMS)


def history_limit() -> int:
    """Messages per history answer (`HISTORY_LIMIT`, default 50)."""
    return _positive_int(environment.HISTORY_LIMIT, DEFAULT_HISTORY_LIMIT)


def history_retention_days() -> int:
    """Days history is kept (`HISTORY_RETENTION_DAYS`, default 7)."""
    return _positive_int(environment.HISTORY_RETENTION_DAYS, DEFAULT_HISTORY_RETENTION_DAYS)


def presence_max_members() -> int:
    """The largest room whose joins and leaves are announced (`PRESENCE_MAX_MEMBERS`, default 100; 0: none is)."""
    text = os.environ.get(environment.PRESENCE_MAX_MEMBERS, "").strip()
    if not text:
        return DEFAULT_PRESENCE_MAX_MEMBERS
    if not (text.isascii() and text.isdigit()):
        raise ConfigurationError(f"{environment.PRESENCE_MAX_MEMBERS} must be a whole number, 0 or more, got {text!r}")
    return int(text)


def endpoint_url() -> str:
    """Base URL of the callback (`@connections`) API, stage included (`ENDPOINT_URL`)."""
    return _required(environment.ENDPOINT_URL).rstrip("/")


def max_message_bytes() -> int:
    """The largest chat message accepted, in UTF-8 bytes (`MAX_MESSAGE_BYTES`, default 16384)."""
    return _positive_int(environment.MAX_MESSAGE_BYTES, DEFAULT_MAX_MESSAGE_BYTES)


def broadcast_max_posts_per_second() -> int:
    """The most posts per second one broadcast may make (`BROADCAST_MAX_POSTS_PER_SECOND`)."""
    return _positive_int(environment.BROADCAST_MAX_POSTS_PER_SECOND, DEFAULT_BROADCAST_MAX_POSTS_PER_SECOND)


def broadcast_shard_size() -> int:
    """Members above which one broadcast is split across invocations (`BROADCAST_SHARD_SIZE`)."""
    return _positive_int(environment.BROADCAST_SHARD_SIZE, DEFAULT_BROADCAST_SHARD_SIZE)


def function_name() -> str | None:
    """The function's own name (`AWS_LAMBDA_FUNCTION_NAME`, set by Lambda), or None outside Lambda."""
    return os.environ.get(RUNTIME_FUNCTION_NAME, "").strip() or None


def message_rate_per_second() -> float:
    """Messages per second one connection may send, sustained (`MESSAGE_RATE_PER_SECOND`)."""
    text = os.environ.get(environment.MESSAGE_RATE_PER_SECOND, "").strip()
    if not text:
        return DEFAULT_MESSAGE_RATE_PER_SECOND
    try:
        rate = float(text)
    except ValueError:
        rate = 0.0
    if not 0 < rate < float("inf"):
        raise ConfigurationError(f"{environment.MESSAGE_RATE_PER_SECOND} must be a positive number, got {text!r}")
    return rate


def message_burst() -> int:
    """Messages one connection may send at once after a pause (`MESSAGE_BURST`)."""
    return _positive_int(environment.MESSAGE_BURST, DEFAULT_MESSAGE_BURST)


def _positive_int(name: str, default: int) -> int:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise ConfigurationError(f"{name} must be a positive whole number, got {text!r}")
    return int(text)


def _required(name: str) -> str:
    value = os.environ.get(name, "").strip()
    if not value:
        raise ConfigurationError(f"{name} is not set; the stack (or the emulator) sets it for this function")
    return value
