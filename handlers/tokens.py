"""Signed connection tokens: who may connect, under which display name, until when.

A token is three dot-separated parts, `v1.<payload>.<signature>`:
- `v1` names the format, so a later format can be told apart instead of misread;
- `payload` is base64url (no padding) of compact JSON `{"exp": <epoch seconds>, "name": "<display name>"}`;
- `signature` is base64url (no padding) of HMAC-SHA256 over the ASCII bytes `v1.<payload>`, keyed with the secret.

Verification checks the shape first, then the signature (constant time, `hmac.compare_digest`) and only then reads
the payload, so nothing an attacker wrote is parsed before it is proven to come from the secret's holder. Every
rejection is an `InvalidTokenError` whose `reason` and `detail` are for logs only: clients learn nothing of why.

Standard library only: the authorizer runs it on Lambda and `python -m client token` mints with it.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import hmac
import json
import re
import time
from dataclasses import dataclass
from typing import Any

# Re-exported (PEP 484 `as` form): the rule lives in `handlers.display_name`, shared with `$connect`.
from handlers.display_name import display_name_problem as display_name_problem  # noqa: PLC0414 (re-export)

VERSION = "v1"
"""The format written by `mint_token` and the only one `verify_token` accepts."""

MIN_SECRET_BYTES = 32
"""HMAC-SHA256 keys shorter than its 32-byte output weaken it; `openssl rand -base64 32` gives 44 characters."""

MAX_TTL_SECONDS = 30 * 24 * 60 * 60
"""Tokens live at most 30 days: there is no revocation list, so a leaked token is only bounded by its expiry."""

MAX_TOKEN_CHARS = 1024
"""Above any valid token (the longest, 32 emoji escaped in JSON, is about 600); longer input is refused unread."""

_BASE64URL = re.compile(r"[A-Za-z0-9_-]+")
_SIGNATURE_BYTES = hashlib.sha256().digest_size
_CLAIM_KEYS = frozenset({"exp", "name"})


class Reason(str, enum.Enum):
    """Why a token was refused; logged by the authorizer, never shown to the client."""

    MALFORMED = "malformed"
    BAD_SIGNATURE = "bad-signature"
    EXPIRED = "expired"


class InvalidTokenError(Exception):
    """A token (or the request carrying it) was refused; `reason` and `detail` are for logs, never for clients."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Claims:
    """What a valid token proves: the display name its holder connects as, and until when (epoch seconds)."""

    name: str
    expires_at: int


def signing_secret(text: str) -> bytes:
    """The HMAC key for a secret as stored in config and SSM: its UTF-8 bytes, at least 32 of them.

    Raises ValueError for a shorter secret, so a weak key fails loudly where it is loaded.
    """
    secret = text.encode("utf-8")
    _check_secret(secret)
    return secret


def mint_token(secret: bytes, name: str, ttl_seconds: int, now: float | None = None) -> str:
    """A token for `name` that expires `ttl_seconds` after `now` (default: the current time).

    Raises ValueError for a short secret, an unacceptable display name or a lifetime outside 1 s to 30 days.
    """
    _check_secret(secret)
    problem = display_name_problem(name)
    if problem is not None:
        raise ValueError(problem)
    if isinstance(ttl_seconds, bool) or not isinstance(ttl_seconds, int):
        raise ValueError(f"the token lifetime must be a whole number of seconds, got {ttl_seconds!r}")
    if not 1 <= ttl_seconds <= MAX_TTL_SECONDS:
        raise ValueError(f"the token lifetime must be 1 to {MAX_TTL_SECONDS} seconds (30 days), got {ttl_seconds}")
    issued = time.time() if now is None else now
    claims = {"exp": int(issued) + ttl_seconds, "name": name}
    payload = _encode(json.dumps(claims, separators=(",", ":"), sort_keys=True).encode("ascii"))
    signed = f"{VERSION}.{payload}"
    return f"{signed}.{_encode(_sign(secret, signed))}"


def verify_token(secret: bytes, token: str, now: float | None = None) -> Claims:
    """The claims of a valid token; InvalidTokenError when it is malformed, forged, tampered with or expired.

    Raises ValueError (not InvalidTokenError) for a short secret: that is a deployment fault, not a bad token.
    """
    _check_secret(secret)
    signed, payload, signature = _split(token)
    expected = _sign(secret, signed)
    # compare_digest takes the same time wherever the first differing byte is, so timing reveals no prefix.
    if not hmac.compare_digest(expected, signature):
        raise InvalidTokenError(Reason.BAD_SIGNATURE, "the signature does not match the payload")
    claims = _parse_claims(payload)
    checked_at = time.time() if now is None else now
    if checked_at >= claims.expires_at:
        raise InvalidTokenError(
            Reason.EXPIRED, f"the token expired at {claims.expires_at}, {int(checked_at - claims.expires_at)} s ago"
        )
    return claims


