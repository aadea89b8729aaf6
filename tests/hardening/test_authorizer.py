"""The `$connect` authorizer: HS256 with the secret in moto's SSM, and an issuer's tokens from a local OIDC issuer."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import jwt
import pytest
from moto import mock_aws

from app import definition
from emulator.issuer import LocalIssuer, SigningKey
from handlers import authorizer, environment, subprotocol, tokens
from infra.archive import archive_members
from tests.aws_sessions import new_default_session

EVENT_FILE = Path(__file__).parent / "events" / "authorizer_connect.json"
SECRET_TEXT = "dev-secret-0123456789-abcdefghijklmnopqrstuvwxyz"
OTHER_SECRET_TEXT = "another-secret-0123456789-abcdefghijklmnopqrstuv"
PARAMETER = "/websocket-chat/test/auth-token-secret"


@pytest.fixture
def ssm(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A moto SSM holding the secret, the function's environment, and a cold container (no cached secret)."""
    for variable, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        environment.TOKEN_SECRET_PARAMETER: PARAMETER,
    }.items():
        monkeypatch.setenv(variable, value)
    _cold_start()
    with mock_aws():
        new_default_session()
        client = boto3.client("ssm", region_name="us-east-1")
        client.put_parameter(Name=PARAMETER, Value=SECRET_TEXT, Type="SecureString")
        yield client
    _cold_start()


def _cold_start() -> None:
    """What a new Lambda container starts with: no SSM client and no secret yet."""
    authorizer._signing_secret.cache_clear()
    authorizer._ssm.cache_clear()


def _event(query: dict[str, str] | None = None, headers: dict[str, str] | None = None) -> dict[str, Any]:
    event: dict[str, Any] = json.loads(EVENT_FILE.read_text(encoding="utf-8"))
    if query is not None:
        event["queryStringParameters"] = dict(query)
        event["multiValueQueryStringParameters"] = {key: [value] for key, value in query.items()}
    for key, value in (headers or {}).items():
        event["headers"][key] = value
        event["multiValueHeaders"][key] = [value]
    return event


def _token(name: str = "alice", secret_text: str = SECRET_TEXT, ttl: int = 3600, issued: float | None = None) -> str:
    return tokens.mint_token(
        secret_text.encode("utf-8"), name=name, ttl_seconds=ttl, now=time.time() if issued is None else issued
    )


def _log_lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    out = capsys.readouterr().out
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def _assert_policy(response: dict[str, Any], effect: str, event: dict[str, Any]) -> None:
    statements = response["policyDocument"]["Statement"]
    assert response["policyDocument"]["Version"] == "2012-10-17", f"policy version: {response['policyDocument']}"
    assert statements == [{"Action": "execute-api:Invoke", "Effect": effect, "Resource": event["methodArn"]}], (
        f"expected one {effect} statement on this $connect's methodArn, got {statements}"
    )


def _assert_denied(event: dict[str, Any], reason: str, capsys: pytest.CaptureFixture[str], token: str) -> None:
    response = authorizer.handler(event, None)
    _assert_policy(response, "Deny", event)
    assert "context" not in response, f"a denied connection was given context: {response.get('context')}"
    lines = _log_lines(capsys)
    assert [line["decision"] for line in lines] == ["deny"], f"expected one deny log line, got {lines}"
    assert lines[0]["reason"] == reason, f"deny logged reason {lines[0]['reason']!r}, expected {reason!r}"
    assert token not in json.dumps(lines), "the log repeats the refused token"


def test_query_parameter_and_header_names_match_the_app_definition() -> None:
    assert authorizer.QUERY_PARAMETER == definition.TOKEN_QUERY_PARAMETER, "authorizer reads another query parameter"
    assert authorizer.HEADER == definition.TOKEN_HEADER, "authorizer reads another header"


