"""The security scanners' rules for these resources (docs: shared API Gateway reference, "What scanners flag").

Each rule is either checked here against what the program registers, or skipped with the reason written down in
`SKIPPED`; `test_every_rule_is_checked_or_skipped_with_a_reason` keeps the two lists complete.
"""

from __future__ import annotations

import json
import re

import pytest

from app.settings import SUPPORTED_RUNTIMES
from handlers import environment
from tests.infra.mocks import ProgramRun, run_program, shared_run

SECRET = "k3Q1xv0cB7oW2yq5G9r8Zt4nL6mH1sDfJ2pAe0uYiKc="
XRAY_WRITE = {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}
"""X-Ray offers no resource-level permissions for these: the one place a policy may name resource `*`."""

RULES = (
    "CKV_AWS_76",
    "AWS-0001",
    "APIGateway.9",
    "KICS-1b6799eb",
    "APIGateway.1",
    "CKV_AWS_309",
    "APIGateway.8",
    "CKV_AWS_50",
    "AWS-0066",
    "CKV_AWS_115",
    "CKV_AWS_116",
    "CKV_AWS_117",
    "CKV_AWS_272",
    "CKV_AWS_173",
    "CKV_AWS_45",
    "CKV_AWS_363",
    "AWS-0067",
    "CKV_AWS_301",
    "CKV_AWS_28",
    "AWS-0024",
    "CKV_AWS_119",
    "AWS-0025",
    "CKV_AWS_66",
    "CKV_AWS_338",
    "CKV_AWS_158",
    "CKV_AWS_63",
    "CKV_AWS_355",
    "CKV_AWS_62",
)
"""Every rule the reference lists for a stage, route, Lambda, permission, table, log group or IAM policy."""

CHECKED = {
    "CKV_AWS_76": "test_stage_access_logs",
    "AWS-0001": "test_stage_access_logs",
    "APIGateway.9": "test_stage_access_logs",
    "CKV_AWS_45": "test_no_secrets_in_function_environment",
    "CKV_AWS_363": "test_runtime_is_supported",
    "AWS-0067": "test_permissions_have_a_source_arn_and_no_public_principal",
    "CKV_AWS_301": "test_permissions_have_a_source_arn_and_no_public_principal",
    "CKV_AWS_28": "test_prod_table_has_point_in_time_recovery",
    "AWS-0024": "test_prod_table_has_point_in_time_recovery",
    "CKV_AWS_119": "test_table_customer_key_is_a_setting",
    "AWS-0025": "test_table_customer_key_is_a_setting",
    "CKV_AWS_66": "test_log_groups_have_retention",
    "CKV_AWS_338": "test_log_groups_have_retention",
    "CKV_AWS_63": "test_iam_has_no_wildcards_or_admin",
    "CKV_AWS_355": "test_iam_has_no_wildcards_or_admin",
    "CKV_AWS_62": "test_iam_has_no_wildcards_or_admin",
    "KICS-1b6799eb": "test_execution_logging_level_when_switched_on",
    "APIGateway.1": "test_execution_logging_level_when_switched_on",
    "CKV_AWS_50": "test_prod_functions_are_actively_traced",
    "AWS-0066": "test_prod_functions_are_actively_traced",
    "CKV_AWS_115": "test_reserved_concurrency_is_a_setting_no_profile_commits",
}
"""Rule -> the test below that checks it (some only in the profile where they apply, as the test says)."""

SKIPPED = {
    "CKV_AWS_309": "Route authorization: API Gateway authorizes a WebSocket once, at $connect, and allows an "
    "authorizer there only. With auth=jwt $connect is CUSTOM with the token authorizer "
    "(test_connect_is_authorized_when_auth_is_on); $disconnect, $default and sendmessage can never carry one and stay "
    "NONE, as does $connect when a stack chooses auth=none (the default, for open chats and development).",
    "APIGateway.8": "Same as CKV_AWS_309 (Security Hub's name for the route authorization rule): only $connect can be "
    "authorized, and it is whenever auth=jwt (test_connect_is_authorized_when_auth_is_on).",
    "CKV_AWS_116": "A dead-letter queue never receives anything here: API Gateway invokes synchronously, so a failed "
    "invocation is reported to the client, not retried or queued.",
    "CKV_AWS_117": "No VPC: the functions reach only DynamoDB and the execute-api endpoint, both public AWS APIs; a "
    "VPC would add NAT or endpoints and cold-start latency without protecting anything.",
    "CKV_AWS_272": "Code signing needs an AWS Signer profile and signed uploads in the pipeline; the archives are "
    "built reproducibly from this repository, and signing belongs to the delivery pipeline if wanted.",
    "CKV_AWS_173": "The environment holds a table name, a URL and a number, no secrets; Lambda encrypts it at rest "
    "with an AWS-managed key anyway.",
    "CKV_AWS_158": "Log groups use CloudWatch's default encryption; they hold request metadata, never message "
    "bodies (data tracing is off), so a customer key would add cost and key policy work for no gain.",
}
"""Rule -> why it does not apply to this stack, or to some of its resources."""


