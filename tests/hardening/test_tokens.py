"""JWT verification in both modes: every refusal, clock skew, and the issuer's key cache (rotation, outages, limits)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from emulator.issuer import JWKS_PATH, LocalIssuer, SigningKey
from handlers import tokens

SECRET = b"s" * 32
OTHER_SECRET = b"o" * 32
ISSUER = "https://issuer.example.com/"
AUDIENCE = "chat-app"
JWKS_URL = ISSUER + "keys"
DISCOVERY_URL = ISSUER + ".well-known/openid-configuration"
EXPECT = tokens.Expectations(issuer=ISSUER, audience=AUDIENCE)
RSA_KEY = SigningKey.generate("RS256", kid="rsa-1")
EC_KEY = SigningKey.generate("ES256", kid="ec-1")


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {"iss": ISSUER, "aud": AUDIENCE, "sub": "user-42", "name": "alice", "exp": now + 600}
    claims.update(overrides)
    return {key: value for key, value in claims.items() if value is not None}


def _signed(key: SigningKey, headers: dict[str, Any] | None = None, **claims: Any) -> str:
    return jwt.encode(
        _claims(**claims), key.private_key, algorithm=key.algorithm, headers={"kid": key.kid, **(headers or {})}
    )


class FakeProvider:
    """An identity provider's documents by URL, a switch to take it down, and a count of requests."""

    def __init__(self, *keys: SigningKey) -> None:
        self.keys = list(keys)
        self.down = False
        self.fetches: list[str] = []

    def fetch(self, url: str) -> bytes:
        self.fetches.append(url)
        if self.down:
            raise OSError("connection refused")
        documents = {
            DISCOVERY_URL: {"issuer": ISSUER, "jwks_uri": JWKS_URL},
            JWKS_URL: {"keys": [key.public_jwk for key in self.keys]},
        }
        if url not in documents:
            raise OSError(f"404 for {url}")
        return json.dumps(documents[url]).encode()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _key_set(provider: FakeProvider, clock: Clock | None = None, jwks_url: str | None = JWKS_URL) -> tokens.KeySet:
    return tokens.KeySet(ISSUER, jwks_url, fetch=provider.fetch, clock=clock or Clock())


def _refusal(verify: Callable[[], object]) -> tokens.Reason:
    with pytest.raises(tokens.InvalidTokenError) as caught:
        verify()
    return caught.value.reason


# --- shared secret (HS256) -------------------------------------------------------------------------------------------


def test_secret_round_trip_gives_subject_name_and_expiry() -> None:
    token = tokens.mint_token(SECRET, name="alice", subject="u-1", ttl_seconds=3600, now=time.time())
    claims = tokens.verify_with_secret(SECRET, token, tokens.Expectations())
    assert (claims.subject, claims.name) == ("u-1", "alice"), f"round trip changed the claims: {claims}"
    assert abs(claims.expires_at - (time.time() + 3600)) < 5, f"expiry {claims.expires_at} is not an hour away"
    assert jwt.get_unverified_header(token)["alg"] == "HS256", "secret mode mints HS256"


