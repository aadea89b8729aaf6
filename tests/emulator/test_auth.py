"""JWT auth in the emulator: the REAL authorizer guards `$connect` as API Gateway runs it.

`python -m emulator --auth jwt` with `CHAT_TOKEN_SECRET` set (HS256): allowed, missing, forged, expired and tampered
tokens, the header and subprotocol forms, and `$connect` never running for a refused handshake. Without the secret:
the emulator's own local issuer. With a stack's `jwtIssuer`: an issuer on this machine, and that issuer down.
An in-process cloud with a stand-in authorizer (tests/emulator/authorizers.py): crash, timeout and malformed answers
are 500, and the event it gets.
Pure checks of the policy evaluation complete it.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection, connect
from websockets.typing import Subprotocol

from app import definition
from app.settings import StackSettings
from emulator.__main__ import options_from_arguments, parse_arguments
from emulator.authorization import authorization_context, start_local_issuer
from emulator.config import PROJECT_ROOT, routes_from_definition
from emulator.config import function_spec as definition_function_spec
from emulator.issuer import LocalIssuer, SigningKey, load_saved
from emulator.testing import RunningEmulator, running_emulator
from emulator.workers import Invocation
from handlers import environment, tokens
from tests.emulator.conftest import CloudThread, cloud_options, function_spec, receive_json, wait_for

SECRET = "emulator-test-secret-0123456789-abcdefghijklmnop"
OTHER_SECRET = "some-other-secret-0123456789-abcdefghijklmnopqr"
REFERENCE_EVENT = Path(__file__).parents[1] / "hardening" / "events" / "authorizer_connect.json"
ARN = "arn:aws:execute-api:us-east-1:123456789012:abcdef1234/dev/$connect"


def token(name: str = "alice", secret: str = SECRET, ttl: int = 600, issued: float | None = None) -> str:
    return tokens.mint_token(
        secret.encode("utf-8"), name=name, ttl_seconds=ttl, now=time.time() if issued is None else issued
    )


def tampered() -> str:
    """A valid token for alice whose payload now says mallory (the signature is alice's)."""
    header, _, signature = token("alice").split(".")
    claims = {"exp": int(time.time()) + 600, "sub": "mallory", "name": "mallory"}
    payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{payload}.{signature}"


@pytest.fixture(scope="module")
def emulator() -> Iterator[RunningEmulator]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(definition.DEV_TOKEN_SECRET_VARIABLE, SECRET)
        with running_emulator(extra_args=("--auth", "jwt", "--function-timeout", "10")) as running:
            yield running


def join(url: str, **kwargs: Any) -> ClientConnection:
    client: ClientConnection = connect(url, proxy=None, compression=None, open_timeout=15, legacy=True, **kwargs)
    return client


def broadcast_sender(client: ClientConnection) -> str:
    client.send(json.dumps({"action": "sendmessage", "message": "who am I?"}))
    seen: list[dict[str, Any]] = []
    # Presence events of earlier tests' clients leaving the lobby may arrive first.
    while len(seen) < 20:
        envelope = receive_json(client)
        if envelope.get("type") == "message":
            sender: str = envelope["from"]
            return sender
        assert envelope.get("type") == "presence", f"expected the broadcast of my message, got {envelope}"
        seen.append(envelope)
    raise AssertionError(f"no broadcast of my message among {seen}")


def test_the_ready_lines_say_how_auth_runs_and_never_show_a_secret_from_the_environment(
    emulator: RunningEmulator,
) -> None:
    output = emulator.output_text()
    assert "$connect -> authorizer (handlers.authorizer.handler)" in output, f"no authorizer line in:\n{output}"
    assert "python -m client token --name alice" in output, f"no minting hint in:\n{output}"
    assert "WARNING" not in output, "with the authorizer running, the no-authorizer warning must not show"


def test_a_valid_token_connects_under_its_name_not_the_query_name(emulator: RunningEmulator) -> None:
    with join(f"{emulator.ws_url}?name=bob&{definition.TOKEN_QUERY_PARAMETER}={token('alice')}") as client:
        assert broadcast_sender(client) == "alice", "the token's name must win over ?name= in the broadcast's from"


def test_the_bearer_header_is_accepted_too(emulator: RunningEmulator) -> None:
    headers = {definition.TOKEN_HEADER: f"Bearer {token('carol')}"}
    with join(emulator.ws_url, additional_headers=headers) as client:
        assert broadcast_sender(client) == "carol", "a token in Authorization: Bearer must connect under its name"


@pytest.mark.parametrize(
    ("case", "query", "status"),
    # Named by case: the tokens carry the time, and parallel workers must collect the same test ids.
    [
        pytest.param(case, query, status, id=f"{case}-{status}")
        for case, query, status in [
            ("missing", "name=bob", 401),
            ("blank", "token=", 401),
            ("forged", f"token={token(secret=OTHER_SECRET)}", 403),
            ("expired", f"token={token(ttl=60, issued=time.time() - 3600)}", 403),
            ("tampered", f"token={tampered()}", 403),
            ("garbage", "token=not-a-token", 403),
        ]
    ],
)
def test_a_refused_token_refuses_the_handshake_and_connect_never_runs(
    emulator: RunningEmulator, case: str, query: str, status: int
) -> None:
    refused_before = refused_ids(emulator, status)
    with pytest.raises(InvalidStatus) as refused:
        join(f"{emulator.ws_url}?{query}")
    assert refused.value.response.status_code == status, f"a {case} token must be refused with {status}"
    # The gateway logs the refusal before answering; the emulator's output may reach the test a little later.
    [connection_id] = wait_for(
        lambda: refused_ids(emulator, status) - refused_before,
        10,
        f"the gateway did not log the authorizer's {status} for a {case} token",
    )
    assert f"[$connect] {connection_id}" not in emulator.output_text(), f"$connect ran for a {case} token"


def refused_ids(emulator: RunningEmulator, status: int) -> set[str]:
    """Connection ids the gateway refused because the authorizer answered `status`."""
    return set(re.findall(rf"refused (\S+): authorizer answered {status}\b", emulator.output_text()))


def test_the_secret_from_the_environment_is_never_printed(emulator: RunningEmulator) -> None:
    with join(f"{emulator.ws_url}?token={token('dave')}"):
        pass
    assert SECRET not in emulator.output_text(), "the signing secret leaked into the emulator's output"


# --- A stand-in authorizer in an in-process cloud: failures are 500, and the event it is given --------------------

STAND_IN = dataclasses.replace(
    function_spec("stand-in-authorizer", "steered", environment.TOKEN_SECRET_PARAMETER),
    handler="tests.emulator.authorizers.steered",
)


@pytest.fixture(scope="module")
def stand_in_cloud() -> Iterator[CloudThread]:
    running = CloudThread(cloud_options(authorizer=STAND_IN, prewarm=False))
    running.start()
    yield running
    running.stop()


@pytest.mark.parametrize("mode", ["crash", "hang", "no-policy", "nested-context"])
def test_an_authorizer_that_fails_or_answers_badly_is_500_and_connect_never_runs(
    stand_in_cloud: CloudThread, mode: str
) -> None:
    connects_before = len(stand_in_cloud.recorded_all("$connect"))
    with pytest.raises(InvalidStatus) as refused:
        stand_in_cloud.connect(f"mode={mode}")
    assert refused.value.response.status_code == 500, f"an authorizer that does {mode} must give 500"
    assert len(stand_in_cloud.recorded_all("$connect")) == connects_before, f"$connect ran after {mode}"


def test_the_authorizer_gets_a_request_event_and_its_context_reaches_connect(stand_in_cloud: CloudThread) -> None:
    with stand_in_cloud.connect("mode=allow&name=x", additional_headers={"X-Custom": "yes"}) as client:
        client.send(json.dumps({"action": "echo"}))
        message = receive_json(client)["event"]
    connection_id = message["requestContext"]["connectionId"]
    [connect_event] = stand_in_cloud.recorded("$connect", connection_id)
    context = connect_event["requestContext"]["authorizer"]
    event = json.loads(context.pop("event"))
    assert context == {"name": "steered", "principalId": "user-7"}, "authorizer = its context plus principalId"
    assert message["requestContext"]["authorizer"]["principalId"] == "user-7", "MESSAGE events carry it too"
    cloud = stand_in_cloud.cloud
    api_id = connect_event["requestContext"]["apiId"]
    assert event["type"] == "REQUEST", f"type: {event.get('type')}"
    assert (
        event["methodArn"] == f"arn:aws:execute-api:{cloud.options.region}:123456789012:{api_id}/"
        f"{cloud.options.stage}/$connect"
    ), f"methodArn: {event['methodArn']}"
    assert event["queryStringParameters"] == {"mode": "allow", "name": "x"}, "the query string as sent"
    assert event["multiValueQueryStringParameters"] == {"mode": ["allow"], "name": ["x"]}, "multi-valued query"
    assert event["headers"]["X-Custom"] == "yes" and event["multiValueHeaders"]["X-Custom"] == ["yes"], "headers"
    assert event["stageVariables"] == {}, "stageVariables as in tests/hardening/events/authorizer_connect.json"
    request = event["requestContext"]
    assert (request["routeKey"], request["eventType"], request["connectionId"]) == (
        "$connect",
        "CONNECT",
        connection_id,
    ), f"requestContext as for $connect: {request}"
    assert "authorizer" not in request and "isBase64Encoded" not in event, "nothing the authorizer cannot have yet"
    fixture_keys = set(json.loads(REFERENCE_EVENT.read_text("utf-8")))
    assert fixture_keys <= set(event), f"keys of the reference event missing: {fixture_keys - set(event)}"


def test_no_query_string_means_no_query_parameters_in_the_event(stand_in_cloud: CloudThread) -> None:
    with stand_in_cloud.connect() as client:
        client.send(json.dumps({"action": "echo"}))
        connection_id = receive_json(client)["event"]["requestContext"]["connectionId"]
    [connect_event] = stand_in_cloud.recorded("$connect", connection_id)
    event = json.loads(connect_event["requestContext"]["authorizer"]["event"])
    assert "queryStringParameters" not in event, "absent when the handshake has no query string, as on AWS"


# --- The policy evaluation on its own ----------------------------------------------------------------------------


def _policy(*statements: dict[str, Any], **extra: Any) -> Invocation:
    return Invocation(
        ok=True,
        result={
            "principalId": "p",
            "policyDocument": {"Version": "2012-10-17", "Statement": list(statements)},
            **extra,
        },
    )


def _statement(effect: str, resource: Any, action: Any = "execute-api:Invoke") -> dict[str, Any]:
    return {"Effect": effect, "Action": action, "Resource": resource}


@pytest.mark.parametrize(
    "resource",
    [
        ARN,
        "arn:aws:execute-api:*:*:*",
        "arn:aws:execute-api:us-east-1:*:abcdef1234/*",
        "arn:aws:execute-api:us-east-1:123456789012:abcdef123?/dev/$connect",
        [ARN, "x"],
    ],
)
def test_an_allow_matching_the_method_arn_allows(resource: Any) -> None:
    context = authorization_context(_policy(_statement("Allow", resource), context={"name": "n"}), ARN)
    assert context == {"name": "n", "principalId": "p"}, f"Allow on {resource!r} must let {ARN} through"


@pytest.mark.parametrize(
    ("case", "outcome"),
    [
        ("deny", _policy(_statement("Deny", ARN))),
        ("deny wins", _policy(_statement("Allow", "*"), _statement("Deny", ARN))),
        ("another stage", _policy(_statement("Allow", ARN.replace("/dev/", "/prod/")))),
        ("? is one character", _policy(_statement("Allow", ARN.replace("abcdef1234", "abcdef12?")))),
        ("another action", _policy(_statement("Allow", ARN, action="execute-api:ManageConnections"))),
        ("no statements", _policy()),
    ],
)
def test_a_deny_or_no_matching_allow_is_403(case: str, outcome: Invocation) -> None:
    with pytest.raises(web.HTTPForbidden):
        authorization_context(outcome, ARN)


@pytest.mark.parametrize(
    ("case", "outcome", "status"),
    [
        ("Unauthorized", Invocation(ok=False, error_type="Exception", error_message="Unauthorized"), 401),
        ("other error", Invocation(ok=False, error_type="Exception", error_message="unauthorized"), 500),
        ("timeout", Invocation(ok=False, error_type="Sandbox.Timedout", error_message="Task timed out"), 500),
        ("not an object", Invocation(ok=True, result="Allow"), 500),
        ("no principal", Invocation(ok=True, result={"policyDocument": {"Statement": []}}), 500),
        ("bad effect", _policy(_statement("allow", ARN)), 500),
        ("over 8 KB", _policy(_statement("Allow", ARN), context={"big": "x" * 9000}), 500),
    ],
)
def test_errors_and_malformed_answers(case: str, outcome: Invocation, status: int) -> None:
    with pytest.raises(web.HTTPException) as refused:
        authorization_context(outcome, ARN)
    assert refused.value.status == status, f"{case}: expected {status}, got {refused.value.status}"


# --- Turning it on: the flag, the stack's setting, the secret -----------------------------------------------------


def test_auth_jwt_runs_the_definitions_authorizer_with_the_secret_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(definition.DEV_TOKEN_SECRET_VARIABLE, SECRET)
    options = options_from_arguments(parse_arguments(["--auth", "jwt"]))
    assert options.settings.auth == "jwt", "--auth jwt overrides the stack's auth"
    assert options.authorizer is not None and options.authorizer.handler == definition.AUTHORIZER.handler, (
        "the authorizer is app.definition.AUTHORIZER's handler"
    )
    assert options.authorizer.environment == definition.AUTHORIZER.environment, "with the definition's env names"
    assert options.token_secret == SECRET, f"the secret comes from {definition.DEV_TOKEN_SECRET_VARIABLE}"
    assert SECRET not in repr(options), "the options' repr must not show the secret"
    plain = options_from_arguments(parse_arguments(["--auth", "none"]))
    assert plain.authorizer is None and plain.token_secret is None, "--auth none runs no authorizer, reads no secret"


def test_a_short_secret_stops_the_emulator_with_exit_2_and_does_not_echo_it() -> None:
    environment = {**os.environ, definition.DEV_TOKEN_SECRET_VARIABLE: "short-secret"}
    run = subprocess.run(
        [sys.executable, "-m", "emulator", "--auth", "jwt", "--port", "0"],
        cwd=PROJECT_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 2, f"a short secret must exit 2, got {run.returncode}: {run.stderr}"
    assert "at least 32 bytes" in run.stderr and "short-secret" not in run.stderr + run.stdout, (
        f"one line giving the rule, never the secret: {run.stderr!r}"
    )


# --- A stack trusting an identity provider: an issuer on this machine, the real routes -----------------------------


@pytest.fixture(scope="module")
def provider() -> Iterator[LocalIssuer]:
    running = LocalIssuer([SigningKey.generate("ES256")], audience="chat-app").start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def issuer_cloud(provider: LocalIssuer) -> Iterator[CloudThread]:
    settings = StackSettings(stage_name="dev", auth="jwt", jwt_issuer=provider.url, jwt_audience="chat-app")
    options = cloud_options(
        settings=settings,
        routes=routes_from_definition(),
        authorizer=definition_function_spec(definition.AUTHORIZER),
        function_timeout_seconds=10,
    )
    running = CloudThread(options)
    running.start()
    yield running
    running.stop()


def test_the_stacks_issuer_is_trusted_and_the_subprotocol_is_answered(
    issuer_cloud: CloudThread, provider: LocalIssuer
) -> None:
    offered = [Subprotocol("websocket-chat"), Subprotocol(f"bearer.{provider.mint('pat')}")]
    with issuer_cloud.connect_to(issuer_cloud.cloud.ws_url, subprotocols=offered) as client:
        assert client.subprotocol == "websocket-chat", f"$connect selected {client.subprotocol!r}, not the chat's"
        assert broadcast_sender(client) == "pat", "the issuer's token must connect under its name claim"
    assert provider.requests[:2] == ["/.well-known/openid-configuration", "/.well-known/jwks.json"], (
        f"the authorizer found the keys by discovery: {provider.requests}"
    )


def test_a_token_of_another_issuer_or_audience_is_refused(issuer_cloud: CloudThread, provider: LocalIssuer) -> None:
    for token in (provider.mint("x", aud="other-app"), provider.mint("x", iss="https://evil.example.com")):
        with pytest.raises(InvalidStatus) as refused:
            issuer_cloud.connect(f"token={token}")
        assert refused.value.response.status_code == 403, "a foreign token must be refused with 403"


def test_the_issuer_down_refuses_new_kids_and_recovers(issuer_cloud: CloudThread, provider: LocalIssuer) -> None:
    new_key = SigningKey.generate("RS256")
    provider.available = False
    try:
        with pytest.raises(InvalidStatus) as refused:
            issuer_cloud.connect(f"token={provider.mint('x', key=new_key)}")
        assert refused.value.response.status_code == 403, "an unknown kid with the JWKS down fails closed"
    finally:
        provider.available = True
    with issuer_cloud.connect(f"token={provider.mint('known')}") as client:
        assert broadcast_sender(client) == "known", "tokens of the cached keys still connect"


def test_the_local_issuer_keeps_its_key_and_address_across_restarts(tmp_path: Path) -> None:
    key_file = tmp_path / "local-issuer.json"
    first = start_local_issuer(StackSettings(stage_name="dev", auth="jwt"), key_file)
    token = load_saved(key_file).mint("kept", 600)
    first.stop()
    second = start_local_issuer(StackSettings(stage_name="dev", auth="jwt"), key_file)
    try:
        assert (second.url, second.keys[0].kid) == (first.url, first.keys[0].kid), "a restart changed the issuer"
        keys = tokens.KeySet(second.url)
        claims = tokens.verify_with_keys(keys, token, tokens.Expectations(second.url, second.audience))
        assert claims.name == "kept", "a token minted before the restart must still verify"
    finally:
        second.stop()
    taken = LocalIssuer([SigningKey.generate()]).start(int(second.url.rsplit(":", 1)[1]))
    try:
        third = start_local_issuer(StackSettings(stage_name="dev", auth="jwt"), key_file)
        assert third.url != taken.url, "with its port taken, the issuer moves to a free one"
        third.stop()
    finally:
        taken.stop()
