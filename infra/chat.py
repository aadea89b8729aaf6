"""The whole chat backend: table, functions, WebSocket API, routes and stage, built from `app.definition`."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pulumi

from app.definition import Function, Route, Table
from app.settings import StackSettings
from handlers import environment
from infra.api import WebSocketApi, WebSocketApiArgs
from infra.archive import write_archive
from infra.function import ChatFunction, ChatFunctionArgs
from infra.policies import function_policy
from infra.routes import LambdaRoute, LambdaRouteArgs
from infra.stage import ApiStage, ApiStageArgs
from infra.table import ConnectionsTable, ConnectionsTableArgs


@dataclass
class ChatBackendArgs:
    """What the app is (from `app.definition`), how this stack runs it, and where to put the code archives."""

    settings: StackSettings
    table: Table
    functions: Sequence[Function]
    routes: Sequence[Route]
    route_selection_expression: str
    build_directory: Path
    """Where each function's zip is written (`build/` at the repository root; ignored by git)."""


class ChatBackend(pulumi.ComponentResource):
    """Everything `pulumi up` creates for one stack of the chat."""

    api_id: pulumi.Output[str]
    wss_url: pulumi.Output[str]
    callback_url: pulumi.Output[str]
    table_name: pulumi.Output[str]

    def __init__(self, name: str, args: ChatBackendArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("chat:index:ChatBackend", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        settings = args.settings
        stage_name = settings.stage_name

        self.table = ConnectionsTable(
            "connections",
            ConnectionsTableArgs(
                table=args.table,
                billing_mode=settings.table_billing_mode,
                read_capacity=settings.table_read_capacity,
                write_capacity=settings.table_write_capacity,
                point_in_time_recovery=settings.point_in_time_recovery,
                kms_key_arn=settings.table_kms_key_arn,
            ),
            opts=child,
        )

        self.api = WebSocketApi("websocket", WebSocketApiArgs(args.route_selection_expression), opts=child)

        # Every value a function may read, by variable name; each function gets only the names it declares.
        available: dict[str, pulumi.Input[str]] = {
            environment.TABLE_NAME: self.table.name,
            # From the configured stage name, not the Stage resource, which depends on the functions.
            environment.ENDPOINT_URL: self.api.callback_url(stage_name),
            environment.MAX_MESSAGE_BYTES: str(settings.max_message_bytes),
        }

        self.functions: dict[str, ChatFunction] = {}
        for function in args.functions:
            missing = sorted(set(function.environment) - set(available))
            if missing:
                raise ValueError(f"function {function.name!r} reads {', '.join(missing)}, which this stack never sets")
            archive_path, archive = write_archive(function, args.build_directory)
            self.functions[function.name] = ChatFunction(
                function.name,
                ChatFunctionArgs(
                    function=function,
                    archive_path=archive_path,
                    archive_hash=base64.b64encode(hashlib.sha256(archive).digest()).decode(),
                    runtime=settings.lambda_runtime,
                    architecture=settings.lambda_architecture,
                    memory_mb=settings.lambda_memory_mb,
                    timeout_seconds=settings.lambda_timeout_seconds,
                    log_retention_days=settings.log_retention_days,
                    environment={variable: available[variable] for variable in function.environment},
                    policy=function_policy(
                        function,
                        table_arn=self.table.arn,
                        connections_arn=lambda method: self.api.connections_arn(stage_name, method),
                    ),
                ),
                opts=child,
            )

        self.routes: list[LambdaRoute] = []
        for route in args.routes:
            serving = self.functions.get(route.function.name)
            if serving is None:
                raise ValueError(f"route {route.key!r} is served by {route.function.name!r}, which is not deployed")
            self.routes.append(
                LambdaRoute(
                    route.logical_name,
                    LambdaRouteArgs(
                        api=self.api,
                        stage_name=stage_name,
                        route_key=route.key,
                        function_name=serving.name,
                        function_invoke_arn=serving.invoke_arn,
                    ),
                    opts=child,
                )
            )

        self.stage = ApiStage(
            "websocket",
            ApiStageArgs(
                api=self.api,
                stage_name=stage_name,
                routes=[route.route for route in self.routes],
                deployment_inputs=[route.deployment_inputs for route in self.routes],
                throttling_burst_limit=settings.throttling_burst_limit,
                throttling_rate_limit=settings.throttling_rate_limit,
                execution_logging_level=settings.execution_logging_level,
                log_retention_days=settings.log_retention_days,
            ),
            opts=child,
        )

        self.api_id = self.api.id
        # From the Stage resource, so the URLs exist only once the stage serving them does.
        self.wss_url = self.api.wss_url(self.stage.name)
        self.callback_url = self.api.callback_url(self.stage.name)
        self.table_name = self.table.name
        self.register_outputs(
            {
                "api_id": self.api_id,
                "wss_url": self.wss_url,
                "callback_url": self.callback_url,
                "table_name": self.table_name,
            }
        )