def test_any_jwt_library_can_mint_for_the_secret_mode() -> None:
    token = jwt.encode({"sub": "svc", "name": "bot", "exp": int(time.time()) + 60}, SECRET, algorithm="HS256")
    assert tokens.verify_with_secret(SECRET, token, tokens.Expectations()).name == "bot"


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda: jwt.encode(_claims(), OTHER_SECRET, algorithm="HS256"), tokens.Reason.BAD_SIGNATURE),
        (lambda: jwt.encode(_claims(exp=int(time.time()) - 120), SECRET, algorithm="HS256"), tokens.Reason.EXPIRED),
        (lambda: jwt.encode(_claims(nbf=int(time.time()) + 120), SECRET, algorithm="HS256"), tokens.Reason.NOT_YET_VALID),  # noqa: E501
        (lambda: jwt.encode(_claims(exp=None), SECRET, algorithm="HS256"), tokens.Reason.MISSING_CLAIM),
        (lambda: jwt.encode(_claims(sub=None), SECRET, algorithm="HS256"), tokens.Reason.MISSING_CLAIM),
        (lambda: jwt.encode(_claims(name=" alice"), SECRET, algorithm="HS256"), tokens.Reason.BAD_NAME),
        (lambda: jwt.encode(_claims(name="x" * 33), SECRET, algorithm="HS256"), tokens.Reason.BAD_NAME),
        (lambda: jwt.encode(_claims(sub=""), SECRET, algorithm="HS256"), tokens.Reason.MALFORMED),
        (lambda: jwt.encode(_claims(), SECRET * 2, algorithm="HS512"), tokens.Reason.ALGORITHM_NOT_ALLOWED),
        (lambda: _signed(RSA_KEY), tokens.Reason.ALGORITHM_NOT_ALLOWED),
        (lambda: jwt.encode(_claims(), "", algorithm="none"), tokens.Reason.ALG_NONE),
        (lambda: "not.a.jwt", tokens.Reason.MALFORMED),
        (lambda: "x" * (tokens.MAX_TOKEN_CHARS + 1), tokens.Reason.OVERSIZED),
    ],
    ids=[
        "bad-signature", "expired", "not-yet-valid", "no-exp", "no-sub", "name-whitespace", "name-too-long",
        "empty-sub", "hs512", "rs256-in-secret-mode", "alg-none", "garbage", "oversized",
    ],
)  # fmt: skip
def test_secret_mode_refusals(make: Callable[[], str], reason: tokens.Reason) -> None:
    assert _refusal(lambda: tokens.verify_with_secret(SECRET, make(), tokens.Expectations())) is reason


def test_tampered_payload_is_a_bad_signature() -> None:
    header, _, signature = jwt.encode(_claims(), SECRET, algorithm="HS256").split(".")
    forged = _b64(json.dumps(_claims(name="mallory")).encode())
    reason = _refusal(
        lambda: tokens.verify_with_secret(SECRET, f"{header}.{forged}.{signature}", tokens.Expectations())
    )
    assert reason is tokens.Reason.BAD_SIGNATURE


def test_alg_none_in_any_spelling_is_refused_before_any_key_is_looked_up() -> None:
    for spelling in ("none", "None", "NONE"):
        header = _b64(json.dumps({"alg": spelling, "typ": "JWT"}).encode())
        token = f"{header}.{_b64(json.dumps(_claims()).encode())}."
        looked_up: list[object] = []
        lookup = looked_up.append
        reason = _refusal(lambda t=token, k=lookup: tokens._verify(t, ["HS256"], k, tokens.Expectations()))  # type: ignore[misc]
        assert reason is tokens.Reason.ALG_NONE and not looked_up, f"alg {spelling!r}: {reason}, keys {looked_up}"


def test_clock_skew_within_the_leeway_is_accepted() -> None:
    now = int(time.time())
    skew = tokens.LEEWAY_SECONDS - 10
    for claims in ({"exp": now - skew}, {"nbf": now + skew}, {"iat": now + skew}):
        token = jwt.encode(_claims(**claims), SECRET, algorithm="HS256")
        assert tokens.verify_with_secret(SECRET, token, tokens.Expectations()).name == "alice", f"refused {claims}"


def test_secret_mode_checks_issuer_and_audience_when_configured() -> None:
    token = jwt.encode(_claims(), SECRET, algorithm="HS256")
    wrong_audience = tokens.Expectations(audience="another-app")
    wrong_issuer = tokens.Expectations(issuer="https://elsewhere.example.com/")
    assert _refusal(lambda: tokens.verify_with_secret(SECRET, token, wrong_audience)) is tokens.Reason.WRONG_AUDIENCE
    assert _refusal(lambda: tokens.verify_with_secret(SECRET, token, wrong_issuer)) is tokens.Reason.WRONG_ISSUER
    no_aud = jwt.encode(_claims(aud=None), SECRET, algorithm="HS256")
    refused = _refusal(lambda: tokens.verify_with_secret(SECRET, no_aud, tokens.Expectations(audience=AUDIENCE)))
    assert refused is tokens.Reason.MISSING_CLAIM, "a configured audience makes aud required"


