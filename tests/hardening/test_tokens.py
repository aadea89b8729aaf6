"""The signed-token format: round trip, tampering with each part, expiry, malformed input, constant-time compare."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest

from handlers import tokens

SECRET = b"s" * 32
OTHER_SECRET = b"o" * 32
NOW = 1_795_653_305.5


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _signed_by(secret: bytes, payload: bytes, version: str = tokens.VERSION) -> str:
    """A token with an arbitrary payload but a genuine signature: what a buggy minter holding the secret could make."""
    signed = f"{version}.{_b64(payload)}"
    return f"{signed}.{_b64(hmac.new(secret, signed.encode('ascii'), hashlib.sha256).digest())}"


def _rejection(token: object, now: float = NOW, secret: bytes = SECRET) -> tokens.InvalidTokenError:
    with pytest.raises(tokens.InvalidTokenError) as caught:
        tokens.verify_token(secret, token, now=now)  # type: ignore[arg-type]
    return caught.value


def test_round_trip_carries_name_and_expiry() -> None:
    token = tokens.mint_token(SECRET, "alice", 3600, now=NOW)
    claims = tokens.verify_token(SECRET, token, now=NOW)
    assert claims == tokens.Claims(name="alice", expires_at=int(NOW) + 3600), f"round trip changed the claims: {claims}"


def test_token_format_is_version_payload_signature() -> None:
    token = tokens.mint_token(SECRET, "Zoë", 60, now=NOW)
    version, payload, signature = token.split(".")
    assert version == "v1", f"token version is {version!r}"
    decoded = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert decoded == {"exp": int(NOW) + 60, "name": "Zoë"}, f"payload claims are {decoded}"
    assert "=" not in token, "token contains base64 padding, which a query string would have to escape"
    expected = hmac.new(SECRET, f"{version}.{payload}".encode("ascii"), hashlib.sha256).digest()
    assert signature == _b64(expected), "signature is not HMAC-SHA256 over 'v1.<payload>'"


def test_verify_with_the_current_time_by_default() -> None:
    fresh = tokens.mint_token(SECRET, "alice", 3600)
    assert tokens.verify_token(SECRET, fresh).name == "alice", "a fresh token minted now was refused"
    stale = tokens.mint_token(SECRET, "alice", 1, now=NOW - 86_400)
    with pytest.raises(tokens.InvalidTokenError):
        tokens.verify_token(SECRET, stale)


def test_expiry_boundary() -> None:
    token = tokens.mint_token(SECRET, "alice", 10, now=NOW)
    expires_at = int(NOW) + 10
    assert tokens.verify_token(SECRET, token, now=expires_at - 0.001).expires_at == expires_at
    assert _rejection(token, now=expires_at).reason is tokens.Reason.EXPIRED, "token still valid at its expiry"
    assert _rejection(token, now=expires_at + 3600).reason is tokens.Reason.EXPIRED, "expired token accepted"


def test_wrong_secret_is_a_bad_signature() -> None:
    forged = tokens.mint_token(OTHER_SECRET, "mallory", 3600, now=NOW)
    assert _rejection(forged).reason is tokens.Reason.BAD_SIGNATURE, "token signed with another secret accepted"


def test_tampered_version_is_refused() -> None:
    _version, payload, signature = tokens.mint_token(SECRET, "alice", 3600, now=NOW).split(".")
    for other in ("v2", "V1", "", "v1 "):
        rejection = _rejection(f"{other}.{payload}.{signature}")
        assert rejection.reason is tokens.Reason.MALFORMED, f"version {other!r} was not refused as malformed"


def test_tampered_payload_is_a_bad_signature() -> None:
    version, payload, signature = tokens.mint_token(SECRET, "alice", 3600, now=NOW).split(".")
    raised_name = _b64(json.dumps({"exp": int(NOW) + 3600, "name": "admin"}, separators=(",", ":")).encode())
    extended = _b64(json.dumps({"exp": int(NOW) + 10**8, "name": "alice"}, separators=(",", ":")).encode())
    for tampered in (raised_name, extended, payload[:-2] + ("AA" if payload[-2:] != "AA" else "BA")):
        rejection = _rejection(f"{version}.{tampered}.{signature}")
        assert rejection.reason in (tokens.Reason.BAD_SIGNATURE, tokens.Reason.MALFORMED), (
            f"tampered payload {tampered!r} gave {rejection.reason}"
        )
    assert _rejection(f"{version}.{raised_name}.{signature}").reason is tokens.Reason.BAD_SIGNATURE


def test_tampered_signature_is_a_bad_signature() -> None:
    version, payload, signature = tokens.mint_token(SECRET, "alice", 3600, now=NOW).split(".")
    other_signature = tokens.mint_token(SECRET, "bob", 3600, now=NOW).split(".")[2]
    flipped = ("B" if signature[0] != "B" else "C") + signature[1:]
    for tampered in (other_signature, flipped):
        rejection = _rejection(f"{version}.{payload}.{tampered}")
        assert rejection.reason is tokens.Reason.BAD_SIGNATURE, f"signature {tampered!r} gave {rejection.reason}"


def test_verification_uses_constant_time_compare(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []

    def refusing_compare(left: bytes, right: bytes) -> bool:
        calls.append((left, right))
        return False

    monkeypatch.setattr(hmac, "compare_digest", refusing_compare)
    token = tokens.mint_token(SECRET, "alice", 3600, now=NOW)
    assert _rejection(token).reason is tokens.Reason.BAD_SIGNATURE, (
        "verify_token accepted a token although hmac.compare_digest said the signatures differ"
    )
    assert len(calls) == 1 and all(isinstance(side, bytes) and len(side) == 32 for side in calls[0]), (
        f"hmac.compare_digest was not given the two 32-byte digests: {calls}"
    )


SIGNATURE = "A" * 43
"""Decodes canonically to 32 bytes, so the cases below fail on the part they are about, not on the signature."""


@pytest.mark.parametrize(
    ("token", "detail"),
    [
        ("", "parts"),
        ("v1", "parts"),
        ("v1.abc", "parts"),
        ("v1.a.b.c", "parts"),
        (f"v1..{SIGNATURE}", "payload"),
        ("v1.eyJ9.", "signature"),
        ("x" * (tokens.MAX_TOKEN_CHARS + 1), "characters"),
        (f"v1.ZXhw.{SIGNATURE[:-1]}é", "ASCII"),
        ("v1.eyJleHAiOjF9.AAAA", "bytes"),
        (f"v1.e+J9.{SIGNATURE}", "payload"),
        (f"v1.eyJ9===.{SIGNATURE}", "payload"),
        (f"v1.eyJ9\n.{SIGNATURE}", "payload"),
        (f"v1.eyJ9.{SIGNATURE}=", "signature"),
        (f"v1.e.{SIGNATURE}", "payload"),
    ],
    ids=[
        "empty",
        "one-part",
        "two-parts",
        "four-parts",
        "empty-payload",
        "empty-signature",
        "too-long",
        "non-ascii",
        "short-signature",
        "standard-alphabet",
        "padded-payload",
        "newline",
        "padded-signature",
        "impossible-length",
    ],
)
def test_malformed_tokens_are_refused(token: str, detail: str) -> None:
    rejection = _rejection(token)
    assert rejection.reason is tokens.Reason.MALFORMED, f"{token[:40]!r} was not refused as malformed"
    assert detail in rejection.detail, f"{token[:40]!r} was refused for another reason: {rejection.detail}"


@pytest.mark.parametrize("token", [None, 42, b"v1.a.b"], ids=["none", "int", "bytes"])
def test_non_text_tokens_are_refused(token: object) -> None:
    assert _rejection(token).reason is tokens.Reason.MALFORMED, f"{token!r} was not refused as malformed"


def test_non_canonical_base64_is_refused() -> None:
    version, payload, signature = tokens.mint_token(SECRET, "alice", 3600, now=NOW).split(".")
    # A 32-byte signature is 43 characters whose last one carries 2 unused bits; setting them decodes alike.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(signature[-1])
    sibling = alphabet[last ^ 1]
    variant = f"{version}.{payload}.{signature[:-1]}{sibling}"
    assert base64.urlsafe_b64decode(variant.split(".")[2] + "=") == base64.urlsafe_b64decode(signature + "="), (
        "test premise: the variant must decode to the same bytes"
    )
    assert _rejection(variant).reason is tokens.Reason.MALFORMED, "a second spelling of the signature was accepted"


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b"\xff\xfe",
        b"[]",
        b'{"exp": 1900000000}',
        b'{"exp": 1900000000, "name": "alice", "admin": true}',
        b'{"exp": 1900000000, "name": "alice", "name": "root"}',
        b'{"exp": true, "name": "alice"}',
        b'{"exp": "1900000000", "name": "alice"}',
        b'{"exp": 1900000000.5, "name": "alice"}',
        b'{"exp": NaN, "name": "alice"}',
        b'{"exp": -1, "name": "alice"}',
        b'{"exp": 1900000000, "name": ""}',
        b'{"exp": 1900000000, "name": "' + b"a" * 33 + b'"}',
        b'{"exp": 1900000000, "name": "bell\\u0007"}',
        b'{"exp": 1900000000, "name": 7}',
    ],
    ids=[
        "not-json",
        "not-utf8",
        "array",
        "no-name",
        "extra-claim",
        "duplicate-claim",
        "bool-expiry",
        "text-expiry",
        "fractional-expiry",
        "nan-expiry",
        "negative-expiry",
        "empty-name",
        "long-name",
        "control-character",
        "numeric-name",
    ],
)
def test_signed_but_malformed_payloads_are_refused(payload: bytes) -> None:
    rejection = _rejection(_signed_by(SECRET, payload))
    assert rejection.reason is tokens.Reason.MALFORMED, f"payload {payload!r} gave {rejection.reason}"


def test_rejection_detail_never_repeats_the_token() -> None:
    token = tokens.mint_token(OTHER_SECRET, "alice", 3600, now=NOW)
    rejection = _rejection(token)
    for part in token.split(".")[1:]:
        assert part not in str(rejection), "the rejection message repeats part of the token"


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("a" * 33, "at most 32"),
        ("tab\there", "printable"),
        ("nul\x00", "printable"),
        (" alice", "whitespace"),
        ("alice ", "whitespace"),
        (7, "text"),
    ],
)
def test_display_name_rules(name: object, problem: str) -> None:
    found = tokens.display_name_problem(name)
    assert found is not None and problem in found, f"name {name!r}: expected a problem about {problem!r}, got {found}"
    with pytest.raises(ValueError, match=problem):
        tokens.mint_token(SECRET, name, 60, now=NOW)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["alice", "a" * 32, "Zoë 🙂", "bob smith", "O'Brien <x>", "🙂" * 32])
def test_acceptable_display_names(name: str) -> None:
    assert tokens.display_name_problem(name) is None, f"name {name!r} was refused"
    token = tokens.mint_token(SECRET, name, tokens.MAX_TTL_SECONDS, now=NOW)
    assert len(token) <= tokens.MAX_TOKEN_CHARS, f"a valid token for {name!r} is {len(token)} characters, over the cap"
    assert tokens.verify_token(SECRET, token, now=NOW).name == name, f"name {name!r} did not survive the round trip"


@pytest.mark.parametrize("ttl", [0, -1, tokens.MAX_TTL_SECONDS + 1, True, 1.5, "60"])
def test_mint_refuses_lifetimes_out_of_range(ttl: object) -> None:
    with pytest.raises(ValueError, match="lifetime"):
        tokens.mint_token(SECRET, "alice", ttl, now=NOW)  # type: ignore[arg-type]


def test_short_secret_is_a_deployment_fault_not_a_bad_token() -> None:
    token = tokens.mint_token(SECRET, "alice", 60, now=NOW)
    with pytest.raises(ValueError, match="at least 32 bytes"):
        tokens.mint_token(b"short", "alice", 60, now=NOW)
    with pytest.raises(ValueError, match="at least 32 bytes") as caught:
        tokens.verify_token(b"short", token, now=NOW)
    assert not isinstance(caught.value, tokens.InvalidTokenError), "a short secret was reported as a bad token"
    with pytest.raises(TypeError, match="bytes"):
        tokens.verify_token("s" * 32, token, now=NOW)  # type: ignore[arg-type]


def test_signing_secret_is_the_utf8_bytes_of_the_config_value() -> None:
    text = "Zm9vYmFyYmF6cXV4cXV1eGNvcmdlZ3JhdWx0Z2FycGx5Cg=="
    assert tokens.signing_secret(text) == text.encode("utf-8"), "secret text was transformed before use"
    with pytest.raises(ValueError, match="at least 32 bytes"):
        tokens.signing_secret("too short")
