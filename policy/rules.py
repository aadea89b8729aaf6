"""The policy pack's rules as plain functions over (resource type, inputs): no Pulumi engine needed to run them.

Each check returns the violations it finds as messages that say what is wrong and how to fix it; an empty list
means compliant (or a resource type the rule does not cover). Inputs use Pulumi's property names (`sourceArn`,
`accessLogSettings`), which is what the engine hands a policy pack and what the mocks in the tests see.
One rule needs the whole stack (which log group a function writes to); it takes every resource's outputs instead.
`policy/pack.py` registers each rule with pulumi-policy; the scanner ids name the finding each rule prevents (the
table in the API Gateway reference).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from policy import iam, runtimes

Check = Callable[[str, Mapping[str, Any]], list[str]]

FUNCTION = "aws:lambda/function:Function"
PERMISSION = "aws:lambda/permission:Permission"
WEBSOCKET_STAGE = "aws:apigatewayv2/stage:Stage"
REST_STAGE = "aws:apigateway/stage:Stage"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
TABLE = "aws:dynamodb/table:Table"
ROLE_POLICY_ATTACHMENT = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
POLICY_ATTACHMENTS = (
    ROLE_POLICY_ATTACHMENT,
    "aws:iam/userPolicyAttachment:UserPolicyAttachment",
    "aws:iam/groupPolicyAttachment:GroupPolicyAttachment",
    "aws:iam/policyAttachment:PolicyAttachment",
)

MANAGE_CONNECTIONS = "execute-api:ManageConnections"
HTTP_METHODS = ("GET", "POST", "DELETE")
"""The methods of the `@connections` callback API."""

# `arn:aws:execute-api:{region}:{account}:{api-id}/{stage}/{METHOD}/@connections/{connection-id}`
CALLBACK_ARN = re.compile(
    r"^arn:aws[a-z-]*:execute-api:(?P<region>[^:]+):(?P<account>[^:]+):"
    r"(?P<api>[^/]+)/(?P<stage>[^/]+)/(?P<method>[^/]+)/@connections(?:/.*)?$"
)
EXECUTE_API_ARN = re.compile(r"^arn:aws[a-z-]*:execute-api:[^:]*:[^:]*:(?P<api>[^/]+)(?:/.*)?$")

# AWS-managed policies that grant whole services (or everything): attaching one is a wildcard by another name.
BROAD_MANAGED_POLICY = re.compile(
    r"^arn:aws[a-z-]*:iam::aws:policy/(?:.*/)?(?:AdministratorAccess|PowerUserAccess|[A-Za-z0-9_-]*FullAccess"
    r"|AmazonAPIGatewayAdministrator)$"
)


def _text(value: Any) -> str:
    """A string input, or "" when it is missing or not a string."""
    return value if isinstance(value, str) else ""


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def no_wildcard_actions(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """IAM documents allow only listed actions: no `*`, `service:*` or `Get*`, no `NotAction`, no admin policies."""
    violations = []
    for document in iam.documents(resource_type, props):
        if document.error:
            violations.append(f"{document.error}; write it as a dict and serialise it with json.dumps.")
        for statement in document.statements:
            if not statement.allows:
                continue
            wildcards = [action for action in statement.actions if iam.has_wildcard(action)]
            if wildcards:
                violations.append(
                    f"{statement.where} allows wildcard action(s) {', '.join(wildcards)}: list the exact actions "
                    f"the code calls (see the function's table_access/callback_methods in app/definition.py)."
                )
            if statement.not_actions:
                violations.append(
                    f"{statement.where} uses Allow with NotAction, which grants every other action: list the "
                    f"allowed actions under Action instead."
                )
    attached: list[str] = []
    if resource_type in POLICY_ATTACHMENTS:
        attached = [_text(props.get("policyArn"))]
    elif resource_type == iam.ROLE_TYPE:
        attached = [str(arn) for arn in props.get("managedPolicyArns") or ()]
    for arn in attached:
        if BROAD_MANAGED_POLICY.match(arn):
            violations.append(
                f"attaches {arn}, which grants wildcard actions: attach AWSLambdaBasicExecutionRole (logs only) "
                f"and grant the rest in a least-privilege inline policy."
            )
    return violations


def _callback_resource_problem(resource: str) -> str | None:
    if resource == "*":
        return "every API in the account"
    match = CALLBACK_ARN.match(resource)
    if not match:
        return (
            "no @connections ARN (arn:aws:execute-api:REGION:ACCOUNT:API_ID/STAGE/METHOD/@connections/*), so "
            "nothing ties it to this API"
        )
    if iam.has_wildcard(match["api"]):
        return "any API (wildcard API id)"
    if iam.has_wildcard(match["stage"]):
        return "any stage (wildcard stage)"
    if match["method"] not in HTTP_METHODS:
        return f"method {match['method']!r} (name POST, GET or DELETE, only those the function calls)"
    return None


def callback_scoped_to_api(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """`execute-api:ManageConnections` only on this API's stage and the methods used, never `*`."""
    violations = []
    for document in iam.documents(resource_type, props):
        for statement in document.statements:
            if not statement.allows:
                continue
            if not any(iam.grants(action, MANAGE_CONNECTIONS) for action in statement.actions):
                continue
            fix = (
                'scope it to f"{api.execution_arn}/{stage}/POST/@connections/*" (one resource per method the '
                "function calls)."
            )
            if statement.not_resources or not statement.resources:
                violations.append(f"{statement.where} grants {MANAGE_CONNECTIONS} without a Resource list: {fix}")
            for resource in statement.resources:
                problem = _callback_resource_problem(resource)
                if problem:
                    violations.append(
                        f"{statement.where} grants {MANAGE_CONNECTIONS} on {resource!r}, which covers {problem}: {fix}"
                    )
    return violations