def test_valid_query_token_is_allowed_with_the_name_in_context(ssm: Any, capsys: pytest.CaptureFixture[str]) -> None:
    token = _token("alice")
    event = _event(query={"token": token, "name": "ignored"})
    response = authorizer.handler(event, None)
    _assert_policy(response, "Allow", event)
    assert response["context"] == {"name": "alice"}, f"context should carry the token's name: {response['context']}"
    assert response["principalId"] == "alice", f"principalId is sub, got {response['principalId']!r}"
    lines = _log_lines(capsys)
    assert len(lines) == 1 and lines[0]["decision"] == "allow" and lines[0]["name"] == "alice", f"log: {lines}"
    assert lines[0]["connectionId"] == event["requestContext"]["connectionId"], "log lacks the connection id"
    logged = json.dumps(lines)
    assert token not in logged and SECRET_TEXT not in logged, "the log repeats the token or the secret"


@pytest.mark.parametrize("header", ["Authorization", "authorization", "AUTHORIZATION"])
@pytest.mark.parametrize("scheme", ["Bearer", "bearer"])
def test_bearer_header_is_allowed(ssm: Any, header: str, scheme: str) -> None:
    event = _event(headers={header: f"{scheme} {_token('bob')}"})
    response = authorizer.handler(event, None)
    _assert_policy(response, "Allow", event)
    assert response["context"] == {"name": "bob"}, f"{header}: {scheme} gave context {response['context']}"


def test_same_token_in_query_and_header_is_allowed(ssm: Any) -> None:
    token = _token("carol")
    event = _event(query={"token": token}, headers={"Authorization": f"Bearer {token}"})
    assert authorizer.handler(event, None)["context"] == {"name": "carol"}, "matching query and header refused"


@pytest.mark.parametrize(
    ("query", "headers"),
    [
        (None, None),
        ({"name": "alice"}, None),
        ({"token": ""}, None),
        ({"token": "   "}, None),
        (None, {"Authorization": "Bearer "}),
        (None, {"Authorization": ""}),
    ],
    ids=["nothing", "other-parameter", "empty-query", "blank-query", "empty-bearer", "empty-header"],
)
def test_missing_token_is_unauthorized(
    ssm: Any, capsys: pytest.CaptureFixture[str], query: dict[str, str] | None, headers: dict[str, str] | None
) -> None:
    with pytest.raises(Exception, match=r"^Unauthorized$") as caught:
        authorizer.handler(_event(query=query, headers=headers), None)
    assert type(caught.value) is Exception, "API Gateway needs a plain Exception('Unauthorized') for 401"
    lines = _log_lines(capsys)
    assert [(line["decision"], line["reason"]) for line in lines] == [("unauthorized", "missing-token")], lines


def test_forged_token_is_denied(ssm: Any, capsys: pytest.CaptureFixture[str]) -> None:
    forged = _token("mallory", secret_text=OTHER_SECRET_TEXT)
    _assert_denied(_event(query={"token": forged}), "bad-signature", capsys, forged)


def test_expired_token_is_denied(ssm: Any, capsys: pytest.CaptureFixture[str]) -> None:
    expired = _token("alice", ttl=60, issued=time.time() - 3600)
    _assert_denied(_event(query={"token": expired}), "expired", capsys, expired)


def test_tampered_token_is_denied(ssm: Any, capsys: pytest.CaptureFixture[str]) -> None:
    header, _payload, signature = _token("alice").split(".")
    claims = {"exp": int(time.time()) + 3600, "sub": "admin", "name": "admin"}
    payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    tampered = f"{header}.{payload}.{signature}"
    _assert_denied(_event(query={"token": tampered}), "bad-signature", capsys, tampered)


@pytest.mark.parametrize("garbage", ["not-a-token", "v1.x.y", "a.b.c"])
def test_malformed_token_is_denied(ssm: Any, capsys: pytest.CaptureFixture[str], garbage: str) -> None:
    _assert_denied(_event(query={"token": garbage}), "malformed", capsys, garbage)


