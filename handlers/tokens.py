"""Standard JSON Web Tokens on `$connect`: who may connect, as whom, until when.

PyJWT verifies (never hand-written crypto), against a shared HS256 secret or an OIDC issuer's cached keys (failing
closed); docs/hardening.md lists the checks. A refusal's `reason` and `detail` are for logs only.
"""

from __future__ import annotations

import enum
import json
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jwt

# Re-exported: the rule lives in `handlers.display_name`, shared with `$connect`.
from handlers.display_name import display_name_problem as display_name_problem  # noqa: PLC0414 (re-export)

SECRET_ALGORITHMS = ("HS256",)
"""The shared-secret mode's allow-list."""

ISSUER_ALGORITHMS = ("RS256", "ES256")
"""The issuer mode's allow-list: public-key algorithms only, so a public key can never serve as an HMAC secret."""

MIN_SECRET_BYTES = 32
"""HMAC-SHA256 keys shorter than its 32-byte output weaken it; `openssl rand -base64 32` gives 44 characters."""

MAX_TTL_SECONDS = 30 * 24 * 60 * 60
"""Tokens minted here live at most 30 days: there is no revocation list, so a leaked token is bounded by its expiry."""

MAX_TOKEN_CHARS = 8192
"""Identity providers' tokens with group claims reach a few KB; anything longer is refused unread."""

MAX_SUBJECT_CHARS = 256
"""`sub` becomes the principal id; identity providers' subjects are far shorter."""

LEEWAY_SECONDS = 30
"""Clock skew tolerated on `exp` and `nbf` between the minting machine and Lambda."""

DEFAULT_NAME_CLAIMS = ("name", "preferred_username", "email")
"""Where the display name comes from when the stack sets no `jwtNameClaim`: the first of these the token has."""

REFETCH_SECONDS = 60.0
"""At most one JWKS request per container per minute on unknown `kid`s, so garbage tokens cannot hammer the issuer."""

KEYS_MAX_AGE_SECONDS = 60 * 60.0
"""Cached keys are refreshed after an hour, so a key the issuer dropped stops verifying even if no new kid shows up."""

FETCH_TIMEOUT_SECONDS = 3.0
"""An issuer that does not answer in 3 s is treated as unreachable (the handshake waits on the authorizer)."""

MAX_DOCUMENT_BYTES = 512 * 1024


class Reason(str, enum.Enum):
    """Why a token was refused; logged by the authorizer, never shown to the client."""

    MALFORMED = "malformed"
    OVERSIZED = "oversized"
    ALG_NONE = "alg-none"
    ALGORITHM_NOT_ALLOWED = "algorithm-not-allowed"
    MISSING_KID = "missing-kid"
    UNKNOWN_KID = "unknown-kid"
    JWKS_UNAVAILABLE = "jwks-unavailable"
    BAD_SIGNATURE = "bad-signature"
    EXPIRED = "expired"
    NOT_YET_VALID = "not-yet-valid"
    WRONG_ISSUER = "wrong-issuer"
    WRONG_AUDIENCE = "wrong-audience"
    MISSING_CLAIM = "missing-claim"
    BAD_NAME = "bad-name"


class InvalidTokenError(Exception):
    """A token (or the request carrying it) was refused; `reason` and `detail` are for logs, never for clients."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Claims:
    """What a valid token proves: who (`sub`), under which display name, until when (epoch seconds)."""

    subject: str
    name: str
    expires_at: int


@dataclass(frozen=True)
class Expectations:
    """What the claims must say: the issuer and audience (None: not checked) and where the name comes from."""

    issuer: str | None = None
    audience: str | None = None
    name_claims: tuple[str, ...] = DEFAULT_NAME_CLAIMS


def signing_secret(text: str) -> bytes:
    """The HMAC key for a secret as stored in config and SSM: its UTF-8 bytes, at least 32 of them.

    Raises ValueError for a shorter secret, so a weak key fails loudly where it is loaded.
    """
    secret = text.encode("utf-8")
    _check_secret(secret)
    return secret


def mint_token(
    key: Any,
    *,
    name: str,
    subject: str | None = None,
    ttl_seconds: int,
    algorithm: str = "HS256",
    issuer: str | None = None,
    audience: str | None = None,
    kid: str | None = None,
    now: float | None = None,
) -> str:
    """A JWT for `name` (subject `subject`, default the name) expiring `ttl_seconds` after `now`.

    `key` is the shared secret (HS256) or a private key (RS256, ES256); ValueError for what no stack would accept.
    """
    if algorithm in SECRET_ALGORITHMS:
        _check_secret(key)
    problem = display_name_problem(name)
    if problem is not None:
        raise ValueError(problem)
    if isinstance(ttl_seconds, bool) or not isinstance(ttl_seconds, int):
        raise ValueError(f"the token lifetime must be a whole number of seconds, got {ttl_seconds!r}")
    if not 1 <= ttl_seconds <= MAX_TTL_SECONDS:
        raise ValueError(f"the token lifetime must be 1 to {MAX_TTL_SECONDS} seconds (30 days), got {ttl_seconds}")
    issued = int(time.time() if now is None else now)
    claims: dict[str, Any] = {"sub": subject or name, "name": name, "iat": issued, "exp": issued + ttl_seconds}
    if issuer is not None:
        claims["iss"] = issuer
    if audience is not None:
        claims["aud"] = audience
    return jwt.encode(claims, key, algorithm=algorithm, headers={"kid": kid} if kid else None)


def verify_with_secret(secret: bytes, token: object, expected: Expectations) -> Claims:
    """The claims of an HS256 token signed with `secret`; InvalidTokenError for any refusal.

    Raises ValueError (not InvalidTokenError) for a short secret: that is a deployment fault, not a bad token.
    """
    _check_secret(secret)
    return _verify(token, SECRET_ALGORITHMS, lambda header: secret, expected)


def verify_with_keys(keys: KeySet, token: object, expected: Expectations) -> Claims:
    """The claims of an RS256 or ES256 token signed by one of the issuer's keys; InvalidTokenError otherwise."""
    return _verify(token, ISSUER_ALGORITHMS, keys.key_for, expected)


