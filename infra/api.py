"""The WebSocket API itself, and the ARNs and URLs derived from it."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws


@dataclass
class WebSocketApiArgs:
    """How API Gateway picks a route for each incoming message."""

    route_selection_expression: str


class WebSocketApi(pulumi.ComponentResource):
    """An API Gateway WebSocket API; routes, integrations and stages attach to it."""

    id: pulumi.Output[str]
    execution_arn: pulumi.Output[str]
    endpoint: pulumi.Output[str]

    def __init__(self, name: str, args: WebSocketApiArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("chat:index:WebSocketApi", name, None, opts)

        self.api = aws.apigatewayv2.Api(
            f"{name}-api",
            protocol_type="WEBSOCKET",
            route_selection_expression=args.route_selection_expression,
            opts=pulumi.ResourceOptions(parent=self),
        )

        self.id = self.api.id
        self.execution_arn = self.api.execution_arn
        # `wss://{api-id}.execute-api.{region}.amazonaws.com`, as AWS reports it (right in every partition).
        self.endpoint = self.api.api_endpoint
        self.register_outputs({"id": self.id, "execution_arn": self.execution_arn, "endpoint": self.endpoint})

    def wss_url(self, stage_name: pulumi.Input[str]) -> pulumi.Output[str]:
        """The URL clients connect to: `wss://{api-id}.execute-api.{region}.amazonaws.com/{stage}`."""
        return pulumi.Output.concat(self.endpoint, "/", stage_name)

    def callback_url(self, stage_name: pulumi.Input[str]) -> pulumi.Output[str]:
        """The `@connections` API base: `https://{api-id}.execute-api.{region}.amazonaws.com/{stage}`."""
        https_endpoint = self.endpoint.apply(lambda endpoint: "https://" + endpoint.split("://", 1)[1])
        return pulumi.Output.concat(https_endpoint, "/", stage_name)

    def route_arn(self, stage_name: str, route_key: str) -> pulumi.Output[str]:
        """The ARN API Gateway presents when it invokes a route's integration: `{execution-arn}/{stage}/{route}`."""
        return pulumi.Output.concat(self.execution_arn, "/", stage_name, "/", route_key)

    def connections_arn(self, stage_name: str, method: str) -> pulumi.Output[str]:
        """IAM resource for one callback method on any connection of this API and stage."""
        return pulumi.Output.concat(self.execution_arn, "/", stage_name, "/", method, "/@connections/*")
