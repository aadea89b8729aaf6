"""The stage that serves the API, redeployed by API Gateway on every change, with throttling and logs.

The stage auto-deploys rather than serving an explicit `Deployment`: Pulumi creates a replacement deployment before
it deletes a removed route, so an explicit one would keep serving that route; with `auto_deploy` API Gateway
redeploys after each change of the API, deletions included. Evidence and the upgrade path: docs/infrastructure.md.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.api import WebSocketApi

ACCESS_LOG_FORMAT = json.dumps(
    {
        "requestId": "$context.requestId",
        "extendedRequestId": "$context.extendedRequestId",
        "requestTime": "$context.requestTime",
        "connectionId": "$context.connectionId",
        "eventType": "$context.eventType",
        "routeKey": "$context.routeKey",
        "status": "$context.status",
        "sourceIp": "$context.identity.sourceIp",
        "userAgent": "$context.identity.userAgent",
        "integrationStatus": "$context.integration.status",
        "integrationLatency": "$context.integration.latency",
        "integrationError": "$context.integration.error",
        "error": "$context.error.message",
    },
    separators=(",", ":"),
)
"""One JSON object per request, so CloudWatch Logs Insights can query fields without parsing."""


EXECUTION_LOG_GROUP = "API-Gateway-Execution-Logs_{api_id}/{stage}"
"""Where API Gateway writes a stage's execution logs: AWS's REST guide names it, its WebSocket guide names no other
(docs/first-deploy.md weighs the evidence). API Gateway creates it without retention unless it exists; the stack
creates it first."""


@dataclass
class ApiStageArgs:
    """What the stage must wait for, and its operating limits."""

    api: WebSocketApi
    stage_name: str
    deployed: Sequence[pulumi.Resource]
    """Every route, and the authorizer with its invoke permission when there is one: the stage's first automatic
    deployment is taken when it is created, and an API without routes cannot be deployed at all."""
    logging_ready: Sequence[pulumi.Resource]
    """What makes logging possible in this region: the account's CloudWatch role setting when the stack makes it."""
    throttling_burst_limit: int
    throttling_rate_limit: float
    execution_logging_level: str
    log_retention_days: int


class ApiStage(pulumi.ComponentResource):
    """A stage that API Gateway redeploys on every change of the API, with access logs and optional execution logs."""

    name: pulumi.Output[str]

    def __init__(self, name: str, args: ApiStageArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("chat:index:ApiStage", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        self.access_logs = aws.cloudwatch.LogGroup(
            f"{name}-access-logs",
            retention_in_days=args.log_retention_days,
            opts=child,
        )

        # Created before the stage turns execution logging on, so API Gateway writes into a group with retention that
        # `pulumi destroy` removes, instead of making its own that never expires.
        self.execution_logs: aws.cloudwatch.LogGroup | None = None
        if args.execution_logging_level != "OFF":
            self.execution_logs = aws.cloudwatch.LogGroup(
                f"{name}-execution-logs",
                name=args.api.id.apply(lambda api_id: EXECUTION_LOG_GROUP.format(api_id=api_id, stage=args.stage_name)),
                retention_in_days=args.log_retention_days,
                opts=child,
            )

        waits_for = [*args.deployed, *args.logging_ready]
        if self.execution_logs is not None:
            waits_for.append(self.execution_logs)
        self.stage = aws.apigatewayv2.Stage(
            f"{name}-stage",
            api_id=args.api.id,
            name=args.stage_name,
            auto_deploy=True,
            default_route_settings=aws.apigatewayv2.StageDefaultRouteSettingsArgs(
                throttling_burst_limit=args.throttling_burst_limit,
                throttling_rate_limit=args.throttling_rate_limit,
                logging_level=args.execution_logging_level,
                # Full request/response logging would write every chat message to CloudWatch.
                data_trace_enabled=False,
            ),
            # Access logs too need the account's CloudWatch role (docs/first-deploy.md), hence `logging_ready`.
            access_log_settings=aws.apigatewayv2.StageAccessLogSettingsArgs(
                destination_arn=self.access_logs.arn,
                format=ACCESS_LOG_FORMAT,
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=waits_for),
        )

        self.name = self.stage.name
        self.register_outputs({"name": self.name})