def _check_secret(secret: bytes) -> None:
    if not isinstance(secret, bytes):
        raise TypeError(f"the signing secret must be bytes, got {type(secret).__name__}")
    if len(secret) < MIN_SECRET_BYTES:
        raise ValueError(
            f"the signing secret must be at least {MIN_SECRET_BYTES} bytes, got {len(secret)} "
            "(generate one with `openssl rand -base64 32`)"
        )


def _sign(secret: bytes, signed: str) -> bytes:
    return hmac.new(secret, signed.encode("ascii"), hashlib.sha256).digest()


def _encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _decode(text: str, part: str) -> bytes:
    """Strict base64url: the URL-safe alphabet, no padding, and the one canonical spelling of the bytes."""
    if not _BASE64URL.fullmatch(text):
        raise InvalidTokenError(Reason.MALFORMED, f"the {part} is not unpadded base64url")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise InvalidTokenError(Reason.MALFORMED, f"the {part} is not valid base64url") from None
    # Unused trailing bits let several spellings decode alike; accepting only the canonical one keeps tokens unique.
    if _encode(raw) != text:
        raise InvalidTokenError(Reason.MALFORMED, f"the {part} is not canonical base64url")
    return raw


def _split(token: object) -> tuple[str, bytes, bytes]:
    """The signed text (`v1.<payload>`), the payload's bytes and the signature's bytes, or InvalidTokenError."""
    if not isinstance(token, str):
        raise InvalidTokenError(Reason.MALFORMED, f"the token is {type(token).__name__}, not text")
    if len(token) > MAX_TOKEN_CHARS:
        raise InvalidTokenError(Reason.MALFORMED, f"the token is {len(token)} characters, over {MAX_TOKEN_CHARS}")
    if not token.isascii():
        raise InvalidTokenError(Reason.MALFORMED, "the token has non-ASCII characters")
    parts = token.split(".")
    if len(parts) != 3:
        raise InvalidTokenError(Reason.MALFORMED, f"the token has {len(parts)} dot-separated parts, not 3")
    version, payload, signature = parts
    if version != VERSION:
        raise InvalidTokenError(Reason.MALFORMED, f"the token's version is not {VERSION}")
    raw_signature = _decode(signature, "signature")
    if len(raw_signature) != _SIGNATURE_BYTES:
        raise InvalidTokenError(
            Reason.MALFORMED, f"the signature is {len(raw_signature)} bytes, not {_SIGNATURE_BYTES}"
        )
    return f"{version}.{payload}", _decode(payload, "payload"), raw_signature


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    if len(set(keys)) != len(keys):
        raise InvalidTokenError(Reason.MALFORMED, "the payload repeats a claim")
    return dict(pairs)


def _reject_constant(constant: str) -> Any:
    raise InvalidTokenError(Reason.MALFORMED, f"the payload contains {constant}, which is not JSON")


def _parse_claims(raw: bytes) -> Claims:
    """Claims from a payload whose signature is already verified (so a failure here means a minting fault)."""
    try:
        claims = json.loads(raw.decode("utf-8"), object_pairs_hook=_reject_duplicates, parse_constant=_reject_constant)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise InvalidTokenError(Reason.MALFORMED, "the payload is not UTF-8 JSON") from None
    if not isinstance(claims, dict) or set(claims) != _CLAIM_KEYS:
        raise InvalidTokenError(Reason.MALFORMED, f"the payload must be an object with exactly {sorted(_CLAIM_KEYS)}")
    expires_at = claims["exp"]
    if isinstance(expires_at, bool) or not isinstance(expires_at, int) or expires_at <= 0:
        raise InvalidTokenError(Reason.MALFORMED, "the expiry is not a positive whole number of epoch seconds")
    problem = display_name_problem(claims["name"])
    if problem is not None:
        raise InvalidTokenError(Reason.MALFORMED, f"the name is unacceptable: {problem}")
    return Claims(name=claims["name"], expires_at=expires_at)
