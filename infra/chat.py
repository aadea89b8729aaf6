"""The whole chat backend, built from `app.definition`: tables, functions, WebSocket API, routes and stage, and the
hardening the settings ask for (token authorizer on `$connect`, custom domain, tracing, reserved concurrency) plus the
alarms and dashboard every stack gets."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_aws as aws

from app.definition import Function, Route, Table, settings_environment
from app.settings import StackSettings
from handlers import environment
from infra.account import AccountLogging, AccountLoggingRole, build_account_logging_role
from infra.api import WebSocketApi, WebSocketApiArgs
from infra.archive import content_hash, write_archive
from infra.authorization import TokenAuthorizer, build_token_authorizer
from infra.domain import CustomDomain, build_custom_domain
from infra.function import ChatFunction, ChatFunctionArgs, file_archive
from infra.monitoring import Monitoring, MonitoringArgs
from infra.policies import function_policy, invoke_policy
from infra.routes import LambdaRoute, LambdaRouteArgs
from infra.stage import ApiStage, ApiStageArgs
from infra.table import ConnectionsTable, ConnectionsTableArgs
from infra.wheels import WheelError, wheel_directory


@dataclass
class ChatBackendArgs:
    """What the app is (from `app.definition`), how this stack runs it, and where to put the code archives."""

    settings: StackSettings
    tables: Mapping[str, Table]
    """Every table, keyed by the environment variable (from `handlers.environment`) that tells a function its name."""
    functions: Sequence[Function]
    routes: Sequence[Route]
    route_selection_expression: str
    authorizer: Function
    """The JWT authorizer's function, deployed when `settings.auth` is `jwt`."""
    authorized_route: str
    """The route the authorizer guards (`$connect`, the only one API Gateway lets carry an authorizer)."""
    token_secret: pulumi.Input[str] | None
    """The HS256 secret (a Pulumi secret) in `auth: jwt`'s shared-secret mode, else None."""
    build_directory: Path
    """Where each function's zip is written (`build/` at the repository root; ignored by git)."""
    stack: str
    region: str
    account_logging: AccountLogging
    """API Gateway's account-level CloudWatch role in `region` as read before the run, and whether this stack manages
    it (`infra.account.read_account_logging`)."""