def test_unsigned_token_is_denied(ssm: Any, capsys: pytest.CaptureFixture[str]) -> None:
    unsigned = jwt.encode({"sub": "x", "name": "x", "exp": int(time.time()) + 60}, "", algorithm="none")
    _assert_denied(_event(query={"token": unsigned}), "alg-none", capsys, unsigned)


def test_oversized_token_is_denied(ssm: Any, capsys: pytest.CaptureFixture[str]) -> None:
    huge = "x" * (tokens.MAX_TOKEN_CHARS + 1)
    _assert_denied(_event(query={"token": huge}), "oversized", capsys, huge)


def test_subprotocol_token_is_allowed(ssm: Any, capsys: pytest.CaptureFixture[str]) -> None:
    token = _token("dora")
    event = _event(headers={"Sec-WebSocket-Protocol": f"{subprotocol.CHAT}, {subprotocol.TOKEN_PREFIX}{token}"})
    response = authorizer.handler(event, None)
    _assert_policy(response, "Allow", event)
    assert response["context"] == {"name": "dora"}, f"context from the subprotocol token: {response['context']}"
    assert _log_lines(capsys)[0]["detail"] == "token from the protocol", "the log says where the token came from"


def test_two_subprotocol_tokens_are_denied(ssm: Any, capsys: pytest.CaptureFixture[str]) -> None:
    alice, bob = _token("alice"), _token("bob")
    offered = f"{subprotocol.TOKEN_PREFIX}{alice}, {subprotocol.TOKEN_PREFIX}{bob}"
    _assert_denied(_event(headers={"Sec-WebSocket-Protocol": offered}), "malformed", capsys, alice)


def test_ambiguous_requests_are_denied(ssm: Any, capsys: pytest.CaptureFixture[str]) -> None:
    alice, bob = _token("alice"), _token("bob")
    conflicting = _event(query={"token": alice}, headers={"Authorization": f"Bearer {bob}"})
    _assert_denied(conflicting, "malformed", capsys, alice)
    repeated = _event(query={"token": bob})
    repeated["multiValueQueryStringParameters"]["token"] = [alice, bob]
    _assert_denied(repeated, "malformed", capsys, bob)
    basic = _event(headers={"Authorization": f"Basic {alice}"})
    _assert_denied(basic, "malformed", capsys, alice)
    protocol = _event(query={"token": alice}, headers={"Sec-WebSocket-Protocol": f"{subprotocol.TOKEN_PREFIX}{bob}"})
    _assert_denied(protocol, "malformed", capsys, alice)


def test_secret_is_read_once_per_container(ssm: Any) -> None:
    token = _token("alice")
    assert authorizer.handler(_event(query={"token": token}), None)["context"] == {"name": "alice"}
    # Rotate the stored secret: a warm container keeps the secret it read; only a new container reads the new one.
    ssm.put_parameter(Name=PARAMETER, Value=OTHER_SECRET_TEXT, Type="SecureString", Overwrite=True)
    warm = authorizer.handler(_event(query={"token": token}), None)
    _assert_policy(warm, "Allow", _event())
    _cold_start()
    cold = authorizer.handler(_event(query={"token": token}), None)
    _assert_policy(cold, "Deny", _event())


def test_secret_read_decrypts_the_secure_string(ssm: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, Any]] = []
    client = authorizer._ssm()
    real_get_parameter = client.get_parameter

    def recording_get_parameter(**kwargs: Any) -> Any:
        calls.append(kwargs)
        return real_get_parameter(**kwargs)

    monkeypatch.setattr(client, "get_parameter", recording_get_parameter)
    for _ in range(3):
        authorizer.handler(_event(query={"token": _token()}), None)
    assert calls == [{"Name": PARAMETER, "WithDecryption": True}], f"SSM calls over three invocations: {calls}"


