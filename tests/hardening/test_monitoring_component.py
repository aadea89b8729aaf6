"""The monitoring component under mocks: alarm topic, each alarm's metric, dimensions and threshold, dashboard."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from app.settings import StackSettings
from infra.monitoring import Monitoring, MonitoringArgs
from tests.hardening.harness import REGION, ComponentRun, run_components
from tests.infra.mocks import RegisteredResource

API_ID = "a1b2c3d4e5"
STAGE = "prod"
FUNCTIONS = {
    "connect": "connect-function-1a2b3c4",
    "send-message": "send-message-function-5d6e7f8",
    "authorizer": "auth-function-9a8b7c6",
}
SETTINGS = StackSettings(stage_name=STAGE, alarm_api_errors=11, alarm_function_errors=3, alarm_function_throttles=2)
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
TOPIC = "aws:sns/topic:Topic"
SUBSCRIPTION = "aws:sns/topicSubscription:TopicSubscription"
DASHBOARD = "aws:cloudwatch/dashboard:Dashboard"


def _build(settings: StackSettings = SETTINGS) -> ComponentRun:
    def build() -> Any:
        monitoring = Monitoring(
            "monitoring",
            MonitoringArgs(api_id=API_ID, stage_name=STAGE, functions=FUNCTIONS, region=REGION, settings=settings),
        )
        return {
            "topic_arn": monitoring.topic_arn,
            "dashboard_name": monitoring.dashboard_name,
            "dashboard_url": monitoring.dashboard_url,
        }

    return run_components(build)


@pytest.fixture(scope="module")
def run() -> ComponentRun:
    return _build()


def _alarms(run: ComponentRun, namespace: str, metric: str) -> list[RegisteredResource]:
    return [
        alarm
        for alarm in run.of_type(ALARM)
        if alarm.inputs["namespace"] == namespace and alarm.inputs["metricName"] == metric
    ]


def _assert_common(alarm: RegisteredResource, run: ComponentRun, threshold: int) -> None:
    topic = run.one(TOPIC)
    inputs = alarm.inputs
    assert inputs["threshold"] == threshold, f"{alarm} threshold {inputs['threshold']}, expected {threshold}"
    assert inputs["comparisonOperator"] == "GreaterThanOrEqualToThreshold", f"{alarm} {inputs['comparisonOperator']}"
    assert inputs["statistic"] == "Sum", f"{alarm} statistic {inputs['statistic']}"
    assert inputs["period"] == 300 and inputs["evaluationPeriods"] == 1, f"{alarm} does not evaluate 5 minutes"
    assert inputs["treatMissingData"] == "notBreaching", f"{alarm} treats missing data as {inputs['treatMissingData']}"
    assert inputs["alarmActions"] == [topic.outputs["arn"]], f"{alarm} notifies {inputs['alarmActions']}"
    assert inputs["okActions"] == [topic.outputs["arn"]], f"{alarm} does not report recovery to the topic"
    assert "name" not in inputs, f"{alarm} has a hard-coded name"


@pytest.mark.parametrize("metric", ["IntegrationError", "ExecutionError"])
def test_api_error_alarms(run: ComponentRun, metric: str) -> None:
    alarms = _alarms(run, "AWS/ApiGateway", metric)
    assert len(alarms) == 1, f"expected one alarm on AWS/ApiGateway {metric}, got {[str(a) for a in alarms]}"
    alarm = alarms[0]
    assert alarm.inputs["dimensions"] == {"ApiId": API_ID, "Stage": STAGE}, f"{alarm} dimensions"
    _assert_common(alarm, run, SETTINGS.alarm_api_errors)


@pytest.mark.parametrize(("metric", "threshold"), [("Errors", 3), ("Throttles", 2)])
def test_function_alarms(run: ComponentRun, metric: str, threshold: int) -> None:
    alarms = _alarms(run, "AWS/Lambda", metric)
    watched = sorted(alarm.inputs["dimensions"]["FunctionName"] for alarm in alarms)
    assert watched == sorted(FUNCTIONS.values()), f"AWS/Lambda {metric} alarms watch {watched}"
    for alarm in alarms:
        assert set(alarm.inputs["dimensions"]) == {"FunctionName"}, f"{alarm} dimensions {alarm.inputs['dimensions']}"
        _assert_common(alarm, run, threshold)


def test_no_other_alarms(run: ComponentRun) -> None:
    assert len(run.of_type(ALARM)) == 2 + 2 * len(FUNCTIONS), f"alarms: {[str(a) for a in run.of_type(ALARM)]}"


def test_email_subscription_only_when_configured(run: ComponentRun) -> None:
    assert run.of_type(SUBSCRIPTION) == [], "an e-mail subscription exists although alarmEmail is unset"
    with_email = _build(dataclasses.replace(SETTINGS, alarm_email="ops@example.com"))
    subscription = with_email.one(SUBSCRIPTION)
    assert subscription.inputs["protocol"] == "email", f"{subscription} protocol {subscription.inputs['protocol']}"
    assert subscription.inputs["endpoint"] == "ops@example.com", f"{subscription} endpoint"
    assert subscription.inputs["topic"] == with_email.one(TOPIC).outputs["arn"], f"{subscription} is on another topic"


def _dashboard(run: ComponentRun) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(run.one(DASHBOARD).inputs["dashboardBody"])
    return body


def _widget(run: ComponentRun, title: str) -> dict[str, Any]:
    widgets: dict[str, dict[str, Any]] = {w["properties"]["title"]: w for w in _dashboard(run)["widgets"]}
    assert title in widgets, f"the dashboard has no {title!r} widget (has {sorted(widgets)})"
    return widgets[title]


@pytest.mark.parametrize(
    ("title", "metrics"),
    [
        ("Connections", ["ConnectCount"]),
        ("Messages", ["MessageCount"]),
        ("API errors", ["IntegrationError", "ExecutionError", "ClientError"]),
        ("Integration latency (ms)", ["IntegrationLatency", "IntegrationLatency"]),
    ],
)
def test_dashboard_stage_widgets(run: ComponentRun, title: str, metrics: list[str]) -> None:
    widget = _widget(run, title)
    lines = widget["properties"]["metrics"]
    assert [line[1] for line in lines] == metrics, f"{title} widget plots {[line[1] for line in lines]}"
    for line in lines:
        assert line[0] == "AWS/ApiGateway" and line[2:6] == ["ApiId", API_ID, "Stage", STAGE], (
            f"{title} widget line {line} is not this API's stage"
        )
    assert widget["properties"]["region"] == REGION, f"{title} widget region {widget['properties']['region']}"


def test_dashboard_latency_shows_percentiles(run: ComponentRun) -> None:
    lines = _widget(run, "Integration latency (ms)")["properties"]["metrics"]
    assert [line[-1]["stat"] for line in lines] == ["p50", "p99"], f"latency statistics {lines}"


@pytest.mark.parametrize(
    ("title", "metric"), [("Function duration p99 (ms)", "Duration"), ("Function errors", "Errors")]
)
def test_dashboard_function_widgets(run: ComponentRun, title: str, metric: str) -> None:
    lines = _widget(run, title)["properties"]["metrics"]
    plotted = {line[-1]["label"]: line[3] for line in lines}
    assert plotted == FUNCTIONS, f"{title} widget plots {plotted}, expected every function"
    for line in lines:
        assert line[:3] == ["AWS/Lambda", metric, "FunctionName"], f"{title} widget line {line}"


def test_dashboard_name_and_url(run: ComponentRun) -> None:
    name = run.value["dashboard_name"]
    assert name == f"monitoring-{API_ID}-{STAGE}", f"dashboard name {name}"
    assert run.value["dashboard_url"] == (
        f"https://{REGION}.console.aws.amazon.com/cloudwatch/home?region={REGION}#dashboards:name={name}"
    ), f"dashboard URL {run.value['dashboard_url']}"


def test_every_resource_is_a_child_of_the_component(run: ComponentRun) -> None:
    component = run.one("chat:index:Monitoring", "monitoring")
    for resource in run.resources:
        if resource is not component:
            assert resource.parent == component.urn, f"{resource} is not parented to {component}"
