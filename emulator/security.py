"""What keeps the local cloud to the developer: the callback API's secret, the Host and Origin checks, safe log text.

API Gateway checks none of this (its callback API is IAM-signed and its hosts are its own), but a chat on a
developer's machine can be reached by any web page they open, by DNS rebinding and, off loopback, by the network.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
import socket
import unicodedata
from collections.abc import Collection
from dataclasses import dataclass, field
from urllib.parse import urlsplit

CALLBACK_PREFIX = "@callback"
"""First path segment of the callback API; the run's secret is the second (`/@callback/SECRET/STAGE/@connections`)."""
# Bidirectional-text controls reorder what a terminal shows (U+202E prints the rest backwards).
_BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def new_callback_secret() -> str:
    """A secret for one run: only the workers (through `ENDPOINT_URL`) and the terminal's ready lines know it."""
    return secrets.token_urlsafe(18)


def secret_matches(given: str, secret: str) -> bool:
    """Compare in constant time, so response timing says nothing about the secret."""
    return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), secret.encode("utf-8"))


def is_loopback(host: str) -> bool:
    """`127.0.0.1`, `::1`, `localhost` and the like; `0.0.0.0`, `::` and real interfaces are not."""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _host_name(authority: str) -> str | None:
    """The host part of a `Host` header or an origin's authority (`[::1]:3001` -> `::1`), lower-cased."""
    try:
        return urlsplit(f"//{authority}").hostname
    except ValueError:
        return None


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class RequestGuard:
    """Which `Host` headers and which page origins the emulator answers."""

    bind_host: str
    allowed_hosts: Collection[str] = ()
    """Extra host names (`--allow-host`), beyond IP literals and `localhost`."""
    allowed_origins: Collection[str] = ()
    """Extra page origins allowed to open a WebSocket (`--allow-origin`), beyond the emulator's own page."""
    _machine_names: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Off loopback other machines may name this one; on loopback nobody can, so no name is needed.
        names = set() if is_loopback(self.bind_host) else {socket.gethostname().lower(), socket.getfqdn().lower()}
        object.__setattr__(self, "_machine_names", frozenset(names))

    def host_allowed(self, host_header: str | None) -> bool:
        """A DNS-rebinding page sends its own domain name as `Host`; an IP literal or `localhost` cannot be rebound."""
        if host_header is None:
            return True  # HTTP/1.0 clients send none; a browser always does
        host = _host_name(host_header)
        if host is None:
            return False
        allowed = {name.lower() for name in self.allowed_hosts} | self._machine_names
        return _is_ip_literal(host) or host == "localhost" or host.endswith(".localhost") or host in allowed

    def origin_allowed(self, origin: str | None, host_header: str | None) -> bool:
        """No `Origin` (not a browser), the emulator's own page (same host and port), or one allowed by flag."""
        if origin is None:
            return True
        if origin in self.allowed_origins:
            return True
        parts = urlsplit(origin)
        return parts.scheme in ("http", "https") and host_header is not None and parts.netloc == host_header


def printable(text: str) -> str:
    """`text` safe for one terminal line: control characters, line separators and bidi controls escaped (`\\n`).

    Tabs stay: they cannot start a line, and Lambda's own log format uses them.
    """
    if text.isprintable():
        return text
    return "".join(_escape(character) for character in text)


def _escape(character: str) -> str:
    if character == "\t":
        return character
    if character in _BIDI_CONTROLS or unicodedata.category(character) in ("Cc", "Zl", "Zp", "Cs"):
        return character.encode("unicode_escape", "backslashreplace").decode("ascii")
    return character