def test_name_claim_order_and_override() -> None:
    token = jwt.encode(_claims(name=None, preferred_username="al", email="al@example.com"), SECRET, algorithm="HS256")
    assert tokens.verify_with_secret(SECRET, token, tokens.Expectations()).name == "al", "preferred_username second"
    by_email = tokens.Expectations(name_claims=("email",))
    assert tokens.verify_with_secret(SECRET, token, by_email).name == "al@example.com", "jwtNameClaim picks the claim"
    nameless = jwt.encode(_claims(name=None), SECRET, algorithm="HS256")
    assert (
        _refusal(lambda: tokens.verify_with_secret(SECRET, nameless, tokens.Expectations()))
        is tokens.Reason.MISSING_CLAIM
    )


def test_short_secret_is_a_deployment_fault_not_a_bad_token() -> None:
    with pytest.raises(ValueError, match="at least 32 bytes, got 31"):
        tokens.verify_with_secret(b"s" * 31, "a.b.c", tokens.Expectations())
    with pytest.raises(ValueError, match="at least 32 bytes"):
        tokens.signing_secret("short")
    assert tokens.signing_secret("é" * 16) == ("é" * 16).encode("utf-8"), "the secret is the value's UTF-8 bytes"


@pytest.mark.parametrize("ttl", [0, -1, tokens.MAX_TTL_SECONDS + 1, 1.5, True])
def test_mint_refuses_lifetimes_out_of_range(ttl: Any) -> None:
    with pytest.raises(ValueError, match="lifetime"):
        tokens.mint_token(SECRET, name="alice", ttl_seconds=ttl)


def test_rejection_detail_never_repeats_the_token() -> None:
    token = jwt.encode(_claims(), OTHER_SECRET, algorithm="HS256")
    with pytest.raises(tokens.InvalidTokenError) as caught:
        tokens.verify_with_secret(SECRET, token, tokens.Expectations())
    assert token not in str(caught.value) and token.split(".")[2] not in caught.value.detail


# --- issuer (RS256 / ES256 with JWKS) ---------------------------------------------------------------------------------


@pytest.mark.parametrize("key", [RSA_KEY, EC_KEY], ids=["RS256", "ES256"])
def test_issuer_tokens_verify_with_the_published_key(key: SigningKey) -> None:
    claims = tokens.verify_with_keys(_key_set(FakeProvider(RSA_KEY, EC_KEY)), _signed(key), EXPECT)
    assert (claims.subject, claims.name) == ("user-42", "alice"), f"{key.algorithm}: {claims}"


def test_discovery_finds_the_key_set_when_no_jwks_url_is_given() -> None:
    provider = FakeProvider(RSA_KEY)
    assert tokens.verify_with_keys(_key_set(provider, jwks_url=None), _signed(RSA_KEY), EXPECT).name == "alice"
    assert provider.fetches == [DISCOVERY_URL, JWKS_URL], f"discovery then keys, got {provider.fetches}"


def test_discovery_naming_another_issuer_fails_closed() -> None:
    provider = FakeProvider(RSA_KEY)
    real = provider.fetch
    provider.fetch = lambda url: (  # type: ignore[method-assign]
        json.dumps({"issuer": "https://evil.example.com/", "jwks_uri": JWKS_URL}).encode()
        if url == DISCOVERY_URL
        else real(url)
    )
    reason = _refusal(lambda: tokens.verify_with_keys(_key_set(provider, jwks_url=None), _signed(RSA_KEY), EXPECT))
    assert reason is tokens.Reason.JWKS_UNAVAILABLE