def _verify(
    token: object, algorithms: Sequence[str], key_for: Callable[[Mapping[str, Any]], Any], expected: Expectations
) -> Claims:
    if not isinstance(token, str):
        raise InvalidTokenError(Reason.MALFORMED, f"the token is {type(token).__name__}, not text")
    if len(token) > MAX_TOKEN_CHARS:
        raise InvalidTokenError(Reason.OVERSIZED, f"the token is {len(token)} characters, over {MAX_TOKEN_CHARS}")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError as error:
        raise InvalidTokenError(Reason.MALFORMED, f"the header cannot be read: {error}") from None
    algorithm = header.get("alg")
    if not isinstance(algorithm, str) or algorithm.lower() == "none":
        raise InvalidTokenError(Reason.ALG_NONE, f"the header's alg is {algorithm!r}: unsigned tokens are refused")
    if algorithm not in algorithms:
        raise InvalidTokenError(
            Reason.ALGORITHM_NOT_ALLOWED, f"alg {algorithm} is not one of {', '.join(algorithms)} in this mode"
        )
    required = ["exp", "sub"] + (["iss"] if expected.issuer else []) + (["aud"] if expected.audience else [])
    try:
        claims = jwt.decode(
            token,
            key_for(header),
            algorithms=[algorithm],
            audience=expected.audience,
            issuer=expected.issuer,
            leeway=LEEWAY_SECONDS,
            options={"require": required, "verify_aud": expected.audience is not None},
        )
    except jwt.InvalidTokenError as error:
        raise _refusal(error) from None
    return _claims(claims, expected)


_REFUSALS: tuple[tuple[type[jwt.InvalidTokenError], Reason], ...] = (
    (jwt.ExpiredSignatureError, Reason.EXPIRED),
    (jwt.ImmatureSignatureError, Reason.NOT_YET_VALID),
    (jwt.InvalidIssuerError, Reason.WRONG_ISSUER),
    (jwt.InvalidAudienceError, Reason.WRONG_AUDIENCE),
    (jwt.MissingRequiredClaimError, Reason.MISSING_CLAIM),
    (jwt.InvalidSignatureError, Reason.BAD_SIGNATURE),
    (jwt.InvalidAlgorithmError, Reason.ALGORITHM_NOT_ALLOWED),
)


def _refusal(error: jwt.InvalidTokenError) -> InvalidTokenError:
    """PyJWT's exception as a logged reason (subclasses first: a bad signature is also a DecodeError)."""
    for kind, reason in _REFUSALS:
        if isinstance(error, kind):
            return InvalidTokenError(reason, str(error))
    return InvalidTokenError(Reason.MALFORMED, f"{type(error).__name__}: {error}")


def _claims(claims: Mapping[str, Any], expected: Expectations) -> Claims:
    """Principal and display name from claims whose signature and times are already verified."""
    subject = claims["sub"]
    if not isinstance(subject, str) or not subject.strip() or len(subject) > MAX_SUBJECT_CHARS:
        raise InvalidTokenError(Reason.MALFORMED, f"sub must be 1 to {MAX_SUBJECT_CHARS} characters of text")
    for claim in expected.name_claims:
        if claim in claims:
            problem = display_name_problem(claims[claim])
            if problem is not None:
                raise InvalidTokenError(Reason.BAD_NAME, f"the {claim} claim is unacceptable: {problem}")
            return Claims(subject=subject, name=claims[claim], expires_at=int(claims["exp"]))
    # Without a name the page would fall back to `?name=`, letting a signed-in user pose as anyone.
    raise InvalidTokenError(Reason.MISSING_CLAIM, f"the token has none of the name claims {list(expected.name_claims)}")


