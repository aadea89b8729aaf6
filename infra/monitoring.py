"""Knowing when it breaks: alarms that notify an SNS topic, and a dashboard of the stage and its functions.

Alarms (each over 5 minutes, thresholds from config, missing data counts as fine because a quiet chat is healthy):
- the API's `IntegrationError` and `ExecutionError` (AWS/ApiGateway, dimensions ApiId and Stage), at least
  `alarmApiErrors`;
- each function's `Errors` (at least `alarmFunctionErrors`) and `Throttles` (at least `alarmFunctionThrottles`)
  (AWS/Lambda, dimension FunctionName).
The dashboard shows connections, messages, errors and integration latency of the stage, and each function's
duration and errors; `dashboard_url` opens it in the CloudWatch console.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from app.settings import StackSettings

API_NAMESPACE = "AWS/ApiGateway"
LAMBDA_NAMESPACE = "AWS/Lambda"
PERIOD_SECONDS = 300
"""The settings promise thresholds "in 5 minutes"; one period of that length is evaluated."""

API_ERROR_METRICS = ("IntegrationError", "ExecutionError")
"""WebSocket API metrics: the integration answered 4XX/5XX, or calling it failed. `ClientError` is left out: with
auth on, every refused token counts there, which is the authorizer working, not the service failing."""

FUNCTION_ALARM_METRICS = ("Errors", "Throttles")
DASHBOARD_WIDTH = 24
"""CloudWatch dashboards are a grid 24 units wide."""


@dataclass
class MonitoringArgs:
    """The stage to watch, the functions to watch (logical name -> function name) and the stack's settings."""

    api_id: pulumi.Input[str]
    stage_name: pulumi.Input[str]
    functions: Mapping[str, pulumi.Input[str]]
    """Logical name (`connect`, `send-message`, `authorizer`...) -> the deployed function's name."""
    region: pulumi.Input[str]
    """The stack's region: dashboard widgets and the console URL name it."""
    settings: StackSettings