def test_issuer_refusals() -> None:
    keys = _key_set(FakeProvider(RSA_KEY, EC_KEY))
    other = SigningKey.generate("RS256", kid="rsa-1")  # same kid, another key: a forgery
    # The classic confusion: the issuer's public key (which anyone has) used as an HMAC secret, forged by hand
    # because PyJWT itself refuses to sign with a PEM key as HS256.
    public_pem = RSA_KEY.private_key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    signing_input = (
        f"{_b64(json.dumps({'alg': 'HS256', 'kid': 'rsa-1'}).encode())}.{_b64(json.dumps(_claims()).encode())}"
    )
    hs256 = f"{signing_input}.{_b64(hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest())}"
    wrong_alg_for_key = jwt.encode(_claims(), EC_KEY.private_key, algorithm="ES256", headers={"kid": "rsa-1"})
    cases = {
        "forged": (_signed(other), tokens.Reason.BAD_SIGNATURE),
        "public-key-as-hs256-secret": (hs256, tokens.Reason.ALGORITHM_NOT_ALLOWED),
        "key-of-another-algorithm": (wrong_alg_for_key, tokens.Reason.ALGORITHM_NOT_ALLOWED),
        "no-kid": (jwt.encode(_claims(), RSA_KEY.private_key, algorithm="RS256"), tokens.Reason.MISSING_KID),
        "wrong-issuer": (_signed(RSA_KEY, iss="https://elsewhere.example.com/"), tokens.Reason.WRONG_ISSUER),
        "wrong-audience": (_signed(RSA_KEY, aud="another-app"), tokens.Reason.WRONG_AUDIENCE),
        "no-issuer": (_signed(RSA_KEY, iss=None), tokens.Reason.MISSING_CLAIM),
        "no-audience": (_signed(RSA_KEY, aud=None), tokens.Reason.MISSING_CLAIM),
        "expired": (_signed(RSA_KEY, exp=int(time.time()) - 120), tokens.Reason.EXPIRED),
        "not-yet-valid": (_signed(RSA_KEY, nbf=int(time.time()) + 120), tokens.Reason.NOT_YET_VALID),
        "alg-none": (jwt.encode(_claims(), "", algorithm="none", headers={"kid": "rsa-1"}), tokens.Reason.ALG_NONE),
        "oversized": (_signed(RSA_KEY, pad="x" * tokens.MAX_TOKEN_CHARS), tokens.Reason.OVERSIZED),
    }
    for case, (token, reason) in cases.items():
        refused = _refusal(lambda t=token: tokens.verify_with_keys(keys, t, EXPECT))  # type: ignore[misc]
        assert refused is reason, f"{case}: refused as {refused.value}, expected {reason.value}"


def test_audience_in_a_list_is_accepted() -> None:
    token = _signed(RSA_KEY, aud=["other", AUDIENCE])
    assert tokens.verify_with_keys(_key_set(FakeProvider(RSA_KEY)), token, EXPECT).name == "alice"


def test_keys_are_cached_per_container() -> None:
    provider = FakeProvider(RSA_KEY)
    keys = _key_set(provider)
    for _ in range(3):
        tokens.verify_with_keys(keys, _signed(RSA_KEY), EXPECT)
    assert provider.fetches == [JWKS_URL], f"one fetch for three tokens, got {provider.fetches}"


def test_rotation_picks_up_the_new_kid_and_drops_the_old_one() -> None:
    provider, clock = FakeProvider(RSA_KEY), Clock()
    keys = _key_set(provider, clock)
    tokens.verify_with_keys(keys, _signed(RSA_KEY), EXPECT)
    rotated = SigningKey.generate("RS256", kid="rsa-2")
    provider.keys = [rotated]
    clock.now += tokens.REFETCH_SECONDS
    assert tokens.verify_with_keys(keys, _signed(rotated), EXPECT).name == "alice", "the new kid is fetched"
    assert provider.fetches == [JWKS_URL, JWKS_URL], f"the unknown kid caused one refetch: {provider.fetches}"
    assert _refusal(lambda: tokens.verify_with_keys(keys, _signed(RSA_KEY), EXPECT)) is tokens.Reason.UNKNOWN_KID, (
        "the key the issuer dropped must no longer verify"
    )


