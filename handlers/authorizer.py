"""Lambda REQUEST authorizer guarding `$connect`: a standard JWT decides who may connect, and as whom.

No token is 401, a refused one a Deny (403), a valid one an Allow whose context carries the display name; modes,
token sources and refusals are in docs/hardening.md. Only the log line says why, never with the token or secret.
"""

from __future__ import annotations

import functools
import json
import os
from typing import TYPE_CHECKING, Any

import boto3

from handlers import environment, subprotocol, tokens

if TYPE_CHECKING:
    from mypy_boto3_ssm import SSMClient

QUERY_PARAMETER = "token"
"""`?token=`: the same name as `app.definition.TOKEN_QUERY_PARAMETER` (a test keeps them equal)."""

HEADER = "Authorization"
"""`Authorization: Bearer <token>`: the same name as `app.definition.TOKEN_HEADER` (matched case-insensitively)."""

BEARER_SCHEME = "bearer"
UNAUTHORIZED = "Unauthorized"
"""The exact error message API Gateway maps to 401 when an authorizer raises it."""


def handler(event: dict[str, Any], context: object) -> dict[str, Any]:
    """Decide whether this `$connect` may proceed: an Allow or Deny policy, or `Exception("Unauthorized")`."""
    method_arn = event.get("methodArn")
    if not isinstance(method_arn, str) or not method_arn:
        raise ValueError("the authorizer event has no methodArn; is this function attached as a REQUEST authorizer?")
    try:
        found = token_from_request(event)
        if found is None:
            _log(event, decision="unauthorized", reason="missing-token", detail="no token in query, header or protocol")
            # API Gateway answers exactly this message with 401, as for missing credentials.
            raise Exception(UNAUTHORIZED)
        source, token = found
        claims = verify(token)
    except tokens.InvalidTokenError as rejection:
        _log(event, decision="deny", reason=rejection.reason.value, detail=rejection.detail)
        return policy("Deny", method_arn, principal_id="anonymous")
    _log(event, decision="allow", reason="valid-token", detail=f"token from the {source}", name=claims.name)
    return policy("Allow", method_arn, principal_id=claims.subject, context={"name": claims.name})


def verify(token: str) -> tokens.Claims:
    """The token's claims in this function's mode (issuer when `JWT_ISSUER` is set, else shared secret)."""
    issuer = _setting(environment.JWT_ISSUER)
    name_claim = _setting(environment.JWT_NAME_CLAIM)
    expected = tokens.Expectations(
        issuer=issuer,
        audience=_setting(environment.JWT_AUDIENCE),
        name_claims=(name_claim,) if name_claim else tokens.DEFAULT_NAME_CLAIMS,
    )
    if issuer is not None:
        if expected.audience is None:
            raise RuntimeError(f"{environment.JWT_AUDIENCE} is not set: an issuer's tokens are checked for audience")
        return tokens.verify_with_keys(_key_set(issuer, _setting(environment.JWKS_URL)), token, expected)
    return tokens.verify_with_secret(_signing_secret(), token, expected)


def token_from_request(event: dict[str, Any]) -> tuple[str, str] | None:
    """Where the token came from (`query`, `header` or `protocol`) and the token, or None when there is none.

    Blank counts as none; an ambiguous request (two tokens, another scheme) is refused rather than guessed at.
    """
    found = {
        "query": _single_value(event, "queryStringParameters", "multiValueQueryStringParameters", QUERY_PARAMETER),
        "header": _bearer_token(_single_value(event, "headers", "multiValueHeaders", HEADER)),
        "protocol": _protocol_token(event.get("headers")),
    }
    given = {source: token for source, token in found.items() if token}
    if len(set(given.values())) > 1:
        raise tokens.InvalidTokenError(tokens.Reason.MALFORMED, f"{' and '.join(given)} carry different tokens")
    return next(iter(given.items()), None)


