"""`python -m client publish --room ops --from deploy-bot "text"`: post into a room from a backend, no WebSocket.

It invokes the stack's `publish` function (`pulumi stack output publishFunctionName`) with the caller's own AWS
credentials, so IAM decides who may publish (`lambda:InvokeFunction` on that function; the stack exports a policy
granting exactly that, `publishPolicyArn`). The local cloud serves the same Lambda Invoke API, so the command works
against it unchanged: set `AWS_ENDPOINT_URL` (or `--endpoint-url`) to the emulator's address.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable, Sequence
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

FUNCTION_VARIABLE = "CHAT_PUBLISH_FUNCTION"
"""Where the function's name may come from instead of `--function`."""


def parser() -> argparse.ArgumentParser:
    """The `publish` subcommand's arguments."""
    parsed = argparse.ArgumentParser(
        prog="python -m client publish",
        description="Post a message into a room from a backend, with your AWS credentials (no WebSocket). Prints "
        "the message's seq and how many members got it; exits 1 when the chat refuses it, 2 on bad arguments.",
        epilog="examples:\n"
        '  python -m client publish --function "$(pulumi stack output publishFunctionName)" --room ops '
        '--from deploy-bot "release 1.4 is out"\n'
        "  AWS_ENDPOINT_URL=http://127.0.0.1:3001 python -m client publish --function publish --room lobby "
        "--from bot hi",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parsed.add_argument("message", help="the text to post")
    parsed.add_argument("--room", required=True, help="the room, e.g. ops")
    parsed.add_argument("--from", dest="sender", required=True, help="the display name the message shows")
    parsed.add_argument(
        "--function",
        default=os.environ.get(FUNCTION_VARIABLE) or None,
        help=f"the publish function's name or ARN (default ${FUNCTION_VARIABLE})",
    )
    parsed.add_argument(
        "--endpoint-url",
        default=None,
        help="another Lambda endpoint, e.g. the local cloud's http://127.0.0.1:3001 (default: AWS_ENDPOINT_URL, "
        "else AWS)",
    )
    parsed.add_argument("--region", default=None, help="the stack's region (default: your AWS configuration)")
    return parsed


def run(
    argv: Sequence[str],
    out: Callable[[str], None],
    err: Callable[[str], None],
    lambda_client: Callable[[str | None, str | None], Any] | None = None,
) -> int:
    """Invoke `publish` once; prints one line and returns the exit status (0 posted, 1 refused or failed)."""
    parsed = parser()
    options = parsed.parse_args(list(argv))
    if not options.function:
        parsed.error(f"--function is required (or set ${FUNCTION_VARIABLE}): `pulumi stack output publishFunctionName`")
    make_client = lambda_client or _lambda_client
    payload = {"room": options.room, "message": options.message, "from": options.sender}
    try:
        response = make_client(options.endpoint_url, options.region).invoke(
            FunctionName=options.function, Payload=json.dumps(payload).encode("utf-8")
        )
        answer = json.loads(response["Payload"].read() or b"null")
    except (BotoCoreError, ClientError) as error:
        err(f"publish FAILED: {error}")
        return 1
    if response.get("FunctionError") or not isinstance(answer, dict):
        err(f"publish FAILED: the function failed ({response.get('FunctionError') or 'no answer'}): {answer}")
        return 1
    if not answer.get("ok"):
        err(f"publish refused: {answer.get('error')} ({answer.get('code')})")
        return 1
    out(f"published to {answer['room']} as seq {answer['seq']}: {answer['delivered']} member(s) got it")
    return 0


def _lambda_client(endpoint_url: str | None, region: str | None) -> Any:
    return boto3.client("lambda", endpoint_url=endpoint_url, region_name=region)
