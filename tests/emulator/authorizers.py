"""Stand-in authorizers for tests/emulator/test_auth.py, steered by `?mode=`: they fail in the ways API Gateway
answers with 500, or allow while handing back the event they were given (the real authorizer, `handlers/authorizer.py`,
is tested in the same file). They run in the emulator's workers, like tests/emulator/lambdas.py."""

from __future__ import annotations

import json
from typing import Any


def steered(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """`?mode=crash` raises, `hang` spins past the timeout, `no-policy` returns no policy, `nested-context` puts an
    object in the context; anything else allows with the event, serialized, in the context."""
    mode = (event.get("queryStringParameters") or {}).get("mode", "")
    if mode == "crash":
        raise RuntimeError("authorizer crashed on purpose")
    if mode == "hang":
        while True:
            pass
    if mode == "no-policy":
        return {"principalId": "someone"}
    allow = {
        "principalId": "user-7",
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [{"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": event["methodArn"]}],
        },
    }
    if mode == "nested-context":
        return {**allow, "context": {"roles": ["admin"]}}
    return {**allow, "context": {"name": "steered", "event": json.dumps(event)}}