def _check_secret(secret: object) -> None:
    if not isinstance(secret, bytes):
        raise TypeError(f"the signing secret must be bytes, got {type(secret).__name__}")
    if len(secret) < MIN_SECRET_BYTES:
        raise ValueError(
            f"the signing secret must be at least {MIN_SECRET_BYTES} bytes, got {len(secret)} "
            "(generate one with `openssl rand -base64 32`)"
        )


def http_get(url: str) -> bytes:
    """The body of a 200 answer to GET `url` (at most 512 KB); OSError (urllib's errors) when there is none."""
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    with urllib.request.urlopen(request, timeout=FETCH_TIMEOUT_SECONDS) as response:
        body: bytes = response.read(MAX_DOCUMENT_BYTES + 1)
    if len(body) > MAX_DOCUMENT_BYTES:
        raise OSError(f"{url} answered more than {MAX_DOCUMENT_BYTES} bytes")
    return body


class KeySet:
    """An issuer's signing keys by `kid`, fetched from its JWKS (found by OIDC discovery unless `jwks_url` is given).

    Replaced wholesale on an unknown `kid` or with age, so dropped keys stop verifying; no keys, no entry.
    """

    def __init__(
        self,
        issuer: str,
        jwks_url: str | None = None,
        fetch: Callable[[str], bytes] = http_get,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.issuer = issuer
        self._jwks_url = jwks_url
        self._fetch = fetch
        self._clock = clock
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at: float | None = None
        self._attempted_at: float | None = None
        self._lock = threading.Lock()

    def key_for(self, header: Mapping[str, Any]) -> jwt.PyJWK:
        """The key that must have signed a token with this header; InvalidTokenError when there is none."""
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise InvalidTokenError(Reason.MISSING_KID, "the header names no kid, and the issuer's keys are by kid")
        with self._lock:
            now = self._clock()
            if self._fetched_at is None or now - self._fetched_at >= KEYS_MAX_AGE_SECONDS:
                if not self._may_refetch(now):
                    raise InvalidTokenError(Reason.JWKS_UNAVAILABLE, "the last fetch of the issuer's keys failed")
                # Fail closed: when the refresh fails, keys past their age are dropped, not trusted.
                self._keys, self._fetched_at = {}, None
                self._refresh(now)
            elif kid not in self._keys and self._may_refetch(now):
                # A failure keeps the current keys: an unknown kid must not lock out everyone else.
                self._refresh(now)
            key = self._keys.get(kid)
        if key is None:
            raise InvalidTokenError(Reason.UNKNOWN_KID, f"kid {kid!r} is not among the issuer's keys")
        if key.algorithm_name != header.get("alg"):
            detail = f"kid {kid!r} is a {key.algorithm_name} key, the token says {header['alg']}"
            raise InvalidTokenError(Reason.ALGORITHM_NOT_ALLOWED, detail)
        return key

    def _may_refetch(self, now: float) -> bool:
        return self._attempted_at is None or now - self._attempted_at >= REFETCH_SECONDS

    def _refresh(self, now: float) -> None:
        """Replace the keys with the issuer's current set (old kids are dropped); JWKS_UNAVAILABLE on failure."""
        self._attempted_at = now
        try:
            document = self._document(self._jwks_url or self._discover())
            published = jwt.PyJWKSet.from_dict(document).keys
            keys = {key.key_id: key for key in published if key.key_id and key.public_key_use in (None, "sig")}
        except (OSError, ValueError, jwt.PyJWKSetError) as error:
            raise InvalidTokenError(Reason.JWKS_UNAVAILABLE, f"the issuer's keys cannot be fetched: {error}") from None
        self._keys, self._fetched_at = keys, now

    def _discover(self) -> str:
        """`jwks_uri` from `{issuer}/.well-known/openid-configuration`, which must name the same issuer."""
        configuration = self._document(f"{self.issuer.rstrip('/')}/.well-known/openid-configuration")
        if configuration.get("issuer") != self.issuer:
            raise ValueError(f"the discovery document names issuer {configuration.get('issuer')!r}")
        jwks_uri = configuration.get("jwks_uri")
        if not isinstance(jwks_uri, str) or not jwks_uri:
            raise ValueError("the discovery document has no jwks_uri")
        self._jwks_url = jwks_uri
        return jwks_uri

    def _document(self, url: str) -> dict[str, Any]:
        document = json.loads(self._fetch(url))
        if not isinstance(document, dict):
            raise ValueError(f"{url} did not answer a JSON object")
        return document