def test_unknown_kids_refetch_at_most_once_per_interval() -> None:
    provider, clock = FakeProvider(RSA_KEY), Clock()
    keys = _key_set(provider, clock)
    tokens.verify_with_keys(keys, _signed(RSA_KEY), EXPECT)
    garbage = [SigningKey.generate("RS256", kid=f"junk-{index}") for index in range(5)]
    clock.now += tokens.REFETCH_SECONDS
    for key in garbage:
        assert _refusal(lambda k=key: tokens.verify_with_keys(keys, _signed(k), EXPECT)) is tokens.Reason.UNKNOWN_KID  # type: ignore[misc]
    assert provider.fetches == [JWKS_URL, JWKS_URL], f"five unknown kids, one refetch: {provider.fetches}"
    assert tokens.verify_with_keys(keys, _signed(RSA_KEY), EXPECT).name == "alice", "known keys keep working"


def test_keys_past_their_age_are_refreshed() -> None:
    provider, clock = FakeProvider(RSA_KEY), Clock()
    keys = _key_set(provider, clock)
    tokens.verify_with_keys(keys, _signed(RSA_KEY), EXPECT)
    provider.keys = [SigningKey.generate("RS256", kid="rsa-2")]
    clock.now += tokens.KEYS_MAX_AGE_SECONDS
    assert _refusal(lambda: tokens.verify_with_keys(keys, _signed(RSA_KEY), EXPECT)) is tokens.Reason.UNKNOWN_KID


def test_jwks_down_fails_closed_and_is_not_hammered() -> None:
    provider, clock = FakeProvider(RSA_KEY), Clock()
    provider.down = True
    keys = _key_set(provider, clock)
    for _ in range(3):
        assert (
            _refusal(lambda: tokens.verify_with_keys(keys, _signed(RSA_KEY), EXPECT)) is tokens.Reason.JWKS_UNAVAILABLE
        )
    assert len(provider.fetches) == 1, f"a down provider is retried once per interval, got {provider.fetches}"
    provider.down = False
    clock.now += tokens.REFETCH_SECONDS
    assert tokens.verify_with_keys(keys, _signed(RSA_KEY), EXPECT).name == "alice", "recovers once the JWKS answers"


def test_expired_cache_with_the_provider_down_fails_closed() -> None:
    provider, clock = FakeProvider(RSA_KEY), Clock()
    keys = _key_set(provider, clock)
    tokens.verify_with_keys(keys, _signed(RSA_KEY), EXPECT)
    provider.down = True
    clock.now += tokens.KEYS_MAX_AGE_SECONDS
    assert _refusal(lambda: tokens.verify_with_keys(keys, _signed(RSA_KEY), EXPECT)) is tokens.Reason.JWKS_UNAVAILABLE


def test_unusable_documents_fail_closed() -> None:
    for body in (b"not json", b"[]", b'{"keys": []}', json.dumps({"keys": [{"kty": "nope"}]}).encode()):
        keys = tokens.KeySet(ISSUER, JWKS_URL, fetch=lambda url, b=body: b)  # type: ignore[misc]
        reason = _refusal(lambda k=keys: tokens.verify_with_keys(k, _signed(RSA_KEY), EXPECT))  # type: ignore[misc]
        assert reason is tokens.Reason.JWKS_UNAVAILABLE, f"{body!r}: {reason}"


def test_encryption_keys_are_not_signing_keys() -> None:
    jwk = {**RSA_KEY.public_jwk, "use": "enc"}
    keys = tokens.KeySet(ISSUER, JWKS_URL, fetch=lambda url: json.dumps({"keys": [jwk]}).encode())
    assert _refusal(lambda: tokens.verify_with_keys(keys, _signed(RSA_KEY), EXPECT)) is tokens.Reason.UNKNOWN_KID


def test_http_get_reads_a_local_issuer() -> None:
    issuer = LocalIssuer([RSA_KEY]).start()
    try:
        document = json.loads(tokens.http_get(issuer.url + JWKS_PATH))
        assert [key["kid"] for key in document["keys"]] == ["rsa-1"], document
        issuer.available = False
        with pytest.raises(OSError):
            tokens.http_get(issuer.url + JWKS_PATH)
    finally:
        issuer.stop()