class ChatBackend(pulumi.ComponentResource):
    """Everything `pulumi up` creates for one stack of the chat."""

    api_id: pulumi.Output[str]
    wss_url: pulumi.Output[str]
    callback_url: pulumi.Output[str]
    table_name: pulumi.Output[str]
    dashboard_url: pulumi.Output[str]
    alarm_topic_arn: pulumi.Output[str]
    custom_domain_target: pulumi.Output[str] | None
    """The regional host a custom domain must resolve to; None without a custom domain."""

    def __init__(self, name: str, args: ChatBackendArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("chat:index:ChatBackend", name, None, opts)
        self._child = pulumi.ResourceOptions(parent=self)
        self._settings = args.settings
        self.tables = self._build_tables(args.tables)
        self.table = self.tables[environment.TABLE_NAME]
        self.api = WebSocketApi("websocket", WebSocketApiArgs(args.route_selection_expression), opts=self._child)
        self.functions = self._build_functions(args)
        self.authorizer = self._build_authorizer(args)
        self.routes = self._build_routes(args)
        self.logging_role: AccountLoggingRole | None = build_account_logging_role(
            "api-gateway-logging",
            settings=self._settings,
            logging=args.account_logging,
            region=args.region,
            stack=args.stack,
            opts=self._child,
        )
        self.stage = self._build_stage()
        # The mapping takes the Stage resource's name, so it is created once the stage exists.
        self.domain: CustomDomain | None = build_custom_domain(
            "websocket", settings=self._settings, api_id=self.api.id, stage_name=self.stage.name, opts=self._child
        )
        self.monitoring = self._build_monitoring(args)
        self.invoke_policies = self._build_invoke_policies(name, args)
        self._export()

    def _build_tables(self, tables: Mapping[str, Table]) -> dict[str, ConnectionsTable]:
        """One DynamoDB table per declared table, under its logical name, keyed like `ChatBackendArgs.tables`."""
        settings = self._settings
        return {
            variable: ConnectionsTable(
                table.logical_name,
                ConnectionsTableArgs(
                    table=table,
                    billing_mode=settings.table_billing_mode,
                    read_capacity=settings.table_read_capacity,
                    write_capacity=settings.table_write_capacity,
                    point_in_time_recovery=settings.point_in_time_recovery,
                    kms_key_arn=settings.table_kms_key_arn,
                ),
                opts=self._child,
            )
            for variable, table in tables.items()
        }

    def _available_environment(self) -> dict[str, pulumi.Input[str]]:
        """Every value a function may read, by variable name; each function gets only the names it declares."""
        stage_name = self._settings.stage_name
        available: dict[str, pulumi.Input[str]] = {variable: table.name for variable, table in self.tables.items()}
        # From the configured stage name, not the Stage resource, which depends on the functions.
        available[environment.ENDPOINT_URL] = self.api.callback_url(stage_name)
        available.update(settings_environment(self._settings))
        return available

    def _build_functions(self, args: ChatBackendArgs) -> dict[str, ChatFunction]:
        """One function per definition, each with only the environment and rights it declares."""
        stage_name = self._settings.stage_name
        available = self._available_environment()
        functions: dict[str, ChatFunction] = {}
        for function in args.functions:
            missing = sorted(set(function.environment) - set(available))
            if missing:
                raise ValueError(f"function {function.name!r} reads {', '.join(missing)}, which this stack never sets")
            archive_path, _ = write_archive(function, args.build_directory)
            functions[function.name] = ChatFunction(
                function.name,
                ChatFunctionArgs.from_settings(
                    function,
                    self._settings,
                    code=file_archive(archive_path),
                    code_hash=content_hash(function),
                    environment={variable: available[variable] for variable in function.environment},
                    policy=function_policy(
                        function,
                        table_arns={variable: table.arn for variable, table in self.tables.items()},
                        index_arn=lambda variable, index: self.tables[variable].index_arn(index),
                        connections_arn=lambda method: self.api.connections_arn(stage_name, method),
                    ),
                ),
                opts=self._child,
            )
        return functions

    def _build_authorizer(self, args: ChatBackendArgs) -> TokenAuthorizer | None:
        """With auth on, a REQUEST authorizer checks the token before the guarded route's function ever runs."""
        if self._settings.auth != "jwt":
            return None
        if not any(route.key == args.authorized_route for route in args.routes):
            raise ValueError(f"the authorizer guards {args.authorized_route!r}, which is not a route of this API")
        # PyJWT and cryptography ship inside this zip, as wheels for the stack's architecture.
        settings = self._settings
        try:
            wheels = wheel_directory(args.authorizer, settings.lambda_runtime, settings.lambda_architecture)
        except WheelError as error:
            raise pulumi.RunError(str(error)) from None
        authorizer_path, _ = write_archive(args.authorizer, args.build_directory, wheels=wheels)
        return build_token_authorizer(
            args.authorizer.name,
            settings=settings,
            secret=args.token_secret,
            api_id=self.api.id,
            execution_arn=self.api.execution_arn,
            code=file_archive(authorizer_path),
            code_hash=content_hash(args.authorizer, wheels=wheels),
            opts=self._child,
        )

    def _build_routes(self, args: ChatBackendArgs) -> list[LambdaRoute]:
        """Each route with its integration and invoke permission; only the authorized route carries the authorizer."""
        routes: list[LambdaRoute] = []
        for route in args.routes:
            serving = self.functions.get(route.function.name)
            if serving is None:
                raise ValueError(f"route {route.key!r} is served by {route.function.name!r}, which is not deployed")
            # API Gateway authorizes a WebSocket once, when it opens: every other route stays NONE.
            authorizer = self.authorizer if route.key == args.authorized_route else None
            routes.append(
                LambdaRoute(
                    route.logical_name,
                    LambdaRouteArgs(
                        api=self.api,
                        stage_name=self._settings.stage_name,
                        route_key=route.key,
                        function_name=serving.name,
                        function_invoke_arn=serving.invoke_arn,
                        authorization_type=authorizer.authorization_type if authorizer is not None else "NONE",
                        authorizer_id=authorizer.authorizer_id if authorizer is not None else None,
                    ),
                    opts=self._child,
                )
            )
        return routes

    def _build_stage(self) -> ApiStage:
        """The stage, created once every route (and the authorizer) and the region's logging role exist."""
        settings = self._settings
        deployed: list[pulumi.Resource] = [route.route for route in self.routes]
        if self.authorizer is not None:
            # The stage must not go live before API Gateway may invoke the authorizer's function.
            deployed += [self.authorizer.authorizer, self.authorizer.permission]
        return ApiStage(
            "websocket",
            ApiStageArgs(
                api=self.api,
                stage_name=settings.stage_name,
                deployed=deployed,
                logging_ready=[self.logging_role.account] if self.logging_role is not None else [],
                throttling_burst_limit=settings.throttling_burst_limit,
                throttling_rate_limit=settings.throttling_rate_limit,
                execution_logging_level=settings.execution_logging_level,
                log_retention_days=settings.log_retention_days,
            ),
            opts=self._child,
        )

    def _build_monitoring(self, args: ChatBackendArgs) -> Monitoring:
        """Alarms on every function (the authorizer too) and the API, and the stack's dashboard."""
        watched: dict[str, pulumi.Input[str]] = {name: function.name for name, function in self.functions.items()}
        if self.authorizer is not None:
            watched[args.authorizer.name] = self.authorizer.function_name
        return Monitoring(
            "monitoring",
            MonitoringArgs(
                api_id=self.api.id,
                stage_name=self.stage.name,
                functions=watched,
                region=aws.get_region_output(opts=pulumi.InvokeOutputOptions(parent=self)).region,
                settings=self._settings,
            ),
            opts=self._child,
        )

    def _build_invoke_policies(self, name: str, args: ChatBackendArgs) -> dict[str, aws.iam.Policy]:
        """One managed policy per function no route serves: `lambda:InvokeFunction` on it alone, for the backends
        that call it to attach to their own roles."""
        invoked = [function for function in args.functions if function not in {route.function for route in args.routes}]
        return {
            function.name: aws.iam.Policy(
                f"{name}-{function.name}-invoke",
                description=f"Invoke the chat's {function.name} function, nothing else",
                policy=pulumi.Output.json_dumps(invoke_policy(self.functions[function.name].arn)),
                opts=self._child,
            )
            for function in invoked
        }

    def _export(self) -> None:
        """The component's outputs, each resolved only once what serves it exists."""
        self.api_id = self.api.id
        # From the Stage resource, so the URLs exist only once the stage serving them does. With a custom domain,
        # clients connect to its root (the mapping has no path); the callback API stays on execute-api, where
        # posting to connections is not subject to a custom domain's 403s.
        self.wss_url = self.domain.wss_url if self.domain is not None else self.api.wss_url(self.stage.name)
        self.callback_url = self.api.callback_url(self.stage.name)
        self.table_name = self.table.name
        self.dashboard_url = self.monitoring.dashboard_url
        self.alarm_topic_arn = self.monitoring.topic_arn
        self.custom_domain_target = self.domain.target_domain_name if self.domain is not None else None
        self.register_outputs(
            {
                "api_id": self.api_id,
                "wss_url": self.wss_url,
                "callback_url": self.callback_url,
                "table_name": self.table_name,
                "dashboard_url": self.dashboard_url,
                "alarm_topic_arn": self.alarm_topic_arn,
                "custom_domain_target": self.custom_domain_target,
            }
        )
