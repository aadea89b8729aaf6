"""A WebSocket route served by a Lambda function: integration, invoke permission and route."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from infra.api import WebSocketApi

INTEGRATION_TYPE = "AWS_PROXY"
INTEGRATION_METHOD = "POST"
"""Lambda's Invoke API is a POST, whatever the client did."""


@dataclass
class LambdaRouteArgs:
    """Which API, stage and route key, and the function that serves it."""

    api: WebSocketApi
    stage_name: str
    route_key: str
    function_name: pulumi.Input[str]
    function_invoke_arn: pulumi.Input[str]
    authorization_type: str = "NONE"
    """NONE, or CUSTOM with `authorizer_id` on `$connect`: API Gateway authorizes a WebSocket once, when it opens."""
    authorizer_id: pulumi.Input[str] | None = None
    """The Lambda authorizer guarding this route (CUSTOM only)."""


class LambdaRoute(pulumi.ComponentResource):
    """A route whose messages are proxied to a Lambda function, which only this API and stage may invoke."""

    route: aws.apigatewayv2.Route

    def __init__(self, name: str, args: LambdaRouteArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        if (args.authorization_type == "CUSTOM") != (args.authorizer_id is not None):
            raise ValueError(
                f"route {args.route_key!r}: authorization type {args.authorization_type} "
                f"{'needs' if args.authorizer_id is None else 'takes no'} authorizer id"
            )
        super().__init__("chat:index:LambdaRoute", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        # A resource-based permission rather than an API Gateway role: the function states who may invoke it, and
        # source_arn narrows that to this API, this stage and this route (docs/infrastructure.md).
        self.permission = aws.lambda_.Permission(
            f"{name}-permission",
            action="lambda:InvokeFunction",
            function=args.function_name,
            principal="apigateway.amazonaws.com",
            source_arn=args.api.route_arn(args.stage_name, args.route_key),
            opts=child,
        )

        integration_settings: dict[str, Any] = {
            "integration_type": INTEGRATION_TYPE,
            "integration_method": INTEGRATION_METHOD,
            "integration_uri": args.function_invoke_arn,
        }
        self.integration = aws.apigatewayv2.Integration(
            f"{name}-integration",
            api_id=args.api.id,
            **integration_settings,
            opts=child,
        )

        route_settings: dict[str, Any] = {
            "route_key": args.route_key,
            "authorization_type": args.authorization_type,
            "target": pulumi.Output.concat("integrations/", self.integration.id),
        }
        if args.authorizer_id is not None:
            route_settings["authorizer_id"] = args.authorizer_id
        self.route = aws.apigatewayv2.Route(
            f"{name}-route",
            api_id=args.api.id,
            **route_settings,
            # The permission is in place before the route can send traffic to the function.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.permission]),
        )

        self.register_outputs({"route_id": self.route.id, "integration_id": self.integration.id})