def _protocol_token(headers: dict[str, Any] | None) -> str | None:
    carried = [entry for entry in subprotocol.offered(headers) if entry.startswith(subprotocol.TOKEN_PREFIX)]
    if len(carried) > 1:
        raise tokens.InvalidTokenError(tokens.Reason.MALFORMED, f"{subprotocol.HEADER} offers {len(carried)} tokens")
    if not carried:
        return None
    return carried[0][len(subprotocol.TOKEN_PREFIX) :] or None


def policy(effect: str, method_arn: str, principal_id: str, context: dict[str, str] | None = None) -> dict[str, Any]:
    """An authorizer response: an IAM policy on this `$connect` (the event's methodArn) and the optional context."""
    response: dict[str, Any] = {
        "principalId": principal_id,
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [{"Action": "execute-api:Invoke", "Effect": effect, "Resource": method_arn}],
        },
    }
    if context is not None:
        response["context"] = context
    return response


def _single_value(event: dict[str, Any], single_key: str, multi_key: str, name: str) -> str | None:
    """The stripped value of a query parameter or header (names matched case-insensitively), None when blank."""
    wanted = name.lower()
    multi = event.get(multi_key) or {}
    for key, values in multi.items():
        if key.lower() == wanted and isinstance(values, list) and len(values) > 1:
            raise tokens.InvalidTokenError(tokens.Reason.MALFORMED, f"{name} is given {len(values)} times")
    single = event.get(single_key) or {}
    matches = [value for key, value in single.items() if key.lower() == wanted]
    if len(matches) > 1:
        raise tokens.InvalidTokenError(tokens.Reason.MALFORMED, f"{name} is given {len(matches)} times")
    if not matches or not isinstance(matches[0], str) or not matches[0].strip():
        return None
    value: str = matches[0].strip()
    return value


def _bearer_token(header_value: str | None) -> str | None:
    if header_value is None:
        return None
    scheme, _, credentials = header_value.partition(" ")
    if scheme.lower() != BEARER_SCHEME:
        raise tokens.InvalidTokenError(tokens.Reason.MALFORMED, f"the {HEADER} header does not use the Bearer scheme")
    return credentials.strip() or None


@functools.cache
def _ssm() -> SSMClient:
    # Created on first use, so importing the module needs no AWS configuration.
    return boto3.client("ssm")


@functools.cache
def _signing_secret() -> bytes:
    """The secret, fetched once per container (a failed fetch is not cached, so the next invocation retries)."""
    parameter = _setting(environment.TOKEN_SECRET_PARAMETER)
    if parameter is None:
        raise RuntimeError(
            f"neither {environment.JWT_ISSUER} nor {environment.TOKEN_SECRET_PARAMETER} is set: the stack sets one"
        )
    response = _ssm().get_parameter(Name=parameter, WithDecryption=True)
    return tokens.signing_secret(response["Parameter"]["Value"])


@functools.cache
def _key_set(issuer: str, jwks_url: str | None) -> tokens.KeySet:
    """The issuer's keys, one cache per container (and per configuration, which is fixed for a container)."""
    return tokens.KeySet(issuer, jwks_url)


def _setting(name: str) -> str | None:
    return os.environ.get(name, "").strip() or None


def _log(event: dict[str, Any], *, decision: str, reason: str, detail: str, name: str | None = None) -> None:
    """One JSON line per decision, for CloudWatch Logs Insights; never the token, never the secret."""
    request = event.get("requestContext") or {}
    identity = request.get("identity") or {}
    record = {
        "source": "authorizer",
        "decision": decision,
        "reason": reason,
        "detail": detail,
        "name": name,
        "requestId": request.get("requestId"),
        "connectionId": request.get("connectionId"),
        "sourceIp": identity.get("sourceIp"),
    }
    # print, not logging: Logs Insights parses a bare JSON line, not a prefixed record.
    print(json.dumps(record, sort_keys=True), flush=True)
