"""The deployment of the API's routes and the stage that serves it, with throttling and access logs."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

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


@dataclass
class ApiStageArgs:
    """The routes to deploy, the redeployment fingerprint's parts, and the stage's operating limits."""

    api: WebSocketApi
    stage_name: str
    deployed: Sequence[pulumi.Resource]
    """Every route, and the authorizer with its invoke permission when there is one: the deployment depends on each,
    as a deployment taken before one exists would not contain it (or would point at a function it cannot call)."""
    deployment_inputs: Sequence[pulumi.Input[Any]]
    """What a deployment captures: routes, integrations and the authorizer."""
    throttling_burst_limit: int
    throttling_rate_limit: float
    execution_logging_level: str
    log_retention_days: int


def deployment_fingerprint(deployment_inputs: Sequence[pulumi.Input[Any]]) -> pulumi.Output[str]:
    """SHA-256 of the canonical JSON of everything a deployment captures: it changes exactly when they do."""
    return pulumi.Output.json_dumps(list(deployment_inputs), sort_keys=True).apply(
        lambda text: hashlib.sha256(text.encode()).hexdigest()
    )


class ApiStage(pulumi.ComponentResource):
    """A stage serving the latest deployment; a new deployment is made whenever the routes' wiring changes."""

    name: pulumi.Output[str]

    def __init__(self, name: str, args: ApiStageArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("chat:index:ApiStage", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        self.access_logs = aws.cloudwatch.LogGroup(
            f"{name}-access-logs",
            retention_in_days=args.log_retention_days,
            opts=child,
        )

        # Changes to routes, integrations or the authorizer reach clients only through a new deployment; the trigger
        # replaces this one exactly when they change, and code-only updates (same invoke ARN) leave it alone.
        self.deployment = aws.apigatewayv2.Deployment(
            f"{name}-deployment",
            api_id=args.api.id,
            description="Routes and integrations of the chat API",
            triggers={"redeployment": deployment_fingerprint(args.deployment_inputs)},
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.deployed)),
        )

        self.stage = aws.apigatewayv2.Stage(
            f"{name}-stage",
            api_id=args.api.id,
            name=args.stage_name,
            deployment_id=self.deployment.id,
            default_route_settings=aws.apigatewayv2.StageDefaultRouteSettingsArgs(
                throttling_burst_limit=args.throttling_burst_limit,
                throttling_rate_limit=args.throttling_rate_limit,
                # Anything but OFF needs the account-level CloudWatch role for API Gateway, hence off by default.
                logging_level=args.execution_logging_level,
                # Full request/response logging would write every chat message to CloudWatch.
                data_trace_enabled=False,
            ),
            access_log_settings=aws.apigatewayv2.StageAccessLogSettingsArgs(
                destination_arn=self.access_logs.arn,
                format=ACCESS_LOG_FORMAT,
            ),
            opts=child,
        )

        self.name = self.stage.name
        self.register_outputs({"name": self.name, "deployment_id": self.deployment.id})
