"""Each policy passes a compliant resource and fires on a resource broken in just the way the policy forbids.

The resources are written as the engine sees them (Pulumi property names, IAM documents as JSON strings) and run
through the registered pulumi-policy objects, so a broken wiring (wrong name, wrong enforcement level, a rule not
registered) fails here as surely as a broken rule.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from typing import Any

import pytest
from pulumi_policy import EnforcementLevel
from pulumi_policy.proxy import UnknownValueError

from policy import rules, runtimes
from policy.pack import POLICIES
from tests.policy.harness import engine_view, run_policies, run_stack_policies, urn_of

API_ARN = "arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5"
CALLBACK_POST = f"{API_ARN}/dev/POST/@connections/*"
TABLE_ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/connections-1234567"
LOG_GROUP_ARN = "arn:aws:logs:us-east-1:123456789012:log-group:/aws/apigateway/chat-dev"
TODAY = date(2026, 11, 26)


def document(*statements: dict[str, Any]) -> str:
    """A policy document as the program serialises it."""
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def allow(actions: str | list[str], resources: str | list[str], **extra: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": actions, "Resource": resources, **extra}


SEND_MESSAGE_POLICY = document(
    allow(["dynamodb:GetItem", "dynamodb:Scan", "dynamodb:DeleteItem"], TABLE_ARN),
    allow("execute-api:ManageConnections", CALLBACK_POST, Sid="CallbackApi"),
)

COMPLIANT: dict[str, dict[str, Any]] = {
    "aws:iam/rolePolicy:RolePolicy": {"role": "send-message-role", "policy": SEND_MESSAGE_POLICY},
    "aws:iam/role:Role": {
        "assumeRolePolicy": document(
            {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ),
        "inlinePolicies": [{"name": "send-message", "policy": SEND_MESSAGE_POLICY}],
        "managedPolicyArns": ["arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"],
    },
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment": {
        "role": "send-message-role",
        "policyArn": "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
    },
    "aws:lambda/permission:Permission": {
        "action": "lambda:InvokeFunction",
        "function": "send-message-7654321",
        "principal": "apigateway.amazonaws.com",
        "sourceArn": f"{API_ARN}/*/sendmessage",
    },
    "aws:apigatewayv2/stage:Stage": {
        "apiId": "a1b2c3d4e5",
        "name": "dev",
        "autoDeploy": True,
        "accessLogSettings": {"destinationArn": LOG_GROUP_ARN, "format": '{"requestId":"$context.requestId"}'},
    },
    "aws:cloudwatch/logGroup:LogGroup": {"name": "/aws/lambda/send-message-7654321", "retentionInDays": 14},
    "aws:lambda/function:Function": {
        "runtime": "python3.13",
        "handler": "handlers.send_message.handler",
        "tracingConfig": {"mode": "Active"},
    },
    "aws:dynamodb/table:Table": {
        "hashKey": "ConnectionId",
        "pointInTimeRecovery": {"enabled": True},
    },
}


def broken(resource_type: str, **changes: Any) -> dict[str, Any]:
    """The compliant resource of this type with some inputs replaced (None removes one)."""
    props = {**COMPLIANT[resource_type], **changes}
    return {key: value for key, value in props.items() if value is not None}


@dataclass(frozen=True)
class Case:
    """A resource that breaks one policy, and a phrase its message must contain (the fix)."""

    id: str
    policy: str
    resource_type: str
    props: dict[str, Any]
    fix: str


ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
ROLE = "aws:iam/role:Role"
PERMISSION = "aws:lambda/permission:Permission"
STAGE = "aws:apigatewayv2/stage:Stage"
FUNCTION = "aws:lambda/function:Function"

CASES = (
    Case(
        "star-action",
        "iam-no-wildcard-actions",
        ROLE_POLICY,
        broken(ROLE_POLICY, policy=document(allow("*", "*"))),
        "list the exact actions",
    ),
    Case(
        "service-wildcard",
        "iam-no-wildcard-actions",
        ROLE_POLICY,
        broken(ROLE_POLICY, policy=document(allow(["dynamodb:*"], TABLE_ARN))),
        "dynamodb:*",
    ),
    Case(
        "prefix-wildcard-inline",
        "iam-no-wildcard-actions",
        ROLE,
        broken(ROLE, inlinePolicies=[{"name": "reads", "policy": document(allow("dynamodb:Get*", TABLE_ARN))}]),
        "inline policy reads",
    ),
    Case(
        "not-action",
        "iam-no-wildcard-actions",
        "aws:iam/policy:Policy",
        {"policy": document({"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"})},
        "NotAction",
    ),
    Case(
        "admin-attached",
        "iam-no-wildcard-actions",
        "aws:iam/rolePolicyAttachment:RolePolicyAttachment",
        {"role": "r", "policyArn": "arn:aws:iam::aws:policy/AdministratorAccess"},
        "least-privilege",
    ),
    Case(
        "full-access-managed",
        "iam-no-wildcard-actions",
        ROLE,
        broken(ROLE, managedPolicyArns=["arn:aws:iam::aws:policy/AmazonDynamoDBFullAccess"]),
        "AmazonDynamoDBFullAccess",
    ),
    Case("invalid-json", "iam-no-wildcard-actions", ROLE_POLICY, broken(ROLE_POLICY, policy="{not json"), "json.dumps"),
    Case(
        "callback-any-resource",
        "callback-permission-scoped-to-api",
        ROLE_POLICY,
        broken(ROLE_POLICY, policy=document(allow("execute-api:ManageConnections", "*"))),
        "execution_arn",
    ),
    Case(
        "callback-any-api",
        "callback-permission-scoped-to-api",
        ROLE_POLICY,
        broken(
            ROLE_POLICY,
            policy=document(
                allow(
                    "execute-api:ManageConnections",
                    "arn:aws:execute-api:us-east-1:123456789012:*/dev/POST/@connections/*",
                )
            ),
        ),
        "wildcard API id",
    ),
    Case(
        "callback-any-stage",
        "callback-permission-scoped-to-api",
        ROLE_POLICY,
        broken(
            ROLE_POLICY, policy=document(allow("execute-api:ManageConnections", f"{API_ARN}/*/POST/@connections/*"))
        ),
        "wildcard stage",
    ),
    Case(
        "callback-any-method",
        "callback-permission-scoped-to-api",
        ROLE_POLICY,
        broken(ROLE_POLICY, policy=document(allow("execute-api:ManageConnections", f"{API_ARN}/dev/*/@connections/*"))),
        "POST, GET or DELETE",
    ),
    Case(
        "callback-via-wildcard-action",
        "callback-permission-scoped-to-api",
        ROLE,
        broken(ROLE, inlinePolicies=[{"name": "callback", "policy": document(allow("execute-api:*", "*"))}]),
        "every API in the account",
    ),
    Case(
        "permission-without-source",
        "lambda-permission-source-arn",
        PERMISSION,
        broken(PERMISSION, sourceArn=None),
        "set source_arn",
    ),
    Case(
        "permission-any-api",
        "lambda-permission-source-arn",
        PERMISSION,
        broken(PERMISSION, sourceArn="arn:aws:execute-api:us-east-1:123456789012:*/*/*"),
        "matches any API",
    ),
    Case(
        "permission-public",
        "lambda-permission-source-arn",
        PERMISSION,
        broken(PERMISSION, principal="*"),
        "lets anyone invoke",
    ),
    Case(
        "stage-without-logs",
        "stage-access-logs",
        STAGE,
        broken(STAGE, accessLogSettings=None),
        "destinationArn or format",
    ),
    Case(
        "stage-without-format",
        "stage-access-logs",
        STAGE,
        broken(STAGE, accessLogSettings={"destinationArn": LOG_GROUP_ARN}),
        "no access log format",
    ),
    # API Gateway's AccessLogSettings.Format: "a single line" that "must include at least $context.requestId"
    # (botocore apigatewayv2 service-2.json); CreateStage refuses other formats.
    Case(
        "stage-format-without-request-id",
        "stage-access-logs",
        STAGE,
        broken(STAGE, accessLogSettings={"destinationArn": LOG_GROUP_ARN, "format": '{"id":"$context.connectionId"}'}),
        "without $context.requestId",
    ),
    Case(
        "stage-format-on-two-lines",
        "stage-access-logs",
        STAGE,
        broken(STAGE, accessLogSettings={"destinationArn": LOG_GROUP_ARN, "format": '{\n"id":"$context.requestId"}'}),
        "over several lines",
    ),
    Case(
        "stage-pinned-to-a-deployment",
        "stage-auto-deploy",
        STAGE,
        broken(STAGE, autoDeploy=None, deploymentId="abc123"),
        "does not auto-deploy",
    ),
    Case(
        "stage-auto-deploying-but-pinned",
        "stage-auto-deploy",
        STAGE,
        broken(STAGE, deploymentId="abc123"),
        "pins deployment_id",
    ),
    Case(
        "rest-stage-without-logs",
        "stage-access-logs",
        "aws:apigateway/stage:Stage",
        {"restApi": "r", "stageName": "dev", "deployment": "d"},
        "access_log_settings",
    ),
    Case(
        "log-group-forever",
        "log-group-retention",
        "aws:cloudwatch/logGroup:LogGroup",
        {"name": "/aws/x"},
        "retention_in_days",
    ),
    Case(
        "log-group-zero",
        "log-group-retention",
        "aws:cloudwatch/logGroup:LogGroup",
        {"name": "/aws/x", "retentionInDays": 0},
        "logRetentionDays",
    ),
    Case(
        "seed-runtime",
        "lambda-runtime-supported",
        FUNCTION,
        broken(FUNCTION, runtime="python3.8"),
        "deprecated since 2024-10-14",
    ),
    Case(
        "table-without-pitr",
        "dynamodb-point-in-time-recovery",
        "aws:dynamodb/table:Table",
        broken("aws:dynamodb/table:Table", pointInTimeRecovery=None),
        "pointInTimeRecovery setting",
    ),
    Case(
        "table-pitr-off",
        "dynamodb-point-in-time-recovery",
        "aws:dynamodb/table:Table",
        broken("aws:dynamodb/table:Table", pointInTimeRecovery={"enabled": False}),
        "point_in_time_recovery",
    ),
    Case("function-without-tracing", "lambda-xray-tracing", FUNCTION, broken(FUNCTION, tracingConfig=None), "Active"),
    Case(
        "function-passthrough-tracing",
        "lambda-xray-tracing",
        FUNCTION,
        broken(FUNCTION, tracingConfig={"mode": "PassThrough"}),
        "xray:PutTraceSegments",
    ),
)


@pytest.mark.parametrize("resource_type", sorted(COMPLIANT))
def test_compliant_resource_passes_every_policy(resource_type: str) -> None:
    found = run_policies(resource_type, COMPLIANT[resource_type])
    assert not found, f"compliant {resource_type} was reported: {found}"


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_broken_resource_fires_its_policy(case: Case) -> None:
    found = run_policies(case.resource_type, case.props)
    fired = [violation for violation in found if violation.policy == case.policy]
    assert fired, f"{case.id}: policy {case.policy} did not fire on {case.props}; reported: {found}"
    assert any(case.fix in violation.message for violation in fired), (
        f"{case.id}: no {case.policy} message tells the author {case.fix!r}: {[v.message for v in fired]}"
    )


LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
FUNCTION_URN = urn_of(FUNCTION, "send-message-function")
GROUP_URN = urn_of(LOG_GROUP, "send-message-logs")
FUNCTION_NAME = "send-message-function-95acaeb"


def function_outputs(**changes: Any) -> dict[str, Any]:
    return {**COMPLIANT[FUNCTION], "name": FUNCTION_NAME, **changes}


def test_function_logging_to_a_managed_group_passes() -> None:
    configured = [
        (FUNCTION, FUNCTION_URN, function_outputs(loggingConfig={"logFormat": "Text", "logGroup": "chat-logs-1"})),
        (LOG_GROUP, GROUP_URN, {"name": "chat-logs-1", "retentionInDays": 7}),
    ]
    conventional = [
        (FUNCTION, FUNCTION_URN, function_outputs()),
        (LOG_GROUP, GROUP_URN, {"name": f"/aws/lambda/{FUNCTION_NAME}", "retentionInDays": 7}),
    ]
    for stack in (configured, conventional):
        assert not run_stack_policies(stack), f"a function logging to a managed group was reported: {stack}"


@pytest.mark.parametrize(
    "function",
    [
        function_outputs(),
        function_outputs(loggingConfig={"logFormat": "Text", "logGroup": "shared-logs-elsewhere"}),
    ],
    ids=["implicit-group", "group-outside-stack"],
)
def test_function_logging_outside_the_stack_fires(function: dict[str, Any]) -> None:
    found = run_stack_policies([(FUNCTION, FUNCTION_URN, function), (LOG_GROUP, GROUP_URN, {"name": "unrelated"})])
    assert [(v.policy, v.urn, v.mandatory) for v in found] == [
        ("lambda-logs-in-managed-log-group", FUNCTION_URN, True)
    ], f"expected one mandatory violation on the function: {found}"
    assert "point logging_config.log_group" in found[0].message, f"message lacks the fix: {found[0].message}"


def test_every_registered_policy_has_a_case_that_fires_it() -> None:
    registered = {policy.name for policy in POLICIES}
    covered = {case.policy for case in CASES} | {"lambda-logs-in-managed-log-group"}
    assert registered == covered, (
        f"policies without a breaking case: {registered - covered}; cases naming no policy: {covered - registered}"
    )


def test_enforcement_levels() -> None:
    levels = {policy.name: policy.enforcement_level for policy in POLICIES}
    advisory = {"dynamodb-point-in-time-recovery", "lambda-xray-tracing"}
    for name, level in levels.items():
        expected = EnforcementLevel.ADVISORY if name in advisory else EnforcementLevel.MANDATORY
        assert level == expected, f"policy {name} is {level}, expected {expected}"


def test_deny_statements_may_use_wildcards() -> None:
    props = {
        "policy": document(
            {"Effect": "Deny", "Action": "*", "NotResource": TABLE_ARN}, allow("dynamodb:GetItem", TABLE_ARN)
        )
    }
    assert not run_policies(ROLE_POLICY, props), "a Deny statement with a wildcard was reported"


def test_callback_get_and_delete_are_accepted() -> None:
    props = {
        "policy": document(
            allow(
                "execute-api:ManageConnections",
                [f"{API_ARN}/prod/GET/@connections/*", f"{API_ARN}/prod/DELETE/@connections/*"],
            )
        )
    }
    assert not run_policies(ROLE_POLICY, props), "GET and DELETE on one API's stage were reported"


def test_runtime_deprecation_follows_the_calendar() -> None:
    function = broken(FUNCTION, runtime="python3.10")
    assert not rules.lambda_runtime_supported(FUNCTION, function, today=date(2026, 10, 30)), (
        "python3.10 was reported before its end-of-support date"
    )
    messages = rules.lambda_runtime_supported(FUNCTION, function, today=TODAY)
    assert messages and "python3.14" in messages[0], f"python3.10 after 2026-10-31 should suggest 3.14: {messages}"


def test_unknown_and_image_runtimes_pass() -> None:
    for props in ({"runtime": "python3.99"}, {"packageType": "Image", "imageUri": "x"}):
        assert not rules.lambda_runtime_supported(FUNCTION, props, today=TODAY), f"reported {props}"


def test_supported_runtimes_exclude_the_deprecated() -> None:
    python = runtimes.supported("python", TODAY)
    assert "python3.10" not in python and python[-1] in ("python3.13", "python3.14"), f"supported: {python}"


def test_unknown_input_during_preview_is_not_a_violation() -> None:
    # The engine reports an unknown input as "can't run policy during preview" (advisory) instead of a failure.
    props = engine_view({**COMPLIANT[PERMISSION], "sourceArn": "04da6b54-80e4-46f7-96ec-b56ff0331ba9"})
    with pytest.raises(UnknownValueError):
        rules.lambda_permission_source_arn(PERMISSION, props)


def test_rules_ignore_resource_types_they_do_not_cover() -> None:
    for rule in rules.RULES:
        assert rule.check("aws:sns/topic:Topic", {"name": "alarms"}) == [], f"{rule.name} fired on an SNS topic"
