"""Lambda REQUEST authorizer guarding `$connect`: a signed token decides who may connect, and as whom.

API Gateway invokes it before every WebSocket handshake (the authorizer declares no identity sources, so no request
is turned away before the token is looked at; see docs/hardening.md). The token comes from `?token=` (browsers
cannot set headers on a WebSocket) or an `Authorization: Bearer` header. Outcomes, as API Gateway turns them into
handshake answers:
- no token: the function raises `Exception("Unauthorized")`, which API Gateway answers with 401;
- a malformed, forged, tampered or expired token: a Deny policy, answered with 403;
- a valid token: an Allow policy for this `$connect` with context `{"name": <display name>}`, which reaches the
  connect handler as `requestContext.authorizer.name`.
The client never learns why it was refused; one JSON line in the function's log says why, never the token or secret.

The signing secret is an SSM SecureString whose name is in `TOKEN_SECRET_PARAMETER`, read once per container.
"""

from __future__ import annotations

import functools
import json
import os
from typing import TYPE_CHECKING, Any

import boto3

from handlers import environment, tokens

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
            _log(event, decision="unauthorized", reason="missing-token", detail="no token in query string or header")
            # API Gateway maps exactly this message to 401, the documented answer for missing credentials.
            raise Exception(UNAUTHORIZED)
        source, token = found
        claims = tokens.verify_token(_signing_secret(), token)
    except tokens.InvalidTokenError as rejection:
        _log(event, decision="deny", reason=rejection.reason.value, detail=rejection.detail)
        return policy("Deny", method_arn, principal_id="anonymous")
    _log(event, decision="allow", reason="valid-token", detail=f"token from the {source}", name=claims.name)
    return policy("Allow", method_arn, principal_id=claims.name, context={"name": claims.name})


def token_from_request(event: dict[str, Any]) -> tuple[str, str] | None:
    """Where the token came from (`query` or `header`) and the token, or None when the request carries none.

    Blank values count as none, as they do for API Gateway's identity sources. A request that is ambiguous (two
    different tokens, a repeated parameter or header) or uses another Authorization scheme is refused as malformed
    rather than guessed at.
    """
    from_query = _single_value(event, "queryStringParameters", "multiValueQueryStringParameters", QUERY_PARAMETER)
    from_header = _bearer_token(_single_value(event, "headers", "multiValueHeaders", HEADER))
    if from_query and from_header and from_query != from_header:
        raise tokens.InvalidTokenError(tokens.Reason.MALFORMED, "query string and header carry different tokens")
    if from_query:
        return "query", from_query
    if from_header:
        return "header", from_header
    return None


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
    # Created on first use, so importing the module (tests, the emulator's worker) needs no AWS configuration.
    return boto3.client("ssm")


@functools.cache
def _signing_secret() -> bytes:
    """The secret, fetched once per container (a failed fetch is not cached, so the next invocation retries)."""
    parameter = os.environ.get(environment.TOKEN_SECRET_PARAMETER, "").strip()
    if not parameter:
        raise RuntimeError(f"{environment.TOKEN_SECRET_PARAMETER} is not set: the stack passes the SSM parameter name")
    response = _ssm().get_parameter(Name=parameter, WithDecryption=True)
    return tokens.signing_secret(response["Parameter"]["Value"])


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
    # print, not logging: Lambda's runtime prefixes logging records, and a bare JSON line is what Insights parses.
    print(json.dumps(record, sort_keys=True), flush=True)