def test_every_rule_is_checked_or_skipped_with_a_reason() -> None:
    assert set(CHECKED) | set(SKIPPED) == set(RULES), "a scanner rule is neither checked nor skipped"
    assert not set(CHECKED) & set(SKIPPED), "a rule is both checked and skipped"
    tests = {name for name in globals() if name.startswith("test_")}
    assert set(CHECKED.values()) <= tests, f"CHECKED names missing tests: {set(CHECKED.values()) - tests}"
    assert all(len(reason) > 40 for reason in SKIPPED.values()), "a skip needs a written reason"


def test_stage_access_logs(dev_run: ProgramRun) -> None:
    stage = dev_run.one("aws:apigatewayv2/stage:Stage", "websocket-stage")
    settings = stage.inputs.get("accessLogSettings") or {}
    assert settings.get("destinationArn"), f"{stage}: no access log destination"
    assert json.loads(settings.get("format", "null")), f"{stage}: no access log format"


@pytest.mark.parametrize("level", ["ERROR", "INFO"])
def test_execution_logging_level_when_switched_on(level: str) -> None:
    """Off by default because it needs the account-level CloudWatch role; one setting turns it on."""
    stage = run_program("prod", {"executionLoggingLevel": level}).one("aws:apigatewayv2/stage:Stage", "websocket-stage")
    assert stage.inputs["defaultRouteSettings"]["loggingLevel"] == level, f"{stage}: logging level"


def test_no_secrets_in_function_environment(dev_run: ProgramRun) -> None:
    suspicious = re.compile(r"secret|password|token|key|credential", re.IGNORECASE)
    for function in dev_run.of_type("aws:lambda/function:Function"):
        for name, value in function.inputs["environment"]["variables"].items():
            assert not suspicious.search(name), f"{function}: environment variable {name} looks like a secret"
            assert not re.search(r"AKIA[0-9A-Z]{16}", value), f"{function}: {name} holds an access key"
    # With tokens on, the authorizer gets the name of the SSM parameter holding the secret, never the secret.
    run = shared_run("prod", {"auth": "jwt", "jwtSecret": SECRET})
    parameter = run.one("aws:ssm/parameter:Parameter", "authorizer-secret")
    for function in run.of_type("aws:lambda/function:Function"):
        variables = function.inputs["environment"]["variables"]
        assert SECRET not in json.dumps(variables), f"{function}: the token secret is in its environment"
        if environment.TOKEN_SECRET_PARAMETER in variables:
            assert variables[environment.TOKEN_SECRET_PARAMETER] == parameter.outputs["name"], (
                f"{function}: {environment.TOKEN_SECRET_PARAMETER} is not the parameter's name"
            )


def test_runtime_is_supported(dev_run: ProgramRun, prod_run: ProgramRun) -> None:
    for run in (dev_run, prod_run):
        for function in run.of_type("aws:lambda/function:Function"):
            assert function.inputs["runtime"] in SUPPORTED_RUNTIMES, f"{function}: runtime {function.inputs['runtime']}"
    assert "python3.9" not in SUPPORTED_RUNTIMES and "python3.8" not in SUPPORTED_RUNTIMES, "deprecated runtimes"


def test_permissions_have_a_source_arn_and_no_public_principal(dev_run: ProgramRun) -> None:
    permissions = dev_run.of_type("aws:lambda/permission:Permission")
    assert permissions, "no Lambda permissions registered"
    for permission in permissions:
        assert permission.inputs.get("sourceArn"), f"{permission}: no source ARN (critical finding)"
        assert permission.inputs["principal"] not in ("*", ""), f"{permission}: public principal"


def test_prod_table_has_point_in_time_recovery(prod_run: ProgramRun) -> None:
    """Dev keeps it off: its rows are throwaway connection ids and PITR is billed per GB."""
    table = prod_run.one("aws:dynamodb/table:Table", "connections-table")
    assert table.inputs["pointInTimeRecovery"] == {"enabled": True}, f"{table}: PITR off in prod"


def test_table_customer_key_is_a_setting() -> None:
    """The AWS-managed key by default (a cost choice); tableKmsKeyArn satisfies the rule."""
    key = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    table = run_program("prod", {"tableKmsKeyArn": key}).one("aws:dynamodb/table:Table", "connections-table")
    assert table.inputs["serverSideEncryption"] == {"enabled": True, "kmsKeyArn": key}, f"{table}: no customer key"


