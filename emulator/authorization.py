"""JWT auth on the local cloud: the Lambda REQUEST authorizer on `$connect`, run as API Gateway runs it.

The real authorizer trusts what the stack trusts (its issuer, a shared secret in local SSM, or else a local issuer),
and its answer becomes the handshake's as on API Gateway: 401, 403, 500 or `$connect` runs (docs/emulator.md).
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import boto3
from aiohttp import web
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from app import definition
from app.settings import StackSettings
from emulator import events
from emulator.config import EmulatorConfigError
from emulator.dynamodb import THROWAWAY_CREDENTIALS, LocalTable, start_moto, stop_moto
from emulator.gateway import handshake_headers
from emulator.issuer import DEFAULT_AUDIENCE, KEY_FILE, LocalIssuer, key_for_run, previous_port
from emulator.workers import FunctionPool, Invocation, Log, physical_name
from handlers import environment

ACCOUNT_ID = "123456789012"
"""The account in ARNs the emulator makes up (moto's default account too)."""

RESULT_LIMIT_BYTES = 8 * 1024
"""API Gateway refuses an authorizer result over 8 KB (a configuration error: 500)."""

UNAUTHORIZED = "Unauthorized"
"""The one error message API Gateway answers with 401; every other failure of the function is 500."""

INVOKE_ACTION = "execute-api:Invoke"

LOG_PREFIX = "authorizer"

SCALAR = (str, int, float, bool)
"""Context values API Gateway passes on; objects and arrays in the context are a configuration error."""


@dataclass
class SecretParameter:
    """The secret stored as an SSM SecureString on a local moto server, and what the authorizer's worker needs."""

    name: str
    endpoint: str
    server: subprocess.Popen[str] | None
    """moto started for this parameter alone (with `--dynamodb-endpoint`), else None: the table's moto holds it."""

    @property
    def variables(self) -> dict[str, str]:
        """The function's own environment variable, as the stack sets it: the parameter's name, never the secret."""
        return {environment.TOKEN_SECRET_PARAMETER: self.name}

    @property
    def endpoints(self) -> dict[str, str]:
        """botocore's standard variable pointing the worker's SSM client at the local server."""
        return {"AWS_ENDPOINT_URL_SSM": self.endpoint}

    def close(self) -> None:
        """Stop the moto process started for the parameter, if any."""
        if self.server is not None:
            stop_moto(self.server)


def store_secret(table: LocalTable, region: str, secret: str) -> SecretParameter:
    """Put the secret in SSM on the table's embedded moto server (or a moto of its own); fails with one line."""
    server = None
    endpoint = table.endpoint
    if table.server is None:
        server, endpoint = start_moto()
    parameter = SecretParameter(
        name=physical_name(f"{definition.AUTHORIZER.name}-secret"), endpoint=endpoint, server=server
    )
    try:
        boto3.client(
            "ssm",
            endpoint_url=endpoint,
            region_name=region,
            aws_access_key_id=THROWAWAY_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=THROWAWAY_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            aws_session_token=THROWAWAY_CREDENTIALS["AWS_SESSION_TOKEN"],
            # A local endpoint answers at once or not at all, as for the table.
            config=Config(retries={"max_attempts": 2, "mode": "standard"}, connect_timeout=5),
        ).put_parameter(
            Name=parameter.name,
            Value=secret,
            Type="SecureString",
            Description="HS256 secret of the chat's $connect JWTs (local emulator)",
        )
    except (BotoCoreError, ClientError) as error:
        parameter.close()
        raise EmulatorConfigError(f"cannot store the token secret in SSM at {endpoint}: {error}") from error
    return parameter


def method_arn(region: str, api: events.Api) -> str:
    """The ARN API Gateway authorizes: `arn:aws:execute-api:{region}:{account}:{api}/{stage}/$connect`."""
    return f"arn:aws:execute-api:{region}:{ACCOUNT_ID}:{api.api_id}/{api.stage}/{definition.AUTHORIZER_ROUTE}"


def authorizer_event(
    api: events.Api, peer: events.Peer, region: str, headers: list[tuple[str, str]], query: list[tuple[str, str]]
) -> dict[str, Any]:
    """A REQUEST authorizer event (tests/hardening/events/authorizer_connect.json): `$connect`'s headers, query
    string (absent when there is none) and requestContext, plus `type`, `methodArn` and `stageVariables`."""
    connect = events.connect_event(api, peer, request_id=events.new_id(), headers=headers, query=query)
    del connect["isBase64Encoded"]
    return {"type": "REQUEST", "methodArn": method_arn(region, api), **connect, "stageVariables": {}}


def _refusal(status: type[web.HTTPException], message: str | None, error_type: str) -> web.HTTPException:
    return status(
        text=json.dumps({"message": message}), content_type="application/json", headers={"x-amzn-ErrorType": error_type}
    )


def authorization_context(outcome: Invocation, arn: str) -> dict[str, Any]:
    """`requestContext.authorizer` for an allowed request; raises the HTTP refusal API Gateway would answer."""
    if not outcome.ok:
        if outcome.error_message == UNAUTHORIZED:
            raise _refusal(web.HTTPUnauthorized, UNAUTHORIZED, "UnauthorizedException")
        raise _refusal(web.HTTPInternalServerError, None, "AuthorizerFailureException")
    try:
        principal, effect, context = _read_response(outcome.result, arn)
    except ValueError:
        raise _refusal(web.HTTPInternalServerError, None, "AuthorizerConfigurationException") from None
    if effect != "Allow":
        raise _refusal(web.HTTPForbidden, "Forbidden", "AccessDeniedException")
    return {**context, "principalId": principal}


def _read_response(result: Any, arn: str) -> tuple[str, str | None, dict[str, Any]]:
    """Principal, the policy's effect on `arn` (Deny wins over Allow; None when no statement applies), context.

    ValueError when the response is not what API Gateway accepts.
    """
    if not isinstance(result, dict):
        raise ValueError("the response is not an object")
    if len(json.dumps(result).encode("utf-8")) > RESULT_LIMIT_BYTES:
        raise ValueError(f"the response is over {RESULT_LIMIT_BYTES} bytes")
    principal = result.get("principalId")
    document = result.get("policyDocument")
    context = result.get("context") or {}
    if not isinstance(principal, str) or not principal or not isinstance(document, dict):
        raise ValueError("principalId and policyDocument are required")
    if not isinstance(context, dict) or not all(isinstance(value, SCALAR) for value in context.values()):
        raise ValueError("context values must be strings, numbers or booleans")
    statements = document.get("Statement")
    if isinstance(statements, dict):
        statements = [statements]
    if not isinstance(statements, list):
        raise ValueError("policyDocument.Statement must be a list or an object")
    effects = set()
    for statement in statements:
        if not isinstance(statement, dict) or statement.get("Effect") not in ("Allow", "Deny"):
            raise ValueError("every statement needs an Effect of Allow or Deny")
        actions = _names(statement.get("Action"))
        resources = _names(statement.get("Resource"))
        if any(_wildcard(action, INVOKE_ACTION, ignore_case=True) for action in actions) and any(
            _wildcard(resource, arn) for resource in resources
        ):
            effects.add(statement["Effect"])
    effect = "Deny" if "Deny" in effects else "Allow" if "Allow" in effects else None
    return principal, effect, context


def _names(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return value
    if value is None:
        return []
    raise ValueError("Action and Resource must be strings or lists of strings")


def _wildcard(pattern: str, value: str, ignore_case: bool = False) -> bool:
    """IAM matching: `*` is any run of characters, `?` any one character (actions ignore case, ARNs do not)."""
    expression = "".join(".*" if char == "*" else "." if char == "?" else re.escape(char) for char in pattern)
    return re.fullmatch(expression, value, re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL) is not None


class LambdaRequestAuthorizer:
    """The gateway's `Authorizer`: invokes the authorizer function on its own pool and answers as API Gateway."""

    def __init__(self, pool: FunctionPool, api: events.Api, region: str, port: int, log: Log) -> None:
        self.pool = pool
        self._api = api
        self._region = region
        self._port = port
        self._log = log

    async def __call__(self, request: web.Request, peer: events.Peer) -> Mapping[str, Any] | None:
        """`requestContext.authorizer` for this connection, or the refusal (401, 403, 500) as an HTTP exception."""
        event = authorizer_event(
            self._api,
            peer,
            self._region,
            handshake_headers(request, self._port),
            list(parse_qsl(request.rel_url.raw_query_string, keep_blank_values=True)),
        )
        started = time.monotonic()
        try:
            outcome = await self.pool.invoke(event)
        except Exception as error:  # the gateway answers like API Gateway whatever broke on the Lambda side
            outcome = Invocation(ok=False, error_type="Emulator.InvokeError", error_message=repr(error))
        elapsed_ms = (time.monotonic() - started) * 1000
        try:
            context = authorization_context(outcome, event["methodArn"])
        except web.HTTPException as refusal:
            why = "" if outcome.ok else f" ({outcome.error_type}: {outcome.error_message})"
            self._log(LOG_PREFIX, f"{peer.connection_id} refused with {refusal.status}{why} in {elapsed_ms:.1f} ms")
            raise
        self._log(LOG_PREFIX, f"{peer.connection_id} allowed as {context['principalId']} in {elapsed_ms:.1f} ms")
        return context


def start_local_issuer(settings: StackSettings, key_file: Path = KEY_FILE) -> LocalIssuer:
    """The emulator's own issuer, with the saved key (or a new one), its address saved for `python -m client token`.

    It listens on the port of the last run when that is free, so the issuer (the tokens' `iss`) stays the same and
    tokens minted before a restart still connect.
    """
    issuer = LocalIssuer([key_for_run(key_file)], audience=settings.jwt_audience or DEFAULT_AUDIENCE)
    try:
        issuer.start(previous_port(key_file))
    except OSError:
        issuer.start(0)
    try:
        issuer.save(key_file)
    except OSError as error:
        issuer.stop()
        raise EmulatorConfigError(f"cannot save the local issuer's key to {key_file}: {error}") from error
    return issuer


def issuer_variables(settings: StackSettings, issuer: LocalIssuer | None) -> dict[str, str]:
    """The authorizer's `JWT_*` variables: the stack's issuer settings, or the local issuer's address and audience."""
    values = {
        environment.JWT_ISSUER: issuer.url if issuer is not None else settings.jwt_issuer,
        environment.JWT_AUDIENCE: issuer.audience if issuer is not None else settings.jwt_audience,
        environment.JWKS_URL: None if issuer is not None else settings.jwks_url,
        environment.JWT_NAME_CLAIM: settings.jwt_name_claim,
    }
    return {name: value for name, value in values.items() if value is not None}


@dataclass
class TokenAuthorization:
    """What `auth=jwt` adds to a local cloud: the authorizer guarding `$connect`, and what its mode needs (the secret's
    SSM parameter, or the local issuer)."""

    authorizer: LambdaRequestAuthorizer
    parameter: SecretParameter | None = None
    issuer: LocalIssuer | None = None
    key_file: Path = KEY_FILE

    def ready_lines(self) -> list[str]:
        """What the terminal shows about auth: who guards `$connect`, whose tokens it trusts, and how to mint one."""
        spec = self.authorizer.pool.spec
        mint = "python -m client token --name alice"
        guard = f"  Authorizer     {definition.AUTHORIZER_ROUTE} -> {spec.name} ({spec.handler})"
        if self.parameter is not None:
            variable = definition.DEV_TOKEN_SECRET_VARIABLE
            lines = [
                f"{guard}, HS256 secret in SSM parameter {self.parameter.name}",
                f"  Tokens         mint one with:  {mint}  (signs with your {variable})",
            ]
        elif self.issuer is not None:
            lines = [
                f"{guard}, RS256 tokens of the local issuer {self.issuer.url} (audience {self.issuer.audience})",
                f"  Tokens         mint one with:  {mint}  (signs with the key in {self.key_file})",
            ]
        else:
            lines = [f"{guard}, tokens of the stack's jwtIssuer (mint them with your identity provider)"]
        lines.append(
            f"  Connect with   ?{definition.TOKEN_QUERY_PARAMETER}=TOKEN, {definition.TOKEN_HEADER}: Bearer TOKEN, or "
            "the subprotocol bearer.TOKEN"
        )
        return lines

    async def close(self) -> None:
        """Stop the authorizer's workers, then the parameter's own moto or the local issuer (if any)."""
        await self.authorizer.pool.close()
        if self.parameter is not None:
            await asyncio.to_thread(self.parameter.close)
        if self.issuer is not None:
            await asyncio.to_thread(self.issuer.stop)