class Monitoring(pulumi.ComponentResource):
    """An alarm topic, the alarms that feed it, and a dashboard of the stage."""

    topic_arn: pulumi.Output[str]
    dashboard_name: pulumi.Output[str]
    dashboard_url: pulumi.Output[str]

    def __init__(self, name: str, args: MonitoringArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("chat:index:Monitoring", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        settings = args.settings

        # Not KMS-encrypted: CloudWatch cannot publish to a topic under the AWS-managed SNS key, and alarm
        # notifications carry no chat content (docs/hardening.md).
        self.topic = aws.sns.Topic(f"{name}-alarms", opts=child)
        self.subscription: aws.sns.TopicSubscription | None = None
        if settings.alarm_email is not None:
            # AWS e-mails a confirmation link; nothing is delivered until the recipient follows it.
            self.subscription = aws.sns.TopicSubscription(
                f"{name}-alarm-email",
                topic=self.topic.arn,
                protocol="email",
                endpoint=settings.alarm_email,
                opts=child,
            )

        self.alarms = self._alarms(name, args)

        self.dashboard = aws.cloudwatch.Dashboard(
            f"{name}-dashboard",
            # Dashboards have no auto-naming and their names are account-wide; the API id and stage keep two
            # stacks (or two stages) in one account apart.
            dashboard_name=pulumi.Output.concat(name, "-", args.api_id, "-", args.stage_name),
            dashboard_body=pulumi.Output.json_dumps(
                dashboard_body(args.api_id, args.stage_name, args.functions, args.region)
            ),
            opts=child,
        )

        self.topic_arn = self.topic.arn
        self.dashboard_name = self.dashboard.dashboard_name
        self.dashboard_url = pulumi.Output.concat(
            "https://",
            args.region,
            ".console.aws.amazon.com/cloudwatch/home?region=",
            args.region,
            "#dashboards:name=",
            self.dashboard.dashboard_name,
        )
        self.register_outputs(
            {"topic_arn": self.topic_arn, "dashboard_name": self.dashboard_name, "dashboard_url": self.dashboard_url}
        )

    def _alarms(self, name: str, args: MonitoringArgs) -> dict[str, aws.cloudwatch.MetricAlarm]:
        """The API's error alarms on the stage, and each function's error and throttle alarms, by metric."""
        settings = args.settings
        stage_dimensions: dict[str, pulumi.Input[str]] = {"ApiId": args.api_id, "Stage": args.stage_name}
        alarms: dict[str, aws.cloudwatch.MetricAlarm] = {}
        for metric in API_ERROR_METRICS:
            alarms[f"api-{metric}"] = self._alarm(
                f"{name}-api-{_kebab(metric)}",
                namespace=API_NAMESPACE,
                metric=metric,
                dimensions=stage_dimensions,
                threshold=settings.alarm_api_errors,
                description=f"The chat API's stage reported at least {settings.alarm_api_errors} {metric} in 5 minutes",
            )
        thresholds = {"Errors": settings.alarm_function_errors, "Throttles": settings.alarm_function_throttles}
        for logical_name, function_name in args.functions.items():
            for metric in FUNCTION_ALARM_METRICS:
                alarms[f"{logical_name}-{metric}"] = self._alarm(
                    f"{name}-{logical_name}-{_kebab(metric)}",
                    namespace=LAMBDA_NAMESPACE,
                    metric=metric,
                    dimensions={"FunctionName": function_name},
                    threshold=thresholds[metric],
                    description=(
                        f"Function {logical_name} reported at least {thresholds[metric]} {metric} in 5 minutes"
                    ),
                )
        return alarms

    def _alarm(
        self,
        resource_name: str,
        *,
        namespace: str,
        metric: str,
        dimensions: Mapping[str, pulumi.Input[str]],
        threshold: int,
        description: str,
    ) -> aws.cloudwatch.MetricAlarm:
        return aws.cloudwatch.MetricAlarm(
            resource_name,
            namespace=namespace,
            metric_name=metric,
            dimensions=dict(dimensions),
            statistic="Sum",
            period=PERIOD_SECONDS,
            evaluation_periods=1,
            threshold=threshold,
            comparison_operator="GreaterThanOrEqualToThreshold",
            # No data means no traffic, which is healthy; without this a quiet stage would sit in INSUFFICIENT_DATA.
            treat_missing_data="notBreaching",
            alarm_description=description,
            alarm_actions=[self.topic.arn],
            ok_actions=[self.topic.arn],
            opts=pulumi.ResourceOptions(parent=self),
        )


def dashboard_body(
    api_id: pulumi.Input[str],
    stage_name: pulumi.Input[str],
    functions: Mapping[str, pulumi.Input[str]],
    region: pulumi.Input[str],
) -> dict[str, Any]:
    """The dashboard's JSON body (values may be outputs; serialize with `pulumi.Output.json_dumps`)."""
    stage = ["ApiId", api_id, "Stage", stage_name]

    def api_metric(metric: str, stat: str) -> list[Any]:
        return [API_NAMESPACE, metric, *stage, {"stat": stat, "label": metric}]

    def function_metric(metric: str, logical_name: str, function_name: pulumi.Input[str], stat: str) -> list[Any]:
        return [LAMBDA_NAMESPACE, metric, "FunctionName", function_name, {"stat": stat, "label": logical_name}]

    half = DASHBOARD_WIDTH // 2
    widgets = [
        _widget("Connections", [api_metric("ConnectCount", "Sum")], region, x=0, y=0, width=half),
        _widget("Messages", [api_metric("MessageCount", "Sum")], region, x=half, y=0, width=half),
        _widget(
            "API errors",
            [api_metric(metric, "Sum") for metric in (*API_ERROR_METRICS, "ClientError")],
            region,
            x=0,
            y=6,
            width=half,
        ),
        _widget(
            "Integration latency (ms)",
            [
                [API_NAMESPACE, "IntegrationLatency", *stage, {"stat": "p50", "label": "p50"}],
                [API_NAMESPACE, "IntegrationLatency", *stage, {"stat": "p99", "label": "p99"}],
            ],
            region,
            x=half,
            y=6,
            width=half,
        ),
        _widget(
            "Function duration p99 (ms)",
            [function_metric("Duration", logical, physical, "p99") for logical, physical in functions.items()],
            region,
            x=0,
            y=12,
            width=half,
        ),
        _widget(
            "Function errors",
            [function_metric("Errors", logical, physical, "Sum") for logical, physical in functions.items()],
            region,
            x=half,
            y=12,
            width=half,
        ),
    ]
    return {"widgets": widgets}


def _widget(
    title: str, metrics: list[list[Any]], region: pulumi.Input[str], *, x: int, y: int, width: int
) -> dict[str, Any]:
    return {
        "type": "metric",
        "x": x,
        "y": y,
        "width": width,
        "height": 6,
        "properties": {
            "title": title,
            "view": "timeSeries",
            "stacked": False,
            "region": region,
            "period": PERIOD_SECONDS,
            "metrics": metrics,
        },
    }


def _kebab(metric: str) -> str:
    """`IntegrationError` -> `integration-error`, for resource names."""
    return "".join(f"-{char.lower()}" if char.isupper() else char for char in metric).lstrip("-")