def test_log_groups_have_retention(dev_run: ProgramRun, prod_run: ProgramRun) -> None:
    """Every group has a retention (CKV_AWS_66); prod keeps 365 days, Checkov's minimum (CKV_AWS_338).

    Dev keeps a week on purpose: CKV_AWS_338 is a production rule, and dev logs are for debugging.
    """
    for run in (dev_run, prod_run):
        for group in run.of_type("aws:cloudwatch/logGroup:LogGroup"):
            assert group.inputs.get("retentionInDays"), f"{run.stack} {group}: logs kept forever"
    for group in prod_run.of_type("aws:cloudwatch/logGroup:LogGroup"):
        assert group.inputs["retentionInDays"] >= 365, f"prod {group}: retention under a year"


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_iam_has_no_wildcards_or_admin(stack: str, dev_run: ProgramRun, prod_run: ProgramRun) -> None:
    """No `*` action anywhere; `*` resource only for X-Ray's writes (no resource-level permissions exist for them)."""
    run = dev_run if stack == "dev" else prod_run
    documents = [json.loads(policy.inputs["policy"]) for policy in run.of_type("aws:iam/rolePolicy:RolePolicy")]
    documents += [json.loads(role.inputs["assumeRolePolicy"]) for role in run.of_type("aws:iam/role:Role")]
    for document in documents:
        for statement in document["Statement"]:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            assert not any(action == "*" or action.endswith(":*") for action in actions), f"wildcard in {statement}"
            resources = statement.get("Resource", [])
            resources = resources if isinstance(resources, list) else [resources]
            if "*" in resources:
                assert set(actions) <= XRAY_WRITE, f"{stack}: resource * for {actions} in {statement}"
    attached = {
        attachment.inputs["policyArn"]
        for attachment in run.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
    }
    assert not any("AdministratorAccess" in arn or "FullAccess" in arn for arn in attached), f"admin: {attached}"


def _with_auth_on(stack: str) -> ProgramRun:
    return shared_run(stack, {"auth": "jwt", "jwtSecret": SECRET})


def test_prod_functions_are_actively_traced(prod_run: ProgramRun, dev_run: ProgramRun) -> None:
    """Prod traces every function, the authorizer included. Dev leaves tracing off (`tracing` false): traces are
    billed per trace and a development stack is debugged from its logs."""
    for run in (prod_run, _with_auth_on("prod")):
        functions = run.of_type("aws:lambda/function:Function")
        for function in functions:
            assert function.inputs["tracingConfig"] == {"mode": "Active"}, f"prod {function}: not actively traced"
    for function in dev_run.of_type("aws:lambda/function:Function"):
        assert function.inputs["tracingConfig"] == {"mode": "PassThrough"}, f"dev {function}: tracing not off"


def test_reserved_concurrency_is_a_setting_no_profile_commits(prod_run: ProgramRun, dev_run: ProgramRun) -> None:
    """`reservedConcurrency` reserves for every function, the authorizer included, once a stack sets it. No committed
    profile sets it: new accounts often have a Lambda concurrency quota of 10, and PutFunctionConcurrency fails
    unless 100 stay unreserved (10 on such accounts); `make preflight` checks a stack's value against the quota."""
    for run in (prod_run, dev_run):
        for function in run.of_type("aws:lambda/function:Function"):
            assert "reservedConcurrentExecutions" not in function.inputs, f"{run.stack} {function}: reserves"
    configured = run_program(
        "prod",
        {"auth": "jwt", "jwtSecret": "k3Q1xv0cB7oW2yq5G9r8Zt4nL6mH1sDfJ2pAe0u=", "reservedConcurrency": 20},
    )
    for function in configured.of_type("aws:lambda/function:Function"):
        assert function.inputs.get("reservedConcurrentExecutions") == 20, f"prod {function}: reservation not applied"


def test_connect_is_authorized_when_auth_is_on() -> None:
    run = _with_auth_on("prod")
    authorizer = run.one("aws:apigatewayv2/authorizer:Authorizer", "authorizer-authorizer")
    for route in run.of_type("aws:apigatewayv2/route:Route"):
        if route.inputs["routeKey"] == "$connect":
            assert route.inputs["authorizationType"] == "CUSTOM", f"{route}: not guarded by the authorizer"
            assert route.inputs["authorizerId"] == authorizer.id, f"{route}: guarded by another authorizer"
        else:
            assert route.inputs["authorizationType"] == "NONE", f"{route}: API Gateway allows no authorizer here"
