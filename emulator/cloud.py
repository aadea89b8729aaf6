"""The whole local cloud in one object: DynamoDB, the function pools and the gateway, started and stopped in order.

`LocalCloud` is the Python API (tests use it to serve their own routes); `python -m emulator` wraps it in a CLI.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
import urllib.parse
from collections.abc import Mapping
from datetime import datetime

from aiohttp import web

from app import definition
from app.settings import StackSettings
from emulator import events
from emulator.authorization import (
    LambdaRequestAuthorizer,
    TokenAuthorization,
    issuer_variables,
    start_local_issuer,
    store_secret,
)
from emulator.config import EmulatorConfigError, EmulatorOptions, FunctionSpec, RouteSpec
from emulator.dynamodb import THROWAWAY_CREDENTIALS, LocalTable, start_table
from emulator.gateway import Authorizer, Gateway
from emulator.lambda_api import LambdaApi
from emulator.reload import DeployError, watch
from emulator.security import CALLBACK_PREFIX, is_loopback, new_callback_secret, printable
from emulator.workers import RUNTIME_ENVIRONMENT, ForkServer, FunctionPool, Log, TaskRoot, physical_name
from handlers import environment

PROVIDED_ENVIRONMENT = (
    *definition.TABLES,
    environment.ENDPOINT_URL,
    *definition.settings_environment(StackSettings(stage_name="dev")),
)
"""The stack's environment variables the emulator can fill with local values."""

AUTHORIZER_ENVIRONMENT = (
    environment.TOKEN_SECRET_PARAMETER,
    environment.JWT_ISSUER,
    environment.JWT_AUDIENCE,
    environment.JWKS_URL,
    environment.JWT_NAME_CLAIM,
)
"""What the emulator gives the authorizer, the ones of its mode only (as the stack does)."""


def print_log(prefix: str, message: str) -> None:
    """The terminal log: time, `[function or route]`, message (escaped, so no text can forge a line)."""
    stamp = datetime.now().strftime("%H:%M:%S.%f")[:-3]
    sys.stdout.write(f"{stamp} [{prefix}] {printable(message)}\n")
    sys.stdout.flush()