def lambda_permission_source_arn(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """Lambda permissions name the calling resource (`sourceArn`) and never a public principal."""
    if resource_type != PERMISSION:
        return []
    violations = []
    principal = _text(props.get("principal")).strip()
    if principal == "*" or principal.lower() == "arn:aws:iam::*:root":
        violations.append(
            f"principal {principal!r} lets anyone invoke the function: set principal to the calling service "
            f'("apigateway.amazonaws.com") and source_arn to the API\'s execution ARN.'
        )
    source_arn = _text(props.get("sourceArn")).strip()
    if not source_arn:
        violations.append(
            "has no source_arn, so any API Gateway API in any account may invoke the function: set "
            'source_arn=api.execution_arn.apply(lambda arn: f"{arn}/*/*") (or narrower).'
        )
    else:
        match = EXECUTE_API_ARN.match(source_arn)
        if source_arn == "*" or (match and iam.has_wildcard(match["api"])):
            violations.append(
                f"source_arn {source_arn!r} matches any API: start it with this API's execution ARN "
                f"(api.execution_arn)."
            )
    return violations


def stage_access_logs(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """API Gateway stages write access logs: a destination log group and a format."""
    if resource_type not in (WEBSOCKET_STAGE, REST_STAGE):
        return []
    settings = _mapping(props.get("accessLogSettings"))
    missing = [name for name in ("destinationArn", "format") if not _text(settings.get(name)).strip()]
    if missing:
        return [
            f"has no access log {' or '.join(missing)}: set access_log_settings with destination_arn (a log group "
            f"with retention) and a JSON format that includes $context.requestId, $context.connectionId and "
            f"$context.status."
        ]
    # API Gateway refuses the stage otherwise: the format is "a single line" that "must include at least
    # $context.requestId" (AccessLogSettings.Format in the API reference).
    log_format = _text(settings.get("format"))
    problems = []
    if "$context.requestId" not in log_format:
        problems.append("has an access log format without $context.requestId, which API Gateway requires: add it.")
    if "\n" in log_format or "\r" in log_format:
        problems.append("has an access log format over several lines; API Gateway takes one: serialise it unindented.")
    return problems


def stage_auto_deploys(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """A WebSocket/HTTP stage redeploys on every change of its API instead of serving a pinned deployment."""
    if resource_type != WEBSOCKET_STAGE:
        return []
    problems = []
    if props.get("autoDeploy") is not True:
        problems.append(
            "does not auto-deploy: set auto_deploy=True. A pinned Deployment replaced by Pulumi is created before a "
            "removed route is deleted, so the stage keeps serving that route."
        )
    if _text(props.get("deploymentId")).strip():
        problems.append("pins deployment_id: leave it unset on an auto-deploying stage (API Gateway manages it).")
    return problems


def log_group_retention(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """Log groups expire their events (CloudWatch keeps them forever, and bills them, otherwise)."""
    if resource_type != LOG_GROUP:
        return []
    days = props.get("retentionInDays")
    if isinstance(days, int | float) and not isinstance(days, bool) and days > 0:
        return []
    return [
        "has no retention, so its events are kept (and billed) forever: set retention_in_days (this program "
        "takes it from the logRetentionDays setting)."
    ]


def lambda_runtime_supported(resource_type: str, props: Mapping[str, Any], today: date | None = None) -> list[str]:
    """Functions run on a runtime AWS still supports (deprecated runtimes get no security patches)."""
    if resource_type != FUNCTION:
        return []
    runtime = _text(props.get("runtime"))
    on = today or date.today()
    if not runtime or not runtimes.is_deprecated(runtime, on):
        return []
    family = re.sub(r"[0-9].*$", "", runtime)
    replacements = runtimes.supported(family, on) if family else []
    suggestion = f" such as {replacements[-1]}" if replacements else ""
    return [
        f"runs on {runtime}, deprecated since {runtimes.END_OF_SUPPORT[runtime].isoformat()}: move to a supported "
        f"runtime{suggestion} (this program's lambdaRuntime setting)."
    ]


def dynamodb_point_in_time_recovery(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """DynamoDB tables keep point-in-time recovery (advisory: the connections table is rebuilt by reconnecting)."""
    if resource_type != TABLE:
        return []
    if _mapping(props.get("pointInTimeRecovery")).get("enabled") is True:
        return []
    return [
        'has no point-in-time recovery: set point_in_time_recovery={"enabled": True} (this program\'s '
        "pointInTimeRecovery setting) where losing the table would hurt."
    ]


def lambda_tracing(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """Functions send traces to X-Ray (advisory: it costs per trace)."""
    if resource_type != FUNCTION:
        return []
    if _text(_mapping(props.get("tracingConfig")).get("mode")) == "Active":
        return []
    return [
        'does not trace to X-Ray: set tracing_config={"mode": "Active"} (this program\'s tracing setting) and '
        "allow xray:PutTraceSegments and xray:PutTelemetryRecords in the function's role."
    ]


@dataclass(frozen=True)
class StackResource:
    """One resource of the stack as a stack rule sees it: its type, URN and outputs."""

    resource_type: str
    urn: str
    props: Mapping[str, Any]


def lambda_logs_in_managed_group(resources: Sequence[StackResource]) -> list[tuple[str, str]]:
    """Functions log to a log group the stack manages, so `log-group-retention` covers it. Otherwise Lambda
    creates `/aws/lambda/<name>` on first use, outside the stack, keeping every event forever. Returns (URN,
    message) pairs."""
    managed = {_text(resource.props.get("name")) for resource in resources if resource.resource_type == LOG_GROUP}
    violations = []
    for resource in resources:
        if resource.resource_type != FUNCTION:
            continue
        configured = _text(_mapping(resource.props.get("loggingConfig")).get("logGroup"))
        target = configured or f"/aws/lambda/{_text(resource.props.get('name'))}"
        if target not in managed:
            violations.append(
                (
                    resource.urn,
                    f"logs to {target}, a log group this stack does not manage (Lambda creates it on first use, with "
                    f"no retention): create an aws.cloudwatch.LogGroup with retention_in_days and point "
                    f"logging_config.log_group at its name.",
                )
            )
    return violations


@dataclass(frozen=True)
class StackRule:
    """A policy over the whole stack: name, requirement, whether it blocks, and the check."""

    name: str
    description: str
    mandatory: bool
    scanner_ids: tuple[str, ...]
    check: Callable[[Sequence[StackResource]], list[tuple[str, str]]]


STACK_RULES: tuple[StackRule, ...] = (
    StackRule(
        "lambda-logs-in-managed-log-group",
        "Lambda functions log to a log group of this stack (which has retention).",
        True,
        ("CKV_AWS_66",),
        lambda_logs_in_managed_group,
    ),
)


@dataclass(frozen=True)
class Rule:
    """One policy: its name in Pulumi's output, what it requires, whether it blocks, and the check."""

    name: str
    description: str
    mandatory: bool
    scanner_ids: tuple[str, ...]
    check: Check


RULES: tuple[Rule, ...] = (
    Rule(
        "iam-no-wildcard-actions",
        "IAM policies list the actions they allow: no wildcards, no admin.",
        True,
        ("CKV_AWS_63", "CKV_AWS_62", "CKV_AWS_355"),
        no_wildcard_actions,
    ),
    Rule(
        "callback-permission-scoped-to-api",
        "execute-api:ManageConnections only on this API's stage and the methods the code calls.",
        True,
        ("CKV_AWS_355",),
        callback_scoped_to_api,
    ),
    Rule(
        "lambda-permission-source-arn",
        "Lambda permissions name a source ARN and no public principal.",
        True,
        ("trivy AWS-0067", "CKV_AWS_301"),
        lambda_permission_source_arn,
    ),
    Rule(
        "stage-access-logs",
        "API Gateway stages write access logs with a destination and a format.",
        True,
        ("CKV_AWS_76", "trivy AWS-0001", "Security Hub APIGateway.9"),
        stage_access_logs,
    ),
    Rule(
        "stage-auto-deploy",
        "API Gateway v2 stages auto-deploy, so a removed route stops being served.",
        True,
        (),
        stage_auto_deploys,
    ),
    Rule(
        "log-group-retention",
        "CloudWatch log groups have a retention period.",
        True,
        ("CKV_AWS_66",),
        log_group_retention,
    ),
    Rule(
        "lambda-runtime-supported",
        "Lambda functions use a runtime AWS has not deprecated.",
        True,
        ("CKV_AWS_363",),
        lambda_runtime_supported,
    ),
    Rule(
        "dynamodb-point-in-time-recovery",
        "DynamoDB tables have point-in-time recovery.",
        False,
        ("CKV_AWS_28", "trivy AWS-0024"),
        dynamodb_point_in_time_recovery,
    ),
    Rule(
        "lambda-xray-tracing",
        "Lambda functions trace to X-Ray (Active).",
        False,
        ("CKV_AWS_50", "trivy AWS-0066"),
        lambda_tracing,
    ),
)


def violations(resource_type: str, props: Mapping[str, Any]) -> dict[str, list[str]]:
    """Every rule's violations for one resource, keyed by rule name (rules with none are left out)."""
    found = {rule.name: rule.check(resource_type, props) for rule in RULES}
    return {name: messages for name, messages in found.items() if messages}