def test_missing_parameter_name_fails_loudly(ssm: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(environment.TOKEN_SECRET_PARAMETER)
    with pytest.raises(
        RuntimeError, match=f"neither {environment.JWT_ISSUER} nor {environment.TOKEN_SECRET_PARAMETER}"
    ):
        authorizer.handler(_event(query={"token": _token()}), None)


def test_short_stored_secret_fails_loudly(ssm: Any) -> None:
    ssm.put_parameter(Name=PARAMETER, Value="short", Type="SecureString", Overwrite=True)
    with pytest.raises(ValueError, match="at least 32 bytes"):
        authorizer.handler(_event(query={"token": _token()}), None)


def test_event_without_method_arn_is_refused(ssm: Any) -> None:
    event = _event(query={"token": _token()})
    del event["methodArn"]
    with pytest.raises(ValueError, match="methodArn"):
        authorizer.handler(event, None)


def test_deployment_package_holds_the_authorizer_and_what_it_imports() -> None:
    members = archive_members(definition.AUTHORIZER)
    assert members == [
        "handlers/__init__.py",
        "handlers/authorizer.py",
        "handlers/display_name.py",
        "handlers/environment.py",
        "handlers/subprotocol.py",
        "handlers/tokens.py",
    ], f"the authorizer's zip would hold {members}"


# --- issuer mode: a real OIDC issuer over HTTP on loopback ----------------------------------------------------------


@pytest.fixture
def issuer(monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalIssuer]:
    """A local OIDC issuer and the function's environment in issuer mode (no secret, no SSM), in a cold container."""
    running = LocalIssuer([SigningKey.generate("RS256")], audience="chat").start()
    monkeypatch.delenv(environment.TOKEN_SECRET_PARAMETER, raising=False)
    monkeypatch.setenv(environment.JWT_ISSUER, running.url)
    monkeypatch.setenv(environment.JWT_AUDIENCE, "chat")
    authorizer._key_set.cache_clear()
    yield running
    running.stop()
    authorizer._key_set.cache_clear()


def test_issuer_token_is_allowed_by_discovery_with_sub_as_principal(issuer: LocalIssuer) -> None:
    event = _event(headers={"Authorization": f"Bearer {issuer.mint('erin')}"})
    response = authorizer.handler(event, None)
    _assert_policy(response, "Allow", event)
    assert (response["principalId"], response["context"]) == ("local|erin", {"name": "erin"}), response
    assert issuer.requests == ["/.well-known/openid-configuration", "/.well-known/jwks.json"], issuer.requests
    authorizer.handler(_event(query={"token": issuer.mint("erin")}), None)
    assert len(issuer.requests) == 2, f"the keys are cached per container, got {issuer.requests}"


def test_issuer_mode_refuses_hs256_and_foreign_audiences(
    issuer: LocalIssuer, capsys: pytest.CaptureFixture[str]
) -> None:
    hs256 = tokens.mint_token(SECRET_TEXT.encode(), name="x", ttl_seconds=60, issuer=issuer.url, audience="chat")
    _assert_denied(_event(query={"token": hs256}), "algorithm-not-allowed", capsys, hs256)
    foreign = issuer.mint("x", aud="someone-else")
    _assert_denied(_event(query={"token": foreign}), "wrong-audience", capsys, foreign)


def test_name_claim_setting_picks_the_claim(issuer: LocalIssuer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(environment.JWT_NAME_CLAIM, "nickname")
    response = authorizer.handler(_event(query={"token": issuer.mint("erin", nickname="E")}), None)
    assert response["context"] == {"name": "E"}, f"jwtNameClaim nickname gave {response.get('context')}"


def test_issuer_down_fails_closed(issuer: LocalIssuer, capsys: pytest.CaptureFixture[str]) -> None:
    issuer.available = False
    token = issuer.mint("erin")
    _assert_denied(_event(query={"token": token}), "jwks-unavailable", capsys, token)


def test_issuer_without_audience_is_a_deployment_fault(issuer: LocalIssuer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(environment.JWT_AUDIENCE)
    with pytest.raises(RuntimeError, match=environment.JWT_AUDIENCE):
        authorizer.handler(_event(query={"token": issuer.mint("erin")}), None)