class LocalCloud:
    """DynamoDB, Lambda and API Gateway for one stack, on one host and port."""

    def __init__(self, options: EmulatorOptions, log: Log = print_log, authorizer: Authorizer | None = None) -> None:
        self.options = options
        self._log = log
        self._authorizer = authorizer
        self._authorization: TokenAuthorization | None = None
        self._table: LocalTable | None = None
        self._task_root: TaskRoot | None = None
        self._pools: dict[str, FunctionPool] = {}
        self._runner: web.AppRunner | None = None
        self.gateway: Gateway | None = None
        self.port = options.port
        self.bound_address = f"{options.host}:{options.port}"
        """The listening socket's real address, for the terminal (`0.0.0.0:3001` means every interface)."""
        self._callback_secret = new_callback_secret()
        self._invoked_pools: list[FunctionPool] = []
        self._lambda_listener: socket.socket | None = None
        self._lambda_runner: web.AppRunner | None = None
        self.lambda_api: LambdaApi | None = None
        self.routes = options.routes
        """The routes serving now (a reload of the app definition may change them)."""
        self.version = 1
        """The code version serving: 1 at start, one more per reload (`deploy`)."""
        self._retired: list[tuple[TaskRoot, list[FunctionPool]]] = []
        self._reloader: asyncio.Task[None] | None = None
        self._fork_server = ForkServer(log)

    @property
    def ws_url(self) -> str:
        """The WebSocket URL clients connect to."""
        return f"ws://{self._public_host}:{self.port}/{self.options.stage}"

    @property
    def callback_url(self) -> str:
        """The callback API base with the run's secret, as `ENDPOINT_URL` holds it (`@connections/{id}` follows)."""
        return f"http://{self._public_host}:{self.port}/{CALLBACK_PREFIX}/{self._callback_secret}/{self.options.stage}"

    @property
    def http_url(self) -> str:
        """The chat page."""
        return f"http://{self._public_host}:{self.port}/"

    @property
    def table(self) -> LocalTable:
        """The connections table (after `start`)."""
        assert self._table is not None, "start() first"
        return self._table

    @property
    def _public_host(self) -> str:
        host = self.options.host
        if host in ("0.0.0.0", "::", ""):
            return "127.0.0.1"
        return f"[{host}]" if ":" in host else host

    async def start(self) -> None:
        """Create the table, bind the port, start one warm worker per function; then the ready lines can print."""
        options = self.options
        functions = {route.function.name: route.function for route in options.routes}
        functions.update({spec.name: spec for spec in options.invoked})
        if options.authorizer is not None and self._authorizer is not None:
            raise EmulatorConfigError("give either an authorizer function in the options or an Authorizer, not both")
        self._check_environment(options.routes)
        try:
            await self._start(functions)
        except BaseException:
            await self.stop()
            raise

    def _check_environment(self, routes: tuple[RouteSpec, ...]) -> None:
        authorizer = self.options.authorizer
        for spec in [*(route.function for route in routes), *([authorizer] if authorizer else [])]:
            provided = PROVIDED_ENVIRONMENT + (AUTHORIZER_ENVIRONMENT if spec is authorizer else ())
            missing = [name for name in spec.environment if name not in provided]
            if missing:
                raise EmulatorConfigError(
                    f"function {spec.name} reads {', '.join(missing)}, which the emulator cannot provide"
                )

    async def _start(self, functions: Mapping[str, FunctionSpec]) -> None:
        options = self.options
        if options.fork_workers:
            self._fork_server.start()
        self._task_root = TaskRoot([*functions.values(), *([options.authorizer] if options.authorizer else [])])
        self._table = await asyncio.to_thread(
            start_table,
            definition.TABLES,
            environment.TABLE_NAME,
            options.region,
            options.dynamodb_endpoint,
            physical_name,
        )
        listener = socket.create_server((options.host, options.port), reuse_port=False)
        self.port = listener.getsockname()[1]
        address = listener.getsockname()[0]
        self.bound_address = f"[{address}]:{self.port}" if ":" in address else f"{address}:{self.port}"
        # Lambda's API on loopback only, bound first: every function's environment names it.
        self._lambda_listener = socket.create_server(("127.0.0.1", 0), reuse_port=False)
        api = events.Api(
            api_id=events.new_api_id(), stage=options.stage, domain_name=f"{self._public_host}:{self.port}"
        )
        pools_by_function = {name: self._pool(spec) for name, spec in functions.items()}
        self._invoked_pools = [pools_by_function[spec.name] for spec in options.invoked]
        self._pools = {route.key: pools_by_function[route.function.name] for route in options.routes}
        if options.authorizer is not None:
            self._authorization = await self._authorize(options.authorizer, api)
            self._authorizer = self._authorization.authorizer
            pools_by_function[options.authorizer.name] = self._authorization.authorizer.pool
        self.gateway = Gateway(
            options, api, self._pools, self._log, self._authorizer, callback_secret=self._callback_secret
        )
        self._runner = web.AppRunner(self.gateway.application(), access_log=None, handle_signals=False)
        await self._runner.setup()
        await web.SockSite(self._runner, listener).start()
        await self._start_lambda_api(pools_by_function)
        if options.prewarm:
            await asyncio.gather(*(pool.prewarm() for pool in pools_by_function.values()))
        if options.reload:
            self._reloader = asyncio.create_task(watch(self, self._log))

    async def deploy(self, routes: tuple[RouteSpec, ...]) -> None:
        """Serve `routes` from a fresh copy of their code, as a new Lambda version would: new workers with a new init.

        Each function's first worker is started (its init run) before the switch; if one fails, the running version
        keeps serving and `DeployError` says why. Open connections are not touched.
        """
        assert self.gateway is not None and self._task_root is not None
        self._check_environment(routes)
        authorizer = self._authorization.authorizer if self._authorization is not None else None
        running = {
            pool.spec.name: pool
            for pool in [*self._pools.values(), *self._invoked_pools, *([authorizer.pool] if authorizer else [])]
        }
        specs = {route.function.name: route.function for route in routes}
        specs.update({spec.name: spec for spec in self.options.invoked})
        if authorizer is not None:
            specs[authorizer.pool.spec.name] = authorizer.pool.spec
        previous_root, self._task_root = self._task_root, TaskRoot(specs.values())
        # An unchanged function keeps its environment and name; a new or changed one gets fresh ones.
        pools = {
            name: running[name].successor(self._task_root.paths[name])
            if name in running and running[name].spec == spec
            else self._pool(spec)
            for name, spec in specs.items()
        }
        inits = await asyncio.gather(*(pool.prewarm() for pool in pools.values()))
        failures = [failure for failure in inits if failure is not None]
        if failures:
            await asyncio.gather(*(pool.close() for pool in pools.values()))
            self._task_root.remove()
            self._task_root = previous_root
            raise DeployError(f"{failures[0].error_type}: {failures[0].error_message}")
        self._pools = {route.key: pools[route.function.name] for route in routes}
        self._invoked_pools = [pools[spec.name] for spec in self.options.invoked]
        self.gateway.replace_pools(self._pools)
        if self.lambda_api is not None:
            self.lambda_api.replace_pools(self._function_names(pools))
        if authorizer is not None:
            authorizer.pool = pools[authorizer.pool.spec.name]
        self.routes = routes
        self.version += 1
        self._retired.append((previous_root, list(running.values())))
        await asyncio.gather(*(pool.retire() for pool in running.values()))

    @staticmethod
    def _function_names(pools_by_function: Mapping[str, FunctionPool]) -> dict[str, FunctionPool]:
        """Each pool under every name a caller may use: the logical and the physical name."""
        return {alias: pool for name, pool in pools_by_function.items() for alias in (name, pool.function_name)}

    async def _start_lambda_api(self, pools_by_function: Mapping[str, FunctionPool]) -> None:
        """Serve `Invoke` for every function, by its logical and its physical name."""
        assert self._lambda_listener is not None
        self.lambda_api = LambdaApi(self._function_names(pools_by_function), self._log)
        self._lambda_runner = web.AppRunner(self.lambda_api.application(), access_log=None, handle_signals=False)
        await self._lambda_runner.setup()
        await web.SockSite(self._lambda_runner, self._lambda_listener).start()

    @property
    def lambda_url(self) -> str:
        """Lambda's API for these functions, what `AWS_ENDPOINT_URL_LAMBDA` holds."""
        assert self._lambda_listener is not None, "the cloud has not started"
        return f"http://127.0.0.1:{self._lambda_listener.getsockname()[1]}"

    async def _authorize(self, spec: FunctionSpec, api: events.Api) -> TokenAuthorization:
        """The authorizer in the stack's mode: its issuer, the HS256 secret in local SSM, or a local issuer."""
        options = self.options
        assert self._table is not None
        parameter = issuer = None
        if options.settings.jwt_issuer is None and options.token_secret is not None:
            parameter = await asyncio.to_thread(store_secret, self._table, options.region, options.token_secret)
            variables, endpoints = (
                {**issuer_variables(options.settings, None), **parameter.variables},
                parameter.endpoints,
            )
        else:
            if options.settings.jwt_issuer is None:
                issuer = await asyncio.to_thread(start_local_issuer, options.settings, options.issuer_key_file)
            variables, endpoints = issuer_variables(options.settings, issuer), {}
        pool = self._pool(spec, variables, endpoints)
        authorizer = LambdaRequestAuthorizer(pool, api, options.region, self.port, self._log)
        return TokenAuthorization(authorizer, parameter, issuer, options.issuer_key_file)

    def _pool(
        self, spec: FunctionSpec, variables: Mapping[str, str] | None = None, endpoints: Mapping[str, str] | None = None
    ) -> FunctionPool:
        assert self._task_root is not None
        return FunctionPool(
            spec,
            self._task_root.paths[spec.name],
            self._environment(spec, variables or {}, endpoints or {}),
            timeout=self.options.function_timeout,
            memory_mb=self.options.settings.memory_mb(spec.fans_out),
            max_workers=self.options.workers_per_function,
            log=self._log,
            fork_server=self._fork_server,
        )

    def _environment(
        self, spec: FunctionSpec, variables: Mapping[str, str], endpoints: Mapping[str, str]
    ) -> dict[str, str]:
        """Exactly what the stack gives the function, plus what Lambda's runtime sets, pointed at local endpoints.

        `variables` and `endpoints`: what only some functions get (the authorizer: its secret's parameter name, and
        `AWS_ENDPOINT_URL_SSM` for the local SSM holding it).
        """
        assert self._table is not None and self._task_root is not None
        settings = self.options.settings
        provided = {
            **self._table.names,
            environment.ENDPOINT_URL: self.callback_url,
            **definition.settings_environment(settings),
            **variables,
        }
        function_name = physical_name(spec.name)
        region = self.options.region
        return {
            **{name: provided[name] for name in spec.environment if name in provided},
            **THROWAWAY_CREDENTIALS,
            "AWS_ENDPOINT_URL_DYNAMODB": self._table.endpoint,
            "AWS_ENDPOINT_URL_LAMBDA": self.lambda_url,
            **endpoints,
            "AWS_REGION": region,
            "AWS_DEFAULT_REGION": region,
            "AWS_LAMBDA_FUNCTION_NAME": function_name,
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(settings.memory_mb(spec.fans_out)),
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function_name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": f"{datetime.now():%Y/%m/%d}/[$LATEST]{events.new_api_id()}",
            "AWS_EXECUTION_ENV": f"AWS_Lambda_{settings.lambda_runtime}",
            "LAMBDA_TASK_ROOT": str(self._task_root.paths[spec.name]),
            "_HANDLER": spec.handler,
            **RUNTIME_ENVIRONMENT,
        }

    def ready_lines(self) -> list[str]:
        """What the terminal shows once everything is up; the last line starts with `Ready: `."""
        options = self.options
        web_root = options.web_root
        # The page guesses the `dev` stage unless told, so the printed address names the stage.
        has_page = web_root is not None and web_root.is_dir()
        page = f"{self.http_url}?stage={urllib.parse.quote(options.stage)}" if has_page else "(no web/ directory yet)"
        lines = [
            f"Local cloud for stack {options.stack} (stage {options.stage}):",
            f"  WebSocket URL  {self.ws_url}",
            f"  Callback URL   {self.callback_url}  (+ /@connections/{{id}}; the path holds this run's secret)",
            f"  Chat page      {page}",
            f"  DynamoDB       {self.table.endpoint}  table {self.table.name}",
            *(
                f"                 {variable} {name}"
                for variable, name in self.table.names.items()
                if name != self.table.name
            ),
            f"  Listening on   {self.bound_address}",
        ]
        if not is_loopback(options.host):
            lines += [
                f"  WARNING        {self.bound_address} is not loopback: anyone who can reach this machine can join",
                "  WARNING        the chat and read it (the callback API still needs the secret; see docs/emulator.md)",
            ]
        if self._lambda_listener is not None:
            lines.append(f"  Lambda API     {self.lambda_url}  (Invoke any function by name)")
            lines += [
                f"  Publish        AWS_ENDPOINT_URL={self.lambda_url} AWS_DEFAULT_REGION={options.region} "
                f"python -m client publish --function {spec.name} --room lobby --from bot hello"
                for spec in options.invoked
            ]
        if self._authorization is not None:
            lines += self._authorization.ready_lines()
        elif options.settings.auth != "none" and self._authorizer is None:
            lines.append(
                f"  WARNING        the stack sets auth={options.settings.auth}, but this emulator runs no "
                f"authorizer: every connection is accepted"
            )
        width = max(len(route.key) for route in options.routes) if options.routes else 0
        lines += [
            f"  route {route.key:<{width}}  -> {route.function.name} ({route.function.handler})"
            for route in options.routes
        ]
        lines.append(f"Ready: {self.ws_url}  (Ctrl-C stops)")
        return lines

    async def stop(self) -> None:
        """Close every client with 1001 (running `$disconnect` for each), stop the workers, the server and DynamoDB."""
        if self._reloader is not None:
            self._reloader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reloader
        if self.gateway is not None:
            await self.gateway.close_all()
        await asyncio.gather(*(pool.close() for pool in set(self._pools.values()) | set(self._invoked_pools)))
        for root, pools in self._retired:
            await asyncio.gather(*(pool.close() for pool in pools))
            root.remove()
        if self._authorization is not None:
            await self._authorization.close()
        if self._runner is not None:
            await self._runner.cleanup()
        if self.lambda_api is not None:
            await self.lambda_api.close()
        if self._lambda_runner is not None:
            await self._lambda_runner.cleanup()
        elif self._lambda_listener is not None:
            self._lambda_listener.close()
        await self._fork_server.close()
        if self._table is not None:
            await asyncio.to_thread(self._table.close)
        if self._task_root is not None:
            self._task_root.remove()

    @property
    def pools(self) -> Mapping[str, FunctionPool]:
        """The function pool serving each route key."""
        return self._pools
