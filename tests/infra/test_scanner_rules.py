"""The security scanners' rules for these resources (docs: shared API Gateway reference, "What scanners flag").

Each rule is either checked here against what the program registers, or skipped with the reason written down in
`SKIPPED`; `test_every_rule_is_checked_or_skipped_with_a_reason` keeps the two lists complete.
"""

from __future__ import annotations

import json
import re

import pytest

from app.settings import SUPPORTED_RUNTIMES
from tests.infra.mocks import ProgramRun, run_program

RULES = (
    "CKV_AWS_76", "AWS-0001", "APIGateway.9",
    "KICS-1b6799eb", "APIGateway.1",
    "CKV_AWS_309", "APIGateway.8",
    "CKV_AWS_50", "AWS-0066",
    "CKV_AWS_115",
    "CKV_AWS_116", "CKV_AWS_117", "CKV_AWS_272", "CKV_AWS_173",
    "CKV_AWS_45",
    "CKV_AWS_363",
    "AWS-0067", "CKV_AWS_301",
    "CKV_AWS_28", "AWS-0024",
    "CKV_AWS_119", "AWS-0025",
    "CKV_AWS_66", "CKV_AWS_338", "CKV_AWS_158",
    "CKV_AWS_63", "CKV_AWS_355", "CKV_AWS_62",
)
"""Every rule the reference lists for a stage, route, Lambda, permission, table, log group or IAM policy."""

CHECKED = {
    "CKV_AWS_76": "test_stage_access_logs", "AWS-0001": "test_stage_access_logs",
    "APIGateway.9": "test_stage_access_logs",
    "CKV_AWS_45": "test_no_secrets_in_function_environment",
    "CKV_AWS_363": "test_runtime_is_supported",
    "AWS-0067": "test_permissions_have_a_source_arn_and_no_public_principal",
    "CKV_AWS_301": "test_permissions_have_a_source_arn_and_no_public_principal",
    "CKV_AWS_28": "test_prod_table_has_point_in_time_recovery",
    "AWS-0024": "test_prod_table_has_point_in_time_recovery",
    "CKV_AWS_119": "test_table_customer_key_is_a_setting", "AWS-0025": "test_table_customer_key_is_a_setting",
    "CKV_AWS_66": "test_log_groups_have_retention", "CKV_AWS_338": "test_log_groups_have_retention",
    "CKV_AWS_63": "test_iam_has_no_wildcards_or_admin", "CKV_AWS_355": "test_iam_has_no_wildcards_or_admin",
    "CKV_AWS_62": "test_iam_has_no_wildcards_or_admin",
    "KICS-1b6799eb": "test_execution_logging_level_when_switched_on",
    "APIGateway.1": "test_execution_logging_level_when_switched_on",
}
"""Rule -> the test below that checks it (some only in the profile where they apply, as the test says)."""

SKIPPED = {
    "CKV_AWS_309": "Route authorization: only $connect can carry an authorizer, and the token authorizer is the "
    "hardening work (issue 7); $disconnect, $default and sendmessage can never have one, since API Gateway "
    "authorizes a WebSocket once, at $connect.",
    "APIGateway.8": "Same as CKV_AWS_309 (Security Hub's name for the route authorization rule): only $connect "
    "can be authorized, and that is the hardening work (issue 7).",
    "CKV_AWS_50": "X-Ray tracing is the hardening work (issue 7, setting `tracing`, refused until built).",
    "AWS-0066": "Same as CKV_AWS_50 (trivy's X-Ray rule, which wants Active tracing): the hardening work, issue 7.",
    "CKV_AWS_115": "Reserved concurrency is the hardening work (issue 7, setting `reservedConcurrency`).",
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
"""Rule -> why it does not apply to this stack (yet)."""


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
    key = "arn:aws:kms:us-east-1:123456789012:alias/chat"
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


def test_iam_has_no_wildcards_or_admin(dev_run: ProgramRun) -> None:
    documents = [json.loads(policy.inputs["policy"]) for policy in dev_run.of_type("aws:iam/rolePolicy:RolePolicy")]
    documents += [json.loads(role.inputs["assumeRolePolicy"]) for role in dev_run.of_type("aws:iam/role:Role")]
    for document in documents:
        for statement in document["Statement"]:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            assert not any(action == "*" or action.endswith(":*") for action in actions), f"wildcard in {statement}"
            resources = statement.get("Resource", [])
            resources = resources if isinstance(resources, list) else [resources]
            assert "*" not in resources, f"resource * in {statement}"
    attached = {attachment.inputs["policyArn"]
                for attachment in dev_run.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")}
    assert not any("AdministratorAccess" in arn or "FullAccess" in arn for arn in attached), f"admin: {attached}"
