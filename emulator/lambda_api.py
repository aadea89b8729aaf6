"""Lambda's `Invoke` API for the local cloud: a function (or a tool on this machine) invokes a function by name.

`POST /2015-03-31/functions/{FunctionName}/invocations`, as boto3's `lambda` client sends it; every function gets
`AWS_ENDPOINT_URL_LAMBDA` pointing here, so its own boto3 client reaches these functions and no AWS account. The
name may be the function's physical name, its logical name, or an ARN ending in either. `X-Amz-Invocation-Type`:

- `RequestResponse` (the default): 200 with the function's result as JSON. A failed function still answers 200,
  with `X-Amz-Function-Error: Unhandled` and `{"errorType", "errorMessage"}`, as Lambda does.
- `Event`: 202 at once; the invocation runs in the background, and a failed one is retried twice, after
  `retry_delays` (Lambda's own are about a minute and two).
- `DryRun`: 204.

Errors as Lambda answers them (`x-amzn-ErrorType` and a JSON body): an unknown function 404
`ResourceNotFoundException`; a payload that is not JSON 400 `InvalidRequestContentException`; one over 6 MB
(synchronous) or 1 MB (asynchronous) 413 `RequestEntityTooLargeException`. Served on 127.0.0.1 only, and a request
with an `Origin` header or a `Host` that is not loopback (a browser page) gets 403 `AccessDeniedException`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import unquote

from aiohttp import web

from emulator.security import is_loopback
from emulator.workers import FunctionPool, Invocation, Log

PATH_PREFIX = "/2015-03-31/functions/"
SYNCHRONOUS_PAYLOAD_BYTES = 6 * 1024 * 1024
ASYNCHRONOUS_PAYLOAD_BYTES = 1024 * 1024
ASYNCHRONOUS_RETRIES = 2
LAMBDA_RETRY_DELAYS_SECONDS = (60.0, 120.0)


def error_response(status: int, error_type: str, message: str) -> web.Response:
    """An error as Lambda's API sends it: the type in `x-amzn-ErrorType` and a JSON body."""
    return web.json_response(
        {"Type": "User", "message": message}, status=status, headers={"x-amzn-ErrorType": error_type}
    )


def function_name(raw: str) -> str:
    """The bare name from a name, a partial ARN (`123456789012:function:name`) or a full ARN, qualifier dropped."""
    parts = unquote(raw).split(":")
    if "function" in parts:
        return parts[parts.index("function") + 1]
    return parts[0]


class LambdaApi:
    """Serves `Invoke` for a set of function pools, keyed by every name a caller may use for each."""

    def __init__(
        self,
        pools: Mapping[str, FunctionPool],
        log: Log,
        retry_delays: Sequence[float] = LAMBDA_RETRY_DELAYS_SECONDS,
    ) -> None:
        self._pools = dict(pools)
        self._log = log
        self.retry_delays = tuple(retry_delays)
        """Waits before the retries of a failed `Event` invocation."""
        self._background: set[asyncio.Task[None]] = set()

    def replace_pools(self, pools: Mapping[str, FunctionPool]) -> None:
        """Invoke these pools from now on (a reload's new version)."""
        self._pools = dict(pools)

    def application(self) -> web.Application:
        """The aiohttp application; client_max_size admits what Lambda's largest payload needs."""
        app = web.Application(client_max_size=SYNCHRONOUS_PAYLOAD_BYTES + 1024)
        app.router.add_post(PATH_PREFIX + "{name}/invocations", self._invoke)
        return app

    async def _invoke(self, request: web.Request) -> web.StreamResponse:
        # A browser page cannot reach it: pages send `Origin`, and a DNS-rebinding page its own name as `Host`.
        if "Origin" in request.headers or not is_loopback(request.url.host or ""):
            return error_response(403, "AccessDeniedException", "only local tools may invoke local functions")
        name = function_name(request.match_info["name"])
        pool = self._pools.get(name)
        if pool is None:
            return error_response(404, "ResourceNotFoundException", f"Function not found: {name}")
        kind = request.headers.get("X-Amz-Invocation-Type", "RequestResponse")
        if kind not in ("RequestResponse", "Event", "DryRun"):
            return error_response(400, "InvalidParameterValueException", f"Invalid invocation type: {kind}")
        body = await request.read()
        limit = ASYNCHRONOUS_PAYLOAD_BYTES if kind == "Event" else SYNCHRONOUS_PAYLOAD_BYTES
        if len(body) > limit:
            return error_response(
                413, "RequestEntityTooLargeException", f"Request must be smaller than {limit} bytes for {kind}"
            )
        try:
            event = json.loads(body) if body else {}
        except ValueError:
            return error_response(400, "InvalidRequestContentException", "Could not parse request body into json")
        if kind == "DryRun":
            return web.Response(status=204)
        if kind == "Event":
            task = asyncio.ensure_future(self._run_asynchronously(pool, event))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
            return web.Response(status=202)
        outcome = await pool.invoke(event)
        self._log(pool.spec.name, f"Invoke RequestResponse: {'ok' if outcome.ok else outcome.error_type}")
        return _answer(outcome)

    async def _run_asynchronously(self, pool: FunctionPool, event: Any) -> None:
        """An `Event` invocation: run it, and retry a failure twice after the delays, as Lambda does."""
        for attempt in range(ASYNCHRONOUS_RETRIES + 1):
            outcome = await pool.invoke(event)
            if outcome.ok:
                self._log(pool.spec.name, f"Invoke Event: ok (attempt {attempt + 1})")
                return
            self._log(pool.spec.name, f"Invoke Event: {outcome.error_type} (attempt {attempt + 1})")
            if attempt < ASYNCHRONOUS_RETRIES:
                await asyncio.sleep(self.retry_delays[min(attempt, len(self.retry_delays) - 1)])

    async def close(self) -> None:
        """Cancel asynchronous invocations still waiting for a retry."""
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)


def _answer(outcome: Invocation) -> web.Response:
    headers = {"X-Amz-Executed-Version": "$LATEST"}
    if outcome.ok:
        return web.Response(status=200, body=json.dumps(outcome.result).encode(), headers=headers)
    headers["X-Amz-Function-Error"] = "Unhandled"
    body = {"errorType": outcome.error_type, "errorMessage": outcome.error_message}
    return web.Response(status=200, body=json.dumps(body).encode(), headers=headers)
